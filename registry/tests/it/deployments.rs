//! Deployments on both backends: the default from the Production stage or the `champion`
//! alias, explicit deployments replacing it, rollback and delete, and that every change writes
//! its history entry and outbox event in its own transaction while every refusal writes
//! nothing (no history, no event, no revision). Then the REST routes and their error statuses.

use okla_proto::events::ModelEvent;
use okla_proto::events::model_event::Body;
use okla_registry::domain::deployments::{
    CanaryGate, DeploymentSource, DeploymentSpec, Route, Sticky,
};
use okla_registry::domain::model_registry::Stage;
use okla_registry::domain::nodes::{ModelReport, NodeReport, VersionReport, VersionState};
use okla_registry::error::Error;
use okla_registry::store::Store;
use okla_registry::store::deployments::DeploymentState;
use okla_registry::store::model_registry::{Change, NewModelVersion};
use prost::Message;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestServer, assert_mlflow_error};

mod store_level {
    use super::*;
    backend_test_suite!(store:
        default_follows_production_and_the_champion_alias_wins,
        explicit_deployment_replaces_the_default_and_delete_restores_it,
        refused_changes_write_nothing,
        rollback_goes_to_the_protected_version_and_records_why,
        deleting_a_deployed_version_is_refused,
        a_served_model_leaves_the_fleet_only_by_an_undeploy,
        deleting_the_last_deployment_undeploys,
    );
}

mod http {
    use super::*;
    backend_test_suite!(server:
        deployment_routes_answer_and_record_the_actor,
        deployment_routes_refuse_bad_requests_with_mlflow_errors,
        undeploy_route_and_going_dark_refusals_over_http,
    );
}

fn by(actor: &str) -> Change<'_> {
    Change {
        actor,
        comment: None,
    }
}

fn saying<'a>(actor: &'a str, comment: &'a str) -> Change<'a> {
    Change {
        actor,
        comment: Some(comment),
    }
}

fn routes(pairs: &[(i64, i64)]) -> Vec<Route> {
    pairs
        .iter()
        .map(|&(version, weight)| Route { version, weight })
        .collect()
}

fn spec(pairs: &[(i64, i64)]) -> DeploymentSpec {
    DeploymentSpec {
        routes: routes(pairs),
        sticky: None,
        shadow: None,
        canary_gate: None,
    }
}

fn gate(version: i64) -> CanaryGate {
    CanaryGate {
        version,
        max_error_rate_delta: 0.02,
        max_p99_ratio: 1.5,
        min_requests: 500,
    }
}

/// A model with `versions` versions, numbered 1..=versions.
async fn model(store: &Store, name: &str, versions: i64) {
    store
        .create_registered_model(name, None, &[])
        .await
        .expect("create model");
    for number in 1..=versions {
        store
            .create_model_version(NewModelVersion {
                name: name.to_owned(),
                source: format!("s3://bucket/{name}/{number}"),
                actor: "trainer".to_owned(),
                ..NewModelVersion::default()
            })
            .await
            .expect("create version");
    }
}

/// (routing key, body) of every outbox event, oldest first.
async fn events(store: &Store) -> Vec<(String, Body)> {
    store
        .events_after(0, 1000)
        .await
        .expect("read the outbox")
        .into_iter()
        .map(|row| {
            let event = ModelEvent::decode(row.payload.as_slice()).expect("payload decodes");
            (row.routing_key, event.body.expect("every event has a body"))
        })
        .collect()
}

/// (kind, version, comment, actor) of every history entry of `name`.
async fn history(store: &Store, name: &str) -> Vec<(String, Option<i64>, Option<String>, String)> {
    store
        .model_history(name)
        .await
        .expect("history")
        .into_iter()
        .map(|entry| (entry.kind, entry.version, entry.comment, entry.actor))
        .collect()
}

fn served(state: &DeploymentState) -> (DeploymentSource, Vec<Route>) {
    let effective = state.effective.as_ref().expect("an effective deployment");
    (effective.source, effective.spec.routes.clone())
}

async fn default_follows_production_and_the_champion_alias_wins(store: &Store) {
    model(store, "m", 3).await;
    let state = store.get_deployment("m").await.expect("get");
    assert_eq!(
        (state.revision, state.effective.as_ref()),
        (0, None),
        "no Production version and no champion: nothing is served"
    );
    assert!(store.list_deployments().await.expect("list").is_empty());
    assert!(matches!(
        store.get_deployment("absent").await,
        Err(Error::NotFound(_))
    ));

    store
        .transition_stage("m", 1, Stage::Production, false, &by("ops"))
        .await
        .expect("v1 to Production");
    let state = store.get_deployment("m").await.expect("get");
    assert_eq!(
        served(&state),
        (DeploymentSource::Production, routes(&[(1, 100)]))
    );
    // Two versions in Production: the highest-numbered one is the default.
    store
        .transition_stage("m", 2, Stage::Production, false, &by("ops"))
        .await
        .expect("v2 to Production");
    let state = store.get_deployment("m").await.expect("get");
    assert_eq!(
        served(&state),
        (DeploymentSource::Production, routes(&[(2, 100)]))
    );

    store
        .set_alias("m", "champion", 1, &by("ops"))
        .await
        .expect("champion");
    let state = store.get_deployment("m").await.expect("get");
    assert_eq!(
        served(&state),
        (DeploymentSource::Champion, routes(&[(1, 100)]))
    );
    assert_eq!(state.revision, 0, "a default is not a deployment change");

    model(store, "idle", 1).await;
    let listed = store.list_deployments().await.expect("list");
    assert_eq!(
        listed,
        vec![state],
        "only models with an effective deployment"
    );
}

async fn explicit_deployment_replaces_the_default_and_delete_restores_it(store: &Store) {
    model(store, "m", 3).await;
    store
        .transition_stage("m", 1, Stage::Production, false, &by("ops"))
        .await
        .expect("v1 to Production");
    let before = events(store).await.len();

    let canary = DeploymentSpec {
        routes: routes(&[(1, 90), (2, 10)]),
        sticky: Some(Sticky {
            routing_key_header: "X-User-Id".to_owned(),
        }),
        shadow: Some(3),
        canary_gate: Some(gate(2)),
    };
    let state = store
        .set_deployment("m", canary.clone(), Some(0), &saying("alice", "canary v2"))
        .await
        .expect("set");
    assert_eq!(state.revision, 1);
    assert_eq!(state.updated_by.as_deref(), Some("alice"));
    let effective = state.effective.clone().expect("explicit");
    assert_eq!(effective.source, DeploymentSource::Explicit);
    assert_eq!(effective.spec.routes, canary.routes);
    assert_eq!(
        effective
            .spec
            .sticky
            .map(|sticky| sticky.routing_key_header),
        Some("x-user-id".to_owned()),
        "header names are stored in lower case"
    );
    assert_eq!(store.get_deployment("m").await.expect("get"), state);
    assert_eq!(store.list_deployments().await.expect("list"), vec![state]);

    // The same spec again (a retried PUT) changes nothing.
    let again = store
        .set_deployment("m", canary.clone(), None, &by("alice"))
        .await
        .expect("same spec");
    assert_eq!(again.revision, 1);

    let replaced = store
        .set_deployment("m", spec(&[(2, 100)]), Some(1), &by("bob"))
        .await
        .expect("replace");
    assert_eq!(replaced.revision, 2);
    assert_eq!(
        served(&replaced),
        (DeploymentSource::Explicit, routes(&[(2, 100)]))
    );

    let deleted = store
        .delete_deployment("m", Some(2), &saying("carol", "back to Production"))
        .await
        .expect("delete");
    assert_eq!(deleted.revision, 3);
    assert_eq!(
        served(&deleted),
        (DeploymentSource::Production, routes(&[(1, 100)]))
    );
    // Deleting again is a no-op, not an error, and not a change.
    let again = store
        .delete_deployment("m", None, &by("carol"))
        .await
        .expect("delete again");
    assert_eq!(again.revision, 3);
    // The revision keeps counting after a delete.
    let recreated = store
        .set_deployment("m", spec(&[(3, 100)]), Some(3), &by("dave"))
        .await
        .expect("set after delete");
    assert_eq!(recreated.revision, 4);

    let new_events = events(store).await.split_off(before);
    let keys: Vec<&str> = new_events.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "deployment.updated",
            "deployment.updated",
            "deployment.deleted",
            "deployment.updated"
        ]
    );
    match &new_events[0].1 {
        Body::DeploymentUpdated(updated) => {
            assert_eq!(updated.revision, 1);
            let pairs: Vec<(i64, u32)> = updated
                .routes
                .iter()
                .map(|route| (route.version, route.weight))
                .collect();
            assert_eq!(pairs, [(1, 90), (2, 10)]);
            assert_eq!(updated.sticky_routing_key_header, "x-user-id");
            assert_eq!(updated.shadow_version, Some(3));
            let canary_gate = updated.canary_gate.expect("gate");
            assert_eq!((canary_gate.version, canary_gate.min_requests), (2, 500));
            assert_eq!(updated.comment, "canary v2");
        }
        other => panic!("unexpected event {other:?}"),
    }
    match &new_events[2].1 {
        Body::DeploymentDeleted(deleted) => {
            assert_eq!(deleted.revision, 3);
            assert_eq!(deleted.comment, "back to Production");
        }
        other => panic!("unexpected event {other:?}"),
    }

    let entries = store.model_history("m").await.expect("history");
    let deployment_entries: Vec<_> = entries
        .iter()
        .filter(|entry| entry.kind.starts_with("deployment"))
        .collect();
    assert_eq!(deployment_entries.len(), 4);
    let first = deployment_entries[0];
    assert_eq!(
        (
            first.kind.as_str(),
            first.actor.as_str(),
            first.comment.as_deref()
        ),
        ("deployment", "alice", Some("canary v2"))
    );
    assert_eq!(first.from_value, None);
    let recorded = DeploymentSpec::from_json(first.to_value.as_deref().expect("to"))
        .expect("the history holds the spec as JSON");
    assert_eq!(recorded.routes, canary.routes);
    let delete = deployment_entries[2];
    assert_eq!(
        (delete.kind.as_str(), delete.to_value.as_deref()),
        ("deployment_delete", None)
    );
}

async fn refused_changes_write_nothing(store: &Store) {
    model(store, "m", 3).await;
    store
        .delete_model_version("m", 3, &by("ops"))
        .await
        .expect("delete v3");
    store
        .set_deployment("m", spec(&[(1, 100)]), None, &by("ops"))
        .await
        .expect("a first deployment");
    let events_before = events(store).await.len();
    let history_before = history(store, "m").await;

    let mut shadow_is_route = spec(&[(1, 50), (2, 50)]);
    shadow_is_route.shadow = Some(2);
    let mut gate_on_absent_route = spec(&[(1, 50), (2, 50)]);
    gate_on_absent_route.canary_gate = Some(gate(7));
    let mut gate_on_only_route = spec(&[(1, 100)]);
    gate_on_only_route.canary_gate = Some(gate(1));
    let mut bad_header = spec(&[(1, 100)]);
    bad_header.sticky = Some(Sticky {
        routing_key_header: "x user".to_owned(),
    });
    let mut deleted_shadow = spec(&[(1, 100)]);
    deleted_shadow.shadow = Some(3);
    let invalid = [
        spec(&[]),
        spec(&[(1, 90), (2, 20)]),
        spec(&[(1, 0), (2, 100)]),
        spec(&[(1, 50), (1, 50)]),
        spec(&(1..=11).map(|version| (version, 1)).collect::<Vec<_>>()),
        shadow_is_route,
        gate_on_absent_route,
        gate_on_only_route,
        bad_header,
    ];
    for spec in invalid {
        let refused = store
            .set_deployment("m", spec.clone(), None, &by("x"))
            .await;
        assert!(
            matches!(refused, Err(Error::InvalidParameter(_))),
            "{spec:?}: {refused:?}"
        );
    }
    let missing = [
        (spec(&[(1, 50), (9, 50)]), "routes[1].version"),
        (spec(&[(3, 100)]), "routes[0].version"),
        (deleted_shadow, "'shadow'"),
    ];
    for (spec, field) in missing {
        match store.set_deployment("m", spec, None, &by("x")).await {
            Err(Error::NotFound(message)) => {
                assert!(message.contains(field), "{message} names {field}")
            }
            other => panic!("expected NotFound naming {field}, got {other:?}"),
        }
    }
    assert!(matches!(
        store
            .set_deployment("absent", spec(&[(1, 100)]), None, &by("x"))
            .await,
        Err(Error::NotFound(_))
    ));
    let stale = [
        store
            .set_deployment("m", spec(&[(2, 100)]), Some(0), &by("x"))
            .await,
        store.delete_deployment("m", Some(5), &by("x")).await,
        store
            .rollback_deployment("m", Some(2), Some(0), &saying("x", "stale"))
            .await,
    ];
    for refused in stale {
        match refused {
            Err(Error::Conflict(message)) => assert!(message.contains("revision 1"), "{message}"),
            other => panic!("expected a revision conflict, got {other:?}"),
        }
    }
    assert!(matches!(
        store
            .rollback_deployment("m", Some(2), None, &by("no reason"))
            .await,
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        store
            .rollback_deployment("m", None, None, &saying("x", "single route"))
            .await,
        Err(Error::InvalidParameter(_))
    ));
    assert!(matches!(
        store
            .rollback_deployment("m", Some(9), None, &saying("x", "unknown version"))
            .await,
        Err(Error::NotFound(_))
    ));
    let long_comment = "x".repeat(5001);
    assert!(matches!(
        store
            .set_deployment("m", spec(&[(2, 100)]), None, &saying("x", &long_comment))
            .await,
        Err(Error::InvalidParameter(_))
    ));

    assert_eq!(events(store).await.len(), events_before, "no event written");
    assert_eq!(
        history(store, "m").await,
        history_before,
        "no history written"
    );
    let state = store.get_deployment("m").await.expect("get");
    assert_eq!(state.revision, 1, "no revision taken");
    assert_eq!(served(&state).1, routes(&[(1, 100)]));

    // The next accepted change takes the next revision: refusals consumed none.
    let next = store
        .set_deployment("m", spec(&[(1, 60), (2, 40)]), Some(1), &by("ops"))
        .await
        .expect("accepted");
    assert_eq!(next.revision, 2);
}

async fn rollback_goes_to_the_protected_version_and_records_why(store: &Store) {
    model(store, "m", 4).await;
    assert!(matches!(
        store
            .rollback_deployment("m", None, None, &saying("x", "nothing deployed"))
            .await,
        Err(Error::Conflict(_))
    ));
    let canary = DeploymentSpec {
        routes: routes(&[(1, 40), (2, 60)]),
        sticky: Some(Sticky {
            routing_key_header: "x-user-id".to_owned(),
        }),
        shadow: Some(3),
        canary_gate: Some(gate(2)),
    };
    store
        .set_deployment("m", canary, None, &by("alice"))
        .await
        .expect("set");
    let before = events(store).await.len();
    let rolled = store
        .rollback_deployment(
            "m",
            None,
            Some(1),
            &saying("serving-node-7", "canary p99 2.1x"),
        )
        .await
        .expect("rollback");
    assert_eq!(rolled.revision, 2);
    let effective = rolled.effective.clone().expect("explicit");
    assert_eq!(effective.source, DeploymentSource::Explicit);
    assert_eq!(
        effective.spec.routes,
        routes(&[(1, 100)]),
        "the gate's protected route, not the heaviest"
    );
    assert_eq!(effective.spec.shadow, Some(3));
    assert_eq!(effective.spec.canary_gate, None);
    assert!(effective.spec.sticky.is_some());

    let new_events = events(store).await.split_off(before);
    assert_eq!(new_events.len(), 1);
    match &new_events[0] {
        (key, Body::DeploymentRolledBack(rolled_back)) => {
            assert_eq!(key, "deployment.rolled_back");
            assert_eq!(rolled_back.revision, 2);
            assert_eq!(rolled_back.to_version, 1);
            assert_eq!(rolled_back.reason, "canary p99 2.1x");
            let from: Vec<(i64, u32)> = rolled_back
                .from_routes
                .iter()
                .map(|route| (route.version, route.weight))
                .collect();
            assert_eq!(from, [(1, 40), (2, 60)]);
            assert_eq!(rolled_back.shadow_version, Some(3));
            assert_eq!(rolled_back.sticky_routing_key_header, "x-user-id");
        }
        other => panic!("unexpected event {other:?}"),
    }
    let last = history(store, "m").await.pop().expect("an entry");
    assert_eq!(
        last,
        (
            "deployment_rollback".to_owned(),
            Some(1),
            Some("canary p99 2.1x".to_owned()),
            "serving-node-7".to_owned()
        )
    );

    // To a named version, here the shadow: it now answers, so it is no longer a shadow.
    let to_shadow = store
        .rollback_deployment("m", Some(3), Some(2), &saying("ops", "v1 regressed"))
        .await
        .expect("rollback to v3");
    let effective = to_shadow.effective.expect("explicit");
    assert_eq!(effective.spec.routes, routes(&[(3, 100)]));
    assert_eq!(effective.spec.shadow, None);
}

async fn deleting_a_deployed_version_is_refused(store: &Store) {
    model(store, "m", 4).await;
    let mut deployment = spec(&[(1, 50), (2, 50)]);
    deployment.shadow = Some(3);
    store
        .set_deployment("m", deployment, None, &by("ops"))
        .await
        .expect("set");
    let events_before = events(store).await.len();
    let history_before = history(store, "m").await;
    for (version, field) in [(2, "routes[1]"), (3, "shadow")] {
        match store.delete_model_version("m", version, &by("x")).await {
            Err(Error::Conflict(message)) => {
                assert!(message.contains(field), "{message}");
                assert!(message.contains(&format!("version={version}")), "{message}");
            }
            other => panic!("expected a conflict for v{version}, got {other:?}"),
        }
        store
            .get_model_version("m", version)
            .await
            .expect("the version is still there");
    }
    assert_eq!(events(store).await.len(), events_before);
    assert_eq!(history(store, "m").await, history_before);
    // Unknown versions still answer NotFound, and undeployed ones can go.
    assert!(matches!(
        store.delete_model_version("m", 9, &by("x")).await,
        Err(Error::NotFound(_))
    ));
    store
        .delete_model_version("m", 4, &by("x"))
        .await
        .expect("v4 is not deployed");
    // Once the deployment no longer names it, the version can be deleted.
    store
        .set_deployment("m", spec(&[(1, 100)]), None, &by("ops"))
        .await
        .expect("drop v2 and the shadow");
    store
        .delete_model_version("m", 2, &by("x"))
        .await
        .expect("v2 no longer deployed");
    // A served model is undeployed before it is deleted; it takes its deployment along, and a
    // new model of the name starts afresh, undeployed until something deploys it.
    store.undeploy("m", None, &by("x")).await.expect("undeploy");
    store
        .delete_registered_model("m", &by("x"))
        .await
        .expect("delete model");
    model(store, "m", 1).await;
    let state = store.get_deployment("m").await.expect("get");
    assert_eq!((state.revision, state.effective), (0, None));
    assert!(state.undeployed);
}

// ----- HTTP -----

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

async fn put(server: &TestServer, name: &str, body: Value) -> (StatusCode, Value) {
    server
        .send(
            server
                .client
                .put(server.url(&format!("{DEPLOYMENTS}/{name}")))
                .header("x-okla-actor", "alice")
                .json(&body),
        )
        .await
}

async fn deployment_routes_answer_and_record_the_actor(server: &TestServer) {
    http_model(server, "scorer", 3).await;
    http_model(server, "idle", 1).await;
    let answer = server.get_ok(&format!("{DEPLOYMENTS}/scorer"), &[]).await;
    assert_eq!(
        answer,
        json!({ "deployment": { "name": "scorer", "source": "none", "revision": 0, "routes": [] } })
    );
    server
        .post_ok(
            &format!("{MLFLOW}/model-versions/transition-stage"),
            json!({ "name": "scorer", "version": "1", "stage": "Production" }),
        )
        .await;
    let answer = server.get_ok(&format!("{DEPLOYMENTS}/scorer"), &[]).await;
    assert_eq!(answer["deployment"]["source"], "production");
    assert_eq!(
        answer["deployment"]["routes"],
        json!([{ "version": 1, "weight": 100 }])
    );

    let (status, answer) = put(
        server,
        "scorer",
        json!({
            "routes": [{ "version": "1", "weight": 90 }, { "version": 2, "weight": 10 }],
            "sticky": { "routing_key_header": "X-User-Id" },
            "shadow": 3,
            "canary_gate": { "version": 2, "max_error_rate_delta": 0.02, "max_p99_ratio": 1.5, "min_requests": 500 },
            "comment": "canary v2",
            "expected_revision": 0,
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let deployment = &answer["deployment"];
    assert_eq!(deployment["source"], "explicit");
    assert_eq!(deployment["revision"], 1);
    assert_eq!(
        deployment["routes"],
        json!([{ "version": 1, "weight": 90 }, { "version": 2, "weight": 10 }])
    );
    assert_eq!(
        deployment["sticky"],
        json!({ "routing_key_header": "x-user-id" })
    );
    assert_eq!(deployment["shadow"], 3);
    assert_eq!(
        deployment["canary_gate"],
        json!({ "version": 2, "max_error_rate_delta": 0.02, "max_p99_ratio": 1.5, "min_requests": 500 })
    );
    assert_eq!(deployment["updated_by"], "alice");
    assert_eq!(
        server.get_ok(&format!("{DEPLOYMENTS}/scorer"), &[]).await,
        answer
    );
    let listed = server.get_ok(DEPLOYMENTS, &[]).await;
    assert_eq!(
        listed,
        json!({ "deployments": [deployment] }),
        "idle has none"
    );

    let (status, answer) = server
        .send(
            server
                .client
                .post(server.url(&format!("{DEPLOYMENTS}/scorer/rollback")))
                .header("x-okla-actor", "bob")
                .json(&json!({ "reason": "error rate +5 points" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["deployment"]["revision"], 2);
    assert_eq!(
        answer["deployment"]["routes"],
        json!([{ "version": 1, "weight": 100 }])
    );
    assert!(
        answer["deployment"].get("canary_gate").is_none(),
        "{answer}"
    );

    let (status, answer) = server
        .send(
            server
                .client
                .delete(server.url(&format!("{DEPLOYMENTS}/scorer")))
                .header("x-okla-actor", "carol"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["deployment"]["source"], "production");
    assert_eq!(answer["deployment"]["revision"], 3);

    let history = server
        .get_ok("/api/okla/v1/models/scorer/history", &[])
        .await;
    let entries: Vec<(String, String, String)> = history["history"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|entry| {
            entry["kind"]
                .as_str()
                .is_some_and(|kind| kind.starts_with("deployment"))
        })
        .map(|entry| {
            (
                entry["kind"].as_str().unwrap_or_default().to_owned(),
                entry["actor"].as_str().unwrap_or_default().to_owned(),
                entry["comment"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("deployment", "alice", "canary v2"),
        ("deployment_rollback", "bob", "error rate +5 points"),
        ("deployment_delete", "carol", ""),
    ]
    .map(|(kind, actor, comment)| (kind.to_owned(), actor.to_owned(), comment.to_owned()));
    assert_eq!(entries, expected);

    let feed = server.get_ok("/api/okla/v1/events", &[]).await;
    let keys: Vec<&str> = feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|event| event["routing_key"].as_str())
        .filter(|key| key.starts_with("deployment."))
        .collect();
    assert_eq!(
        keys,
        [
            "deployment.updated",
            "deployment.rolled_back",
            "deployment.deleted"
        ]
    );
}

async fn deployment_routes_refuse_bad_requests_with_mlflow_errors(server: &TestServer) {
    http_model(server, "scorer", 2).await;
    let bad_request = StatusCode::BAD_REQUEST;
    let invalid = "INVALID_PARAMETER_VALUE";
    let refusals = [
        (
            json!({ "routes": [{ "version": 1, "weight": 90 }, { "version": 2, "weight": 20 }] }),
            "sum to 110",
        ),
        (
            json!({ "routes": [{ "version": 1, "weight": 0 }, { "version": 2, "weight": 100 }] }),
            "routes[0].weight",
        ),
        (
            json!({ "routes": [{ "version": 1, "weight": 100 }], "shadow": 1 }),
            "shadow",
        ),
        (
            json!({ "routes": [{ "version": 1, "weigth": 100 }] }),
            "weigth",
        ),
        (
            json!({ "routes": [{ "version": 1, "weight": 50.5 }, { "version": 2, "weight": 49.5 }] }),
            "routes[0].weight",
        ),
        (
            json!({ "routes": [{ "version": "one", "weight": 100 }] }),
            "routes[0].version",
        ),
        (json!({ "shadow": 2 }), "routes"),
        (
            json!({ "routes": [{ "version": 1, "weight": 100 }], "canary_gate": { "version": 1, "max_error_rate_delta": 0.02, "max_p99_ratio": 1.5, "min_requests": 500 } }),
            "only route",
        ),
    ];
    for (body, expected) in refusals {
        let answer = put(server, "scorer", body.clone()).await;
        let message = assert_mlflow_error(&answer, bad_request, invalid);
        assert!(
            message.contains(expected),
            "{body}: {message} lacks {expected}"
        );
    }
    let one = json!({ "routes": [{ "version": 1, "weight": 100 }] });
    let answer = put(server, "absent", one.clone()).await;
    assert_mlflow_error(&answer, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let answer = put(
        server,
        "scorer",
        json!({ "routes": [{ "version": 7, "weight": 100 }] }),
    )
    .await;
    let message = assert_mlflow_error(&answer, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    assert!(message.contains("version=7"), "{message}");
    let answer = server.get(&format!("{DEPLOYMENTS}/absent"), &[]).await;
    assert_mlflow_error(&answer, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let answer = server
        .post(
            &format!("{DEPLOYMENTS}/scorer/rollback"),
            json!({ "reason": "x" }),
        )
        .await;
    assert_mlflow_error(&answer, StatusCode::CONFLICT, "RESOURCE_CONFLICT");
    // Nothing refused above changed anything.
    let state = server.get_ok(&format!("{DEPLOYMENTS}/scorer"), &[]).await;
    assert_eq!(state["deployment"]["revision"], 0);
    let feed = server.get_ok("/api/okla/v1/events", &[]).await;
    assert!(
        feed["events"]
            .as_array()
            .expect("events")
            .iter()
            .all(|event| !event["routing_key"]
                .as_str()
                .unwrap_or_default()
                .starts_with("deployment.")),
        "{feed}"
    );

    let mut body = json!({ "routes": [{ "version": 1, "weight": 50 }, { "version": 2, "weight": 50 }], "expected_revision": 0 });
    let (status, answer) = put(server, "scorer", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    body["routes"] = json!([{ "version": 2, "weight": 100 }]);
    let answer = put(server, "scorer", body).await;
    let message = assert_mlflow_error(&answer, StatusCode::CONFLICT, "RESOURCE_CONFLICT");
    assert!(message.contains("revision 1"), "{message}");
    let answer = server
        .delete(
            &format!("{DEPLOYMENTS}/scorer"),
            json!({ "expected_revision": 7 }),
        )
        .await;
    assert_mlflow_error(&answer, StatusCode::CONFLICT, "RESOURCE_CONFLICT");
    let answer = server
        .post(&format!("{DEPLOYMENTS}/scorer/rollback"), json!({}))
        .await;
    let message = assert_mlflow_error(&answer, bad_request, invalid);
    assert!(message.contains("reason"), "{message}");
    let answer = server
        .post(
            &format!("{DEPLOYMENTS}/scorer/rollback"),
            json!({ "reason": "x", "to_version": 0 }),
        )
        .await;
    assert_mlflow_error(&answer, bad_request, invalid);

    // The mlflow client's version deletion is refused while the deployment serves it.
    let answer = server
        .delete(
            &format!("{MLFLOW}/model-versions/delete"),
            json!({ "name": "scorer", "version": "2" }),
        )
        .await;
    let message = assert_mlflow_error(&answer, StatusCode::CONFLICT, "RESOURCE_CONFLICT");
    assert!(message.contains("deployment"), "{message}");
    server
        .get_ok(
            &format!("{MLFLOW}/model-versions/get"),
            &[("name", "scorer"), ("version", "2")],
        )
        .await;
}

/// Asserts a refusal for leaving `name` with nothing to serve, and that it names the way out.
fn assert_going_dark(result: Result<impl std::fmt::Debug, Error>, name: &str) {
    match result {
        Err(Error::Conflict(message)) => assert!(
            message.contains(&format!("'{name}' with nothing to serve"))
                && message.contains("node-a")
                && message.contains(&format!("/api/okla/v1/deployments/{name}/undeploy")),
            "{message}"
        ),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// `node_id` reports serving `version` of `model`.
async fn node_serves(store: &Store, node_id: &str, model: &str, version: i64) {
    let report = NodeReport {
        http_url: None,
        report_seconds: Some(60.0),
        models: vec![ModelReport {
            model: model.to_owned(),
            revision: None,
            versions: vec![VersionReport {
                version,
                state: VersionState::Serving,
                error: None,
                load_seconds: None,
                requests: 0,
                requests_per_second: None,
                errors: 0,
                latency_bounds_seconds: Vec::new(),
                latency_counts: Vec::new(),
            }],
            unconfirmed: None,
        }],
    };
    store.report_node(node_id, report).await.expect("report");
}

async fn a_served_model_leaves_the_fleet_only_by_an_undeploy(store: &Store) {
    model(store, "m", 3).await;
    store
        .set_alias("m", "champion", 2, &by("ops"))
        .await
        .expect("champion");
    // No node serves it yet: the alias may go and come back, as in MLflow.
    store
        .delete_alias("m", "champion", &by("ops"))
        .await
        .expect("nothing serves it");
    store
        .set_alias("m", "champion", 2, &by("ops"))
        .await
        .expect("champion again");
    node_serves(store, "node-a", "m", 2).await;
    let events_before = events(store).await.len();
    let history_before = history(store, "m").await.len();

    // Every change that would leave the champion-served model with nothing is refused, and
    // writes nothing.
    assert_going_dark(store.delete_alias("m", "champion", &by("ops")).await, "m");
    assert_going_dark(store.delete_model_version("m", 2, &by("ops")).await, "m");
    assert_going_dark(
        store.rename_registered_model("m", "m2", &by("ops")).await,
        "m",
    );
    assert_going_dark(store.delete_registered_model("m", &by("ops")).await, "m");
    assert_eq!(events(store).await.len(), events_before);
    assert_eq!(history(store, "m").await.len(), history_before);
    let state = store.get_deployment("m").await.expect("still there");
    assert_eq!(
        served(&state),
        (DeploymentSource::Champion, routes(&[(2, 100)]))
    );

    // With a Production version to fall back to, the alias may go; then the stage may not.
    store
        .transition_stage("m", 1, Stage::Production, false, &by("ops"))
        .await
        .expect("v1 to Production");
    store
        .delete_alias("m", "champion", &by("ops"))
        .await
        .expect("Production takes over");
    assert_going_dark(
        store
            .transition_stage("m", 1, Stage::Archived, false, &by("ops"))
            .await,
        "m",
    );

    // The undeploy: recorded, announced, and idempotent.
    let events_before = events(store).await.len();
    let state = store
        .undeploy("m", None, &saying("ops", "retired"))
        .await
        .expect("undeploy");
    assert!(state.undeployed && state.effective.is_none(), "{state:?}");
    assert_eq!(state.revision, 1);
    let again = store.undeploy("m", None, &by("ops")).await.expect("again");
    assert_eq!(again, state, "undeploying twice changes nothing");
    let new_events = events(store).await.split_off(events_before);
    assert_eq!(new_events.len(), 1, "{new_events:?}");
    match &new_events[0] {
        (key, Body::DeploymentDeleted(deleted)) => {
            assert_eq!(key, "deployment.deleted");
            assert!(deleted.undeployed);
            assert_eq!((deleted.revision, deleted.comment.as_str()), (1, "retired"));
        }
        other => panic!("unexpected event {other:?}"),
    }
    let (kind, _, comment, actor) = history(store, "m").await.pop().expect("an entry");
    assert_eq!(
        (kind.as_str(), comment.as_deref(), actor.as_str()),
        ("undeploy", Some("retired"), "ops")
    );
    assert!(store.list_deployments().await.expect("list").is_empty());

    // Undeployed, the Production version no longer serves, and the model may go; the mark
    // outlives it, so a node that missed the undeploy still learns of it.
    store
        .transition_stage("m", 1, Stage::Archived, false, &by("ops"))
        .await
        .expect("nothing serves any more");
    store
        .delete_registered_model("m", &by("ops"))
        .await
        .expect("delete an undeployed model");
    let gone = store.get_deployment("m").await.expect("the mark answers");
    assert!(gone.undeployed && gone.effective.is_none(), "{gone:?}");

    // Deploying again ends the undeploy: here through the champion alias of a new "m".
    model(store, "m", 1).await;
    store
        .set_alias("m", "champion", 1, &by("ops"))
        .await
        .expect("champion");
    let state = store.get_deployment("m").await.expect("get");
    assert!(!state.undeployed);
    assert_eq!(
        served(&state),
        (DeploymentSource::Champion, routes(&[(1, 100)]))
    );
}

async fn deleting_the_last_deployment_undeploys(store: &Store) {
    model(store, "x", 1).await;
    store
        .set_deployment("x", spec(&[(1, 100)]), None, &by("ops"))
        .await
        .expect("deploy");
    let events_before = events(store).await.len();
    let state = store
        .delete_deployment("x", None, &saying("ops", "retired"))
        .await
        .expect("delete");
    assert!(state.undeployed && state.effective.is_none(), "{state:?}");
    match &events(store).await[events_before].1 {
        Body::DeploymentDeleted(deleted) => {
            assert!(deleted.undeployed);
            assert_eq!(deleted.comment, "retired");
        }
        other => panic!("unexpected event {other:?}"),
    }
    let kinds: Vec<String> = history(store, "x")
        .await
        .into_iter()
        .map(|(kind, ..)| kind)
        .collect();
    assert_eq!(kinds.last().map(String::as_str), Some("deployment_delete"));
}

async fn undeploy_route_and_going_dark_refusals_over_http(server: &TestServer) {
    http_model(server, "ranker", 2).await;
    server
        .post_ok(
            &format!("{MLFLOW}/registered-models/alias"),
            json!({ "name": "ranker", "alias": "champion", "version": "2" }),
        )
        .await;
    let report = json!({ "report_seconds": 60.0, "models": [{ "model": "ranker", "versions": [{
        "version": 2, "state": "serving", "requests": 0, "errors": 0,
        "latency_bounds_seconds": [], "latency_counts": [] }] }] });
    let (status, answer) = server
        .send(
            server
                .client
                .put(server.url("/api/okla/v1/nodes/node-a"))
                .json(&report),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = server
        .send(
            server
                .client
                .delete(server.url(&format!("{MLFLOW}/registered-models/alias")))
                .json(&json!({ "name": "ranker", "alias": "champion" })),
        )
        .await;
    let message = assert_mlflow_error(&(status, answer), StatusCode::CONFLICT, "RESOURCE_CONFLICT");
    assert!(message.contains("undeploy"), "{message}");

    let answer = server
        .post_ok(
            &format!("{DEPLOYMENTS}/ranker/undeploy"),
            json!({ "comment": "replaced by the new ranker" }),
        )
        .await;
    assert_eq!(answer["deployment"]["source"], "undeployed");
    assert_eq!(answer["deployment"]["routes"], json!([]));
    let (status, _) = server
        .send(
            server
                .client
                .delete(server.url(&format!("{MLFLOW}/registered-models/delete")))
                .json(&json!({ "name": "ranker" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer = server.get_ok(&format!("{DEPLOYMENTS}/ranker"), &[]).await;
    assert_eq!(answer["deployment"]["source"], "undeployed");
    let (status, _) = server
        .send(
            server
                .client
                .get(server.url(&format!("{DEPLOYMENTS}/never-existed"))),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
