//! End to end: the official `mlflow` Python client drives the built `okla-registry` binary
//! through a whole training-job and data-scientist workflow (`mlflow_workflow.py`), once on the
//! embedded defaults (SQLite + local directory) and once on PostgreSQL + S3.

use std::process::Command;

mod common;

use common::RegistryProcess;
use okla_test_support::{PostgresDatabase, required_env, run_python, workspace_root};

/// Starts the registry on the given stores.
fn start_registry(
    backend_store_uri: &str,
    artifacts_destination: &str,
    env: &[(&str, &str)],
) -> RegistryProcess {
    RegistryProcess::start(
        [
            "--backend-store-uri",
            backend_store_uri,
            "--artifacts-destination",
            artifacts_destination,
        ],
        env,
    )
}

/// Runs the workflow script against `tracking_uri` and fails with its output if any check fails.
fn run_workflow(tracking_uri: &str) {
    let stdout = run_python(
        &workspace_root().join("registry/tests/mlflow_workflow.py"),
        &[],
        &[
            ("MLFLOW_TRACKING_URI", tracking_uri),
            ("OKLA_EXTENSIONS", "1"),
        ],
    );
    assert!(
        stdout.contains("OK: "),
        "workflow did not report success\n{stdout}"
    );
}

#[test]
fn mlflow_client_workflow_on_sqlite_and_local_artifacts() {
    let directory = tempfile::tempdir().expect("temp dir");
    let database = directory.path().join("okla.db");
    let artifacts = directory.path().join("artifacts");
    let registry = start_registry(
        &format!("sqlite:///{}", database.display()),
        artifacts.to_str().expect("utf-8 path"),
        &[],
    );
    run_workflow(&registry.url);
}

#[tokio::test(flavor = "multi_thread")]
async fn mlflow_client_workflow_on_postgresql_and_s3() {
    let s3_endpoint = required_env("TEST_S3_ENDPOINT");
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let database = PostgresDatabase::create(&required_env("TEST_DATABASE_URL")).await;
    let bucket = format!("okla-e2e-{suffix}");

    // moto accepts an unsigned bucket creation.
    let created = reqwest::Client::new()
        .put(format!("{s3_endpoint}/{bucket}"))
        .send()
        .await
        .expect("S3 server answers");
    assert!(
        created.status().is_success(),
        "bucket creation failed: {}",
        created.status()
    );

    let env = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("MLFLOW_S3_ENDPOINT_URL", s3_endpoint.as_str()),
    ];
    let backend = database
        .url()
        .replacen("postgres://", "postgresql+psycopg2://", 1);
    let outcome = {
        let registry = start_registry(&backend, &format!("s3://{bucket}/mlartifacts"), &env);
        let url = registry.url.clone();
        tokio::task::spawn_blocking(move || {
            let result = std::panic::catch_unwind(|| run_workflow(&url));
            drop(registry);
            result
        })
        .await
        .expect("workflow task joins")
    };

    drop(database);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The example training scripts log their run and register their ONNX export with the mlflow
/// client (`--register`), as README tells a data scientist to.
#[tokio::test(flavor = "multi_thread")]
async fn example_training_scripts_register_their_models() {
    let directory = tempfile::tempdir().expect("temp dir");
    let registry = start_registry(
        &format!("sqlite:///{}", directory.path().join("okla.db").display()),
        directory
            .path()
            .join("artifacts")
            .to_str()
            .expect("utf-8 path"),
        &[],
    );
    for (script, model) in [
        ("train_pricing.py", "pricing"),
        ("train_lead_scoring.py", "lead_scoring"),
    ] {
        let output = Command::new(required_env("OKLA_TEST_PYTHON"))
            .arg(workspace_root().join("examples").join(script))
            .args(["--register", model, "--out"])
            .arg(directory.path().join(format!("{model}.onnx")))
            .env("MLFLOW_TRACKING_URI", &registry.url)
            .output()
            .expect("python runs");
        assert!(
            output.status.success(),
            "{script} failed\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );

        let http = reqwest::Client::new();
        let alias: serde_json::Value = http
            .get(format!(
                "{}/api/2.0/mlflow/registered-models/alias",
                registry.url
            ))
            .query(&[("name", model), ("alias", "champion")])
            .send()
            .await
            .expect("registry answers")
            .json()
            .await
            .expect("JSON");
        assert_eq!(alias["model_version"]["version"], "1", "{alias}");
        let files: serde_json::Value = http
            .get(format!(
                "{}/api/okla/v1/models/{model}/versions/1/files",
                registry.url
            ))
            .send()
            .await
            .expect("registry answers")
            .json()
            .await
            .expect("JSON");
        assert!(
            files["files"]
                .as_array()
                .expect("files")
                .iter()
                .any(|file| file["path"] == "model.onnx"),
            "{files}"
        );
    }
}
