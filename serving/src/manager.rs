//! The model manager: which versions of which models are loaded, and their routing. It hands
//! out loaded versions ([`ModelManager::resolve`]) and routings ([`ModelManager::routed`]) to
//! the request path in [`crate::service`].
//!
//! The table of models is an immutable map behind an `ArcSwap`: requests read it without a lock,
//! and loads build a new map and swap it in. What to load, keep, switch and unload is decided by
//! [`crate::planner`] (availability-preserving, as TF Serving does); the manager carries the
//! actions out through the [`crate::loader`]. A version that fails to load is kept as `Failed`
//! with its error, and its model's other versions keep serving.
//!
//! A model may also have a [`Routing`] (set by the registry source from the model's deployment),
//! in its own `ArcSwap` map: a request that names no version goes to the version the router
//! picks, and a copy of it to the deployment's shadow version in the background.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::backend::{Backend, BackendError};
use crate::error::ServingError;
use crate::loader::{LoadedVersion, Loader, ModelLimits};
use crate::metrics::{Metrics, ModelLabels};
use crate::planner::{self, Action, Aspired, Held, Phase};
use crate::repository::{
    ModelConfig, ModelRepository, ModelSource, RepositoryError, VersionPolicy,
};
use crate::request::{RepositoryEntry, VersionSelector};
use crate::router::Routing;
use crate::traffic::{Traffic, TrafficSnapshot};

#[derive(Debug, Clone, Copy)]
pub struct ManagerSettings {
    /// Sessions (and worker threads) per model version unless its config says otherwise.
    pub default_instances: usize,
    /// Requests that may wait per model version.
    pub max_queue_size: usize,
    /// What a model may declare and its warm-up allocate.
    pub limits: ModelLimits,
}

#[derive(Clone)]
enum VersionState {
    Loading,
    Ready(Arc<LoadedVersion>),
    Failed(String),
}

#[derive(Clone, Default)]
struct ModelEntry {
    versions: BTreeMap<u64, VersionState>,
    labels: BTreeMap<String, u64>,
    /// Why the model as a whole could not be read (bad config, no versions).
    error: Option<String>,
    /// What the versions were loaded from, to tell whether the repository changed since.
    source: Option<ModelSource>,
}

impl ModelEntry {
    fn ready_versions(&self) -> impl Iterator<Item = &Arc<LoadedVersion>> {
        self.versions.values().filter_map(|state| match state {
            VersionState::Ready(loaded) => Some(loaded),
            _ => None,
        })
    }

    /// The versions as the planner sees them.
    fn held(&self) -> Held {
        Held {
            versions: self
                .versions
                .iter()
                .map(|(&version, state)| {
                    let phase = match state {
                        VersionState::Loading => Phase::Loading,
                        VersionState::Ready(_) => Phase::Ready,
                        VersionState::Failed(_) => Phase::Failed,
                    };
                    (version, phase)
                })
                .collect(),
            labels: self.labels.clone(),
        }
    }
}

type ModelTable = HashMap<String, Arc<ModelEntry>>;

/// A model as [`ModelManager::status`] describes it.
#[derive(Debug, Clone)]
pub struct ModelStatus {
    pub model: String,
    /// The revision of the deployment its unversioned requests follow, if any.
    pub revision: Option<i64>,
    /// Why the model as a whole could not be read.
    pub error: Option<String>,
    pub versions: Vec<VersionStatus>,
}

#[derive(Debug, Clone)]
pub struct VersionStatus {
    pub version: u64,
    pub state: VersionHealth,
    pub load_seconds: Option<f64>,
    /// Under a deployment: what the version answered since it went live.
    pub traffic: Option<TrafficSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionHealth {
    Loading,
    Serving,
    Failed(String),
}

/// A model's routing, the shadow copies it has in flight, and what each of its versions
/// answered since it went live.
pub struct ModelRouting {
    pub routing: Routing,
    pub shadow_in_flight: AtomicUsize,
    pub traffic: Traffic,
}

type RoutingTable = HashMap<String, Arc<ModelRouting>>;

pub struct ModelManager {
    repository: ModelRepository,
    loader: Loader,
    metrics: Arc<Metrics>,
    models: ArcSwap<ModelTable>,
    /// Deployments of the models that have one; models without one serve their latest version.
    routings: ArcSwap<RoutingTable>,
    /// Serialises loads and unloads; requests never take it.
    admin: tokio::sync::Mutex<()>,
    /// Models unloaded through the API, which repository syncs leave alone.
    unloaded_on_request: std::sync::Mutex<HashSet<String>>,
    /// False while a remote source (the registry) has not yet said what to serve: an empty
    /// table then means "not known yet", not "nothing to serve".
    source_ready: AtomicBool,
    /// Shutting down: readiness says no so load balancers stop sending, while requests are
    /// still answered.
    draining: AtomicBool,
}

impl ModelManager {
    pub fn new(
        repository: ModelRepository,
        backends: Vec<Arc<dyn Backend>>,
        settings: ManagerSettings,
        metrics: Arc<Metrics>,
    ) -> ModelManager {
        ModelManager {
            repository,
            loader: Loader::new(
                backends,
                settings.default_instances,
                settings.max_queue_size,
                settings.limits,
                metrics.clone(),
            ),
            metrics,
            models: ArcSwap::from_pointee(HashMap::new()),
            routings: ArcSwap::from_pointee(HashMap::new()),
            admin: tokio::sync::Mutex::new(()),
            unloaded_on_request: std::sync::Mutex::new(HashSet::new()),
            source_ready: AtomicBool::new(true),
            draining: AtomicBool::new(false),
        }
    }

    /// Loads every model in the repository. A model that fails to load is recorded and the
    /// others still load; only a missing runtime (which no retry can fix) is returned as an error.
    pub async fn load_all(&self) -> Result<(), BackendError> {
        let names = self
            .repository
            .model_names()
            .map_err(|err| BackendError::Runtime(err.to_string()))?;
        for name in names {
            if let Err(LoadFailure::Runtime(err)) = self.load(&name).await {
                return Err(err);
            }
        }
        Ok(())
    }

    /// Loads or reloads one model from the repository; returns when it is ready or has failed.
    pub async fn load_model(&self, name: &str) -> Result<(), ServingError> {
        if let Ok(mut held_back) = self.unloaded_on_request.lock() {
            held_back.remove(name);
        }
        self.load(name).await.map_err(|failure| match failure {
            LoadFailure::UnknownModel(message) => ServingError::NotFound(message),
            LoadFailure::Model(message) => ServingError::InvalidArgument(message),
            LoadFailure::Runtime(err) => ServingError::Unavailable(err.to_string()),
        })
    }

    pub async fn unload_model(&self, name: &str) -> Result<(), ServingError> {
        let _admin = self.admin.lock().await;
        self.unload_locked(name)?;
        if let Ok(mut held_back) = self.unloaded_on_request.lock() {
            held_back.insert(name.to_owned());
        }
        Ok(())
    }

    /// Brings the loaded models in line with the repository directory: new models and changed
    /// ones (versions the policy selects, config.toml) are loaded, models whose directory is gone
    /// are unloaded. Models unloaded through the API stay unloaded until loaded through it again.
    /// What has not changed is left alone, so a failed load is not retried until its model changes.
    pub async fn sync_with_repository(&self) {
        let names = match self.repository.model_names() {
            Ok(names) => names,
            Err(err) => {
                tracing::warn!(error = %err, "cannot scan the model repository");
                return;
            }
        };
        let held_back = self
            .unloaded_on_request
            .lock()
            .map(|set| set.clone())
            .unwrap_or_default();
        for name in &names {
            if held_back.contains(name) {
                continue;
            }
            let changed = {
                let table = self.models.load();
                let entry = table.get(name);
                match self.repository.model(name) {
                    Ok(source) => entry.is_none_or(|entry| entry.source.as_ref() != Some(&source)),
                    Err(err) => {
                        entry.is_none_or(|entry| entry.error.as_deref() != Some(&err.to_string()))
                    }
                }
            };
            if changed {
                tracing::info!(model = name.as_str(), "model changed in the repository");
                // Failures are recorded in the model's entry and logged by `load`.
                let _ = self.load(name).await;
            }
        }
        let gone: Vec<String> = self
            .models
            .load()
            .keys()
            .filter(|name| !names.contains(name))
            .cloned()
            .collect();
        for name in gone {
            let _admin = self.admin.lock().await;
            tracing::info!(model = name.as_str(), "model directory removed");
            let _ = self.unload_locked(&name);
        }
    }

    fn unload_locked(&self, name: &str) -> Result<(), ServingError> {
        let mut table = ModelTable::clone(&self.models.load());
        if table.remove(name).is_none() {
            return Err(ServingError::NotFound(format!(
                "model '{name}' is not loaded"
            )));
        }
        self.models.store(Arc::new(table));
        self.metrics
            .loaded_versions
            .get_or_create(&ModelLabels {
                model: name.to_owned(),
            })
            .set(0);
        tracing::info!(model = name, "unloaded");
        Ok(())
    }

    async fn load(&self, name: &str) -> Result<(), LoadFailure> {
        let _admin = self.admin.lock().await;
        let source = match self.repository.model(name) {
            Ok(source) => source,
            Err(RepositoryError::UnknownModel(_)) => {
                return Err(LoadFailure::UnknownModel(format!(
                    "model '{name}' not found in the model repository {}",
                    self.repository.root().display()
                )));
            }
            Err(err) => {
                let message = err.to_string();
                tracing::error!(model = name, error = %message, "cannot read model");
                self.metrics
                    .load_failures
                    .get_or_create(&ModelLabels {
                        model: name.to_owned(),
                    })
                    .inc();
                let entry = ModelEntry {
                    error: Some(message.clone()),
                    ..ModelEntry::default()
                };
                self.publish(name, entry);
                return Err(LoadFailure::Model(message));
            }
        };

        // What serves keeps serving while the planner's loads run; the switch to what loaded
        // is one swap of the table.
        let current = self.models.load().get(name).cloned().unwrap_or_default();
        let held = current.held();
        let aspired = Aspired {
            versions: source
                .versions
                .iter()
                .map(|(version, _)| *version)
                .collect(),
            labels: source.config.labels.clone(),
            reuse_ready: current
                .source
                .as_ref()
                .is_some_and(|loaded| same_load_settings(&loaded.config, &source.config)),
        };
        let mut visible = (*current).clone();
        visible.error = None;
        visible.versions = planner::while_loading(&held, &aspired)
            .into_keys()
            .map(|version| {
                let state = current
                    .versions
                    .get(&version)
                    .cloned()
                    .unwrap_or(VersionState::Loading);
                (version, state)
            })
            .collect();
        self.publish(name, visible);

        let mut fresh: BTreeMap<u64, VersionState> = BTreeMap::new();
        let mut loading: HashMap<u64, (LoadedVersion, Instant)> = HashMap::new();
        let mut failures = Vec::new();
        let labels = ModelLabels {
            model: name.to_owned(),
        };
        for action in planner::plan_loads(&held, &aspired) {
            match action {
                Action::Load(version) => {
                    let Some((_, dir)) = source.versions.iter().find(|(v, _)| *v == version) else {
                        continue;
                    };
                    let started = Instant::now();
                    match self.loader.load(name, version, dir, &source.config).await {
                        Ok(loaded) => {
                            loading.insert(version, (loaded, started));
                        }
                        Err(err) => {
                            self.metrics.load_failures.get_or_create(&labels).inc();
                            let message =
                                format!("failed to load model '{name}' version {version}: {err}");
                            tracing::error!(model = name, version, error = %err, "load failed");
                            if let BackendError::Runtime(_) = err {
                                failures.push(LoadFailure::Runtime(err));
                            } else {
                                failures.push(LoadFailure::Model(message.clone()));
                            }
                            fresh.insert(version, VersionState::Failed(message));
                        }
                    }
                }
                Action::WarmUp(version) => {
                    let Some((mut loaded, started)) = loading.remove(&version) else {
                        continue;
                    };
                    self.loader.warm_up(&loaded).await;
                    let seconds = started.elapsed().as_secs_f64();
                    loaded.load_seconds = seconds;
                    self.metrics
                        .load_duration
                        .get_or_create(&labels)
                        .observe(seconds);
                    tracing::info!(model = name, version, seconds, "version ready");
                    fresh.insert(version, VersionState::Ready(Arc::new(loaded)));
                }
                _ => {}
            }
        }

        let outcomes = fresh
            .iter()
            .map(|(&version, state)| (version, matches!(state, VersionState::Ready(_))))
            .collect();
        let actions = planner::plan_switch(&held, &aspired, &outcomes);
        for (label, version) in planner::held_back_labels(&aspired, &actions) {
            tracing::warn!(
                model = name,
                label,
                version,
                "label points at a version that is not ready"
            );
        }
        let mut next = ModelEntry {
            source: Some(source.clone()),
            ..ModelEntry::default()
        };
        for action in actions {
            match action {
                Action::Switch(version) => {
                    if let Some(state) = fresh.remove(&version) {
                        next.versions.insert(version, state);
                    }
                }
                Action::Keep(version) => {
                    if let Some(state) = current.versions.get(&version) {
                        next.versions.insert(version, state.clone());
                    }
                }
                Action::Label { label, version } => {
                    next.labels.insert(label, version);
                }
                // Requests still holding an unloaded version finish on it.
                Action::Unload(_) | Action::Load(_) | Action::WarmUp(_) => {}
            }
        }
        self.publish(name, next);
        match failures.into_iter().next() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    fn publish(&self, name: &str, entry: ModelEntry) {
        let ready = entry.ready_versions().count() as i64;
        let mut table = ModelTable::clone(&self.models.load());
        table.insert(name.to_owned(), Arc::new(entry));
        self.models.store(Arc::new(table));
        self.metrics
            .loaded_versions
            .get_or_create(&ModelLabels {
                model: name.to_owned(),
            })
            .set(ready);
    }

    /// Sets (or, with `None`, clears) how a model's unversioned requests are routed. The caller
    /// makes sure every version the routing names is ready first.
    pub fn set_routing(&self, model: &str, routing: Option<Routing>) {
        let current = self.routings.load();
        if current.get(model).map(|entry| &entry.routing) == routing.as_ref() {
            return;
        }
        let mut table = RoutingTable::clone(&current);
        match routing {
            Some(routing) => {
                table.insert(
                    model.to_owned(),
                    Arc::new(ModelRouting {
                        traffic: Traffic::new(&routing.versions()),
                        routing,
                        shadow_in_flight: AtomicUsize::new(0),
                    }),
                );
            }
            None => {
                table.remove(model);
            }
        }
        self.routings.store(Arc::new(table));
    }

    /// The model's routing with its shadow slots and traffic, for a request that follows it.
    pub fn routed(&self, model: &str) -> Option<Arc<ModelRouting>> {
        self.routings.load().get(model).cloned()
    }

    /// The model's ready versions, ascending.
    pub fn ready_versions(&self, model: &str) -> Vec<u64> {
        self.models
            .load()
            .get(model)
            .map(|entry| entry.ready_versions().map(|v| v.version).collect())
            .unwrap_or_default()
    }

    /// The model's routing, if it has one.
    pub fn routing(&self, model: &str) -> Option<Routing> {
        self.routings
            .load()
            .get(model)
            .map(|entry| entry.routing.clone())
    }

    /// The header (lower case) whose value keeps a client on one version of the model.
    pub fn sticky_header(&self, model: &str) -> Option<String> {
        self.routings
            .load()
            .get(model)
            .and_then(|entry| entry.routing.sticky_header.clone())
    }

    /// Every model the server was asked to serve has a ready version, and the server is not
    /// draining.
    pub fn all_ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed)
            && self.source_ready.load(Ordering::Relaxed)
            && self
                .models
                .load()
                .values()
                .all(|entry| entry.ready_versions().next().is_some())
    }

    /// From now on the server reports unready (see [`ModelManager::all_ready`]) and keeps
    /// answering until it stops.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether the source has said what to serve; see [`ModelManager::all_ready`].
    pub fn set_source_ready(&self, ready: bool) {
        self.source_ready.store(ready, Ordering::Relaxed);
    }

    /// The model was unloaded through the API, so sources must not bring it back.
    pub fn is_unloaded_on_request(&self, name: &str) -> bool {
        self.unloaded_on_request
            .lock()
            .is_ok_and(|held_back| held_back.contains(name))
    }

    /// Whether the selected version is ready; unknown models and versions are `NotFound`.
    pub fn is_ready(&self, model: &str, selector: &VersionSelector) -> Result<bool, ServingError> {
        match self.resolve(model, selector) {
            Ok(_) => Ok(true),
            Err(ServingError::Unavailable(_)) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// The version a request is for, if it is ready.
    /// Whether the model is in the table (loaded, loading or failed): the names a client cannot
    /// make up, so the only ones that may become metric labels.
    pub fn knows(&self, model: &str) -> bool {
        self.models.load().contains_key(model)
    }

    pub fn resolve(
        &self,
        model: &str,
        selector: &VersionSelector,
    ) -> Result<Arc<LoadedVersion>, ServingError> {
        let table = self.models.load();
        let entry = table
            .get(model)
            .ok_or_else(|| ServingError::NotFound(format!("unknown model '{model}'")))?;
        let number = match selector {
            VersionSelector::Latest => {
                return entry.ready_versions().last().cloned().ok_or_else(|| {
                    let reason = entry.error.clone().or_else(|| {
                        entry.versions.values().rev().find_map(|state| match state {
                            VersionState::Failed(reason) => Some(reason.clone()),
                            _ => None,
                        })
                    });
                    ServingError::Unavailable(match reason {
                        Some(reason) => format!("model '{model}' has no ready version: {reason}"),
                        None => format!("model '{model}' has no ready version yet"),
                    })
                });
            }
            VersionSelector::Number(number) => *number,
            VersionSelector::Label(label) => *entry.labels.get(label).ok_or_else(|| {
                ServingError::NotFound(format!(
                    "model '{model}' has no version or label '{label}' (labels: {})",
                    join(entry.labels.keys())
                ))
            })?,
        };
        match entry.versions.get(&number) {
            Some(VersionState::Ready(loaded)) => Ok(loaded.clone()),
            Some(VersionState::Loading) => Err(ServingError::Unavailable(format!(
                "model '{model}' version {number} is still loading"
            ))),
            Some(VersionState::Failed(reason)) => Err(ServingError::Unavailable(reason.clone())),
            None => Err(ServingError::NotFound(format!(
                "model '{model}' has no version {number} (versions: {})",
                join(entry.versions.keys())
            ))),
        }
    }

    /// Every loaded model's versions, their state and, under a deployment, what each answered
    /// since the deployment went live: what the node reports to the registry.
    pub fn status(&self) -> Vec<ModelStatus> {
        let table = self.models.load();
        let routings = self.routings.load();
        let mut models: Vec<ModelStatus> = table
            .iter()
            .map(|(name, entry)| {
                let routed = routings.get(name);
                let versions = entry
                    .versions
                    .iter()
                    .map(|(&version, state)| {
                        let (state, load_seconds) = match state {
                            VersionState::Loading => (VersionHealth::Loading, None),
                            VersionState::Ready(loaded) => {
                                (VersionHealth::Serving, Some(loaded.load_seconds))
                            }
                            VersionState::Failed(error) => {
                                (VersionHealth::Failed(error.clone()), None)
                            }
                        };
                        VersionStatus {
                            version,
                            state,
                            load_seconds,
                            traffic: routed.and_then(|routed| routed.traffic.snapshot(version)),
                        }
                    })
                    .collect();
                ModelStatus {
                    model: name.clone(),
                    revision: routed.map(|routed| routed.routing.revision),
                    error: entry.error.clone(),
                    versions,
                }
            })
            .collect();
        models.sort_by(|a, b| a.model.cmp(&b.model));
        models
    }

    pub fn index(&self, ready_only: bool) -> Vec<RepositoryEntry> {
        let table = self.models.load();
        let mut entries = Vec::new();
        let on_disk = self.repository.model_names().unwrap_or_default();
        let mut names: Vec<&str> = on_disk.iter().map(String::as_str).collect();
        names.extend(table.keys().map(String::as_str));
        names.sort_unstable();
        names.dedup();
        for name in names {
            let row = |version, state: &str, reason: String| RepositoryEntry {
                name: name.to_owned(),
                version,
                state: state.to_owned(),
                reason,
            };
            match table.get(name) {
                None => entries.push(row(None, "UNAVAILABLE", "unloaded".into())),
                Some(entry) => {
                    if let Some(error) = &entry.error {
                        entries.push(row(None, "UNAVAILABLE", error.clone()));
                    }
                    for (version, state) in &entry.versions {
                        entries.push(match state {
                            VersionState::Ready(_) => row(Some(*version), "READY", String::new()),
                            VersionState::Loading => row(Some(*version), "LOADING", String::new()),
                            VersionState::Failed(reason) => {
                                row(Some(*version), "UNAVAILABLE", reason.clone())
                            }
                        });
                    }
                }
            }
        }
        if ready_only {
            entries.retain(|entry| entry.state == "READY");
        }
        entries
    }
}

enum LoadFailure {
    UnknownModel(String),
    Model(String),
    Runtime(BackendError),
}

/// Whether two configurations load versions the same way (labels are applied without a reload).
/// Labels and the version policy only pick among versions; neither changes how a version is
/// loaded, so a version that serves is kept when only they change (the registry source moves
/// the policy from `[old]` to `[old, new]` to `[new]` on every rollout).
fn same_load_settings(a: &ModelConfig, b: &ModelConfig) -> bool {
    ModelConfig {
        labels: BTreeMap::new(),
        version_policy: VersionPolicy::default(),
        ..a.clone()
    } == ModelConfig {
        labels: BTreeMap::new(),
        version_policy: VersionPolicy::default(),
        ..b.clone()
    }
}

pub(crate) fn join<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    let joined: Vec<String> = items.map(|item| item.to_string()).collect();
    if joined.is_empty() {
        "none".to_owned()
    } else {
        joined.join(", ")
    }
}
