//! The registry's domain core: entities, validation rules and the search grammar.
//! Nothing here does I/O or is async; adapters in `store` and `api` build on it.

pub mod auth;
pub mod deployments;
pub mod model_registry;
pub mod nodes;
pub mod search;
pub mod sources;
pub mod tracking;

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, MLflow's timestamp unit.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

/// A `key`/`value` pair: MLflow's tag and param shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// Whether an entity is live or soft-deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleStage {
    Active,
    Deleted,
}

impl LifecycleStage {
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleStage::Active => "active",
            LifecycleStage::Deleted => "deleted",
        }
    }

    pub fn parse_stored(text: &str) -> LifecycleStage {
        if text == "deleted" {
            LifecycleStage::Deleted
        } else {
            LifecycleStage::Active
        }
    }
}

/// MLflow's `ViewType`: which lifecycle stages a search returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewType {
    #[default]
    ActiveOnly,
    DeletedOnly,
    All,
}

impl ViewType {
    pub fn parse(text: Option<&str>) -> Result<ViewType, String> {
        match text.map(str::to_ascii_uppercase).as_deref() {
            None | Some("") | Some("ACTIVE_ONLY") => Ok(ViewType::ActiveOnly),
            Some("DELETED_ONLY") => Ok(ViewType::DeletedOnly),
            Some("ALL") => Ok(ViewType::All),
            Some(other) => Err(format!(
                "Invalid view type '{other}'. Must be one of ACTIVE_ONLY, DELETED_ONLY, ALL"
            )),
        }
    }

    /// The stored lifecycle stages this view includes.
    pub fn stages(self) -> &'static [&'static str] {
        match self {
            ViewType::ActiveOnly => &["active"],
            ViewType::DeletedOnly => &["deleted"],
            ViewType::All => &["active", "deleted"],
        }
    }
}
