//! Hot reload from the repository directory (`--repository-poll-seconds`): a new version
//! replaces the old one, a new model appears, a removed one goes, a model unloaded through the
//! API stays unloaded, and requests are answered throughout.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{ADMIN_TOKEN, Server, Traffic, example_models, wait_until};

/// Places `pricing`'s model file as `<model>/<version>` in one rename, so the poller never
/// sees a half-written version directory.
fn publish_version(repository: &Path, model: &str, version: u64) {
    let staging = repository.join(format!(".staging-{model}-{version}"));
    std::fs::create_dir_all(&staging).expect("staging directory");
    std::fs::copy(
        example_models().join("pricing/1/model.onnx"),
        staging.join("model.onnx"),
    )
    .expect("copy the model file");
    std::fs::create_dir_all(repository.join(model)).expect("model directory");
    std::fs::rename(&staging, repository.join(model).join(version.to_string()))
        .expect("publish the version");
}

async fn get(client: &reqwest::Client, url: String) -> (StatusCode, Value) {
    let response = client.get(url).send().await.expect("server answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn repository_changes_are_served_without_failing_requests() {
    let repository = tempfile::tempdir().expect("temporary directory");
    publish_version(repository.path(), "pricing", 1);
    let server = Server::start_controlled(repository.path(), &["--repository-poll-seconds", "1"]);
    let client = reqwest::Client::new();
    let versions_of = |model: &str| {
        let (client, url) = (client.clone(), format!("{}/v2/models/{model}", server.http));
        async move { get(&client, url).await.1["versions"].clone() }
    };
    assert_eq!(versions_of("pricing").await, json!(["1"]));

    // Requests run the whole time; none may fail while versions come and go.
    let traffic = Traffic::start(&client, format!("{}/v2/models/pricing/infer", server.http));

    publish_version(repository.path(), "pricing", 2);
    wait_until("version 2 replaces version 1", || async {
        versions_of("pricing").await == json!(["2"])
    })
    .await;

    publish_version(repository.path(), "pricing_copy", 1);
    wait_until("the new model is ready", || async {
        let url = format!("{}/v2/models/pricing_copy/ready", server.http);
        get(&client, url).await.0 == StatusCode::OK
    })
    .await;

    std::fs::remove_dir_all(repository.path().join("pricing_copy")).expect("remove the model");
    wait_until("the removed model is gone", || async {
        let url = format!("{}/v2/models/pricing_copy", server.http);
        get(&client, url).await.0 == StatusCode::NOT_FOUND
    })
    .await;

    let (answered, failed) = traffic.finish().await;
    assert_eq!(failed, 0, "requests failed during reloads");
    assert!(answered > 0);

    // An unload through the API sticks although the directory is still there.
    let unload = client
        .post(format!(
            "{}/v2/repository/models/pricing/unload",
            server.http
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("unload answers");
    assert_eq!(unload.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let url = format!("{}/v2/models/pricing", server.http);
    assert_eq!(get(&client, url).await.0, StatusCode::NOT_FOUND);
}

/// A new version that fails to load never replaces the one that serves (TF Serving's
/// availability-preserving policy), and requests keep being answered by the old version.
#[tokio::test(flavor = "multi_thread")]
async fn a_version_that_fails_to_load_leaves_the_old_one_serving() {
    let repository = tempfile::tempdir().expect("temporary directory");
    publish_version(repository.path(), "pricing", 1);
    let server = Server::start_with(repository.path(), &["--repository-poll-seconds", "1"]);
    let client = reqwest::Client::new();
    let traffic = Traffic::start(&client, format!("{}/v2/models/pricing/infer", server.http));

    let broken = repository.path().join(".staging-broken");
    std::fs::create_dir_all(&broken).expect("staging directory");
    std::fs::write(broken.join("model.onnx"), b"not an ONNX model").expect("write");
    std::fs::rename(&broken, repository.path().join("pricing/2")).expect("publish");
    let failures = "okla_serving_model_load_failures_total{model=\"pricing\"}";
    wait_until("version 2 fails to load", || async {
        crate::follow_registry::counter(&client, &server, failures).await >= 1.0
    })
    .await;
    // Two more polls: the failed version is not retried into service, the old one stays.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (answered, failed) = traffic.finish().await;
    assert_eq!(failed, 0, "requests failed after a version failed to load");
    assert!(answered > 0);
    let answer: Value = client
        .post(format!("{}/v2/models/pricing/infer", server.http))
        .json(&crate::support::pricing_request())
        .send()
        .await
        .expect("server answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(answer["model_version"], "1", "{answer}");
}

/// Models that would exhaust memory by their declared shapes, or read files outside their own
/// directory, are refused with the reason; the node stays up and serves the others.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_models_are_refused_and_the_node_stays_up() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let repository = directory.path().join("repository");
    std::fs::create_dir_all(&repository).expect("repository");
    let repository_text = repository.to_str().expect("UTF-8 path").to_owned();
    tokio::task::spawn_blocking(move || {
        crate::support::run_python("make_hostile_models.py", &[&repository_text])
    })
    .await
    .expect("python task");
    publish_version(&repository, "pricing", 1);
    let server = Server::start(&repository);
    let client = reqwest::Client::new();
    let (status, _) = get(&client, format!("{}/v2/models/pricing/ready", server.http)).await;
    assert_eq!(status, StatusCode::OK);

    let index = client
        .post(format!("{}/v2/repository/index", server.http))
        .json(&json!({}))
        .send()
        .await
        .expect("index answers")
        .json::<Value>()
        .await
        .expect("JSON");
    let reason = |model: &str| {
        index
            .as_array()
            .expect("an index")
            .iter()
            .find(|entry| entry["name"] == model)
            .map(|entry| (entry["state"].clone(), entry["reason"].clone()))
            .unwrap_or_else(|| panic!("{model} not in {index}"))
    };
    let (state, why) = reason("huge_shape");
    assert_eq!(state, "UNAVAILABLE", "{index}");
    assert!(
        why.as_str()
            .is_some_and(|why| why.contains("--max-declared-elements")),
        "{index}"
    );
    let (state, why) = reason("escaping_data");
    assert_eq!(state, "UNAVAILABLE", "{index}");
    assert!(
        why.as_str().is_some_and(
            |why| why.contains("../../secret.bin") && why.contains("the model's directory")
        ),
        "{index}"
    );
}
