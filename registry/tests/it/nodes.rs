//! Serving nodes on both backends, through the REST routes: a node's report is stored and read
//! back, a refused report stores nothing, a version that starts serving or fails writes its
//! event once, and the canary gate rolls back a canary the fleet's reports condemn while it
//! leaves alone one under `min_requests`, within its margin, or reported for an older revision.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, assert_mlflow_error};

mod http {
    use super::*;
    backend_test_suite!(server:
        a_report_is_stored_and_read_back,
        refused_reports_store_nothing,
        serving_and_failed_versions_write_their_events_once,
        a_failing_canary_is_rolled_back_by_the_gate,
        the_gate_leaves_alone_what_it_cannot_condemn,
    );
}

const NODES: &str = "/api/okla/v1/nodes";
const DEPLOYMENTS: &str = "/api/okla/v1/deployments";
const MLFLOW: &str = "/api/2.0/mlflow";

async fn http_model(server: &TestServer, name: &str, versions: usize) {
    server
        .post_ok(
            &format!("{MLFLOW}/registered-models/create"),
            json!({ "name": name }),
        )
        .await;
    for number in 1..=versions {
        server
            .post_ok(
                &format!("{MLFLOW}/model-versions/create"),
                json!({ "name": name, "source": format!("s3://bucket/{name}/{number}") }),
            )
            .await;
    }
}

async fn put(server: &TestServer, path: &str, body: &Value) -> (StatusCode, Value) {
    server
        .send(server.client.put(server.url(path)).json(body))
        .await
}

async fn report(server: &TestServer, node_id: &str, body: Value) -> Value {
    let answer = put(server, &format!("{NODES}/{node_id}"), &body).await;
    assert_eq!(
        answer.0,
        StatusCode::OK,
        "report of {node_id}: {}",
        answer.1
    );
    answer.1
}

/// A serving version whose requests all took under 10 ms.
fn serving(version: i64, requests: u64, errors: u64) -> Value {
    json!({
        "version": version,
        "state": "serving",
        "error": null,
        "load_seconds": 0.42,
        "requests": requests,
        "errors": errors,
        "requests_per_second": 2.5,
        "latency_bounds_seconds": [0.01, 0.05, 0.1],
        "latency_counts": [requests, 0, 0, 0],
    })
}

fn one_model(model: &str, revision: Option<i64>, versions: Vec<Value>) -> Value {
    json!({
        "http_url": "http://10.0.0.5:8000",
        "report_seconds": 2.0,
        "models": [{ "model": model, "revision": revision, "versions": versions }],
    })
}

/// (routing key, actor, body) of every event in the feed, oldest first.
async fn feed(server: &TestServer) -> Vec<(String, String, Value)> {
    let feed = server
        .get_ok("/api/okla/v1/events", &[("max_results", "1000")])
        .await;
    feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| {
            (
                event["routing_key"].as_str().unwrap_or_default().to_owned(),
                event["actor"].as_str().unwrap_or_default().to_owned(),
                event["event"].clone(),
            )
        })
        .collect()
}

async fn node_events(server: &TestServer) -> Vec<(String, String, Value)> {
    feed(server)
        .await
        .into_iter()
        .filter(|(key, _, _)| key == "model.deployed" || key == "model.load_failed")
        .collect()
}

/// Sets a 90/10 canary of version 2 against version 1, gated at `min_requests`; returns the
/// deployment's revision.
async fn canary(server: &TestServer, model: &str, min_requests: i64) -> i64 {
    let (status, answer) = put(
        server,
        &format!("{DEPLOYMENTS}/{model}"),
        &json!({
            "routes": [{ "version": 1, "weight": 90 }, { "version": 2, "weight": 10 }],
            "canary_gate": {
                "version": 2,
                "max_error_rate_delta": 0.02,
                "max_p99_ratio": 1.5,
                "min_requests": min_requests,
            },
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["deployment"]["revision"]
        .as_i64()
        .expect("a revision")
}

async fn deployment(server: &TestServer, model: &str) -> Value {
    server.get_ok(&format!("{DEPLOYMENTS}/{model}"), &[]).await["deployment"].clone()
}

async fn a_report_is_stored_and_read_back(server: &TestServer) {
    let body = one_model("pricing", Some(7), vec![serving(3, 10, 1)]);
    let answer = report(server, "node-b.zone:1", body.clone()).await;
    let node = &answer["node"];
    assert_eq!(node["node_id"], "node-b.zone:1");
    assert_eq!(node["http_url"], "http://10.0.0.5:8000");
    assert_eq!(node["stale"], false);
    assert!(
        node["reported_at_ms"].as_i64().is_some_and(|at| at > 0),
        "{node}"
    );
    assert_eq!(node["models"], body["models"], "models as reported");

    let read = server.get_ok(&format!("{NODES}/node-b.zone:1"), &[]).await;
    assert_eq!(read, answer);

    // Absent optional fields read back with their defaults.
    report(
        server,
        "node-a",
        json!({ "models": [
            { "model": "other", "versions": [{ "version": 1, "state": "loading" }] },
            { "model": "pricing", "revision": null, "versions": [] },
        ] }),
    )
    .await;
    let listed = server.get_ok(NODES, &[]).await;
    let ids: Vec<&str> = listed["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|node| node["node_id"].as_str())
        .collect();
    assert_eq!(ids, ["node-a", "node-b.zone:1"], "sorted by node id");
    let node_a = &listed["nodes"][0];
    assert_eq!(node_a["http_url"], Value::Null);
    assert_eq!(node_a["report_seconds"], 5.0);
    assert_eq!(
        node_a["models"][0]["versions"][0],
        json!({
            "version": 1, "state": "loading", "error": null, "load_seconds": null,
            "requests": 0, "errors": 0, "requests_per_second": null,
            "latency_bounds_seconds": [], "latency_counts": [],
        })
    );

    let filtered = server.get_ok(NODES, &[("model", "other")]).await;
    assert_eq!(filtered["nodes"].as_array().map(Vec::len), Some(1));
    assert_eq!(filtered["nodes"][0]["node_id"], "node-a");
    assert_eq!(
        filtered["nodes"][0]["models"].as_array().map(Vec::len),
        Some(1)
    );
    let filtered = server.get_ok(NODES, &[("model", "pricing")]).await;
    assert_eq!(filtered["nodes"].as_array().map(Vec::len), Some(2));

    let (status, answer) = server
        .send(server.client.delete(server.url(&format!("{NODES}/node-a"))))
        .await;
    assert_eq!((status, answer), (StatusCode::OK, json!({})));
    let (status, _) = server
        .send(server.client.delete(server.url(&format!("{NODES}/node-a"))))
        .await;
    assert_eq!(status, StatusCode::OK, "forgetting is idempotent");
    let answer = server.get(&format!("{NODES}/node-a"), &[]).await;
    assert_mlflow_error(&answer, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let listed = server.get_ok(NODES, &[]).await;
    assert_eq!(listed["nodes"].as_array().map(Vec::len), Some(1));
}

async fn refused_reports_store_nothing(server: &TestServer) {
    let bad_request = StatusCode::BAD_REQUEST;
    let invalid = "INVALID_PARAMETER_VALUE";
    let mut short_counts = serving(3, 10, 0);
    short_counts["latency_counts"] = json!([10, 0, 0]);
    let mut bad_state = serving(3, 10, 0);
    bad_state["state"] = json!("running");
    let mut unknown_field = serving(3, 10, 0);
    unknown_field["latency_p99"] = json!(0.1);
    let mut bad_sum = serving(3, 10, 0);
    bad_sum["latency_counts"] = json!([9, 0, 0, 0]);
    let mut negative_rate = serving(3, 10, 0);
    negative_rate["requests_per_second"] = json!(-1.5);
    let mut failed_without_error = serving(3, 0, 0);
    failed_without_error["state"] = json!("failed");
    let refusals = [
        (
            one_model("pricing", Some(1), vec![serving(1, 0, 0), short_counts]),
            "models[0].versions[1].latency_counts must have 1 more entry than latency_bounds_seconds",
        ),
        (
            one_model("pricing", Some(1), vec![bad_state]),
            "models[0].versions[0].state",
        ),
        (
            one_model("pricing", Some(1), vec![unknown_field]),
            "latency_p99",
        ),
        (
            one_model("pricing", Some(1), vec![bad_sum]),
            "models[0].versions[0].latency_counts",
        ),
        (
            one_model("pricing", Some(1), vec![serving(1, 0, 0), negative_rate]),
            "models[0].versions[1].requests_per_second must be a number of requests per second (0 or more), got -1.5",
        ),
        (
            one_model("pricing", Some(1), vec![failed_without_error]),
            "models[0].versions[0].error",
        ),
        (json!({ "models": [], "hostname": "x" }), "hostname"),
        (json!({ "models": [{ "versions": [] }] }), "models[0].model"),
    ];
    for (body, expected) in refusals {
        let answer = put(server, &format!("{NODES}/node-1"), &body).await;
        let message = assert_mlflow_error(&answer, bad_request, invalid);
        let unquoted = message.replace('\'', "");
        assert!(
            unquoted.contains(expected) || message.contains(expected),
            "{body}: {message} lacks {expected}"
        );
    }
    for node_id in ["bad%20id", "n".repeat(201).as_str()] {
        let answer = put(
            server,
            &format!("{NODES}/{node_id}"),
            &json!({ "models": [] }),
        )
        .await;
        let message = assert_mlflow_error(&answer, bad_request, invalid);
        assert!(message.contains("node_id"), "{message}");
    }
    let listed = server.get_ok(NODES, &[]).await;
    assert_eq!(listed, json!({ "nodes": [] }), "nothing stored");
    assert!(node_events(server).await.is_empty());
}

async fn serving_and_failed_versions_write_their_events_once(server: &TestServer) {
    http_model(server, "pricing", 2).await;
    let loading = json!({ "version": 2, "state": "loading" });
    report(
        server,
        "n1",
        one_model("pricing", None, vec![serving(1, 0, 0), loading.clone()]),
    )
    .await;
    let events = node_events(server).await;
    assert_eq!(
        events,
        vec![(
            "model.deployed".to_owned(),
            "node:n1".to_owned(),
            json!({ "model_deployed": {
                "node_id": "n1", "version": 1, "load_seconds": 0.42, "revision": null,
            }}),
        )]
    );
    // The same state again (counters moved on): nothing new happened.
    report(
        server,
        "n1",
        one_model("pricing", None, vec![serving(1, 50, 1), loading]),
    )
    .await;
    assert_eq!(node_events(server).await.len(), 1);

    let failed = json!({ "version": 2, "state": "failed", "error": "checksum mismatch" });
    let body = one_model("pricing", None, vec![serving(1, 60, 1), failed]);
    report(server, "n1", body.clone()).await;
    report(server, "n1", body).await;
    let events = node_events(server).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[1],
        (
            "model.load_failed".to_owned(),
            "node:n1".to_owned(),
            json!({ "model_load_failed": {
                "node_id": "n1", "version": 2, "error": "checksum mismatch",
            }}),
        )
    );

    // Another node serving the same version announces it for itself.
    report(
        server,
        "n2",
        one_model("pricing", Some(3), vec![serving(1, 0, 0)]),
    )
    .await;
    let events = node_events(server).await;
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].1, "node:n2");
    assert_eq!(events[2].2["model_deployed"]["revision"], 3);

    // Models the registry does not know are stored, without events.
    report(
        server,
        "n3",
        one_model("unregistered", None, vec![serving(1, 0, 0)]),
    )
    .await;
    assert_eq!(node_events(server).await.len(), 3);
    let stored = server.get_ok(&format!("{NODES}/n3"), &[]).await;
    assert_eq!(stored["node"]["models"][0]["model"], "unregistered");
}

async fn a_failing_canary_is_rolled_back_by_the_gate(server: &TestServer) {
    http_model(server, "pricing", 2).await;
    let revision = canary(server, "pricing", 100).await;
    // 60 canary requests, 40% failed: under min_requests on this node alone.
    let body = one_model(
        "pricing",
        Some(revision),
        vec![serving(1, 500, 0), serving(2, 60, 24)],
    );
    report(server, "node-a", body.clone()).await;
    assert_eq!(deployment(server, "pricing").await["revision"], revision);

    // A second node brings the canary to 120 requests: the gate trips.
    report(server, "node-b", body.clone()).await;
    let rolled_back = deployment(server, "pricing").await;
    assert_eq!(rolled_back["revision"], revision + 1);
    assert_eq!(
        rolled_back["routes"],
        json!([{ "version": 1, "weight": 100 }])
    );
    assert_eq!(rolled_back["updated_by"], "canary-gate");
    assert!(rolled_back.get("canary_gate").is_none(), "{rolled_back}");

    let reason =
        "canary gate: version 2 error rate 0.400 vs 0.000 (allowed +0.020) over 120 requests";
    let history = server
        .get_ok("/api/okla/v1/models/pricing/history", &[])
        .await;
    let rollbacks: Vec<(&str, &str)> = history["history"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|entry| entry["kind"] == "deployment_rollback")
        .map(|entry| {
            (
                entry["actor"].as_str().unwrap_or_default(),
                entry["comment"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(rollbacks, [("canary-gate", reason)]);
    let rolled: Vec<(String, String, Value)> = feed(server)
        .await
        .into_iter()
        .filter(|(key, _, _)| key == "deployment.rolled_back")
        .collect();
    assert_eq!(rolled.len(), 1, "{rolled:?}");
    assert_eq!(rolled[0].1, "canary-gate");
    assert_eq!(rolled[0].2["deployment_rolled_back"]["to_version"], 1);
    assert_eq!(rolled[0].2["deployment_rolled_back"]["reason"], reason);

    // More reports of the judged revision change nothing: it is no longer the deployment's.
    report(server, "node-c", body).await;
    assert_eq!(
        deployment(server, "pricing").await["revision"],
        revision + 1
    );
}

async fn the_gate_leaves_alone_what_it_cannot_condemn(server: &TestServer) {
    http_model(server, "pricing", 2).await;
    let revision = canary(server, "pricing", 100).await;

    // Within the margin: 2% errors against 1% (allowed +2 points), same latencies.
    report(
        server,
        "node-a",
        one_model(
            "pricing",
            Some(revision),
            vec![serving(1, 200, 2), serving(2, 200, 4)],
        ),
    )
    .await;
    assert_eq!(deployment(server, "pricing").await["revision"], revision);

    // A new deployment revision: what the nodes counted belongs to the previous one.
    let current = canary_80_20(server).await;
    assert_eq!(current, revision + 1);
    // Reports for the older revision, however bad, are ignored.
    report(
        server,
        "node-a",
        one_model(
            "pricing",
            Some(revision),
            vec![serving(1, 200, 0), serving(2, 200, 200)],
        ),
    )
    .await;
    assert_eq!(deployment(server, "pricing").await["revision"], current);

    // Under min_requests: 90 canary requests, all failed.
    report(
        server,
        "node-stale",
        json!({
            "report_seconds": 0.01,
            "models": [{ "model": "pricing", "revision": current,
                         "versions": [serving(2, 90, 90)] }],
        }),
    )
    .await;
    assert_eq!(deployment(server, "pricing").await["revision"], current);
    // That node stops reporting: three missed reports later it is stale and no longer counts,
    // so the next node's 20 healthy canary requests are judged alone (still under
    // min_requests; with the stale node's they would be 110 at 82% errors).
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let stale = server.get_ok(&format!("{NODES}/node-stale"), &[]).await;
    assert_eq!(stale["node"]["stale"], true);
    report(
        server,
        "node-b",
        one_model(
            "pricing",
            Some(current),
            vec![serving(1, 100, 0), serving(2, 20, 0)],
        ),
    )
    .await;
    let left_alone = deployment(server, "pricing").await;
    assert_eq!(left_alone["revision"], current);
    assert_eq!(left_alone["routes"].as_array().map(Vec::len), Some(2));
    assert!(
        feed(server)
            .await
            .iter()
            .all(|(key, _, _)| key != "deployment.rolled_back")
    );
}

/// Replaces the deployment with an 80/20 canary of version 2; returns the new revision.
async fn canary_80_20(server: &TestServer) -> i64 {
    let (status, answer) = put(
        server,
        &format!("{DEPLOYMENTS}/pricing"),
        &json!({
            "routes": [{ "version": 1, "weight": 80 }, { "version": 2, "weight": 20 }],
            "canary_gate": {
                "version": 2,
                "max_error_rate_delta": 0.02,
                "max_p99_ratio": 1.5,
                "min_requests": 100,
            },
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["deployment"]["revision"]
        .as_i64()
        .expect("a revision")
}
