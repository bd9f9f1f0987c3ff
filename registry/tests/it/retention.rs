//! Retention on both backends: published events, silent nodes and old audit entries go once
//! older than their age; unpublished events stay while a broker is configured. (Abandoned
//! multipart uploads: `artifacts::tests::abandoned_uploads_expire_and_live_ones_stay`.)

use okla_registry::domain::auth::AuditEntry;
use okla_registry::domain::nodes::NodeReport;
use okla_registry::domain::now_millis;
use okla_registry::store::Store;
use okla_registry::store::model_registry::{Change, NewModelVersion};

mod store_level {
    use super::*;
    backend_test_suite!(store:
        old_records_are_pruned_and_unpublished_events_wait_for_the_broker,
    );
}

async fn old_records_are_pruned_and_unpublished_events_wait_for_the_broker(store: &Store) {
    store
        .create_registered_model("m", None, &[])
        .await
        .expect("model");
    for _ in 0..3 {
        store
            .create_model_version(NewModelVersion {
                name: "m".to_owned(),
                source: "s3://bucket/m".to_owned(),
                actor: "trainer".to_owned(),
                ..NewModelVersion::default()
            })
            .await
            .expect("version");
    }
    store
        .set_alias(
            "m",
            "champion",
            1,
            &Change {
                actor: "ops",
                comment: None,
            },
        )
        .await
        .expect("alias");
    let events = store.events_after(0, 100).await.expect("events");
    assert!(events.len() >= 4, "{}", events.len());
    let published: Vec<i64> = events.iter().take(2).map(|event| event.sequence).collect();
    store
        .mark_events_published(&published)
        .await
        .expect("mark published");
    store
        .insert_audit_entries(&[AuditEntry::new("ops".to_owned(), "POST", "/x", 200)])
        .await
        .expect("audit");
    store
        .report_node(
            "node-a",
            NodeReport {
                http_url: None,
                report_seconds: Some(2.0),
                models: Vec::new(),
            },
        )
        .await
        .expect("report");
    let later = now_millis() + 1000;

    // Nothing is older than an hour ago.
    let hour_ago = now_millis() - 3_600_000;
    assert_eq!(store.prune_events(hour_ago, true).await.expect("prune"), 0);
    assert_eq!(store.prune_audit(hour_ago).await.expect("prune"), 0);
    assert_eq!(store.prune_nodes(hour_ago).await.expect("prune"), 0);

    // With a broker, only what it confirmed goes.
    assert_eq!(store.prune_events(later, false).await.expect("prune"), 2);
    let left = store.events_after(0, 100).await.expect("events");
    assert_eq!(left.len(), events.len() - 2);
    assert!(
        left.iter()
            .all(|event| !published.contains(&event.sequence))
    );
    // Without one, everything that old.
    assert_eq!(
        store.prune_events(later, true).await.expect("prune"),
        u64::try_from(left.len()).expect("a count")
    );
    assert!(store.events_after(0, 100).await.expect("events").is_empty());

    assert_eq!(store.prune_nodes(later).await.expect("prune"), 1);
    assert!(store.list_nodes(None).await.expect("nodes").is_empty());
    assert_eq!(store.prune_audit(later).await.expect("prune"), 1);
    assert!(store.audit_entries(0, 10).await.expect("audit").is_empty());
}
