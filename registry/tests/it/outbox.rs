//! The transactional outbox at the store level, on both backends: each registry change writes
//! exactly its events with per-model sequences 1, 2, 3..., refused changes write none, and the
//! relay's reads and marks behave.

use std::collections::BTreeSet;

use okla_proto::events::ModelEvent;
use okla_proto::events::model_event::Body;
use okla_registry::domain::model_registry::Stage;
use okla_registry::store::Store;
use okla_registry::store::model_registry::{Change, NewModelVersion};
use okla_registry::store::outbox::OutboxEvent;
use prost::Message;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{TestServer, assert_mlflow_error};

mod store_level {
    use super::*;
    backend_test_suite!(store:
        each_change_writes_its_events_in_order,
        refused_changes_write_no_events,
        archiving_writes_one_event_per_archived_version,
        a_name_keeps_its_stream_across_delete_and_rename,
        relay_reads_only_unpublished_events,
    );
}

mod feed {
    use super::*;
    backend_test_suite!(server: the_feed_pages_through_events_in_order);
}

fn by(actor: &str) -> Change<'_> {
    Change {
        actor,
        comment: None,
    }
}

fn version(name: &str, source: &str) -> NewModelVersion {
    NewModelVersion {
        name: name.to_owned(),
        source: source.to_owned(),
        actor: "trainer".to_owned(),
        ..NewModelVersion::default()
    }
}

/// Every event in the outbox, decoded, after checking what the columns repeat from the payload.
async fn all_events(store: &Store) -> Vec<(OutboxEvent, ModelEvent)> {
    let rows = store.events_after(0, 1000).await.expect("read the outbox");
    let mut previous_sequence = 0;
    rows.into_iter()
        .map(|row| {
            assert!(row.sequence > previous_sequence, "sequence order");
            previous_sequence = row.sequence;
            let event = ModelEvent::decode(row.payload.as_slice()).expect("payload decodes");
            assert_eq!(event.event_id, row.event_id);
            assert_eq!(event.model_name, row.model_name);
            assert_eq!(event.model_sequence, row.model_sequence);
            let body = event.body.as_ref().expect("every event has a body");
            assert_eq!(
                okla_proto::events::topology::routing_key(body),
                row.routing_key
            );
            assert!(uuid::Uuid::parse_str(&row.event_id).is_ok());
            (row, event)
        })
        .collect()
}

/// (model, model_sequence, routing key) of each event, for compact comparisons.
fn summary(events: &[(OutboxEvent, ModelEvent)]) -> Vec<(String, i64, String)> {
    events
        .iter()
        .map(|(row, _)| {
            (
                row.model_name.clone(),
                row.model_sequence,
                row.routing_key.clone(),
            )
        })
        .collect()
}

fn expected(rows: &[(&str, i64, &str)]) -> Vec<(String, i64, String)> {
    rows.iter()
        .map(|(model, sequence, key)| ((*model).to_owned(), *sequence, (*key).to_owned()))
        .collect()
}

async fn each_change_writes_its_events_in_order(store: &Store) {
    store
        .create_registered_model("m", None, &[])
        .await
        .expect("create model");
    assert!(
        all_events(store).await.is_empty(),
        "creating an empty model is not an event"
    );
    let mut first = version("m", "runs:/r1/model");
    first.run_id = Some("0123456789abcdef0123456789abcdef".to_owned());
    store.create_model_version(first).await.expect("v1");
    store
        .create_model_version(version("m", "runs:/r2/model"))
        .await
        .expect("v2");
    store
        .create_registered_model("other", None, &[])
        .await
        .expect("other model");
    store
        .create_model_version(version("other", "runs:/r3/model"))
        .await
        .expect("other v1");
    let reviewed = Change {
        actor: "carol",
        comment: Some("passed review"),
    };
    store
        .transition_stage("m", 1, Stage::Staging, false, &reviewed)
        .await
        .expect("transition");
    // Same stage again: nothing the fleet serves changes, so no event.
    store
        .transition_stage("m", 1, Stage::Staging, false, &reviewed)
        .await
        .expect("repeat transition");
    store
        .set_alias("m", "champion", 1, &by("dave"))
        .await
        .expect("set");
    store
        .set_alias("m", "champion", 2, &by("dave"))
        .await
        .expect("move");
    store
        .set_alias("m", "champion", 2, &by("dave"))
        .await
        .expect("same target again");
    store
        .delete_alias("m", "champion", &by("dave"))
        .await
        .expect("delete alias");
    store
        .set_alias("m", "shadow", 2, &by("dave"))
        .await
        .expect("alias on v2");
    store
        .delete_model_version("m", 2, &by("erin"))
        .await
        .expect("delete v2");

    let events = all_events(store).await;
    assert_eq!(
        summary(&events),
        expected(&[
            ("m", 1, "model.version.created"),
            ("m", 2, "model.version.created"),
            ("other", 1, "model.version.created"),
            ("m", 3, "model.version.transitioned"),
            ("m", 4, "model.alias.set"),
            ("m", 5, "model.alias.set"),
            ("m", 6, "model.alias.deleted"),
            ("m", 7, "model.alias.set"),
            ("m", 8, "model.alias.deleted"),
            ("m", 9, "model.version.deleted"),
        ])
    );
    let bodies: Vec<(&str, &Body)> = events
        .iter()
        .map(|(_, event)| (event.actor.as_str(), event.body.as_ref().expect("body")))
        .collect();
    match bodies[0] {
        ("trainer", Body::VersionCreated(created)) => {
            assert_eq!(created.version, 1);
            assert_eq!(created.source, "runs:/r1/model");
            assert_eq!(created.run_id, "0123456789abcdef0123456789abcdef");
        }
        other => panic!("unexpected first event {other:?}"),
    }
    match bodies[3] {
        ("carol", Body::StageTransitioned(transitioned)) => {
            assert_eq!(transitioned.version, 1);
            assert_eq!(transitioned.from_stage, "None");
            assert_eq!(transitioned.to_stage, "Staging");
            assert_eq!(transitioned.comment, "passed review");
        }
        other => panic!("unexpected transition event {other:?}"),
    }
    match (bodies[4], bodies[5], bodies[6]) {
        (
            ("dave", Body::AliasSet(set)),
            ("dave", Body::AliasSet(moved)),
            ("dave", Body::AliasDeleted(deleted)),
        ) => {
            assert_eq!(
                (set.alias.as_str(), set.version, set.previous_version),
                ("champion", 1, None)
            );
            assert_eq!(
                (moved.alias.as_str(), moved.version, moved.previous_version),
                ("champion", 2, Some(1))
            );
            assert_eq!((deleted.alias.as_str(), deleted.version), ("champion", 2));
        }
        other => panic!("unexpected alias events {other:?}"),
    }
    match (bodies[8], bodies[9]) {
        (("erin", Body::AliasDeleted(deleted)), ("erin", Body::VersionDeleted(version))) => {
            assert_eq!((deleted.alias.as_str(), deleted.version), ("shadow", 2));
            assert_eq!(version.version, 2);
        }
        other => panic!("unexpected deletion events {other:?}"),
    }
    let times: Vec<i64> = events
        .iter()
        .map(|(_, event)| event.occurred_at_ms)
        .collect();
    assert!(times.windows(2).all(|pair| pair[0] <= pair[1]));
    assert!(events.iter().all(|(row, _)| row.published_at.is_none()));
}

async fn refused_changes_write_no_events(store: &Store) {
    store
        .create_registered_model("m", None, &[])
        .await
        .expect("create model");
    store
        .create_registered_model("taken", None, &[])
        .await
        .expect("second model");
    store
        .create_model_version(version("m", "runs:/r1/model"))
        .await
        .expect("v1");
    let before = all_events(store).await.len();
    assert_eq!(before, 1);

    let refusals = [
        store
            .transition_stage("m", 7, Stage::Production, true, &by("x"))
            .await
            .map(drop),
        store
            .transition_stage("absent", 1, Stage::Production, false, &by("x"))
            .await
            .map(drop),
        // Archiving is refused for a stage that is not active, before anything changes.
        store
            .transition_stage("m", 1, Stage::Archived, true, &by("x"))
            .await
            .map(drop),
        store.set_alias("m", "champion", 7, &by("x")).await,
        store.set_alias("absent", "champion", 1, &by("x")).await,
        store.delete_model_version("m", 7, &by("x")).await,
        store
            .rename_registered_model("m", "taken", &by("x"))
            .await
            .map(drop),
        store
            .rename_registered_model("absent", "new", &by("x"))
            .await
            .map(drop),
        store.delete_registered_model("absent", &by("x")).await,
        store
            .create_model_version(version("absent", "runs:/r1/model"))
            .await
            .map(drop),
    ];
    for (index, refusal) in refusals.iter().enumerate() {
        assert!(refusal.is_err(), "change {index} should be refused");
    }
    // Deleting an alias that does not exist succeeds (as in MLflow) but changes nothing.
    store
        .delete_alias("m", "never-set", &by("x"))
        .await
        .expect("deleting a missing alias is a no-op");
    assert_eq!(all_events(store).await.len(), before);

    // The next accepted change takes the next number: refusals consumed none.
    store
        .set_alias("m", "champion", 1, &by("x"))
        .await
        .expect("set alias");
    let events = all_events(store).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].0.model_sequence, 2);
}

async fn archiving_writes_one_event_per_archived_version(store: &Store) {
    store
        .create_registered_model("m", None, &[])
        .await
        .expect("create model");
    for number in 1..=4 {
        store
            .create_model_version(version("m", &format!("runs:/r{number}/model")))
            .await
            .expect("version");
    }
    for number in 1..=3 {
        store
            .transition_stage("m", number, Stage::Production, false, &by("ops"))
            .await
            .expect("to production");
    }
    let before = all_events(store).await.len();
    store
        .transition_stage("m", 4, Stage::Production, true, &by("ops"))
        .await
        .expect("promote with archiving");
    let events = all_events(store).await;
    let transitions: Vec<(i64, i64, String, String)> = events[before..]
        .iter()
        .map(|(row, event)| match event.body.as_ref() {
            Some(Body::StageTransitioned(transitioned)) => (
                row.model_sequence,
                transitioned.version,
                transitioned.from_stage.clone(),
                transitioned.to_stage.clone(),
            ),
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    let production = || "Production".to_owned();
    let archived = || "Archived".to_owned();
    assert_eq!(
        transitions,
        vec![
            (8, 1, production(), archived()),
            (9, 2, production(), archived()),
            (10, 3, production(), archived()),
            (11, 4, "None".to_owned(), production()),
        ]
    );
    // One transaction: one occurrence time.
    let times: BTreeSet<i64> = events[before..]
        .iter()
        .map(|(_, event)| event.occurred_at_ms)
        .collect();
    assert_eq!(times.len(), 1);
}

async fn a_name_keeps_its_stream_across_delete_and_rename(store: &Store) {
    store
        .create_registered_model("m", None, &[])
        .await
        .expect("create model");
    store
        .create_model_version(version("m", "runs:/r1/model"))
        .await
        .expect("v1");
    store
        .rename_registered_model("m", "renamed", &by("x"))
        .await
        .expect("rename");
    store
        .create_model_version(version("renamed", "runs:/r2/model"))
        .await
        .expect("v2 under the new name");
    store
        .delete_registered_model("renamed", &by("x"))
        .await
        .expect("delete");
    // A model re-created under an old name continues that name's stream.
    store
        .create_registered_model("m", None, &[])
        .await
        .expect("re-create");
    store
        .create_model_version(version("m", "runs:/r3/model"))
        .await
        .expect("v1 again");
    let events = all_events(store).await;
    assert_eq!(
        summary(&events),
        expected(&[
            ("m", 1, "model.version.created"),
            ("m", 2, "model.renamed"),
            ("renamed", 1, "model.version.created"),
            ("renamed", 2, "model.deleted"),
            ("m", 3, "model.version.created"),
        ])
    );
    match events[1].1.body.as_ref() {
        Some(Body::ModelRenamed(renamed)) => assert_eq!(renamed.new_name, "renamed"),
        other => panic!("unexpected event {other:?}"),
    }
    match events[2].1.body.as_ref() {
        Some(Body::VersionCreated(created)) => assert_eq!(created.version, 2),
        other => panic!("unexpected event {other:?}"),
    }
}

async fn relay_reads_only_unpublished_events(store: &Store) {
    store
        .create_registered_model("m", None, &[])
        .await
        .expect("create model");
    for number in 1..=5 {
        store
            .create_model_version(version("m", &format!("runs:/r{number}/model")))
            .await
            .expect("version");
    }
    let all = store.events_after(0, 1000).await.expect("read");
    let sequences: Vec<i64> = all.iter().map(|event| event.sequence).collect();
    assert_eq!(
        store
            .unpublished_events(3)
            .await
            .expect("backlog")
            .iter()
            .map(|event| event.sequence)
            .collect::<Vec<_>>(),
        sequences[..3]
    );
    store
        .mark_events_published(&sequences[..2])
        .await
        .expect("mark");
    let backlog = store.unpublished_events(100).await.expect("backlog");
    assert_eq!(
        backlog
            .iter()
            .map(|event| event.sequence)
            .collect::<Vec<_>>(),
        sequences[2..]
    );
    let page = store.events_after(sequences[1], 2).await.expect("page");
    assert_eq!(
        page.iter().map(|event| event.sequence).collect::<Vec<_>>(),
        sequences[2..4]
    );
    let published = store.events_after(0, 2).await.expect("page");
    assert!(published.iter().all(|event| event.published_at.is_some()));
    // Marking again is harmless and keeps the first publication time.
    let first_marks: Vec<Option<i64>> = published.iter().map(|event| event.published_at).collect();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store
        .mark_events_published(&sequences[..2])
        .await
        .expect("mark again");
    let again: Vec<Option<i64>> = store
        .events_after(0, 2)
        .await
        .expect("page")
        .iter()
        .map(|event| event.published_at)
        .collect();
    assert_eq!(again, first_marks);
}

async fn the_feed_pages_through_events_in_order(server: &TestServer) {
    server
        .post_ok(
            "/api/2.0/mlflow/registered-models/create",
            json!({ "name": "feed" }),
        )
        .await;
    for number in 1..=3 {
        server
            .post_ok(
                "/api/2.0/mlflow/model-versions/create",
                json!({ "name": "feed", "source": format!("s3://bucket/feed/{number}") }),
            )
            .await;
    }
    server
        .post_ok(
            "/api/2.0/mlflow/registered-models/alias",
            json!({ "name": "feed", "alias": "champion", "version": "3" }),
        )
        .await;
    let first = server
        .get_ok("/api/okla/v1/events", &[("max_results", "3")])
        .await;
    let events = first["events"].as_array().expect("events");
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["model_name"], "feed");
    assert_eq!(events[0]["model_sequence"], 1);
    assert_eq!(events[0]["routing_key"], "model.version.created");
    assert_eq!(events[0]["event"]["version_created"]["version"], 1);
    assert_eq!(
        events[0]["event"]["version_created"]["source"],
        "s3://bucket/feed/1"
    );
    assert!(
        events[0]["published_at_ms"].is_null(),
        "no broker configured"
    );
    assert_eq!(first["next_after"], events[2]["sequence"]);
    let after = first["next_after"].to_string();
    let second = server
        .get_ok("/api/okla/v1/events", &[("after", after.as_str())])
        .await;
    let events = second["events"].as_array().expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["model_sequence"], 4);
    assert_eq!(events[0]["routing_key"], "model.alias.set");
    assert_eq!(
        events[0]["event"]["alias_set"],
        json!({ "alias": "champion", "version": 3, "previous_version": null })
    );
    let done = second["next_after"].to_string();
    let empty = server
        .get_ok("/api/okla/v1/events", &[("after", done.as_str())])
        .await;
    assert_eq!(empty["events"], json!([]));
    assert_eq!(empty["next_after"], second["next_after"]);

    for query in [
        [("max_results", "1001")],
        [("max_results", "-1")],
        [("after", "-5")],
        [("after", "abc")],
    ] {
        let answer = server.get("/api/okla/v1/events", &query).await;
        assert_mlflow_error(&answer, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    }
}
