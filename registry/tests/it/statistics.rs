//! The PostgreSQL statistics keeper analyzes search tables after a bulk of runs is logged.

use okla_registry::domain::KeyValue;
use okla_registry::store::tracking::NewRun;

use crate::support::{BackendKind, TestDatabase};

#[tokio::test]
async fn bulk_logged_runs_get_fresh_planner_statistics() {
    let database = TestDatabase::create(BackendKind::Postgres).await;
    let store = database.connect_store().await;
    let experiment_id = store
        .create_experiment("sweep", None, &[])
        .await
        .expect("experiment");
    assert!(
        store
            .analyze_changed_search_tables()
            .await
            .expect("check")
            .is_empty(),
        "an empty registry needs no analyze"
    );
    for index in 0..1100 {
        store
            .create_run(NewRun {
                experiment_id,
                user_id: "trainer".to_owned(),
                run_name: Some(format!("run-{index}")),
                start_time: index,
                tags: vec![KeyValue {
                    key: "sweep".to_owned(),
                    value: "a".to_owned(),
                }],
            })
            .await
            .expect("run");
    }
    // Each PostgreSQL backend publishes its per-table counters up to a few seconds after its
    // transactions end (idle backends after ten), so the keeper may see them in several steps.
    let mut analyzed: Vec<String> = Vec::new();
    for _ in 0..200 {
        analyzed.extend(
            store
                .analyze_changed_search_tables()
                .await
                .expect("analyze"),
        );
        if ["runs", "tags"]
            .iter()
            .all(|wanted| analyzed.iter().any(|table| table == wanted))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        analyzed.iter().any(|table| table == "runs"),
        "analyzed: {analyzed:?}"
    );
    assert!(
        analyzed.iter().any(|table| table == "tags"),
        "analyzed: {analyzed:?}"
    );
}
