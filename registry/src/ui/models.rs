//! `/models` (registered models, searchable by name) and `/models/{name}` (versions with their
//! files and sha256, the stage and alias history, and lineage: run → version → deployment).

use askama::Template;
use axum::extract::{Path, RawQuery, State};

use super::{
    PageResult, QueryPairs, format_time, link, name_filter, quoted, render, require_read, segment,
};
use crate::auth::Caller;
use crate::domain::auth::ResourceType;
use crate::domain::model_registry::HistoryEntry;
use crate::state::AppState;
use crate::store::model_registry::SearchModels;

struct ModelRow {
    name: String,
    href: String,
    latest: String,
    aliases: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "models.html")]
struct ModelsPage {
    query: String,
    rows: Vec<ModelRow>,
    next_href: Option<String>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let pairs = QueryPairs::parse(raw.as_deref());
    let query = pairs.get("q").unwrap_or("").to_owned();
    let filter = name_filter(&query);
    let page = state
        .store
        .search_registered_models(SearchModels {
            filter: &filter,
            max_results: Some(100),
            order_by: &["name ASC".to_owned()],
            page_token: pairs.get("page_token"),
        })
        .await?;
    let models = caller
        .readable(
            &state.auth,
            ResourceType::RegisteredModel,
            page.items,
            |model| model.name.clone(),
        )
        .await?;
    let rows = models
        .into_iter()
        .map(|model| ModelRow {
            href: format!("/models/{}", segment(&model.name)),
            latest: model
                .latest_versions
                .iter()
                .map(|version| format!("v{} ({})", version.version, version.current_stage))
                .collect::<Vec<_>>()
                .join(", "),
            aliases: model
                .aliases
                .iter()
                .map(|(alias, version)| format!("@{alias} → v{version}"))
                .collect::<Vec<_>>()
                .join(", "),
            updated: format_time(Some(model.last_updated_timestamp)),
            name: model.name,
        })
        .collect();
    let next_href = page
        .next_page_token
        .map(|token| link("/models", &[("q", &query), ("page_token", &token)]));
    render(&ModelsPage {
        query,
        rows,
        next_href,
    })
}

struct FileRow {
    path: String,
    size: i64,
    sha256: String,
}

struct VersionRow {
    version: i64,
    stage: String,
    aliases: String,
    run_id: String,
    run_href: Option<String>,
    source: String,
    status: String,
    created: String,
    description: String,
    files: Vec<FileRow>,
    /// How the model's effective deployment uses this version ("" when it does not).
    deployment: String,
}

/// One stage, alias or deployment change, as the model page's timeline and the deployment
/// page's rollbacks show it.
pub(super) struct HistoryRow {
    pub(super) time: String,
    pub(super) actor: String,
    pub(super) what: String,
    pub(super) comment: String,
    pub(super) kind: String,
}

impl From<HistoryEntry> for HistoryRow {
    fn from(entry: HistoryEntry) -> Self {
        HistoryRow {
            time: format_time(Some(entry.time)),
            what: describe_change(
                &entry.kind,
                entry.version,
                entry.from_value.as_deref(),
                entry.to_value.as_deref(),
            ),
            actor: entry.actor,
            comment: entry.comment.unwrap_or_default(),
            kind: entry.kind,
        }
    }
}

struct LineageRow {
    run_id: String,
    run_href: Option<String>,
    version: i64,
    deployment: String,
}

#[derive(Template)]
#[template(path = "model.html")]
struct ModelPage {
    name: String,
    description: String,
    tags: Vec<(String, String)>,
    versions: Vec<VersionRow>,
    history: Vec<HistoryRow>,
    lineage: Vec<LineageRow>,
    deployment_source: String,
    deployment_href: String,
}

pub(super) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> PageResult {
    require_read(&state, &caller, ResourceType::RegisteredModel, &name).await?;
    let model = state.store.get_registered_model(&name).await?;
    let filter = format!("name = {}", quoted(&model.name));
    let mut versions = state
        .store
        .search_model_versions(SearchModels {
            filter: &filter,
            max_results: Some(10_000),
            order_by: &[],
            page_token: None,
        })
        .await?
        .items;
    versions.sort_by_key(|version| std::cmp::Reverse(version.version));
    let deployment = state.store.get_deployment(&model.name).await?;
    let spec = deployment
        .effective
        .as_ref()
        .map(|effective| &effective.spec);
    let use_of = |version: i64| -> String {
        let Some(spec) = spec else {
            return String::new();
        };
        let mut uses = Vec::new();
        if let Some(route) = spec.routes.iter().find(|route| route.version == version) {
            uses.push(format!("route {}%", route.weight));
        }
        if spec.shadow == Some(version) {
            uses.push("shadow".to_owned());
        }
        if spec.canary_gate.is_some_and(|gate| gate.version == version) {
            uses.push("canary".to_owned());
        }
        uses.join(", ")
    };

    let mut rows = Vec::with_capacity(versions.len());
    for version in &versions {
        let files = state
            .store
            .version_files(&model.name, version.version)
            .await?
            .into_iter()
            .map(|file| FileRow {
                path: file.path,
                size: file.size,
                sha256: file.sha256,
            })
            .collect();
        let run_id = version.run_id.clone().unwrap_or_default();
        rows.push(VersionRow {
            version: version.version,
            stage: version.current_stage.clone(),
            aliases: version
                .aliases
                .iter()
                .map(|alias| format!("@{alias}"))
                .collect::<Vec<_>>()
                .join(", "),
            run_href: (!run_id.is_empty()).then(|| format!("/runs/{}", segment(&run_id))),
            run_id,
            source: version.source.clone(),
            status: version.status.clone(),
            created: format_time(Some(version.creation_timestamp)),
            description: version.description.clone().unwrap_or_default(),
            files,
            deployment: use_of(version.version),
        });
    }
    let lineage = rows
        .iter()
        .filter(|row| !row.deployment.is_empty())
        .map(|row| LineageRow {
            run_id: row.run_id.clone(),
            run_href: row.run_href.clone(),
            version: row.version,
            deployment: row.deployment.clone(),
        })
        .collect();
    let history = state
        .store
        .model_history(&model.name)
        .await?
        .into_iter()
        .rev()
        .map(HistoryRow::from)
        .collect();
    render(&ModelPage {
        deployment_href: format!("/deployments/{}", segment(&model.name)),
        deployment_source: deployment
            .effective
            .as_ref()
            .map(|effective| effective.source.as_str().to_owned())
            .unwrap_or_default(),
        description: model.description.clone().unwrap_or_default(),
        tags: model
            .tags
            .iter()
            .map(|tag| (tag.key.clone(), tag.value.clone()))
            .collect(),
        name: model.name,
        versions: rows,
        history,
        lineage,
    })
}

/// One line for a history entry: what changed, from what to what.
fn describe_change(
    kind: &str,
    version: Option<i64>,
    from: Option<&str>,
    to: Option<&str>,
) -> String {
    let version = version
        .map(|version| format!("v{version} "))
        .unwrap_or_default();
    let from = from.unwrap_or("—");
    let to = to.unwrap_or("—");
    match kind {
        "stage" => format!("{version}stage {from} → {to}"),
        "alias" => format!("{version}alias {from} → {to}"),
        "deployment" => format!("deployment set: {to}"),
        "deployment_delete" => {
            "deployment removed (the champion alias or Production stage applies, if any)".to_owned()
        }
        "deployment_rollback" => format!("{version}deployment rolled back: {from} → {to}"),
        "undeploy" => format!("undeployed: the fleet no longer serves it (was {from})"),
        other => format!("{version}{other}: {from} → {to}"),
    }
}
