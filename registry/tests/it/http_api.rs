//! The HTTP suite: the real registry on an ephemeral port, driven with `reqwest` the way the
//! mlflow client drives it, on SQLite and on PostgreSQL. It checks what only the edge decides:
//! MLflow's error body and statuses, request parsing and limits, the artifact proxy (including
//! path traversal), multipart uploads, and the okla-native files and history endpoints.
//! Every helper fails the test on a 5xx answer.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{TestServer, assert_mlflow_error};

backend_test_suite!(server:
    errors_have_mlflow_shape_and_unknown_resources_are_404,
    duplicates_are_400_resource_already_exists,
    invalid_input_is_400_and_names_the_field,
    over_limit_log_batch_is_refused_and_writes_nothing,
    run_lifecycle_and_param_rules,
    registry_stage_and_alias_rules,
    non_finite_metric_literals_are_accepted_and_returned_as_strings,
    get_endpoints_read_query_strings_and_page,
    artifacts_round_trip_and_list,
    artifact_path_traversal_is_refused,
    model_version_from_run_records_file_digests,
    model_history_names_the_actor_header,
    multipart_upload_assembles_the_file,
    oversized_json_body_is_refused_with_a_4xx,
    searches_binding_too_many_values_are_400,
);

const API: &str = "/api/2.0/mlflow";
const ARTIFACTS: &str = "/api/2.0/mlflow-artifacts/artifacts";

fn api(path: &str) -> String {
    format!("{API}/{path}")
}

/// Creates an experiment and a run in it; returns `(experiment_id, run_id)`.
async fn create_run(server: &TestServer, experiment_name: &str) -> (String, String) {
    let created = server
        .post_ok(
            &api("experiments/create"),
            json!({ "name": experiment_name }),
        )
        .await;
    let experiment_id = created["experiment_id"]
        .as_str()
        .expect("experiment ids are strings")
        .to_owned();
    let run = server
        .post_ok(
            &api("runs/create"),
            json!({ "experiment_id": experiment_id, "user_id": "ada", "run_name": "run", "start_time": 1_700_000_000_000_i64, "tags": [] }),
        )
        .await;
    let run_id = run["run"]["info"]["run_id"]
        .as_str()
        .expect("run id")
        .to_owned();
    (experiment_id, run_id)
}

async fn get_run(server: &TestServer, run_id: &str) -> Value {
    server
        .get_ok(
            &api("runs/get"),
            &[("run_id", run_id), ("run_uuid", run_id)],
        )
        .await["run"]
        .clone()
}

fn count(value: &Value) -> usize {
    value.as_array().map_or(0, Vec::len)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn put_artifact(server: &TestServer, path: &str, bytes: &[u8]) {
    let (status, body) = server
        .send_bytes(
            server
                .client
                .put(server.url(&format!("{ARTIFACTS}/{path}")))
                .body(bytes.to_vec()),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "PUT {path}: {}",
        String::from_utf8_lossy(&body)
    );
}

async fn get_artifact(server: &TestServer, path: &str) -> (StatusCode, Vec<u8>) {
    server
        .send_bytes(
            server
                .client
                .get(server.url(&format!("{ARTIFACTS}/{path}"))),
        )
        .await
}

async fn list_artifacts(server: &TestServer, path: &str) -> Value {
    server.get_ok(ARTIFACTS, &[("path", path)]).await
}

async fn create_model_with_version(server: &TestServer, name: &str) {
    server
        .post_ok(&api("registered-models/create"), json!({ "name": name }))
        .await;
    let created = server
        .post_ok(
            &api("model-versions/create"),
            json!({ "name": name, "source": "s3://bucket/elsewhere/model" }),
        )
        .await;
    assert_eq!(created["model_version"]["version"], "1");
}

// ----- errors -----

async fn errors_have_mlflow_shape_and_unknown_resources_are_404(server: &TestServer) {
    let missing_run = "0123456789abcdef0123456789abcdef";
    let answer = server
        .get(
            &api("runs/get"),
            &[("run_id", missing_run), ("run_uuid", missing_run)],
        )
        .await;
    let message = assert_mlflow_error(&answer, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    assert!(message.contains(missing_run), "{message}");

    let answer = server
        .get(&api("experiments/get"), &[("experiment_id", "424242")])
        .await;
    assert_mlflow_error(&answer, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let answer = server
        .get(
            &api("experiments/get-by-name"),
            &[("experiment_name", "nope")],
        )
        .await;
    assert_mlflow_error(&answer, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let answer = server
        .get(&api("registered-models/get"), &[("name", "nope")])
        .await;
    assert_mlflow_error(&answer, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let answer = server
        .post(&api("runs/create"), json!({ "experiment_id": "424242" }))
        .await;
    assert_mlflow_error(&answer, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");

    create_model_with_version(server, "known").await;
    let answer = server
        .get(
            &api("model-versions/get"),
            &[("name", "known"), ("version", "7")],
        )
        .await;
    assert_mlflow_error(&answer, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let answer = server
        .get(
            &api("model-versions/get"),
            &[("name", "unknown"), ("version", "1")],
        )
        .await;
    assert_mlflow_error(&answer, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let answer = server
        .get("/api/okla/v1/models/known/versions/7/files", &[])
        .await;
    assert_mlflow_error(&answer, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let answer = server.get("/api/okla/v1/models/unknown/history", &[]).await;
    assert_mlflow_error(&answer, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");

    let answer = server.get(&api("no/such/endpoint"), &[]).await;
    assert_eq!(answer.0, StatusCode::NOT_FOUND, "{}", answer.1);

    let (status, body) = server
        .send_bytes(server.client.get(server.url("/health")))
        .await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"OK"[..]));
}

async fn duplicates_are_400_resource_already_exists(server: &TestServer) {
    server
        .post_ok(&api("experiments/create"), json!({ "name": "twice" }))
        .await;
    let answer = server
        .post(&api("experiments/create"), json!({ "name": "twice" }))
        .await;
    let message = assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS");
    assert!(message.contains("twice"), "{message}");

    server
        .post_ok(&api("registered-models/create"), json!({ "name": "twice" }))
        .await;
    let answer = server
        .post(&api("registered-models/create"), json!({ "name": "twice" }))
        .await;
    assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS");
    server
        .post_ok(&api("registered-models/create"), json!({ "name": "other" }))
        .await;
    let answer = server
        .post(
            &api("registered-models/rename"),
            json!({ "name": "other", "new_name": "twice" }),
        )
        .await;
    assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS");
}

async fn invalid_input_is_400_and_names_the_field(server: &TestServer) {
    let (experiment_id, run_id) = create_run(server, "invalid").await;

    let answer = server
        .post(
            &api("runs/search"),
            json!({ "experiment_ids": [experiment_id], "filter": "metrics.rmse <<< 1" }),
        )
        .await;
    assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");

    let answer = server
        .get(&api("experiments/get"), &[("experiment_id", "abc")])
        .await;
    let message = assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    assert!(
        message.contains("Experiment ID must be a valid integer"),
        "{message}"
    );
    let answer = server
        .post(&api("runs/search"), json!({ "experiment_ids": ["abc"] }))
        .await;
    assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");

    // Experiment ids are strings on the wire; a number is a wrong-typed field, named in the answer.
    let answer = server
        .post(&api("runs/create"), json!({ "experiment_id": 5 }))
        .await;
    let message = assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("experiment_id"), "{message}");
    let answer = server
        .post(&api("experiments/create"), json!({ "name": 5 }))
        .await;
    let message = assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("'name'"), "{message}");
    let answer = server
        .post(
            &api("runs/search"),
            json!({ "experiment_ids": ["0"], "max_results": "many" }),
        )
        .await;
    let message = assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("max_results"), "{message}");
    // Fields of `#[serde(flatten)]` request structs lose their path in serde's errors, so this
    // message does not name `value` (a known gap in api/); the status and code are still MLflow's.
    let answer = server
        .post(
            &api("runs/log-metric"),
            json!({ "run_id": run_id, "key": "m", "value": "high", "timestamp": 1 }),
        )
        .await;
    assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");

    // Missing required fields are named.
    let table: [(&str, Value, &str); 5] = [
        ("registered-models/create", json!({}), "'name'"),
        ("experiments/create", json!({ "tags": [] }), "'name'"),
        (
            "runs/log-parameter",
            json!({ "run_id": run_id, "value": "x" }),
            "'key'",
        ),
        (
            "runs/log-metric",
            json!({ "run_id": run_id, "key": "m", "value": 1.0 }),
            "'timestamp'",
        ),
        ("runs/log-batch", json!({ "metrics": [] }), "'run_id'"),
    ];
    for (path, body, field) in table {
        let answer = server.post(&api(path), body).await;
        let message =
            assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
        assert!(message.contains(field), "{path}: {message}");
    }
    let answer = server
        .get(
            &api("model-versions/get"),
            &[("name", "m"), ("version", "abc")],
        )
        .await;
    assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let answer = server
        .get(&api("runs/get"), &[("run_id", "../../etc")])
        .await;
    assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");

    // A body that is not JSON at all is a client error too.
    let (status, body) = server
        .send(
            server
                .client
                .post(server.url(&api("experiments/create")))
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_mlflow_error(
        &(status, body),
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER_VALUE",
    );

    // PostgreSQL cannot store NUL in text; both backends refuse it up front, and write nothing.
    let with_nul = [
        ("experiments/create", json!({ "name": "a\u{0}b" })),
        (
            "runs/set-tag",
            json!({ "run_id": run_id, "key": "k", "value": "a\u{0}b" }),
        ),
        (
            "runs/log-parameter",
            json!({ "run_id": run_id, "key": "p", "value": "\u{0}" }),
        ),
        (
            "runs/update",
            json!({ "run_id": run_id, "run_name": "a\u{0}b" }),
        ),
        (
            "runs/log-batch",
            json!({
                "run_id": run_id,
                "metrics": [{ "key": "m", "value": 1.0, "timestamp": 1, "step": 0 }],
                "tags": [{ "key": "t", "value": "a\u{0}b" }],
            }),
        ),
    ];
    for (path, body) in with_nul {
        let answer = server.post(&api(path), body).await;
        let message =
            assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
        assert!(message.contains("NUL"), "{path}: {message}");
    }
    let run = get_run(server, &run_id).await;
    assert_eq!(count(&run["data"]["metrics"]), 0, "{run}");
    assert_eq!(count(&run["data"]["params"]), 0, "{run}");
    assert_eq!(run["info"]["run_name"], "run");
}

async fn over_limit_log_batch_is_refused_and_writes_nothing(server: &TestServer) {
    let (_, run_id) = create_run(server, "limits").await;
    let metrics: Vec<Value> = (0..1001)
        .map(|step| json!({ "key": "loss", "value": 0.5, "timestamp": 1, "step": step }))
        .collect();
    let params: Vec<Value> = (0..101)
        .map(|index| json!({ "key": format!("p{index}"), "value": "v" }))
        .collect();
    let tags: Vec<Value> = (0..101)
        .map(|index| json!({ "key": format!("t{index}"), "value": "v" }))
        .collect();

    let over_limit = [
        json!({ "run_id": run_id, "metrics": metrics }),
        json!({ "run_id": run_id, "params": params }),
        json!({ "run_id": run_id, "tags": tags }),
        json!({ "run_id": run_id, "params": [{ "key": "long", "value": "x".repeat(6001) }] }),
    ];
    for body in over_limit {
        let answer = server.post(&api("runs/log-batch"), body).await;
        assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    }
    let answer = server
        .post(
            &api("runs/log-parameter"),
            json!({ "run_id": run_id, "key": "long", "value": "x".repeat(6001) }),
        )
        .await;
    let message = assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("6000"), "{message}");

    let run = get_run(server, &run_id).await;
    assert_eq!(count(&run["data"]["metrics"]), 0, "{run}");
    assert_eq!(count(&run["data"]["params"]), 0, "{run}");
    let tag_keys: Vec<&str> = run["data"]["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tag| tag["key"].as_str())
        .collect();
    assert_eq!(tag_keys, ["mlflow.runName"]);
    let history = server
        .get_ok(
            &api("metrics/get-history"),
            &[("run_id", &run_id), ("metric_key", "loss")],
        )
        .await;
    assert_eq!(count(&history["metrics"]), 0, "{history}");

    // At the limits, everything is accepted.
    let metrics: Vec<Value> = (0..1000)
        .map(|step| json!({ "key": "loss", "value": 0.5, "timestamp": 1, "step": step }))
        .collect();
    server
        .post_ok(
            &api("runs/log-batch"),
            json!({ "run_id": run_id, "metrics": metrics }),
        )
        .await;
    server
        .post_ok(
            &api("runs/log-parameter"),
            json!({ "run_id": run_id, "key": "long", "value": "x".repeat(6000) }),
        )
        .await;
    let history = server
        .get_ok(
            &api("metrics/get-history"),
            &[
                ("run_id", &run_id),
                ("metric_key", "loss"),
                ("max_results", "2000"),
            ],
        )
        .await;
    assert_eq!(count(&history["metrics"]), 1000);
}

async fn run_lifecycle_and_param_rules(server: &TestServer) {
    let (experiment_id, run_id) = create_run(server, "lifecycle").await;
    let run = get_run(server, &run_id).await;
    assert_eq!(run["info"]["run_uuid"], run_id.as_str());
    assert_eq!(run["info"]["experiment_id"], experiment_id.as_str());
    assert_eq!(run["info"]["status"], "RUNNING");
    assert_eq!(run["info"]["lifecycle_stage"], "active");
    assert_eq!(
        run["info"]["artifact_uri"],
        format!("mlflow-artifacts:/{experiment_id}/{run_id}/artifacts")
    );
    assert_eq!(run["info"]["start_time"], 1_700_000_000_000_i64);

    let param = json!({ "run_id": run_id, "run_uuid": run_id, "key": "lr", "value": "0.1" });
    server
        .post_ok(&api("runs/log-parameter"), param.clone())
        .await;
    server.post_ok(&api("runs/log-parameter"), param).await;
    let answer = server
        .post(
            &api("runs/log-parameter"),
            json!({ "run_id": run_id, "key": "lr", "value": "0.2" }),
        )
        .await;
    let message = assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    assert!(
        message.contains("Changing param values is not allowed"),
        "{message}"
    );

    let updated = server
        .post_ok(
            &api("runs/update"),
            json!({ "run_id": run_id, "status": "FINISHED", "end_time": 1_700_000_001_000_i64 }),
        )
        .await;
    assert_eq!(updated["run_info"]["status"], "FINISHED");
    assert_eq!(updated["run_info"]["end_time"], 1_700_000_001_000_i64);

    server
        .post_ok(&api("runs/delete"), json!({ "run_id": run_id }))
        .await;
    assert_eq!(
        get_run(server, &run_id).await["info"]["lifecycle_stage"],
        "deleted"
    );
    let answer = server
        .post(
            &api("runs/set-tag"),
            json!({ "run_id": run_id, "key": "k", "value": "v" }),
        )
        .await;
    let message = assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("active"), "{message}");
    server
        .post_ok(&api("runs/restore"), json!({ "run_id": run_id }))
        .await;
    server
        .post_ok(
            &api("runs/set-tag"),
            json!({ "run_id": run_id, "key": "k", "value": "v" }),
        )
        .await;
    let run = get_run(server, &run_id).await;
    assert!(
        run["data"]["tags"]
            .as_array()
            .expect("tags")
            .contains(&json!({ "key": "k", "value": "v" })),
        "{run}"
    );
    assert_eq!(
        run["data"]["params"],
        json!([{ "key": "lr", "value": "0.1" }])
    );
}

async fn registry_stage_and_alias_rules(server: &TestServer) {
    create_model_with_version(server, "m").await;

    for reserved in ["latest", "LATEST", "v3", "V10"] {
        let answer = server
            .post(
                &api("registered-models/alias"),
                json!({ "name": "m", "alias": reserved, "version": "1" }),
            )
            .await;
        let message =
            assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
        assert!(message.contains("reserved"), "{reserved}: {message}");
    }
    let answer = server
        .get(
            &api("registered-models/alias"),
            &[("name", "m"), ("alias", "challenger")],
        )
        .await;
    let message = assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("challenger"), "{message}");

    let answer = server
        .post(
            &api("model-versions/transition-stage"),
            json!({ "name": "m", "version": "1", "stage": "Bogus" }),
        )
        .await;
    let message = assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    assert!(
        message.contains("Invalid Model Version stage: Bogus"),
        "{message}"
    );
    let answer = server
        .post(
            &api("model-versions/transition-stage"),
            json!({ "name": "m", "version": "1", "stage": "Archived", "archive_existing_versions": true }),
        )
        .await;
    assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let moved = server
        .post_ok(
            &api("model-versions/transition-stage"),
            json!({ "name": "m", "version": "1", "stage": "staging", "archive_existing_versions": false }),
        )
        .await;
    assert_eq!(moved["model_version"]["current_stage"], "Staging");

    server
        .post_ok(
            &api("registered-models/alias"),
            json!({ "name": "m", "alias": "champion", "version": "1" }),
        )
        .await;
    let by_alias = server
        .get_ok(
            &api("registered-models/alias"),
            &[("name", "m"), ("alias", "champion")],
        )
        .await;
    assert_eq!(by_alias["model_version"]["version"], "1");
    assert_eq!(by_alias["model_version"]["aliases"], json!(["champion"]));
    let model = server
        .get_ok(&api("registered-models/get"), &[("name", "m")])
        .await;
    assert_eq!(
        model["registered_model"]["aliases"],
        json!([{ "alias": "champion", "version": "1" }])
    );
    assert_eq!(
        model["registered_model"]["latest_versions"][0]["current_stage"],
        "Staging"
    );

    // The mlflow client sends DELETE with a JSON body.
    let (status, body) = server
        .delete(
            &api("registered-models/alias"),
            json!({ "name": "m", "alias": "champion" }),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let answer = server
        .get(
            &api("registered-models/alias"),
            &[("name", "m"), ("alias", "champion")],
        )
        .await;
    assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");

    let (status, updated) = server
        .patch(
            &api("registered-models/update"),
            json!({ "name": "m", "description": "scores" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["registered_model"]["description"], "scores");

    let (status, body) = server
        .delete(
            &api("model-versions/delete"),
            json!({ "name": "m", "version": "1" }),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let answer = server
        .get(
            &api("model-versions/get"),
            &[("name", "m"), ("version", "1")],
        )
        .await;
    assert_mlflow_error(&answer, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let (status, _) = server
        .delete(&api("registered-models/delete"), json!({ "name": "m" }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer = server
        .get(&api("registered-models/get"), &[("name", "m")])
        .await;
    assert_mlflow_error(&answer, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
}

async fn non_finite_metric_literals_are_accepted_and_returned_as_strings(server: &TestServer) {
    let (_, run_id) = create_run(server, "non-finite").await;
    // Python's json module writes bare NaN and Infinity, which strict JSON lacks.
    for (key, literal) in [("loss", "NaN"), ("up", "Infinity"), ("down", "-Infinity")] {
        let body = format!(
            r#"{{"run_id": "{run_id}", "run_uuid": "{run_id}", "key": "{key}", "value": {literal}, "timestamp": 1700000000000, "step": 0}}"#
        );
        let (status, answer) = server
            .send(
                server
                    .client
                    .post(server.url(&api("runs/log-metric")))
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        assert_eq!(
            (status, answer),
            (StatusCode::OK, json!({})),
            "{key} = {literal}"
        );
    }
    let batch = format!(
        r#"{{"run_id": "{run_id}", "metrics": [{{"key": "batch", "value": NaN, "timestamp": 1, "step": 2}}]}}"#
    );
    let (status, _) = server
        .send(
            server
                .client
                .post(server.url(&api("runs/log-batch")))
                .header("content-type", "application/json")
                .body(batch),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let run = get_run(server, &run_id).await;
    let value_of = |key: &str| {
        run["data"]["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .find(|metric| metric["key"] == key)
            .unwrap_or_else(|| panic!("metric {key} in {run}"))["value"]
            .clone()
    };
    assert_eq!(value_of("loss"), "NaN");
    assert_eq!(value_of("up"), "Infinity");
    assert_eq!(value_of("down"), "-Infinity");
    assert_eq!(value_of("batch"), "NaN");
    let history = server
        .get_ok(
            &api("metrics/get-history"),
            &[("run_uuid", &run_id), ("metric_key", "loss")],
        )
        .await;
    assert_eq!(
        history["metrics"],
        json!([{ "key": "loss", "value": "NaN", "timestamp": 1_700_000_000_000_i64, "step": 0 }])
    );
}

async fn get_endpoints_read_query_strings_and_page(server: &TestServer) {
    for name in ["q-a", "q-b", "q-c", "r-d"] {
        server
            .post_ok(&api("registered-models/create"), json!({ "name": name }))
            .await;
    }
    server
        .post_ok(
            &api("registered-models/set-tag"),
            json!({ "name": "q-b", "key": "mlflow.prompt.is_prompt", "value": "true" }),
        )
        .await;
    let filter = "name LIKE 'q-%' AND tag.`mlflow.prompt.is_prompt` != 'true'";
    let first = server
        .get_ok(
            &api("registered-models/search"),
            &[
                ("filter", filter),
                ("max_results", "1"),
                ("order_by", "name DESC"),
            ],
        )
        .await;
    assert_eq!(first["registered_models"][0]["name"], "q-c");
    let token = first["next_page_token"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = server
        .get_ok(
            &api("registered-models/search"),
            &[
                ("filter", filter),
                ("max_results", "1"),
                ("order_by", "name DESC"),
                ("page_token", &token),
            ],
        )
        .await;
    assert_eq!(second["registered_models"][0]["name"], "q-a");
    assert!(second.get("next_page_token").is_none(), "{second}");

    for _ in 0..3 {
        server
            .post_ok(
                &api("model-versions/create"),
                json!({ "name": "q-a", "source": "s3://bucket/q-a" }),
            )
            .await;
    }
    // The mlflow client repeats `order_by` as a query parameter.
    let versions = server
        .get_ok(
            &api("model-versions/search"),
            &[
                ("filter", "name='q-a'"),
                ("order_by", "name ASC"),
                ("order_by", "version_number DESC"),
            ],
        )
        .await;
    let numbers: Vec<&str> = versions["model_versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|version| version["version"].as_str())
        .collect();
    assert_eq!(numbers, ["3", "2", "1"]);

    let experiment = server
        .get_ok(
            &api("experiments/get-by-name"),
            &[("experiment_name", "Default")],
        )
        .await;
    assert_eq!(experiment["experiment"]["experiment_id"], "0");
    let latest = server
        .get_ok(
            &api("registered-models/get-latest-versions"),
            &[("name", "q-a")],
        )
        .await;
    assert_eq!(latest["model_versions"][0]["version"], "3");
    let uri = server
        .get_ok(
            &api("model-versions/get-download-uri"),
            &[("name", "q-a"), ("version", "2")],
        )
        .await;
    assert_eq!(uri["artifact_uri"], "s3://bucket/q-a");
}

// ----- artifacts -----

async fn artifacts_round_trip_and_list(server: &TestServer) {
    let (experiment_id, run_id) = create_run(server, "artifacts").await;
    let base = format!("{experiment_id}/{run_id}/artifacts");
    let binary: Vec<u8> = (0..1000_u32).map(|index| (index * 7 % 251) as u8).collect();
    put_artifact(server, &format!("{base}/docs/notes.txt"), b"hello notes").await;
    put_artifact(server, &format!("{base}/model.bin"), &binary).await;

    let (status, body) = get_artifact(server, &format!("{base}/model.bin")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, binary);
    let response = server
        .client
        .get(server.url(&format!("{ARTIFACTS}/{base}/docs/notes.txt")))
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert_eq!(
        response.bytes().await.expect("body").as_ref(),
        b"hello notes"
    );

    assert_eq!(
        list_artifacts(server, &base).await,
        json!({ "files": [
            { "path": "docs", "is_dir": true },
            { "path": "model.bin", "is_dir": false, "file_size": 1000 },
        ] })
    );
    assert_eq!(
        list_artifacts(server, &format!("{base}/docs")).await,
        json!({ "files": [{ "path": "notes.txt", "is_dir": false, "file_size": 11 }] })
    );
    // A file path and a missing directory both list as `{}`: the client tells files apart this way.
    assert_eq!(
        list_artifacts(server, &format!("{base}/docs/notes.txt")).await,
        json!({})
    );
    assert_eq!(
        list_artifacts(server, &format!("{base}/nowhere")).await,
        json!({})
    );

    // A file and a directory cannot share a path: the client hears why, with a 4xx.
    for clashing in [
        format!("{base}/docs"),
        format!("{base}/model.bin/inner.txt"),
    ] {
        let (status, body) = server
            .send_bytes(
                server
                    .client
                    .put(server.url(&format!("{ARTIFACTS}/{clashing}")))
                    .body(b"clash".to_vec()),
            )
            .await;
        let body: Value = serde_json::from_slice(&body).expect("a JSON error body");
        assert_mlflow_error(
            &(status, body),
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
        );
    }
    let (status, body) = get_artifact(server, &format!("{base}/model.bin/inner.txt")).await;
    assert!(
        status.is_client_error(),
        "GET below a file: {status} {}",
        String::from_utf8_lossy(&body)
    );

    let (status, body) = get_artifact(server, &format!("{base}/missing.txt")).await;
    let body: Value = serde_json::from_slice(&body).expect("a JSON error body");
    assert_mlflow_error(
        &(status, body),
        StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
    );

    // Uploading again replaces the file; deleting removes it.
    put_artifact(server, &format!("{base}/docs/notes.txt"), b"second draft").await;
    assert_eq!(
        get_artifact(server, &format!("{base}/docs/notes.txt"))
            .await
            .1,
        b"second draft"
    );
    let (status, _) = server
        .send(
            server
                .client
                .delete(server.url(&format!("{ARTIFACTS}/{base}/docs/notes.txt"))),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        get_artifact(server, &format!("{base}/docs/notes.txt"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert!(server.files_outside_artifact_root().is_empty());
}

async fn artifact_path_traversal_is_refused(server: &TestServer) {
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let escape_name = format!("okla-escape-{marker}");

    // Sent byte for byte: a literal `..` and its percent-encoded spellings, which `url` (and so
    // reqwest) would otherwise resolve before sending.
    let raw_targets = [
        format!("{ARTIFACTS}/1/../../{escape_name}"),
        format!("{ARTIFACTS}/1/%2E%2E/%2E%2E/{escape_name}"),
        format!("{ARTIFACTS}/1/%2e%2e/%2e%2e/%2e%2e/{escape_name}"),
        format!("{ARTIFACTS}/..%2F..%2F{escape_name}"),
        format!("{ARTIFACTS}/1/%252E%252E%252F%252E%252E%252F{escape_name}"),
        format!("{ARTIFACTS}/%2Ftmp%2F{escape_name}"),
        format!("{ARTIFACTS}/1/bad%00{escape_name}"),
        format!("{ARTIFACTS}/1/..%5C..%5C{escape_name}"),
    ];
    for target in &raw_targets {
        let (status, body) = server.raw_request("PUT", target, b"escaped").await;
        assert_eq!(
            status,
            400,
            "PUT {target}: {}",
            String::from_utf8_lossy(&body)
        );
        let error: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("PUT {target}: {}", String::from_utf8_lossy(&body)));
        assert_eq!(
            error["error_code"], "INVALID_PARAMETER_VALUE",
            "PUT {target}"
        );
        let (status, _) = server.raw_request("GET", target, b"").await;
        assert_eq!(status, 400, "GET {target}");
    }

    // The same through reqwest, with `/` encoded so nothing is resolved on the client side.
    let (status, body) = server
        .send_bytes(
            server
                .client
                .get(server.url(&format!("{ARTIFACTS}/%2Fetc%2Fpasswd"))),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(!String::from_utf8_lossy(&body).contains("root:"));
    let (status, _) = server
        .send_bytes(
            server
                .client
                .put(server.url(&format!("{ARTIFACTS}/1/..%2F..%2F{escape_name}")))
                .body("escaped"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for listed in ["../..", "/etc", "1/../..", "1/%2E%2E/%2E%2E"] {
        let answer = server.get(ARTIFACTS, &[("path", listed)]).await;
        assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    }
    // A multipart upload names its file by the client's local path; `..` is no file name.
    let answer = server
        .post(
            "/api/2.0/mlflow-artifacts/mpu/create/1",
            json!({ "path": "..", "num_parts": 1 }),
        )
        .await;
    assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");

    assert!(
        server.files_outside_artifact_root().is_empty(),
        "{:?}",
        server.files_outside_artifact_root()
    );
    assert!(!std::path::Path::new("/tmp").join(&escape_name).exists());
    assert!(!server.scratch_directory.join(&escape_name).exists());
    assert_eq!(
        list_artifacts(server, "1").await,
        json!({}),
        "nothing was written under 1/ either"
    );
}

async fn model_version_from_run_records_file_digests(server: &TestServer) {
    let (experiment_id, run_id) = create_run(server, "registered").await;
    let model_dir = format!("{experiment_id}/{run_id}/artifacts/model");
    let mlmodel = b"artifact_path: model\nflavors: {}\n".to_vec();
    let weights: Vec<u8> = (0..4096_u32).map(|index| (index % 256) as u8).collect();
    put_artifact(server, &format!("{model_dir}/MLmodel"), &mlmodel).await;
    put_artifact(server, &format!("{model_dir}/data/model.onnx"), &weights).await;
    put_artifact(
        server,
        &format!("{experiment_id}/{run_id}/artifacts/notes.txt"),
        b"not part of the model",
    )
    .await;

    server
        .post_ok(
            &api("registered-models/create"),
            json!({ "name": "scorer" }),
        )
        .await;
    let created = server
        .post_ok(
            &api("model-versions/create"),
            json!({ "name": "scorer", "source": format!("runs:/{run_id}/model"), "run_id": run_id }),
        )
        .await;
    assert_eq!(created["model_version"]["version"], "1");
    assert_eq!(created["model_version"]["status"], "READY");
    assert_eq!(created["model_version"]["current_stage"], "None");

    let files = server
        .get_ok("/api/okla/v1/models/scorer/versions/1/files", &[])
        .await;
    assert_eq!(files["model_version"]["name"], "scorer");
    assert_eq!(
        files["files"],
        json!([
            { "path": "MLmodel", "size": mlmodel.len(), "sha256": sha256_hex(&mlmodel) },
            { "path": "data/model.onnx", "size": weights.len(), "sha256": sha256_hex(&weights) },
        ])
    );
    let uri = server
        .get_ok(
            &api("model-versions/get-download-uri"),
            &[("name", "scorer"), ("version", "1")],
        )
        .await;
    assert_eq!(
        uri["artifact_uri"],
        format!("mlflow-artifacts:/{experiment_id}/{run_id}/artifacts/model")
    );

    // The digests are of the files at registration time.
    put_artifact(server, &format!("{model_dir}/MLmodel"), b"changed later").await;
    let files_again = server
        .get_ok("/api/okla/v1/models/scorer/versions/1/files", &[])
        .await;
    assert_eq!(files_again["files"], files["files"]);

    let unknown_run = "0123456789abcdef0123456789abcdef";
    let answer = server
        .post(
            &api("model-versions/create"),
            json!({ "name": "scorer", "source": format!("runs:/{unknown_run}/model"), "run_id": unknown_run }),
        )
        .await;
    assert_mlflow_error(&answer, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    // As in MLflow, a `runs:/` source must name the request's `run_id`.
    let answer = server
        .post(
            &api("model-versions/create"),
            json!({ "name": "scorer", "source": format!("runs:/{run_id}/model") }),
        )
        .await;
    assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let logged = server
        .post_ok(
            &api("logged-models"),
            json!({ "experiment_id": experiment_id, "name": "model" }),
        )
        .await;
    let model_id = logged["model"]["info"]["model_id"]
        .as_str()
        .expect("a logged model id");
    let answer = server
        .post(
            &api("model-versions/create"),
            json!({ "name": "scorer", "source": "models:/m-0123456789abcdef0123456789abcdef", "model_id": model_id }),
        )
        .await;
    assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
}

async fn model_history_names_the_actor_header(server: &TestServer) {
    create_model_with_version(server, "audited").await;
    server
        .post_ok(
            &api("model-versions/create"),
            json!({ "name": "audited", "source": "s3://bucket/v2" }),
        )
        .await;
    let as_actor = |actor: &'static str, path: &str, body: Value| {
        server
            .client
            .post(server.url(&api(path)))
            .header("x-okla-actor", actor)
            .json(&body)
    };
    let answers = [
        server
            .send(as_actor(
                "alice",
                "model-versions/transition-stage",
                json!({ "name": "audited", "version": "1", "stage": "Production", "archive_existing_versions": false }),
            ))
            .await,
        server
            .send(as_actor(
                "bob",
                "model-versions/transition-stage",
                json!({ "name": "audited", "version": "2", "stage": "Production", "archive_existing_versions": true }),
            ))
            .await,
        server.send(as_actor("alice", "registered-models/alias", json!({ "name": "audited", "alias": "champion", "version": "2" }))).await,
    ];
    for (status, body) in answers {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, _) = server
        .send(
            server
                .client
                .delete(server.url(&api("registered-models/alias")))
                .header("x-okla-actor", "carol")
                .json(&json!({ "name": "audited", "alias": "champion" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Without the header the change is still recorded, as anonymous.
    server
        .post_ok(
            &api("model-versions/transition-stage"),
            json!({ "name": "audited", "version": "2", "stage": "Archived" }),
        )
        .await;

    let history = server
        .get_ok("/api/okla/v1/models/audited/history", &[])
        .await;
    assert_eq!(history["name"], "audited");
    let entries: Vec<(String, String, String, String, String)> = history["history"]
        .as_array()
        .expect("history entries")
        .iter()
        .map(|entry| {
            let text = |field: &str| entry[field].as_str().unwrap_or("-").to_owned();
            (
                text("version"),
                text("kind"),
                text("from"),
                text("to"),
                text("actor"),
            )
        })
        .collect();
    let expected: Vec<(String, String, String, String, String)> = [
        ("1", "stage", "None", "Production", "alice"),
        ("1", "stage", "Production", "Archived", "bob"),
        ("2", "stage", "None", "Production", "bob"),
        ("2", "alias", "-", "champion=2", "alice"),
        ("2", "alias", "champion=2", "-", "carol"),
        ("2", "stage", "Production", "Archived", "anonymous"),
    ]
    .iter()
    .map(|(a, b, c, d, e)| {
        (
            a.to_string(),
            b.to_string(),
            c.to_string(),
            d.to_string(),
            e.to_string(),
        )
    })
    .collect();
    assert_eq!(entries, expected);
    assert!(
        history["history"]
            .as_array()
            .expect("entries")
            .iter()
            .all(|entry| entry["timestamp"].as_i64().is_some_and(|time| time > 0))
    );
}

async fn multipart_upload_assembles_the_file(server: &TestServer) {
    let (experiment_id, run_id) = create_run(server, "multipart").await;
    let directory = format!("{experiment_id}/{run_id}/artifacts");
    let parts: Vec<Vec<u8>> = (0..3_u8)
        .map(|index| vec![b'a' + index; 100_000 + usize::from(index)])
        .collect();

    let created = server
        .post_ok(
            &format!("/api/2.0/mlflow-artifacts/mpu/create/{directory}"),
            json!({ "path": "/home/ada/big.bin", "num_parts": 3 }),
        )
        .await;
    let upload_id = created["upload_id"].as_str().expect("upload id").to_owned();
    let credentials = created["credentials"].as_array().expect("credentials");
    assert_eq!(credentials.len(), 3);

    let mut completed_parts = Vec::new();
    for (credential, bytes) in credentials.iter().zip(&parts) {
        let url = credential["url"].as_str().expect("part url");
        assert!(
            url.starts_with(&server.base_url),
            "{url} points back at this server"
        );
        let response = server
            .client
            .put(url)
            .body(bytes.clone())
            .send()
            .await
            .expect("upload part");
        assert_eq!(response.status(), StatusCode::OK, "PUT {url}");
        let etag = response
            .headers()
            .get("etag")
            .and_then(|value| value.to_str().ok())
            .expect("an etag")
            .to_owned();
        completed_parts.push(json!({ "part_number": credential["part_number"], "etag": etag }));
    }

    // A wrong etag is refused, and nothing appears.
    let mut tampered = completed_parts.clone();
    tampered[1]["etag"] = json!("0000");
    let complete_path = format!("/api/2.0/mlflow-artifacts/mpu/complete/{directory}");
    let (status, body) = server
        .post(
            &complete_path,
            json!({ "path": "big.bin", "upload_id": upload_id, "parts": tampered }),
        )
        .await;
    assert!(status.is_client_error(), "{status} {body}");
    assert_eq!(
        get_artifact(server, &format!("{directory}/big.bin"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    server
        .post_ok(
            &complete_path,
            json!({ "path": "big.bin", "upload_id": upload_id, "parts": completed_parts }),
        )
        .await;
    let (status, assembled) = get_artifact(server, &format!("{directory}/big.bin")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(assembled, parts.concat());
    assert_eq!(
        list_artifacts(server, &directory).await,
        json!({ "files": [{ "path": "big.bin", "is_dir": false, "file_size": 300_003 }] })
    );
    let root = list_artifacts(server, "").await;
    assert_eq!(
        root,
        json!({ "files": [{ "path": experiment_id, "is_dir": true }] }),
        "upload state stays hidden"
    );
}

async fn oversized_json_body_is_refused_with_a_4xx(server: &TestServer) {
    let oversized = format!(r#"{{"name": "{}"}}"#, "a".repeat(17 * 1024 * 1024));
    // A client of its own: the server may close this connection after refusing the body.
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("build an HTTP client");
    // The server answers as soon as the limit is crossed and closes the connection with the
    // rest of the body unread; a client still writing may see the close (a broken pipe) before
    // it reads the answer. That race is the client's, so a few tries must see the answer.
    let mut answered = None;
    let mut errors = Vec::new();
    for _ in 0..5 {
        match client
            .post(server.url(&api("experiments/create")))
            .header("content-type", "application/json")
            .body(oversized.clone())
            .send()
            .await
        {
            Ok(response) => {
                answered = Some(response);
                break;
            }
            Err(error) => errors.push(format!("{error:?}")),
        }
    }
    let response =
        answered.unwrap_or_else(|| panic!("no answer to an oversized body: {errors:#?}"));
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert!(
        status.is_client_error(),
        "an oversized body answered {status}: {body}"
    );
    // The server is still serving, and nothing was created.
    let answer = server
        .get(&api("experiments/search"), &[("max_results", "10")])
        .await;
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    let names: Vec<&str> = answer.1["experiments"]
        .as_array()
        .expect("experiments")
        .iter()
        .filter_map(|experiment| experiment["name"].as_str())
        .collect();
    assert_eq!(names, ["Default"]);
}

/// A search that would bind more values than the databases allow is the caller's mistake (400,
/// which clients do not retry), not a server error.
async fn searches_binding_too_many_values_are_400(server: &TestServer) {
    let (experiment_id, _) = create_run(server, "many-ids").await;
    let many: Vec<String> = std::iter::repeat_n(experiment_id.clone(), 30_001).collect();
    let answer = server
        .post(
            &api("runs/search"),
            json!({ "experiment_ids": many, "max_results": 10 }),
        )
        .await;
    let message = assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    assert!(message.contains("at most 30000"), "{message}");
    let few = server
        .post_ok(
            &api("runs/search"),
            json!({ "experiment_ids": [experiment_id], "max_results": 10 }),
        )
        .await;
    assert_eq!(few["runs"].as_array().map(Vec::len), Some(1), "{few}");
}
