//! The client against a real okla-registry in-process (SQLite, local artifacts in a temporary
//! directory): tracking with batched metrics, artifacts, model registration checked against
//! the registry's sha256s, stages and aliases, errors, deployments and the fleet's reports.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use okla_client::{
    Client, DeploymentSpec, Error, ModelReport, NodeReport, Route, Run, RunStatus, Stage,
    StatusCode, VersionReport, VersionState,
};
use sha2::{Digest, Sha256};

mod common;

use common::{Registry, model_dir};

async fn new_run(client: &Client, experiment: &str) -> Run {
    let experiment = client
        .get_or_create_experiment(experiment)
        .await
        .expect("experiment");
    client
        .create_run(&experiment, "test-run", &[("team", "pricing")])
        .await
        .expect("run")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn register(client: &Client, model: &str, files: &[(&str, &[u8])]) -> u64 {
    let run = new_run(client, "models").await;
    let directory = model_dir(files);
    let version = client
        .register_model_dir(model, &run, directory.path())
        .await
        .expect("registered");
    run.end_run(RunStatus::Finished).await.expect("run ended");
    version.version
}

#[tokio::test]
async fn batched_metrics_all_reach_the_registry() {
    let registry = Registry::start().await;
    let client = registry.client();
    let run = new_run(&client, "metrics").await;
    let metrics = run.metrics();
    for step in 0..2500 {
        metrics
            .log("loss", 1.0 / (step + 1) as f64, step)
            .await
            .expect("queued");
    }
    metrics.flush().await.expect("flushed");

    let history = client
        .metric_history(run.id(), "loss")
        .await
        .expect("history");
    let mut steps: Vec<i64> = history.iter().map(|point| point.step).collect();
    steps.sort_unstable();
    assert_eq!(steps, (0..2500).collect::<Vec<_>>());
    assert!(history.iter().all(|point| point.key == "loss"));

    // A diverging loss is logged too: JSON numbers cannot carry these, proto3 strings do.
    for (step, value) in [(0, f64::NAN), (1, f64::INFINITY), (2, f64::NEG_INFINITY)] {
        metrics.log("diverged", value, step).await.expect("queued");
    }
    metrics
        .flush()
        .await
        .expect("non-finite values are accepted");
    let mut diverged = client
        .metric_history(run.id(), "diverged")
        .await
        .expect("history");
    diverged.sort_by_key(|point| point.step);
    assert!(diverged[0].value.is_nan());
    assert_eq!(diverged[1].value, f64::INFINITY);
    assert_eq!(diverged[2].value, f64::NEG_INFINITY);

    run.log_param("alpha", "0.5").await.expect("param");
    run.set_tag("stage", "test").await.expect("tag");
    let info = run.end_run(RunStatus::Finished).await.expect("ended");
    assert_eq!(info.status, RunStatus::Finished);
    assert!(info.end_time.is_some());
}

#[tokio::test]
async fn flush_reports_a_batch_the_registry_never_got() {
    let mut registry = Registry::start().await;
    let client = registry.client();
    let run = new_run(&client, "metrics").await;
    let metrics = run.metrics();
    metrics.log("loss", 1.0, 0).await.expect("queued");
    metrics
        .flush()
        .await
        .expect("flushed while the registry runs");

    registry.stop().await;
    metrics.log("loss", 0.5, 1).await.expect("queued");
    let error = metrics.flush().await.expect_err("the registry is gone");
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    assert!(error.to_string().contains("runs/log-batch"), "{error}");
    // The error is reported once; nothing was logged since.
    metrics.flush().await.expect("no new failure");
}

#[tokio::test]
async fn registered_files_match_the_registry_sha256s() {
    let registry = Registry::start().await;
    let client = registry.client();
    let weights: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let config = b"[model]\nname = \"pricing\"\n";
    let run = new_run(&client, "models").await;
    let directory = model_dir(&[("weights.bin", &weights), ("conf/config.toml", config)]);

    let version = client
        .register_model_dir("pricing", &run, directory.path())
        .await
        .expect("registered");
    assert_eq!(version.version, 1);
    assert_eq!(version.current_stage, Stage::None);
    assert_eq!(version.run_id, run.id());
    assert_eq!(version.source, format!("{}/model", run.artifact_uri()));

    let recorded: BTreeMap<String, (u64, String)> = client
        .version_files("pricing", 1)
        .await
        .expect("files")
        .into_iter()
        .map(|file| (file.path, (file.size, file.sha256)))
        .collect();
    let expected: BTreeMap<String, (u64, String)> = [
        ("conf/config.toml", config.as_slice()),
        ("weights.bin", weights.as_slice()),
    ]
    .into_iter()
    .map(|(path, bytes)| (path.to_owned(), (bytes.len() as u64, sha256_hex(bytes))))
    .collect();
    assert_eq!(recorded, expected);

    let destination = tempfile::tempdir().expect("temporary directory");
    let downloaded = client
        .download_file(
            &format!("{}/model/weights.bin", run.artifact_uri()),
            &destination.path().join("nested/weights.bin"),
        )
        .await
        .expect("downloaded");
    assert_eq!(downloaded.sha256, sha256_hex(&weights));
    assert_eq!(
        std::fs::read(destination.path().join("nested/weights.bin")).expect("read"),
        weights
    );

    // The whole version, each file checked against the registry's record.
    let version_dir = destination.path().join("pricing-1");
    let files = client
        .download_model_version("pricing", 1, &version_dir)
        .await
        .expect("version downloaded");
    assert_eq!(files.len(), 2);
    assert_eq!(
        std::fs::read(version_dir.join("conf/config.toml")).expect("read"),
        config
    );
    assert_eq!(
        std::fs::read(version_dir.join("weights.bin")).expect("read"),
        weights
    );
}

#[tokio::test]
async fn a_failed_upload_registers_nothing() {
    let registry = Registry::start().await;
    let client = registry.client();
    let run = new_run(&client, "models").await;
    let error = client
        .register_model_dir("ghost", &run, Path::new("/nonexistent/okla-client-test"))
        .await
        .expect_err("nothing to upload");
    assert!(matches!(error, Error::Io { .. }), "{error:?}");
    let error = client
        .get_registered_model("ghost")
        .await
        .expect_err("not registered");
    assert_eq!(error.error_code(), Some("RESOURCE_DOES_NOT_EXIST"));
}

#[tokio::test]
async fn stages_and_aliases() {
    let registry = Registry::start().await;
    let client = registry.client();
    let version = register(&client, "pricing", &[("model.bin", b"v1")]).await;

    let moved = client
        .transition_stage("pricing", version, Stage::Production, true)
        .await
        .expect("transitioned");
    assert_eq!(moved.current_stage, Stage::Production);

    client
        .set_alias("pricing", "champion", version)
        .await
        .expect("alias set");
    let by_alias = client
        .get_version_by_alias("pricing", "champion")
        .await
        .expect("by alias");
    assert_eq!(by_alias.version, version);
    assert_eq!(by_alias.current_stage, Stage::Production);
    assert_eq!(by_alias.aliases, vec!["champion".to_owned()]);

    let model = client.get_registered_model("pricing").await.expect("model");
    assert_eq!(model.aliases.len(), 1);
    assert_eq!(model.aliases[0].version, version);

    let found = client
        .search_model_versions("name = 'pricing'")
        .await
        .expect("search");
    assert_eq!(
        found.iter().map(|found| found.version).collect::<Vec<_>>(),
        vec![version]
    );

    client
        .delete_alias("pricing", "champion")
        .await
        .expect("alias deleted");
    let error = client
        .get_version_by_alias("pricing", "champion")
        .await
        .expect_err("alias gone");
    assert_eq!(error.error_code(), Some("INVALID_PARAMETER_VALUE"));
}

#[tokio::test]
async fn refusals_carry_the_registry_error_code() {
    let registry = Registry::start().await;
    let client = registry.client();
    let error = client
        .get_registered_model("missing")
        .await
        .expect_err("no such model");
    match &error {
        Error::Api {
            status, error_code, ..
        } => {
            assert_eq!(*status, StatusCode::NOT_FOUND);
            assert_eq!(error_code, "RESOURCE_DOES_NOT_EXIST");
        }
        other => panic!("expected Error::Api, got {other:?}"),
    }
    let shown = error.to_string();
    assert!(shown.contains("registered-models/get"), "{shown}");
    assert!(shown.contains("missing"), "{shown}");
    assert!(!shown.contains('\n'), "{shown}");
}

#[tokio::test]
async fn deployments_round_trip() {
    let registry = Registry::start().await;
    let client = registry.client();
    let v1 = register(&client, "pricing", &[("model.bin", b"v1")]).await;
    let v2 = register(&client, "pricing", &[("model.bin", b"v2")]).await;
    assert_eq!((v1, v2), (1, 2));

    let initial = client.get_deployment("pricing").await.expect("deployment");
    assert_eq!(initial.source, "none");
    let spec = DeploymentSpec {
        routes: vec![
            Route {
                version: v1,
                weight: 90,
            },
            Route {
                version: v2,
                weight: 10,
            },
        ],
        comment: Some("canary v2".to_owned()),
        ..DeploymentSpec::default()
    };
    let put = client
        .put_deployment("pricing", &spec, Some(initial.revision))
        .await
        .expect("deployment set");
    assert_eq!(put.source, "explicit");
    assert_eq!(put.revision, initial.revision + 1);
    assert_eq!(put.routes, spec.routes);
    assert_eq!(put.updated_by.as_deref(), Some("trainer"));
    assert_eq!(client.get_deployment("pricing").await.expect("read"), put);

    let stale = client
        .put_deployment("pricing", &spec, Some(initial.revision))
        .await
        .expect_err("stale revision");
    assert_eq!(stale.error_code(), Some("RESOURCE_CONFLICT"));

    let rolled_back = client
        .rollback("pricing", Some(v1), "v2 regressed")
        .await
        .expect("rolled back");
    assert_eq!(
        rolled_back.routes,
        vec![Route {
            version: v1,
            weight: 100
        }]
    );
    assert_eq!(rolled_back.revision, put.revision + 1);
}

#[tokio::test]
async fn waits_until_every_fresh_node_serves_the_version() {
    let registry = Registry::start().await;
    let client = registry.client();
    let version = register(&client, "pricing", &[("model.bin", b"v1")]).await;

    let error = client
        .wait_until_served("pricing", version, Duration::ZERO)
        .await
        .expect_err("no node yet");
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");

    let report = |node: &str, state: &str| {
        let body = serde_json::json!({
            "http_url": format!("http://{node}:8000"),
            "report_seconds": 60,
            "models": [{"model": "pricing", "versions": [{"version": version, "state": state}]}],
        });
        let url = format!("{}/api/okla/v1/nodes/{node}", registry.url);
        async move {
            let response = reqwest::Client::new()
                .put(url)
                .json(&body)
                .send()
                .await
                .expect("report sent");
            assert!(response.status().is_success(), "{}", response.status());
        }
    };
    report("node-a", "serving").await;
    report("node-b", "loading").await;
    let error = client
        .wait_until_served("pricing", version, Duration::ZERO)
        .await
        .expect_err("node-b still loading");
    assert!(error.to_string().contains("node-b (loading)"), "{error}");

    report("node-b", "serving").await;
    let nodes = client
        .wait_until_served("pricing", version, Duration::from_secs(30))
        .await
        .expect("served everywhere");
    let mut ids: Vec<&str> = nodes.iter().map(|node| node.node_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["node-a", "node-b"]);

    // Under an explicit deployment, serving the version is not enough: each node must follow
    // the deployment's revision.
    let spec = DeploymentSpec {
        routes: vec![Route {
            version,
            weight: 100,
        }],
        ..DeploymentSpec::default()
    };
    let deployment = client
        .put_deployment("pricing", &spec, None)
        .await
        .expect("deployed");
    let error = client
        .wait_until_served("pricing", version, Duration::ZERO)
        .await
        .expect_err("nodes report no revision yet");
    assert!(error.to_string().contains("not yet on revision"), "{error}");
    for node in ["node-a", "node-b"] {
        let body = serde_json::json!({
            "report_seconds": 60,
            "models": [{"model": "pricing", "revision": deployment.revision,
                        "versions": [{"version": version, "state": "serving"}]}],
        });
        let response = reqwest::Client::new()
            .put(format!("{}/api/okla/v1/nodes/{node}", registry.url))
            .json(&body)
            .send()
            .await
            .expect("report sent");
        assert!(response.status().is_success());
    }
    client
        .wait_until_served("pricing", version, Duration::ZERO)
        .await
        .expect("every node follows the revision");
}

#[tokio::test]
async fn a_serving_node_follows_and_fetches_through_the_client() {
    let registry = Registry::start().await;
    let client = registry.client();
    let weights: &[u8] = b"onnx weights";
    let version = register(&client, "pricing", &[("model.onnx", weights)]).await;

    assert!(
        client
            .effective_deployment("unknown")
            .await
            .expect("asked")
            .is_none()
    );
    let missing = client
        .model_version_download_uri("unknown", 1)
        .await
        .expect_err("unknown model");
    assert!(missing.is_not_found(), "{missing}");
    assert_eq!(missing.status(), Some(StatusCode::NOT_FOUND));

    let none = client
        .effective_deployment("pricing")
        .await
        .expect("asked")
        .expect("known model");
    assert_eq!((none.source.as_str(), none.routes.len()), ("none", 0));
    client
        .set_alias("pricing", "champion", version)
        .await
        .expect("alias set");
    let champion = client
        .effective_deployment("pricing")
        .await
        .expect("asked")
        .expect("known model");
    assert_eq!(champion.source, "champion");
    assert_eq!(
        champion.routes,
        [Route {
            version,
            weight: 100
        }]
    );

    let uri = client
        .model_version_download_uri("pricing", version)
        .await
        .expect("download uri");
    assert!(uri.starts_with("mlflow-artifacts:"), "{uri}");
    let files = client
        .version_files("pricing", version)
        .await
        .expect("files");
    assert_eq!(files.len(), 1);
    let dest_dir = tempfile::tempdir().expect("temporary directory");
    let dest = dest_dir.path().join("v").join("model.onnx");
    let got = client
        .download_artifact(&uri, &files[0].path, &dest)
        .await
        .expect("downloaded");
    assert_eq!(got.size, files[0].size);
    assert_eq!(got.sha256, files[0].sha256);
    assert_eq!(got.sha256, sha256_hex(weights));
    assert_eq!(std::fs::read(&dest).expect("file"), weights);
    assert!(
        !dest_dir
            .path()
            .join("v")
            .join("model.onnx.partial")
            .exists()
    );
    let absent = dest_dir.path().join("absent");
    let error = client
        .download_artifact(&uri, "no-such-file", &absent)
        .await
        .expect_err("no such artifact");
    assert!(error.is_not_found(), "{error}");
    assert!(!dest_dir.path().join("absent.partial").exists());

    let report = NodeReport {
        http_url: Some("http://node-a:8000".to_owned()),
        report_seconds: 5.0,
        models: vec![ModelReport {
            model: "pricing".to_owned(),
            revision: None,
            versions: vec![VersionReport {
                version,
                state: VersionState::Serving,
                error: None,
                load_seconds: Some(0.5),
                requests: 3,
                requests_per_second: None,
                errors: 1,
                latency_bounds_seconds: vec![0.1],
                latency_counts: vec![2, 1],
            }],
            unconfirmed: None,
        }],
    };
    let node = client
        .put_node_report("node-a", &report)
        .await
        .expect("report accepted");
    assert_eq!(node.node_id, "node-a");
    assert_eq!(
        node.version_state("pricing", version),
        Some(VersionState::Serving)
    );
    let listed = client.nodes("pricing").await.expect("nodes");
    assert_eq!(listed, [node]);
    assert_eq!(listed[0].models[0].versions[0].requests, 3);
    assert_eq!(listed[0].models[0].versions[0].latency_counts, [2, 1]);
}
