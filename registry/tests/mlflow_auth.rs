//! End to end: authentication and authorization as the official `mlflow` client and raw HTTP
//! see them (`mlflow_auth.py`), against the built `okla-registry` with auth on, once on SQLite +
//! a local directory and once on PostgreSQL, okla's extensions included (API tokens, MANAGE on
//! deployments, node reports, the history's actor, no lockout). Afterwards the registry's whole
//! log, at debug level, must hold none of the passwords and tokens the script sent.

mod common;

use common::RegistryProcess;
use okla_test_support::{PostgresDatabase, required_env, run_python, workspace_root};

/// A fresh 24-character password for the first admin.
fn generated_password() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..24].to_owned()
}

/// Starts the registry with auth on, on the given stores, creating `admin` with `password`.
fn start_registry(
    backend_store_uri: &str,
    artifacts_destination: &str,
    password: &str,
) -> RegistryProcess {
    RegistryProcess::start_authenticated(
        [
            "--backend-store-uri",
            backend_store_uri,
            "--artifacts-destination",
            artifacts_destination,
        ],
        &[("OKLA_ADMIN_PASSWORD", password), ("RUST_LOG", "debug")],
    )
}

/// Runs the auth script against `registry` as `admin`/`password` and fails with its output if
/// any check fails, or if the registry's log shows any secret the script used.
fn run_auth_checks(registry: &RegistryProcess, password: &str) {
    let secrets_file = tempfile::NamedTempFile::new().expect("temp file");
    let secrets_path = secrets_file.path().to_str().expect("utf-8 path").to_owned();
    let stdout = run_python(
        &workspace_root().join("registry/tests/mlflow_auth.py"),
        &[],
        &[
            ("MLFLOW_TRACKING_URI", registry.url.as_str()),
            ("OKLA_ADMIN_USERNAME", "admin"),
            ("OKLA_ADMIN_PASSWORD", password),
            ("OKLA_EXTENSIONS", "1"),
            ("OKLA_SECRETS_FILE", secrets_path.as_str()),
        ],
    );
    assert!(
        stdout.contains("OK: "),
        "the auth checks did not report success\n{stdout}"
    );
    let used = std::fs::read_to_string(&secrets_path).expect("the script lists its secrets");
    let secrets: Vec<&str> = used.lines().chain([password]).collect();
    assert!(secrets.len() > 10, "too few secrets listed: {secrets:?}");
    let log = registry.output();
    assert!(
        log.lines().count() > 100,
        "the debug log is missing:\n{log}"
    );
    for secret in secrets {
        assert!(
            !log.contains(secret),
            "the registry logged a secret ({} characters)",
            secret.len()
        );
    }
}

#[test]
fn mlflow_auth_on_sqlite_and_local_artifacts() {
    let directory = tempfile::tempdir().expect("temp dir");
    let database = directory.path().join("okla.db");
    let artifacts = directory.path().join("artifacts");
    let password = generated_password();
    let registry = start_registry(
        &format!("sqlite:///{}", database.display()),
        artifacts.to_str().expect("utf-8 path"),
        &password,
    );
    run_auth_checks(&registry, &password);
}

#[tokio::test(flavor = "multi_thread")]
async fn mlflow_auth_on_postgresql() {
    let database = PostgresDatabase::create(&required_env("TEST_DATABASE_URL")).await;
    let directory = tempfile::tempdir().expect("temp dir");
    let artifacts = directory.path().join("artifacts");
    let backend = database
        .url()
        .replacen("postgres://", "postgresql+psycopg2://", 1);
    let password = generated_password();
    let outcome = {
        let registry = start_registry(&backend, artifacts.to_str().expect("utf-8 path"), &password);
        tokio::task::spawn_blocking(move || {
            let result = std::panic::catch_unwind(|| run_auth_checks(&registry, &password));
            drop(registry);
            result
        })
        .await
        .expect("auth checks task joins")
    };

    drop(database);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
