//! The store conformance suite: one set of async tests run directly against
//! `okla_registry::store::Store` on SQLite and on PostgreSQL, so both backends keep MLflow's
//! semantics for experiments, runs, metrics, registered models, versions, stages, aliases,
//! history and version files.

use std::collections::{BTreeSet, HashSet};

use futures::StreamExt as _;

use okla_registry::domain::model_registry::{Stage, VersionFile};
use okla_registry::domain::tracking::{Metric, Run, RunStatus};
use okla_registry::domain::{KeyValue, LifecycleStage, ViewType};
use okla_registry::error::{ErrorCode, Result};
use okla_registry::store::model_registry::{Change, NewModelVersion, SearchModels};
use okla_registry::store::tracking::{Batch, NewRun, RunUpdate, SearchExperiments, SearchRuns};
use okla_registry::store::{Compaction, Store};

backend_test_suite!(store:
    experiment_create_get_and_duplicate,
    experiment_rename,
    experiment_delete_cascades_to_runs_and_restore_brings_them_back,
    experiment_tags,
    experiment_search_filters_orders_and_pages,
    experiment_search_returns_a_page_of_more_ids_than_sqlite_binds,
    run_create_get_and_update,
    log_batch_twice_leaves_history_unchanged,
    older_step_logged_later_does_not_replace_latest_metric,
    nan_and_infinite_metrics_round_trip,
    nan_only_and_finite_writes_share_one_statement,
    changing_a_param_is_refused_and_nothing_of_the_batch_is_written,
    logging_to_a_deleted_run_is_refused,
    metric_history_pages,
    compaction_merges_small_chunks_and_keeps_every_point,
    reads_have_a_pointwise_history_compacted_while_it_is_written,
    search_runs_filters_on_metrics_params_tags_and_attributes,
    search_runs_orders_by_metric_with_nan_then_missing_last,
    search_runs_pages_through_every_run_exactly_once,
    registered_model_create_get_and_duplicate,
    registered_model_rename_keeps_versions_aliases_and_history,
    registered_model_update_tags_and_delete,
    registered_model_search_prompt_clause_keeps_untagged_models,
    version_numbers_increase_and_are_never_reused,
    concurrent_version_creation_numbers_one_to_twenty,
    model_version_search_and_tags,
    transition_with_archive_existing_archives_the_previous_production,
    latest_versions_per_stage,
    aliases_set_move_get_and_delete,
    deleting_a_version_drops_its_aliases,
    history_records_every_stage_and_alias_change,
    history_survives_model_deletion,
    version_files_are_returned_sorted,
);

// ----- helpers -----

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: value.to_owned(),
    }
}

fn metric(key: &str, value: f64, timestamp: i64, step: i64) -> Metric {
    Metric {
        key: key.to_owned(),
        value,
        timestamp,
        step,
    }
}

fn by(actor: &str) -> Change<'_> {
    Change {
        actor,
        comment: None,
    }
}

/// Asserts that `result` failed with `code` and returns the error message.
#[track_caller]
fn expect_error<T: std::fmt::Debug>(result: Result<T>, code: ErrorCode) -> String {
    match result {
        Ok(value) => panic!("expected {code:?}, got Ok({value:?})"),
        Err(error) => {
            assert_eq!(error.code(), code, "wrong error kind: {error}");
            error.to_string()
        }
    }
}

async fn create_run(store: &Store, experiment_id: i64, run_name: &str, start_time: i64) -> Run {
    store
        .create_run(NewRun {
            experiment_id,
            user_id: "ada".to_owned(),
            run_name: Some(run_name.to_owned()),
            start_time,
            tags: Vec::new(),
        })
        .await
        .expect("create run")
}

async fn log(store: &Store, run_id: &str, batch: Batch) {
    store
        .log_batch(run_id, batch)
        .await
        .unwrap_or_else(|error| panic!("log batch to {run_id}: {error}"));
}

fn metrics_batch(metrics: Vec<Metric>) -> Batch {
    Batch {
        metrics,
        ..Batch::default()
    }
}

async fn history(store: &Store, run_id: &str, key: &str) -> Vec<Metric> {
    store
        .get_metric_history(run_id, key, None, None)
        .await
        .expect("metric history")
        .items
}

fn latest<'a>(run: &'a Run, key: &str) -> Option<&'a Metric> {
    run.metrics.iter().find(|metric| metric.key == key)
}

async fn search_run_names(
    store: &Store,
    experiment_id: i64,
    filter: &str,
    order_by: &[String],
) -> Vec<String> {
    let page = store
        .search_runs(SearchRuns {
            experiment_ids: &[experiment_id],
            filter,
            view_type: ViewType::ActiveOnly,
            max_results: None,
            order_by,
            page_token: None,
        })
        .await
        .unwrap_or_else(|error| panic!("search runs with {filter:?}: {error}"));
    assert!(page.next_page_token.is_none());
    page.items
        .iter()
        .map(|run| run.info.run_name.clone())
        .collect()
}

fn sorted(names: Vec<String>) -> Vec<String> {
    let mut names = names;
    names.sort();
    names
}

fn version(name: &str, source: &str) -> NewModelVersion {
    NewModelVersion {
        name: name.to_owned(),
        source: source.to_owned(),
        ..NewModelVersion::default()
    }
}

async fn create_versions(store: &Store, name: &str, count: usize) -> Vec<i64> {
    let mut numbers = Vec::new();
    for index in 0..count {
        let created = store
            .create_model_version(version(
                name,
                &format!("mlflow-artifacts:/0/{name}/{index}"),
            ))
            .await
            .expect("create model version");
        numbers.push(created.version);
    }
    numbers
}

async fn stage_of(store: &Store, name: &str, number: i64) -> String {
    store
        .get_model_version(name, number)
        .await
        .expect("get model version")
        .current_stage
}

// ----- experiments -----

async fn experiment_create_get_and_duplicate(store: &Store) {
    let default = store
        .get_experiment(0)
        .await
        .expect("the default experiment exists");
    assert_eq!(default.name, "Default");
    assert_eq!(default.artifact_location, "mlflow-artifacts:/0");

    let id = store
        .create_experiment("fraud", None, &[kv("team", "risk")])
        .await
        .expect("create");
    assert!(id > 0);
    let experiment = store.get_experiment(id).await.expect("get");
    assert_eq!(experiment.name, "fraud");
    assert_eq!(
        experiment.artifact_location,
        format!("mlflow-artifacts:/{id}")
    );
    assert_eq!(experiment.lifecycle_stage, LifecycleStage::Active);
    assert_eq!(experiment.tags, vec![kv("team", "risk")]);
    assert!(experiment.creation_time > 0);

    let by_name = store
        .get_experiment_by_name("fraud")
        .await
        .expect("get by name");
    assert_eq!(by_name.experiment_id, id);

    let custom = store
        .create_experiment("custom", Some("s3://bucket/custom"), &[])
        .await
        .expect("create");
    assert_eq!(
        store
            .get_experiment(custom)
            .await
            .expect("get")
            .artifact_location,
        "s3://bucket/custom"
    );

    let message = expect_error(
        store.create_experiment("fraud", None, &[]).await,
        ErrorCode::ResourceAlreadyExists,
    );
    assert!(message.contains("fraud"), "{message}");
    expect_error(
        store.get_experiment(9999).await,
        ErrorCode::ResourceDoesNotExist,
    );
    expect_error(
        store.get_experiment_by_name("nope").await,
        ErrorCode::ResourceDoesNotExist,
    );
}

async fn experiment_rename(store: &Store) {
    let id = store
        .create_experiment("before", None, &[])
        .await
        .expect("create");
    store
        .create_experiment("taken", None, &[])
        .await
        .expect("create");
    store.rename_experiment(id, "after").await.expect("rename");
    assert_eq!(store.get_experiment(id).await.expect("get").name, "after");
    assert_eq!(
        store
            .get_experiment_by_name("after")
            .await
            .expect("by name")
            .experiment_id,
        id
    );
    expect_error(
        store.get_experiment_by_name("before").await,
        ErrorCode::ResourceDoesNotExist,
    );
    expect_error(
        store.rename_experiment(id, "taken").await,
        ErrorCode::ResourceAlreadyExists,
    );
    assert_eq!(store.get_experiment(id).await.expect("get").name, "after");
    expect_error(
        store.rename_experiment(4242, "x").await,
        ErrorCode::ResourceDoesNotExist,
    );
}

async fn experiment_delete_cascades_to_runs_and_restore_brings_them_back(store: &Store) {
    let id = store
        .create_experiment("doomed", None, &[])
        .await
        .expect("create");
    let first = create_run(store, id, "first", 1).await;
    let second = create_run(store, id, "second", 2).await;

    store
        .set_experiment_lifecycle(id, LifecycleStage::Deleted)
        .await
        .expect("delete");
    assert_eq!(
        store.get_experiment(id).await.expect("get").lifecycle_stage,
        LifecycleStage::Deleted
    );
    for run in [&first, &second] {
        let info = store
            .get_run_info(&run.info.run_id)
            .await
            .expect("deleted runs stay readable");
        assert_eq!(info.lifecycle_stage, LifecycleStage::Deleted);
    }
    let message = expect_error(
        store
            .create_run(NewRun {
                experiment_id: id,
                user_id: String::new(),
                run_name: None,
                start_time: 3,
                tags: Vec::new(),
            })
            .await,
        ErrorCode::InvalidParameterValue,
    );
    assert!(message.contains("active"), "{message}");
    expect_error(
        store.rename_experiment(id, "renamed").await,
        ErrorCode::InvalidParameterValue,
    );

    let active = store
        .search_experiments(SearchExperiments {
            filter: "",
            view_type: ViewType::ActiveOnly,
            max_results: None,
            order_by: &[],
            page_token: None,
        })
        .await
        .expect("search");
    assert!(
        active
            .items
            .iter()
            .all(|experiment| experiment.experiment_id != id)
    );

    store
        .set_experiment_lifecycle(id, LifecycleStage::Active)
        .await
        .expect("restore");
    assert_eq!(
        store.get_experiment(id).await.expect("get").lifecycle_stage,
        LifecycleStage::Active
    );
    for run in [&first, &second] {
        let info = store.get_run_info(&run.info.run_id).await.expect("get run");
        assert_eq!(info.lifecycle_stage, LifecycleStage::Active);
    }
    expect_error(
        store
            .set_experiment_lifecycle(id, LifecycleStage::Active)
            .await,
        ErrorCode::InvalidParameterValue,
    );
    expect_error(
        store
            .set_experiment_lifecycle(0, LifecycleStage::Deleted)
            .await,
        ErrorCode::InvalidParameterValue,
    );
    expect_error(
        store
            .set_experiment_lifecycle(777, LifecycleStage::Deleted)
            .await,
        ErrorCode::ResourceDoesNotExist,
    );
}

async fn experiment_tags(store: &Store) {
    let id = store
        .create_experiment("tagged", None, &[kv("a", "1")])
        .await
        .expect("create");
    store
        .set_experiment_tag(id, &kv("a", "2"))
        .await
        .expect("overwrite tag");
    store
        .set_experiment_tag(id, &kv("b", "3"))
        .await
        .expect("set tag");
    assert_eq!(
        store.get_experiment(id).await.expect("get").tags,
        vec![kv("a", "2"), kv("b", "3")]
    );
    store
        .delete_experiment_tag(id, "a")
        .await
        .expect("delete tag");
    assert_eq!(
        store.get_experiment(id).await.expect("get").tags,
        vec![kv("b", "3")]
    );
    expect_error(
        store.delete_experiment_tag(id, "a").await,
        ErrorCode::ResourceDoesNotExist,
    );
    store
        .set_experiment_lifecycle(id, LifecycleStage::Deleted)
        .await
        .expect("delete");
    expect_error(
        store.set_experiment_tag(id, &kv("c", "4")).await,
        ErrorCode::InvalidParameterValue,
    );
}

async fn experiment_search_filters_orders_and_pages(store: &Store) {
    for index in 0..5 {
        let team = if index % 2 == 0 { "even" } else { "odd" };
        store
            .create_experiment(&format!("search-{index}"), None, &[kv("team", team)])
            .await
            .expect("create");
    }
    store
        .create_experiment("other", None, &[])
        .await
        .expect("create");
    let deleted = store
        .create_experiment("search-deleted", None, &[])
        .await
        .expect("create");
    store
        .set_experiment_lifecycle(deleted, LifecycleStage::Deleted)
        .await
        .expect("delete");

    let order_by = ["name DESC".to_owned()];
    let mut names = Vec::new();
    let mut page_token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .search_experiments(SearchExperiments {
                filter: "name LIKE 'search-%'",
                view_type: ViewType::ActiveOnly,
                max_results: Some(2),
                order_by: &order_by,
                page_token: page_token.as_deref(),
            })
            .await
            .expect("search");
        pages += 1;
        assert!(page.items.len() <= 2);
        names.extend(page.items.into_iter().map(|experiment| experiment.name));
        match page.next_page_token {
            Some(token) => page_token = Some(token),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(
        names,
        ["search-4", "search-3", "search-2", "search-1", "search-0"]
    );
    assert_eq!(pages, 3);

    let even = store
        .search_experiments(SearchExperiments {
            filter: "tags.team = 'even'",
            view_type: ViewType::ActiveOnly,
            max_results: None,
            order_by: &["name ASC".to_owned()],
            page_token: None,
        })
        .await
        .expect("search by tag");
    let even: Vec<&str> = even
        .items
        .iter()
        .map(|experiment| experiment.name.as_str())
        .collect();
    assert_eq!(even, ["search-0", "search-2", "search-4"]);

    let deleted_only = store
        .search_experiments(SearchExperiments {
            filter: "",
            view_type: ViewType::DeletedOnly,
            max_results: None,
            order_by: &[],
            page_token: None,
        })
        .await
        .expect("search deleted");
    let deleted_names: Vec<&str> = deleted_only
        .items
        .iter()
        .map(|experiment| experiment.name.as_str())
        .collect();
    assert_eq!(deleted_names, ["search-deleted"]);

    expect_error(
        store
            .search_experiments(SearchExperiments {
                filter: "name <<< 'x'",
                view_type: ViewType::ActiveOnly,
                max_results: None,
                order_by: &[],
                page_token: None,
            })
            .await,
        ErrorCode::InvalidParameterValue,
    );
}

// ----- runs -----

/// SQLite refuses a statement with more than 32,766 bound variables, so the tags of a page of
/// experiments are read with the ids bound as one list, not one parameter each.
async fn experiment_search_returns_a_page_of_more_ids_than_sqlite_binds(store: &Store) {
    const COUNT: usize = 32_800;
    let created: Vec<i64> = futures::stream::iter(0..COUNT)
        .map(|index| async move {
            store
                .create_experiment(
                    &format!("many-{index:05}"),
                    None,
                    &[kv("index", &index.to_string())],
                )
                .await
                .expect("create experiment")
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(created.len(), COUNT);
    let page = store
        .search_experiments(SearchExperiments {
            filter: "name LIKE 'many-%'",
            view_type: ViewType::ActiveOnly,
            max_results: Some(50_000),
            order_by: &["name ASC".to_owned()],
            page_token: None,
        })
        .await
        .expect("search a page of more than 32,766 experiments");
    assert_eq!(page.items.len(), COUNT);
    assert!(page.next_page_token.is_none());
    for (index, experiment) in page.items.iter().enumerate() {
        assert_eq!(experiment.name, format!("many-{index:05}"));
        assert_eq!(experiment.tags, vec![kv("index", &index.to_string())]);
    }
}

async fn run_create_get_and_update(store: &Store) {
    let experiment_id = store
        .create_experiment("runs", None, &[])
        .await
        .expect("create");
    let run = store
        .create_run(NewRun {
            experiment_id,
            user_id: "ada".to_owned(),
            run_name: Some("baseline".to_owned()),
            start_time: 1_700_000_000_000,
            tags: vec![kv("mlflow.source.type", "LOCAL")],
        })
        .await
        .expect("create run");
    let run_id = run.info.run_id.clone();
    assert_eq!(run_id.len(), 32);
    assert!(
        run_id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{run_id}"
    );
    assert_eq!(run.info.experiment_id, experiment_id);
    assert_eq!(run.info.run_name, "baseline");
    assert_eq!(run.info.user_id, "ada");
    assert_eq!(run.info.status, RunStatus::Running);
    assert_eq!(run.info.start_time, 1_700_000_000_000);
    assert_eq!(run.info.end_time, None);
    assert_eq!(
        run.info.artifact_uri,
        format!("mlflow-artifacts:/{experiment_id}/{run_id}/artifacts")
    );
    assert_eq!(
        run.tags,
        vec![
            kv("mlflow.runName", "baseline"),
            kv("mlflow.source.type", "LOCAL")
        ]
    );

    let fetched = store.get_run(&run_id).await.expect("get run");
    assert_eq!(fetched.info.run_name, "baseline");

    // Ids of any spelling are looked up, never spliced into SQL; one that cannot be stored
    // (a NUL) is simply absent.
    let read = store
        .get_runs(std::slice::from_ref(&run_id))
        .await
        .expect("get runs");
    assert_eq!(read.len(), 1);
    for odd in ["a\"b", "back\\slash", "nul\0byte", "ünï", "[\"x\"]", ""] {
        expect_error(store.get_run(odd).await, ErrorCode::ResourceDoesNotExist);
        let message = expect_error(
            store.get_runs(&[run_id.clone(), odd.to_owned()]).await,
            ErrorCode::ResourceDoesNotExist,
        );
        assert!(message.contains(odd), "{message}");
    }

    let unnamed = store
        .create_run(NewRun {
            experiment_id,
            user_id: String::new(),
            run_name: None,
            start_time: 1,
            tags: Vec::new(),
        })
        .await
        .expect("create unnamed run");
    assert!(
        !unnamed.info.run_name.is_empty(),
        "an unnamed run gets a generated name"
    );
    assert!(
        unnamed
            .tags
            .contains(&kv("mlflow.runName", &unnamed.info.run_name))
    );

    expect_error(
        store
            .create_run(NewRun {
                experiment_id,
                user_id: String::new(),
                run_name: Some("one".to_owned()),
                start_time: 1,
                tags: vec![kv("mlflow.runName", "two")],
            })
            .await,
        ErrorCode::InvalidParameterValue,
    );
    expect_error(
        store
            .create_run(NewRun {
                experiment_id: 4040,
                user_id: String::new(),
                run_name: None,
                start_time: 1,
                tags: Vec::new(),
            })
            .await,
        ErrorCode::ResourceDoesNotExist,
    );
    expect_error(
        store.get_run("0123456789abcdef0123456789abcdef").await,
        ErrorCode::ResourceDoesNotExist,
    );

    let info = store
        .update_run(
            &run_id,
            RunUpdate {
                status: Some(RunStatus::Finished),
                end_time: Some(1_700_000_100_000),
                run_name: Some("renamed".to_owned()),
            },
        )
        .await
        .expect("update run");
    assert_eq!(info.status, RunStatus::Finished);
    assert_eq!(info.end_time, Some(1_700_000_100_000));
    assert_eq!(info.run_name, "renamed");
    let run = store.get_run(&run_id).await.expect("get run");
    assert!(
        run.tags.contains(&kv("mlflow.runName", "renamed")),
        "{:?}",
        run.tags
    );

    // A partial update leaves the other fields alone.
    let info = store
        .update_run(
            &run_id,
            RunUpdate {
                status: Some(RunStatus::Failed),
                ..RunUpdate::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(info.status, RunStatus::Failed);
    assert_eq!(info.end_time, Some(1_700_000_100_000));
    assert_eq!(info.run_name, "renamed");
}

async fn log_batch_twice_leaves_history_unchanged(store: &Store) {
    let run = create_run(store, 0, "idempotent", 1).await;
    let run_id = &run.info.run_id;
    let batch = Batch {
        metrics: vec![
            metric("loss", 0.5, 10, 0),
            metric("loss", 0.25, 20, 1),
            metric("acc", 0.9, 20, 1),
        ],
        params: vec![kv("lr", "0.01")],
        tags: vec![kv("team", "a")],
        model_metrics: Vec::new(),
    };
    log(store, run_id, batch.clone()).await;
    let loss_before = history(store, run_id, "loss").await;
    let acc_before = history(store, run_id, "acc").await;
    let run_before = store.get_run(run_id).await.expect("get run");

    log(store, run_id, batch).await;
    assert_eq!(history(store, run_id, "loss").await, loss_before);
    assert_eq!(history(store, run_id, "acc").await, acc_before);
    assert_eq!(
        loss_before,
        vec![metric("loss", 0.5, 10, 0), metric("loss", 0.25, 20, 1)]
    );
    let run_after = store.get_run(run_id).await.expect("get run");
    assert_eq!(run_after.metrics, run_before.metrics);
    assert_eq!(run_after.params, vec![kv("lr", "0.01")]);
    assert_eq!(run_after.tags, run_before.tags);

    // A stored point, a point given twice and a new one: the whole batch lands, each point once.
    let mixed = Batch {
        metrics: vec![
            metric("loss", 0.25, 20, 1),
            metric("loss", 0.125, 30, 2),
            metric("loss", 0.125, 30, 2),
        ],
        tags: vec![kv("stage", "mixed")],
        ..Batch::default()
    };
    log(store, run_id, mixed).await;
    assert_eq!(
        history(store, run_id, "loss").await,
        vec![
            metric("loss", 0.5, 10, 0),
            metric("loss", 0.25, 20, 1),
            metric("loss", 0.125, 30, 2)
        ]
    );
    let run_after = store.get_run(run_id).await.expect("get run");
    assert_eq!(
        latest(&run_after, "loss"),
        Some(&metric("loss", 0.125, 30, 2))
    );
    assert!(
        run_after.tags.contains(&kv("stage", "mixed")),
        "{:?}",
        run_after.tags
    );
}

async fn older_step_logged_later_does_not_replace_latest_metric(store: &Store) {
    let run = create_run(store, 0, "latest", 1).await;
    let run_id = &run.info.run_id;

    log(
        store,
        run_id,
        metrics_batch(vec![metric("loss", 1.0, 100, 5)]),
    )
    .await;
    // An older step arriving later (with a newer timestamp) goes to the history only.
    log(
        store,
        run_id,
        metrics_batch(vec![metric("loss", 9.0, 200, 3)]),
    )
    .await;
    let current = store.get_run(run_id).await.expect("get run");
    assert_eq!(latest(&current, "loss"), Some(&metric("loss", 1.0, 100, 5)));
    assert_eq!(history(store, run_id, "loss").await.len(), 2);

    // Same step: the later timestamp wins, an earlier one does not.
    log(
        store,
        run_id,
        metrics_batch(vec![metric("loss", 2.0, 150, 5)]),
    )
    .await;
    log(
        store,
        run_id,
        metrics_batch(vec![metric("loss", 3.0, 50, 5)]),
    )
    .await;
    let current = store.get_run(run_id).await.expect("get run");
    assert_eq!(latest(&current, "loss"), Some(&metric("loss", 2.0, 150, 5)));

    // Within one batch, order in the batch does not matter either.
    log(
        store,
        run_id,
        metrics_batch(vec![metric("acc", 0.8, 10, 7), metric("acc", 0.1, 20, 2)]),
    )
    .await;
    let current = store.get_run(run_id).await.expect("get run");
    assert_eq!(latest(&current, "acc"), Some(&metric("acc", 0.8, 10, 7)));

    // Searches compare against the latest value, not the largest or the last logged.
    let experiment_runs = search_run_names(store, 0, "metrics.loss > 5", &[]).await;
    assert!(experiment_runs.is_empty(), "{experiment_runs:?}");
    let experiment_runs = search_run_names(store, 0, "metrics.loss = 2", &[]).await;
    assert_eq!(experiment_runs, ["latest"]);

    // The range spans every point, whether or not it became the latest value.
    let ranges = store
        .metric_ranges(std::slice::from_ref(run_id))
        .await
        .expect("metric ranges");
    let range = |key: &str| ranges.get(&(run_id.clone(), key.to_owned())).copied();
    assert_eq!(range("loss"), Some((1.0, 9.0)));
    assert_eq!(range("acc"), Some((0.1, 0.8)));
}

/// A key with only NaN points has no range, and its write binds the empty one. Writes of such
/// keys and of finite ones run the same statement, prepared once per pooled connection: whichever
/// comes first on a connection must not break the statement for the other.
async fn nan_only_and_finite_writes_share_one_statement(store: &Store) {
    let run = create_run(store, 0, "nan-only", 1).await;
    let run_id = &run.info.run_id;
    for step in 0..6 {
        let batch = metrics_batch(vec![metric("nan", f64::NAN, 10, step)]);
        log(store, run_id, batch).await;
    }
    for step in 0..6 {
        let batch = metrics_batch(vec![metric("finite", 0.5 + step as f64, 10, step)]);
        log(store, run_id, batch).await;
    }
    let ranges = store
        .metric_ranges(std::slice::from_ref(run_id))
        .await
        .expect("metric ranges");
    assert_eq!(
        ranges.get(&(run_id.clone(), "finite".to_owned())),
        Some(&(0.5, 5.5))
    );
    assert!(
        !ranges.contains_key(&(run_id.clone(), "nan".to_owned())),
        "a NaN-only metric has no range: {ranges:?}"
    );
    assert_eq!(history(store, run_id, "nan").await.len(), 6);
}

async fn nan_and_infinite_metrics_round_trip(store: &Store) {
    let run = create_run(store, 0, "nan", 1).await;
    let run_id = &run.info.run_id;
    log(
        store,
        run_id,
        metrics_batch(vec![
            metric("loss", f64::NAN, 10, 0),
            metric("up", f64::INFINITY, 10, 0),
            metric("down", f64::NEG_INFINITY, 10, 0),
        ]),
    )
    .await;
    let current = store.get_run(run_id).await.expect("get run");
    assert!(
        latest(&current, "loss")
            .expect("loss is logged")
            .value
            .is_nan()
    );
    assert_eq!(
        latest(&current, "up").expect("up is logged").value,
        f64::INFINITY
    );
    assert_eq!(
        latest(&current, "down").expect("down is logged").value,
        f64::NEG_INFINITY
    );
    let loss = history(store, run_id, "loss").await;
    assert_eq!(loss.len(), 1);
    assert!(loss[0].value.is_nan());

    // A NaN and a real value at the same step and time are two distinct points.
    log(
        store,
        run_id,
        metrics_batch(vec![metric("loss", 0.0, 10, 0)]),
    )
    .await;
    let loss = history(store, run_id, "loss").await;
    assert_eq!(loss.len(), 2, "{loss:?}");
    assert_eq!(loss.iter().filter(|point| point.value.is_nan()).count(), 1);
    // Logging the NaN again changes nothing.
    log(
        store,
        run_id,
        metrics_batch(vec![metric("loss", f64::NAN, 10, 0)]),
    )
    .await;
    assert_eq!(history(store, run_id, "loss").await.len(), 2);
}

async fn changing_a_param_is_refused_and_nothing_of_the_batch_is_written(store: &Store) {
    let run = create_run(store, 0, "params", 1).await;
    let run_id = &run.info.run_id;
    log(
        store,
        run_id,
        Batch {
            params: vec![kv("lr", "0.1")],
            ..Batch::default()
        },
    )
    .await;
    // The same value again is fine.
    log(
        store,
        run_id,
        Batch {
            params: vec![kv("lr", "0.1")],
            ..Batch::default()
        },
    )
    .await;

    let conflicting = Batch {
        metrics: vec![metric("fresh", 1.0, 10, 0)],
        params: vec![kv("new_param", "x"), kv("lr", "0.2")],
        tags: vec![kv("fresh_tag", "y")],
        model_metrics: Vec::new(),
    };
    let message = expect_error(
        store.log_batch(run_id, conflicting).await,
        ErrorCode::InvalidParameterValue,
    );
    assert!(message.contains("lr"), "{message}");

    let current = store.get_run(run_id).await.expect("get run");
    assert_eq!(current.params, vec![kv("lr", "0.1")]);
    assert!(latest(&current, "fresh").is_none(), "{:?}", current.metrics);
    assert!(history(store, run_id, "fresh").await.is_empty());
    assert!(
        current.tags.iter().all(|tag| tag.key != "fresh_tag"),
        "{:?}",
        current.tags
    );

    // Two values for one key in a single batch are refused too, with nothing written.
    let duplicated = Batch {
        metrics: vec![metric("other", 1.0, 10, 0)],
        params: vec![kv("depth", "3"), kv("depth", "4")],
        ..Batch::default()
    };
    expect_error(
        store.log_batch(run_id, duplicated).await,
        ErrorCode::InvalidParameterValue,
    );
    let current = store.get_run(run_id).await.expect("get run");
    assert_eq!(current.params, vec![kv("lr", "0.1")]);
    assert!(history(store, run_id, "other").await.is_empty());
}

async fn logging_to_a_deleted_run_is_refused(store: &Store) {
    let run = create_run(store, 0, "deleted", 1).await;
    let run_id = &run.info.run_id;
    store
        .set_run_lifecycle(run_id, LifecycleStage::Deleted)
        .await
        .expect("delete run");
    let info = store
        .get_run_info(run_id)
        .await
        .expect("a deleted run stays readable");
    assert_eq!(info.lifecycle_stage, LifecycleStage::Deleted);

    let message = expect_error(
        store
            .log_batch(run_id, metrics_batch(vec![metric("loss", 1.0, 1, 0)]))
            .await,
        ErrorCode::InvalidParameterValue,
    );
    assert!(message.contains("active"), "{message}");
    expect_error(
        store
            .log_batch(
                run_id,
                Batch {
                    params: vec![kv("a", "b")],
                    ..Batch::default()
                },
            )
            .await,
        ErrorCode::InvalidParameterValue,
    );
    expect_error(
        store.update_run(run_id, RunUpdate::default()).await,
        ErrorCode::InvalidParameterValue,
    );
    assert!(history(store, run_id, "loss").await.is_empty());

    store
        .set_run_lifecycle(run_id, LifecycleStage::Active)
        .await
        .expect("restore run");
    log(
        store,
        run_id,
        metrics_batch(vec![metric("loss", 1.0, 1, 0)]),
    )
    .await;
    assert_eq!(history(store, run_id, "loss").await.len(), 1);
    expect_error(
        store
            .log_batch(
                "0123456789abcdef0123456789abcdef",
                metrics_batch(vec![metric("loss", 1.0, 1, 0)]),
            )
            .await,
        ErrorCode::ResourceDoesNotExist,
    );
}

async fn metric_history_pages(store: &Store) {
    let run = create_run(store, 0, "history", 1).await;
    let run_id = &run.info.run_id;
    // Logged out of order; the history comes back by step.
    let points: Vec<Metric> = [4, 0, 6, 2, 1, 5, 3]
        .iter()
        .map(|step| metric("loss", *step as f64, 100 + step, *step))
        .collect();
    log(store, run_id, metrics_batch(points)).await;

    let mut steps = Vec::new();
    let mut page_sizes = Vec::new();
    let mut page_token: Option<String> = None;
    loop {
        let page = store
            .get_metric_history(run_id, "loss", Some(3), page_token.as_deref())
            .await
            .expect("history page");
        page_sizes.push(page.items.len());
        steps.extend(page.items.iter().map(|point| point.step));
        match page.next_page_token {
            Some(token) => page_token = Some(token),
            None => break,
        }
        assert!(page_sizes.len() < 10, "paging does not end");
    }
    assert_eq!(steps, (0..7).collect::<Vec<i64>>());
    assert_eq!(page_sizes, [3, 3, 1]);

    assert!(history(store, run_id, "never-logged").await.is_empty());
    expect_error(
        store
            .get_metric_history(run_id, "loss", Some(3), Some("not a token"))
            .await,
        ErrorCode::InvalidParameterValue,
    );
    expect_error(
        store
            .get_metric_history("0123456789abcdef0123456789abcdef", "loss", None, None)
            .await,
        ErrorCode::ResourceDoesNotExist,
    );
}

/// What a history read returns, with values compared bit for bit so NaN and -0.0 count.
fn exact(history: &[Metric]) -> Vec<(i64, i64, u64)> {
    history
        .iter()
        .map(|point| (point.step, point.timestamp, point.value.to_bits()))
        .collect()
}

async fn chunks_of(store: &Store, run_id: &str, key: &str) -> i64 {
    store
        .metric_history_chunks(run_id, key)
        .await
        .expect("count chunks")
}

async fn compaction_merges_small_chunks_and_keeps_every_point(store: &Store) {
    let run = create_run(store, 0, "compaction", 1).await;
    let run_id = &run.info.run_id;
    // One write per point, as a training loop's log_metric calls make them, cycling through the
    // values whose text form is delicate; then a retried write and a batch too large to merge.
    let values = [
        0.1,
        -0.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        5e-324,
        f64::MAX,
    ];
    let mut expected: Vec<Metric> = (0..150_i64)
        .map(|step| {
            metric(
                "loss",
                values[step as usize % values.len()],
                1000 + step,
                step,
            )
        })
        .collect();
    for point in &expected {
        log(store, run_id, metrics_batch(vec![point.clone()])).await;
    }
    log(store, run_id, metrics_batch(vec![expected[2].clone()])).await;
    let large: Vec<Metric> = (150..450_i64)
        .map(|step| metric("loss", step as f64, 1000 + step, step))
        .collect();
    log(store, run_id, metrics_batch(large.clone())).await;
    expected.extend(large);
    assert_eq!(chunks_of(store, run_id, "loss").await, 152);

    let compaction = store
        .compact_metric_history(run_id, "loss")
        .await
        .expect("compact");
    assert_eq!(
        compaction,
        Compaction {
            chunks_merged: 151,
            chunks_written: 1
        }
    );
    assert_eq!(chunks_of(store, run_id, "loss").await, 2);
    assert_eq!(
        exact(&history(store, run_id, "loss").await),
        exact(&expected)
    );
    let latest = store.get_run(run_id).await.expect("run");
    assert_eq!(latest.metrics.len(), 1);
    assert_eq!(latest.metrics[0].step, 449);

    assert_eq!(
        store
            .compact_metric_history(run_id, "loss")
            .await
            .expect("again"),
        Compaction::default(),
        "nothing is left to merge"
    );
    assert_eq!(
        store
            .compact_metric_history(run_id, "never-logged")
            .await
            .expect("unknown key"),
        Compaction::default()
    );
    expect_error(
        store
            .compact_metric_history("0123456789abcdef0123456789abcdef", "loss")
            .await,
        ErrorCode::ResourceDoesNotExist,
    );
}

async fn reads_have_a_pointwise_history_compacted_while_it_is_written(store: &Store) {
    const POINTS: i64 = 300;
    let run = create_run(store, 0, "compacted while written", 1).await;
    let run_id = run.info.run_id.clone();
    let point = |step: i64| metric("loss", 1.0 / (step as f64 + 1.0), 1000 + step, step);
    for step in 0..100 {
        log(store, &run_id, metrics_batch(vec![point(step)])).await;
    }
    let writer = tokio::spawn({
        let store = store.clone();
        let run_id = run_id.clone();
        async move {
            for step in 100..POINTS {
                log(&store, &run_id, metrics_batch(vec![point(step)])).await;
            }
        }
    });
    // Writes are sequential, so every read must see steps 0..n: a compaction that lost, doubled
    // or half-wrote points would show as a gap, a repeat or a shorter history than before.
    let mut seen = 0;
    let mut reads = 0;
    while !writer.is_finished() {
        let steps: Vec<i64> = history(store, &run_id, "loss")
            .await
            .iter()
            .map(|point| point.step)
            .collect();
        assert!(steps.len() >= seen, "{} points after {seen}", steps.len());
        assert_eq!(steps, (0..steps.len() as i64).collect::<Vec<_>>());
        seen = steps.len();
        reads += 1;
    }
    writer.await.expect("writer");
    assert!(reads > 1, "the reads did not overlap the writes");

    // Each read that meets enough small chunks has them merged in the background.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let all = history(store, &run_id, "loss").await;
        assert_eq!(
            exact(&all),
            exact(&(0..POINTS).map(point).collect::<Vec<_>>())
        );
        let chunks = chunks_of(store, &run_id, "loss").await;
        if chunks < 70 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{chunks} chunks hold {POINTS} points written one by one: reads did not compact them"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn search_runs_filters_on_metrics_params_tags_and_attributes(store: &Store) {
    let experiment_id = store
        .create_experiment("search-runs", None, &[])
        .await
        .expect("create");
    let rows: [(&str, f64, &str, &str); 4] = [
        ("alpha", 0.95, "0.1", "vision"),
        ("beta", 0.70, "0.01", "vision"),
        ("gamma", 0.40, "0.1", "nlp"),
        ("delta", 0.85, "0.001", ""),
    ];
    for (index, (name, accuracy, learning_rate, team)) in rows.iter().enumerate() {
        let run = create_run(store, experiment_id, name, 1000 + index as i64).await;
        let mut tags = Vec::new();
        if !team.is_empty() {
            tags.push(kv("team", team));
        }
        log(
            store,
            &run.info.run_id,
            Batch {
                metrics: vec![metric("acc", *accuracy, 10, 0)],
                params: vec![kv("lr", learning_rate)],
                tags,
                model_metrics: Vec::new(),
            },
        )
        .await;
        if *name == "alpha" {
            store
                .update_run(
                    &run.info.run_id,
                    RunUpdate {
                        status: Some(RunStatus::Finished),
                        ..RunUpdate::default()
                    },
                )
                .await
                .expect("finish run");
        }
    }
    let other_experiment = store
        .create_experiment("elsewhere", None, &[])
        .await
        .expect("create");
    create_run(store, other_experiment, "outsider", 1).await;

    let table: &[(&str, &[&str])] = &[
        ("", &["alpha", "beta", "delta", "gamma"]),
        ("metrics.acc > 0.8", &["alpha", "delta"]),
        (
            "metrics.acc >= 0.7 AND metrics.acc < 0.9",
            &["beta", "delta"],
        ),
        ("params.lr = '0.1'", &["alpha", "gamma"]),
        ("params.lr != '0.1'", &["beta", "delta"]),
        ("tags.team = 'vision'", &["alpha", "beta"]),
        // A run without the tag does not match `!=` (MLflow's inner-join semantics).
        ("tags.team != 'vision'", &["gamma"]),
        ("tags.team IS NULL", &["delta"]),
        ("attributes.run_name = 'beta'", &["beta"]),
        ("run_name LIKE '%a'", &["alpha", "beta", "delta", "gamma"]),
        ("attributes.run_name ILIKE 'AL%'", &["alpha"]),
        ("attributes.status = 'FINISHED'", &["alpha"]),
        (
            "metrics.acc > 0.9 OR params.lr = '0.001'",
            &["alpha", "delta"],
        ),
        (
            "(tags.team = 'nlp' OR tags.team IS NULL) AND metrics.acc < 0.5",
            &["gamma"],
        ),
        ("metrics.missing > 0", &[]),
    ];
    for (filter, expected) in table {
        let names = sorted(search_run_names(store, experiment_id, filter, &[]).await);
        assert_eq!(names, *expected, "filter {filter:?}");
    }

    let names = search_run_names(store, experiment_id, "", &[]).await;
    assert_eq!(
        names,
        ["delta", "gamma", "beta", "alpha"],
        "default order is start_time DESC"
    );

    for malformed in [
        "metrics.acc <<< 1",
        "params.lr = 0.1",
        "nonsense",
        "metrics.acc > 'x'",
    ] {
        expect_error(
            store
                .search_runs(SearchRuns {
                    experiment_ids: &[experiment_id],
                    filter: malformed,
                    view_type: ViewType::ActiveOnly,
                    max_results: None,
                    order_by: &[],
                    page_token: None,
                })
                .await,
            ErrorCode::InvalidParameterValue,
        );
    }

    // Deleted runs show up only in the views that include them.
    let gamma_id = store
        .search_runs(SearchRuns {
            experiment_ids: &[experiment_id],
            filter: "run_name = 'gamma'",
            view_type: ViewType::ActiveOnly,
            max_results: None,
            order_by: &[],
            page_token: None,
        })
        .await
        .expect("search")
        .items[0]
        .info
        .run_id
        .clone();
    store
        .set_run_lifecycle(&gamma_id, LifecycleStage::Deleted)
        .await
        .expect("delete run");
    let count = |view_type| async move {
        store
            .search_runs(SearchRuns {
                experiment_ids: &[experiment_id],
                filter: "",
                view_type,
                max_results: None,
                order_by: &[],
                page_token: None,
            })
            .await
            .expect("search")
            .items
            .len()
    };
    assert_eq!(count(ViewType::ActiveOnly).await, 3);
    assert_eq!(count(ViewType::DeletedOnly).await, 1);
    assert_eq!(count(ViewType::All).await, 4);
}

async fn search_runs_orders_by_metric_with_nan_then_missing_last(store: &Store) {
    let experiment_id = store
        .create_experiment("order", None, &[])
        .await
        .expect("create");
    let values: [(&str, Option<f64>); 5] = [
        ("three", Some(3.0)),
        ("one", Some(1.0)),
        ("missing", None),
        ("not-a-number", Some(f64::NAN)),
        ("two", Some(2.0)),
    ];
    for (index, (name, value)) in values.iter().enumerate() {
        let run = create_run(store, experiment_id, name, index as i64).await;
        if let Some(value) = value {
            log(
                store,
                &run.info.run_id,
                metrics_batch(vec![metric("score", *value, 1, 0)]),
            )
            .await;
        }
    }
    let ascending =
        search_run_names(store, experiment_id, "", &["metrics.score ASC".to_owned()]).await;
    assert_eq!(
        ascending,
        ["one", "two", "three", "not-a-number", "missing"]
    );
    let descending =
        search_run_names(store, experiment_id, "", &["metrics.score DESC".to_owned()]).await;
    assert_eq!(
        descending,
        ["three", "two", "one", "not-a-number", "missing"]
    );
    let by_name = search_run_names(
        store,
        experiment_id,
        "",
        &["attributes.run_name ASC".to_owned()],
    )
    .await;
    assert_eq!(by_name, ["missing", "not-a-number", "one", "three", "two"]);
}

async fn search_runs_pages_through_every_run_exactly_once(store: &Store) {
    let experiment_id = store
        .create_experiment("paging", None, &[])
        .await
        .expect("create");
    let mut all_ids = BTreeSet::new();
    for index in 0..25_i64 {
        // Start times and scores repeat, so only the tie-break keeps pages apart.
        let run = create_run(store, experiment_id, &format!("run-{index}"), index % 3).await;
        if index % 5 != 0 {
            log(
                store,
                &run.info.run_id,
                metrics_batch(vec![metric("score", (index % 4) as f64, 1, 0)]),
            )
            .await;
        }
        all_ids.insert(run.info.run_id);
    }
    for order_by in [
        Vec::new(),
        vec!["metrics.score DESC".to_owned()],
        vec!["attributes.start_time ASC".to_owned()],
    ] {
        let mut seen = Vec::new();
        let mut page_token: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = store
                .search_runs(SearchRuns {
                    experiment_ids: &[experiment_id],
                    filter: "",
                    view_type: ViewType::ActiveOnly,
                    max_results: Some(7),
                    order_by: &order_by,
                    page_token: page_token.as_deref(),
                })
                .await
                .expect("search page");
            pages += 1;
            assert!(page.items.len() <= 7);
            seen.extend(page.items.into_iter().map(|run| run.info.run_id));
            match page.next_page_token {
                Some(token) => page_token = Some(token),
                None => break,
            }
            assert!(pages < 10, "paging does not end");
        }
        assert_eq!(pages, 4, "order {order_by:?}");
        assert_eq!(seen.len(), 25, "order {order_by:?}");
        let unique: BTreeSet<String> = seen.into_iter().collect();
        assert_eq!(
            unique, all_ids,
            "order {order_by:?}: every run exactly once"
        );
    }
}

// ----- registered models -----

async fn registered_model_create_get_and_duplicate(store: &Store) {
    let model = store
        .create_registered_model("fraud", Some("catches fraud"), &[kv("owner", "risk")])
        .await
        .expect("create");
    assert_eq!(model.name, "fraud");
    assert_eq!(model.description.as_deref(), Some("catches fraud"));
    assert_eq!(model.tags, vec![kv("owner", "risk")]);
    assert!(model.latest_versions.is_empty());
    assert!(model.aliases.is_empty());
    assert!(model.creation_timestamp > 0);
    assert_eq!(model.creation_timestamp, model.last_updated_timestamp);

    let fetched = store.get_registered_model("fraud").await.expect("get");
    assert_eq!(fetched.description.as_deref(), Some("catches fraud"));
    let message = expect_error(
        store.create_registered_model("fraud", None, &[]).await,
        ErrorCode::ResourceAlreadyExists,
    );
    assert!(message.contains("fraud"), "{message}");
    expect_error(
        store.get_registered_model("nope").await,
        ErrorCode::ResourceDoesNotExist,
    );
    // Names are case-sensitive.
    store
        .create_registered_model("Fraud", None, &[])
        .await
        .expect("a name differing in case is another model");
}

async fn registered_model_rename_keeps_versions_aliases_and_history(store: &Store) {
    store
        .create_registered_model("old", None, &[kv("k", "v")])
        .await
        .expect("create");
    store
        .create_registered_model("taken", None, &[])
        .await
        .expect("create");
    create_versions(store, "old", 2).await;
    store
        .set_model_version_tag("old", 1, &kv("vt", "1"))
        .await
        .expect("tag version");
    store
        .transition_stage("old", 1, Stage::Production, false, &by("ada"))
        .await
        .expect("transition");
    store
        .set_alias("old", "champion", 2, &by("ada"))
        .await
        .expect("alias");

    let renamed = store
        .rename_registered_model("old", "new", &by("bob"))
        .await
        .expect("rename");
    assert_eq!(renamed.name, "new");
    assert_eq!(renamed.tags, vec![kv("k", "v")]);
    assert_eq!(renamed.aliases, vec![("champion".to_owned(), 2)]);
    expect_error(
        store.get_registered_model("old").await,
        ErrorCode::ResourceDoesNotExist,
    );
    expect_error(
        store.get_model_version("old", 1).await,
        ErrorCode::ResourceDoesNotExist,
    );

    let first = store
        .get_model_version("new", 1)
        .await
        .expect("versions follow the rename");
    assert_eq!(first.name, "new");
    assert_eq!(first.current_stage, "Production");
    assert_eq!(first.tags, vec![kv("vt", "1")]);
    assert_eq!(
        store
            .get_version_by_alias("new", "champion")
            .await
            .expect("alias follows")
            .version,
        2
    );
    // Numbering continues where it was.
    assert_eq!(create_versions(store, "new", 1).await, vec![3]);

    let entries = store
        .model_history("new")
        .await
        .expect("history follows the rename");
    let kinds: Vec<&str> = entries.iter().map(|entry| entry.kind.as_str()).collect();
    assert_eq!(kinds, ["stage", "alias", "rename"]);
    let rename = entries.last().expect("rename entry");
    assert_eq!(
        (rename.from_value.as_deref(), rename.to_value.as_deref()),
        (Some("old"), Some("new"))
    );
    assert_eq!(rename.actor, "bob");

    expect_error(
        store
            .rename_registered_model("new", "taken", &by("bob"))
            .await,
        ErrorCode::ResourceAlreadyExists,
    );
    expect_error(
        store
            .rename_registered_model("ghost", "whatever", &by("bob"))
            .await,
        ErrorCode::ResourceDoesNotExist,
    );
    assert_eq!(
        store
            .get_registered_model("new")
            .await
            .expect("still there")
            .latest_versions
            .len(),
        2
    );
}

async fn registered_model_update_tags_and_delete(store: &Store) {
    store
        .create_registered_model("m", None, &[])
        .await
        .expect("create");
    let updated = store
        .update_registered_model("m", Some("now described"))
        .await
        .expect("update");
    assert_eq!(updated.description.as_deref(), Some("now described"));
    expect_error(
        store.update_registered_model("ghost", Some("x")).await,
        ErrorCode::ResourceDoesNotExist,
    );

    store
        .set_registered_model_tag("m", &kv("a", "1"))
        .await
        .expect("tag");
    store
        .set_registered_model_tag("m", &kv("a", "2"))
        .await
        .expect("overwrite tag");
    store
        .set_registered_model_tag("m", &kv("b", "3"))
        .await
        .expect("tag");
    assert_eq!(
        store.get_registered_model("m").await.expect("get").tags,
        vec![kv("a", "2"), kv("b", "3")]
    );
    store
        .delete_registered_model_tag("m", "a")
        .await
        .expect("delete tag");
    assert_eq!(
        store.get_registered_model("m").await.expect("get").tags,
        vec![kv("b", "3")]
    );
    expect_error(
        store.set_registered_model_tag("ghost", &kv("a", "1")).await,
        ErrorCode::ResourceDoesNotExist,
    );

    create_versions(store, "m", 2).await;
    store
        .set_alias("m", "champion", 1, &by("ada"))
        .await
        .expect("alias");
    store
        .delete_registered_model("m", &by("ada"))
        .await
        .expect("delete");
    expect_error(
        store.get_registered_model("m").await,
        ErrorCode::ResourceDoesNotExist,
    );
    expect_error(
        store.get_model_version("m", 1).await,
        ErrorCode::ResourceDoesNotExist,
    );
    expect_error(
        store.delete_registered_model("m", &by("ada")).await,
        ErrorCode::ResourceDoesNotExist,
    );

    // The name is free again, and a new model under it starts from scratch.
    let reborn = store
        .create_registered_model("m", None, &[])
        .await
        .expect("re-create");
    assert!(
        reborn.tags.is_empty() && reborn.aliases.is_empty() && reborn.latest_versions.is_empty()
    );
    assert_eq!(create_versions(store, "m", 1).await, vec![1]);
}

async fn registered_model_search_prompt_clause_keeps_untagged_models(store: &Store) {
    store
        .create_registered_model("plain-a", None, &[])
        .await
        .expect("create");
    store
        .create_registered_model("plain-b", None, &[kv("other", "x")])
        .await
        .expect("create");
    store
        .create_registered_model("prompt-c", None, &[kv("mlflow.prompt.is_prompt", "true")])
        .await
        .expect("create");
    store
        .create_registered_model("plain-d", None, &[kv("mlflow.prompt.is_prompt", "false")])
        .await
        .expect("create");
    store
        .create_registered_model("zz-other", None, &[])
        .await
        .expect("create");

    let search = |filter: &'static str,
                  order_by: Vec<String>,
                  max_results: Option<i64>,
                  page_token: Option<String>| async move {
        store
            .search_registered_models(SearchModels {
                filter,
                max_results,
                order_by: &order_by,
                page_token: page_token.as_deref(),
            })
            .await
            .unwrap_or_else(|error| panic!("search {filter:?}: {error}"))
    };
    let names = |page: okla_registry::store::Page<
        okla_registry::domain::model_registry::RegisteredModel,
    >| {
        page.items
            .into_iter()
            .map(|model| model.name)
            .collect::<Vec<_>>()
    };

    // The clause the mlflow client appends to every registered-model search.
    let page = search(
        "name LIKE 'p%' AND tag.`mlflow.prompt.is_prompt` != 'true'",
        vec!["name ASC".to_owned()],
        None,
        None,
    )
    .await;
    assert_eq!(names(page), ["plain-a", "plain-b", "plain-d"]);
    let page = search(
        "tag.`mlflow.prompt.is_prompt` != 'true'",
        vec![],
        None,
        None,
    )
    .await;
    assert_eq!(
        sorted(names(page)),
        ["plain-a", "plain-b", "plain-d", "zz-other"]
    );
    let page = search(
        "tags.`mlflow.prompt.is_prompt` = 'true'",
        vec![],
        None,
        None,
    )
    .await;
    assert_eq!(names(page), ["prompt-c"]);
    let page = search("name = 'plain-b'", vec![], None, None).await;
    assert_eq!(names(page), ["plain-b"]);
    let page = search(
        "name ILIKE 'PLAIN-%'",
        vec!["name DESC".to_owned()],
        None,
        None,
    )
    .await;
    assert_eq!(names(page), ["plain-d", "plain-b", "plain-a"]);

    // Paging with a token, by name.
    let mut all = Vec::new();
    let mut token = None;
    for _ in 0..5 {
        let page = search("", vec!["name ASC".to_owned()], Some(2), token).await;
        token = page.next_page_token.clone();
        all.extend(names(page));
        if token.is_none() {
            break;
        }
    }
    assert!(token.is_none(), "paging does not end");
    assert_eq!(
        all,
        ["plain-a", "plain-b", "plain-d", "prompt-c", "zz-other"]
    );

    expect_error(
        store
            .search_registered_models(SearchModels {
                filter: "name <<< 'x'",
                max_results: None,
                order_by: &[],
                page_token: None,
            })
            .await,
        ErrorCode::InvalidParameterValue,
    );
    expect_error(
        store
            .search_registered_models(SearchModels {
                filter: "",
                max_results: Some(1001),
                order_by: &[],
                page_token: None,
            })
            .await,
        ErrorCode::InvalidParameterValue,
    );
}

// ----- versions -----

async fn version_numbers_increase_and_are_never_reused(store: &Store) {
    store
        .create_registered_model("m", None, &[])
        .await
        .expect("create");
    store
        .create_registered_model("other", None, &[])
        .await
        .expect("create");
    assert_eq!(create_versions(store, "m", 3).await, vec![1, 2, 3]);
    let first = store.get_model_version("m", 1).await.expect("get");
    assert_eq!(first.current_stage, "None");
    assert_eq!(first.status, "READY");
    assert_eq!(first.source, "mlflow-artifacts:/0/m/0");

    store
        .delete_model_version("m", 3, &by("ada"))
        .await
        .expect("delete v3");
    expect_error(
        store.get_model_version("m", 3).await,
        ErrorCode::ResourceDoesNotExist,
    );
    assert_eq!(
        create_versions(store, "m", 1).await,
        vec![4],
        "a deleted number is not reused"
    );
    store
        .delete_model_version("m", 2, &by("ada"))
        .await
        .expect("delete v2");
    expect_error(
        store.delete_model_version("m", 2, &by("ada")).await,
        ErrorCode::ResourceDoesNotExist,
    );
    expect_error(
        store.get_model_version("m", 2).await,
        ErrorCode::ResourceDoesNotExist,
    );
    assert_eq!(create_versions(store, "m", 1).await, vec![5]);

    assert_eq!(
        create_versions(store, "other", 2).await,
        vec![1, 2],
        "each model numbers from 1"
    );
    expect_error(
        store.create_model_version(version("ghost", "x")).await,
        ErrorCode::ResourceDoesNotExist,
    );
    expect_error(
        store.get_model_version("m", 99).await,
        ErrorCode::ResourceDoesNotExist,
    );

    let remaining = store
        .search_model_versions(SearchModels {
            filter: "name = 'm'",
            max_results: None,
            order_by: &["version_number ASC".to_owned()],
            page_token: None,
        })
        .await
        .expect("search");
    let numbers: Vec<i64> = remaining
        .items
        .iter()
        .map(|version| version.version)
        .collect();
    assert_eq!(numbers, [1, 4, 5], "deleted versions are invisible");
}

async fn concurrent_version_creation_numbers_one_to_twenty(store: &Store) {
    store
        .create_registered_model("busy", None, &[])
        .await
        .expect("create");
    let tasks: Vec<_> = (0..20)
        .map(|index| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create_model_version(version(
                        "busy",
                        &format!("mlflow-artifacts:/0/busy/{index}"),
                    ))
                    .await
            })
        })
        .collect();
    let mut numbers = Vec::new();
    for task in tasks {
        let created = task
            .await
            .expect("task joins")
            .unwrap_or_else(|error| panic!("concurrent create failed: {error}"));
        numbers.push(created.version);
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=20).collect::<Vec<i64>>());
    let sources: HashSet<String> = store
        .search_model_versions(SearchModels {
            filter: "name = 'busy'",
            max_results: None,
            order_by: &[],
            page_token: None,
        })
        .await
        .expect("search")
        .items
        .into_iter()
        .map(|version| version.source)
        .collect();
    assert_eq!(sources.len(), 20, "every creation is its own version");
}

async fn model_version_search_and_tags(store: &Store) {
    store
        .create_registered_model("a", None, &[])
        .await
        .expect("create");
    store
        .create_registered_model("b", None, &[])
        .await
        .expect("create");
    let run_id = "0123456789abcdef0123456789abcdef";
    for (name, source, run) in [
        ("a", "runs:/r1/model", Some(run_id)),
        ("a", "models:/m-1", None),
        ("b", "runs:/r2/model", None),
    ] {
        store
            .create_model_version(NewModelVersion {
                name: name.to_owned(),
                source: source.to_owned(),
                run_id: run.map(str::to_owned),
                tags: vec![kv("origin", source)],
                description: Some(format!("from {source}")),
                ..NewModelVersion::default()
            })
            .await
            .expect("create version");
    }
    let search = |filter: &'static str, order: &'static str| async move {
        store
            .search_model_versions(SearchModels {
                filter,
                max_results: None,
                order_by: &[order.to_owned()],
                page_token: None,
            })
            .await
            .unwrap_or_else(|error| panic!("search {filter:?}: {error}"))
            .items
            .into_iter()
            .map(|version| format!("{}/{}", version.name, version.version))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        search("name = 'a'", "version_number DESC").await,
        ["a/2", "a/1"]
    );
    assert_eq!(search("version_number > 1", "name ASC").await, ["a/2"]);
    assert_eq!(
        search("run_id = '0123456789abcdef0123456789abcdef'", "name ASC").await,
        ["a/1"]
    );
    assert_eq!(
        search("source_path LIKE 'runs:/%'", "name ASC").await,
        ["a/1", "b/1"]
    );
    assert_eq!(
        search("tags.origin = 'models:/m-1'", "name ASC").await,
        ["a/2"]
    );
    assert_eq!(
        search("name IN ('a', 'b') AND version_number = 1", "name DESC").await,
        ["b/1", "a/1"]
    );

    let first = store.get_model_version("a", 1).await.expect("get");
    assert_eq!(first.run_id.as_deref(), Some(run_id));
    assert_eq!(first.description.as_deref(), Some("from runs:/r1/model"));
    assert_eq!(first.tags, vec![kv("origin", "runs:/r1/model")]);
    store
        .set_model_version_tag("a", 1, &kv("origin", "changed"))
        .await
        .expect("overwrite tag");
    store
        .set_model_version_tag("a", 1, &kv("extra", "x"))
        .await
        .expect("tag");
    assert_eq!(
        store.get_model_version("a", 1).await.expect("get").tags,
        vec![kv("extra", "x"), kv("origin", "changed")]
    );
    store
        .delete_model_version_tag("a", 1, "extra")
        .await
        .expect("delete tag");
    assert_eq!(
        store.get_model_version("a", 1).await.expect("get").tags,
        vec![kv("origin", "changed")]
    );
    expect_error(
        store.set_model_version_tag("a", 9, &kv("k", "v")).await,
        ErrorCode::ResourceDoesNotExist,
    );

    let updated = store
        .update_model_version("a", 1, Some("better"))
        .await
        .expect("update");
    assert_eq!(updated.description.as_deref(), Some("better"));
    expect_error(
        store.update_model_version("a", 9, Some("x")).await,
        ErrorCode::ResourceDoesNotExist,
    );
}

// ----- stages -----

async fn transition_with_archive_existing_archives_the_previous_production(store: &Store) {
    store
        .create_registered_model("m", None, &[])
        .await
        .expect("create");
    create_versions(store, "m", 4).await;

    let promoted = store
        .transition_stage("m", 1, Stage::Production, false, &by("ada"))
        .await
        .expect("v1 to Production");
    assert_eq!(promoted.current_stage, "Production");
    let promoted = store
        .transition_stage("m", 2, Stage::Production, true, &by("ada"))
        .await
        .expect("v2 to Production");
    assert_eq!(promoted.current_stage, "Production");
    assert_eq!(
        stage_of(store, "m", 1).await,
        "Archived",
        "archive_existing moves the previous Production"
    );

    // Without archive_existing, versions share a stage; archiving touches only the target stage.
    store
        .transition_stage("m", 3, Stage::Staging, false, &by("ada"))
        .await
        .expect("v3 to Staging");
    store
        .transition_stage("m", 4, Stage::Staging, false, &by("ada"))
        .await
        .expect("v4 to Staging");
    assert_eq!(stage_of(store, "m", 3).await, "Staging");
    assert_eq!(stage_of(store, "m", 4).await, "Staging");
    store
        .transition_stage("m", 4, Stage::Staging, true, &by("ada"))
        .await
        .expect("v4 stays in Staging, archiving v3");
    assert_eq!(stage_of(store, "m", 3).await, "Archived");
    assert_eq!(
        stage_of(store, "m", 2).await,
        "Production",
        "other stages are untouched"
    );

    for stage in [Stage::Archived, Stage::None] {
        let message = expect_error(
            store
                .transition_stage("m", 4, stage, true, &by("ada"))
                .await,
            ErrorCode::InvalidParameterValue,
        );
        assert!(message.contains(stage.as_str()), "{message}");
    }
    assert_eq!(
        stage_of(store, "m", 4).await,
        "Staging",
        "a refused transition changes nothing"
    );
    expect_error(
        store
            .transition_stage("m", 9, Stage::Staging, false, &by("ada"))
            .await,
        ErrorCode::ResourceDoesNotExist,
    );
    expect_error(
        store
            .transition_stage("ghost", 1, Stage::Staging, false, &by("ada"))
            .await,
        ErrorCode::ResourceDoesNotExist,
    );

    // Any stage may go to any other.
    store
        .transition_stage("m", 1, Stage::None, false, &by("ada"))
        .await
        .expect("Archived back to None");
    assert_eq!(stage_of(store, "m", 1).await, "None");
}

async fn latest_versions_per_stage(store: &Store) {
    store
        .create_registered_model("m", None, &[])
        .await
        .expect("create");
    create_versions(store, "m", 5).await;
    store
        .transition_stage("m", 1, Stage::Production, false, &by("ada"))
        .await
        .expect("transition");
    store
        .transition_stage("m", 2, Stage::Staging, false, &by("ada"))
        .await
        .expect("transition");
    store
        .transition_stage("m", 3, Stage::Staging, false, &by("ada"))
        .await
        .expect("transition");
    store
        .delete_model_version("m", 5, &by("ada"))
        .await
        .expect("delete");

    let latest = |stages: &'static [Stage]| async move {
        let mut pairs: Vec<(String, i64)> = store
            .get_latest_versions("m", stages)
            .await
            .expect("latest versions")
            .into_iter()
            .map(|version| (version.current_stage, version.version))
            .collect();
        pairs.sort();
        pairs
    };
    let everything = latest(&[]).await;
    assert_eq!(
        everything,
        [
            ("None".to_owned(), 4),
            ("Production".to_owned(), 1),
            ("Staging".to_owned(), 3)
        ],
        "the highest version per stage; deleted versions are not counted"
    );
    assert_eq!(latest(&[Stage::Staging]).await, [("Staging".to_owned(), 3)]);
    assert_eq!(latest(&[Stage::Archived]).await, []);
    let model = store.get_registered_model("m").await.expect("get");
    let mut on_model: Vec<(String, i64)> = model
        .latest_versions
        .into_iter()
        .map(|version| (version.current_stage, version.version))
        .collect();
    on_model.sort();
    assert_eq!(on_model, everything);
    expect_error(
        store.get_latest_versions("ghost", &[]).await,
        ErrorCode::ResourceDoesNotExist,
    );
}

// ----- aliases -----

async fn aliases_set_move_get_and_delete(store: &Store) {
    store
        .create_registered_model("m", None, &[])
        .await
        .expect("create");
    create_versions(store, "m", 2).await;

    store
        .set_alias("m", "champion", 1, &by("ada"))
        .await
        .expect("set alias");
    store
        .set_alias("m", "stable", 1, &by("ada"))
        .await
        .expect("set alias");
    let champion = store
        .get_version_by_alias("m", "champion")
        .await
        .expect("get by alias");
    assert_eq!(champion.version, 1);
    assert_eq!(champion.aliases, ["champion", "stable"]);

    store
        .set_alias("m", "champion", 2, &by("ada"))
        .await
        .expect("move alias");
    assert_eq!(
        store
            .get_version_by_alias("m", "champion")
            .await
            .expect("get")
            .version,
        2
    );
    assert_eq!(
        store.get_model_version("m", 1).await.expect("get").aliases,
        ["stable"]
    );
    assert_eq!(
        store.get_model_version("m", 2).await.expect("get").aliases,
        ["champion"]
    );
    let model = store.get_registered_model("m").await.expect("get");
    assert_eq!(
        model.aliases,
        [("champion".to_owned(), 2), ("stable".to_owned(), 1)]
    );

    store
        .delete_alias("m", "champion", &by("ada"))
        .await
        .expect("delete alias");
    let message = expect_error(
        store.get_version_by_alias("m", "champion").await,
        ErrorCode::InvalidParameterValue,
    );
    assert!(message.contains("champion"), "{message}");
    assert!(
        store
            .get_model_version("m", 2)
            .await
            .expect("get")
            .aliases
            .is_empty()
    );
    store
        .delete_alias("m", "champion", &by("ada"))
        .await
        .expect("deleting a missing alias is a no-op");

    expect_error(
        store.set_alias("m", "x", 9, &by("ada")).await,
        ErrorCode::ResourceDoesNotExist,
    );
    expect_error(
        store.set_alias("ghost", "x", 1, &by("ada")).await,
        ErrorCode::ResourceDoesNotExist,
    );
    expect_error(
        store.get_version_by_alias("ghost", "x").await,
        ErrorCode::ResourceDoesNotExist,
    );
}

async fn deleting_a_version_drops_its_aliases(store: &Store) {
    store
        .create_registered_model("m", None, &[])
        .await
        .expect("create");
    create_versions(store, "m", 2).await;
    store
        .set_alias("m", "champion", 2, &by("ada"))
        .await
        .expect("alias");
    store
        .set_alias("m", "backup", 1, &by("ada"))
        .await
        .expect("alias");
    store
        .delete_model_version("m", 2, &by("ada"))
        .await
        .expect("delete v2");
    expect_error(
        store.get_version_by_alias("m", "champion").await,
        ErrorCode::InvalidParameterValue,
    );
    let model = store.get_registered_model("m").await.expect("get");
    assert_eq!(model.aliases, [("backup".to_owned(), 1)]);
    // A new version does not inherit the alias of the deleted one.
    assert_eq!(create_versions(store, "m", 1).await, vec![3]);
    assert!(
        store
            .get_model_version("m", 3)
            .await
            .expect("get")
            .aliases
            .is_empty()
    );
    expect_error(
        store.get_version_by_alias("m", "champion").await,
        ErrorCode::InvalidParameterValue,
    );
}

// ----- history -----

/// `(version, kind, from, to, actor, comment)` of one history entry.
type HistorySummary<'a> = (
    Option<i64>,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    &'a str,
    Option<&'a str>,
);

async fn history_records_every_stage_and_alias_change(store: &Store) {
    store
        .create_registered_model("m", None, &[])
        .await
        .expect("create");
    create_versions(store, "m", 2).await;
    let reviewed = Change {
        actor: "carol",
        comment: Some("passed review"),
    };
    store
        .transition_stage("m", 1, Stage::Production, false, &reviewed)
        .await
        .expect("transition");
    store
        .transition_stage("m", 2, Stage::Production, true, &by("dave"))
        .await
        .expect("transition");
    store
        .set_alias("m", "champion", 1, &by("erin"))
        .await
        .expect("alias");
    store
        .set_alias("m", "champion", 1, &by("erin"))
        .await
        .expect("setting the same alias again");
    store
        .set_alias(
            "m",
            "champion",
            2,
            &Change {
                actor: "erin",
                comment: Some("v2 wins"),
            },
        )
        .await
        .expect("move alias");
    store
        .delete_alias("m", "champion", &by("frank"))
        .await
        .expect("delete alias");
    // A refused change leaves no trace.
    expect_error(
        store
            .transition_stage("m", 1, Stage::Archived, true, &by("mallory"))
            .await,
        ErrorCode::InvalidParameterValue,
    );

    let entries = store.model_history("m").await.expect("history");
    let summary: Vec<HistorySummary<'_>> = entries
        .iter()
        .map(|entry| {
            (
                entry.version,
                entry.kind.as_str(),
                entry.from_value.as_deref(),
                entry.to_value.as_deref(),
                entry.actor.as_str(),
                entry.comment.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                Some(1),
                "stage",
                Some("None"),
                Some("Production"),
                "carol",
                Some("passed review")
            ),
            (
                Some(1),
                "stage",
                Some("Production"),
                Some("Archived"),
                "dave",
                None
            ),
            (
                Some(2),
                "stage",
                Some("None"),
                Some("Production"),
                "dave",
                None
            ),
            (Some(1), "alias", None, Some("champion=1"), "erin", None),
            (
                Some(2),
                "alias",
                Some("champion=1"),
                Some("champion=2"),
                "erin",
                Some("v2 wins")
            ),
            (Some(2), "alias", Some("champion=2"), None, "frank", None),
        ]
    );
    assert!(entries.iter().all(|entry| entry.name == "m"));
    assert!(
        entries
            .windows(2)
            .all(|pair| pair[0].id < pair[1].id && pair[0].time <= pair[1].time)
    );
    assert!(entries.iter().all(|entry| entry.time > 0));
    expect_error(
        store.model_history("ghost").await,
        ErrorCode::ResourceDoesNotExist,
    );
}

async fn history_survives_model_deletion(store: &Store) {
    store
        .create_registered_model("m", None, &[])
        .await
        .expect("create");
    create_versions(store, "m", 2).await;
    store
        .transition_stage("m", 1, Stage::Staging, false, &by("ada"))
        .await
        .expect("transition");
    store
        .set_alias("m", "champion", 2, &by("ada"))
        .await
        .expect("alias");
    store
        .delete_model_version("m", 2, &by("bob"))
        .await
        .expect("delete version");
    store
        .delete_registered_model(
            "m",
            &Change {
                actor: "carol",
                comment: Some("retired"),
            },
        )
        .await
        .expect("delete model");
    expect_error(
        store.get_registered_model("m").await,
        ErrorCode::ResourceDoesNotExist,
    );

    let entries = store
        .model_history("m")
        .await
        .expect("history outlives the model");
    let kinds: Vec<(&str, &str)> = entries
        .iter()
        .map(|entry| (entry.kind.as_str(), entry.actor.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("stage", "ada"),
            ("alias", "ada"),
            ("alias", "bob"),
            ("delete_version", "bob"),
            ("delete", "carol")
        ]
    );
    let dropped_alias = &entries[2];
    assert_eq!(
        (
            dropped_alias.from_value.as_deref(),
            dropped_alias.to_value.as_deref()
        ),
        (Some("champion=2"), None)
    );
    assert_eq!(
        entries.last().expect("delete entry").comment.as_deref(),
        Some("retired")
    );
}

// ----- version files -----

async fn version_files_are_returned_sorted(store: &Store) {
    store
        .create_registered_model("m", None, &[])
        .await
        .expect("create");
    let file = |path: &str, size: i64| VersionFile {
        path: path.to_owned(),
        size,
        sha256: format!("{:064x}", size),
    };
    let files = vec![
        file("model.onnx", 30),
        file("MLmodel", 10),
        file("data/weights.bin", 40),
        file("conda.yaml", 20),
    ];
    let created = store
        .create_model_version(NewModelVersion {
            files: files.clone(),
            ..version("m", "mlflow-artifacts:/0/m")
        })
        .await
        .expect("create version with files");
    let recorded = store
        .version_files("m", created.version)
        .await
        .expect("files");
    let mut expected = files;
    expected.sort_by(|left, right| left.path.cmp(&right.path));
    assert_eq!(recorded, expected);
    assert_eq!(
        recorded
            .iter()
            .map(|file| file.path.as_str())
            .collect::<Vec<_>>(),
        ["MLmodel", "conda.yaml", "data/weights.bin", "model.onnx"]
    );

    let without_files = store
        .create_model_version(version("m", "mlflow-artifacts:/0/m2"))
        .await
        .expect("create");
    assert!(
        store
            .version_files("m", without_files.version)
            .await
            .expect("files")
            .is_empty()
    );
    expect_error(
        store.version_files("m", 99).await,
        ErrorCode::ResourceDoesNotExist,
    );
    expect_error(
        store.version_files("ghost", 1).await,
        ErrorCode::ResourceDoesNotExist,
    );
}
