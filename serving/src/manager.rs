//! The model manager: which versions of which models are loaded, and the hot path from a
//! (model, version selector) to a ready version.
//!
//! The table of models is an immutable map behind an `ArcSwap`: requests read it without a lock,
//! and loads build a new map and swap it in. A new version is loaded and warmed up while the old
//! ones keep serving, and the old ones leave the table only in the same swap that makes the new
//! one visible (availability-preserving, as TF Serving does). A version that fails to load is kept
//! as `Failed` with its error, and its model's other versions keep serving.
//!
//! A model may also have a [`Routing`] (set by the registry source from the model's deployment),
//! in its own `ArcSwap` map: a request that names no version goes to the version the router
//! picks, and a copy of it to the deployment's shadow version in the background.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::backend::{Backend, BackendError, Model};
use crate::batcher::{BatchSettings, Batcher};
use crate::error::ServingError;
use crate::metrics::{
    Metrics, ModelLabels, RequestTiming, ShadowLabels, VersionLabels, VersionMetrics,
};
use crate::repository::{
    DEFAULT_MAX_BATCH_SIZE, ModelConfig, ModelRepository, ModelSource, RepositoryError,
    VersionPolicy,
};
use crate::router::{Routing, random_u64};
use crate::service::{
    InferRequest, InferResponse, ModelMetadata, RepositoryEntry, VersionSelector,
};
use crate::tensor::{DataType, Tensor, TensorData};
use crate::traffic::{Traffic, TrafficSnapshot};

#[derive(Debug, Clone, Copy)]
pub struct ManagerSettings {
    /// Sessions (and worker threads) per model version unless its config says otherwise.
    pub default_instances: usize,
    /// Requests that may wait per model version.
    pub max_queue_size: usize,
}

/// A version that is loaded, warmed up and answering.
pub struct LoadedVersion {
    pub version: u64,
    pub model: Arc<dyn Model>,
    batcher: Batcher,
    metrics: VersionMetrics,
    /// How long loading and warming up took.
    pub load_seconds: f64,
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

/// Shadow copies of one model's requests that may run at once; more are dropped, so a slow
/// shadow version can never pile up work (or memory) behind the answers that matter.
pub const MAX_SHADOW_IN_FLIGHT: usize = 64;

/// A model's routing, the shadow copies it has in flight, and what each of its versions
/// answered since it went live.
struct ModelRouting {
    routing: Routing,
    shadow_in_flight: AtomicUsize,
    traffic: Traffic,
}

type RoutingTable = HashMap<String, Arc<ModelRouting>>;

/// Gives back a shadow slot however the shadow task ends.
struct ShadowSlot(Arc<ModelRouting>);

impl Drop for ShadowSlot {
    fn drop(&mut self) {
        self.0.shadow_in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pub struct ModelManager {
    repository: ModelRepository,
    backends: Vec<Arc<dyn Backend>>,
    settings: ManagerSettings,
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
            backends,
            settings,
            metrics,
            models: ArcSwap::from_pointee(HashMap::new()),
            routings: ArcSwap::from_pointee(HashMap::new()),
            admin: tokio::sync::Mutex::new(()),
            unloaded_on_request: std::sync::Mutex::new(HashSet::new()),
            source_ready: AtomicBool::new(true),
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

        // Versions that are already serving stay, unless what they were loaded with changed
        // (labels apply without a reload); the rest show as loading meanwhile.
        let current = self.models.load().get(name).cloned().unwrap_or_default();
        let reusable = current
            .source
            .as_ref()
            .is_some_and(|loaded| same_load_settings(&loaded.config, &source.config));
        let mut next = ModelEntry {
            labels: current.labels.clone(),
            ..ModelEntry::default()
        };
        for (version, _) in &source.versions {
            let state = match current.versions.get(version) {
                Some(ready @ VersionState::Ready(_)) if reusable => ready.clone(),
                _ => VersionState::Loading,
            };
            next.versions.insert(*version, state);
        }
        let mut visible = (*current).clone();
        visible.error = None;
        for (version, state) in &next.versions {
            visible
                .versions
                .entry(*version)
                .or_insert_with(|| state.clone());
        }
        self.publish(name, visible);

        let mut failures = Vec::new();
        for (version, dir) in &source.versions {
            if matches!(next.versions.get(version), Some(VersionState::Ready(_))) {
                continue;
            }
            let started = Instant::now();
            let result = self.load_version(name, *version, dir, &source.config).await;
            let labels = ModelLabels {
                model: name.to_owned(),
            };
            match result {
                Ok(mut loaded) => {
                    let seconds = started.elapsed().as_secs_f64();
                    loaded.load_seconds = seconds;
                    self.metrics
                        .load_duration
                        .get_or_create(&labels)
                        .observe(seconds);
                    tracing::info!(model = name, version, seconds, "version ready");
                    next.versions
                        .insert(*version, VersionState::Ready(Arc::new(loaded)));
                }
                Err(err) => {
                    self.metrics.load_failures.get_or_create(&labels).inc();
                    let message = format!("failed to load model '{name}' version {version}: {err}");
                    tracing::error!(model = name, version, error = %err, "load failed");
                    if let BackendError::Runtime(_) = err {
                        failures.push(LoadFailure::Runtime(err));
                    } else {
                        failures.push(LoadFailure::Model(message.clone()));
                    }
                    next.versions
                        .insert(*version, VersionState::Failed(message));
                }
            }
        }
        // Labels may only name versions that serve, so moving a label never drops traffic.
        next.labels = source.config.labels.clone();
        next.source = Some(source.clone());
        for (label, version) in &next.labels {
            if !matches!(next.versions.get(version), Some(VersionState::Ready(_))) {
                tracing::warn!(
                    model = name,
                    label,
                    version,
                    "label points at a version that is not ready"
                );
            }
        }
        self.publish(name, next);
        match failures.into_iter().next() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    async fn load_version(
        &self,
        name: &str,
        version: u64,
        dir: &Path,
        config: &ModelConfig,
    ) -> Result<LoadedVersion, BackendError> {
        let backend = self
            .backends
            .iter()
            .find(|backend| backend.recognizes(dir))
            .cloned()
            .ok_or_else(|| {
                BackendError::Load(format!(
                    "{} holds no model file this server can load (model.onnx, or model.safetensors with config.json)",
                    dir.display()
                ))
            })?;
        let instances = config
            .instances
            .unwrap_or(self.settings.default_instances)
            .max(1);
        let dir = dir.to_owned();
        let model = tokio::task::spawn_blocking(move || {
            let model = backend.load(&dir, instances)?;
            warm_up(model.as_ref(), instances);
            Ok::<_, BackendError>(model)
        })
        .await
        .map_err(|err| BackendError::Load(format!("the loading thread failed: {err}")))??;

        let batchable = model.inputs().iter().all(|spec| spec.is_batchable());
        let max_batch_size = match config.max_batch_size {
            Some(size) if size > 1 && !batchable => {
                return Err(BackendError::Load(format!(
                    "max_batch_size is {size} but the model's inputs have no variable first dimension to batch along"
                )));
            }
            Some(size) => size,
            None if batchable => DEFAULT_MAX_BATCH_SIZE,
            None => 0,
        };
        let settings = BatchSettings {
            max_batch_size,
            max_queue_delay: Duration::from_micros(config.max_queue_delay_micros),
            workers: instances,
            max_queue_size: self.settings.max_queue_size,
        };
        let batcher = Batcher::start(model.clone(), settings, &format!("{name}:{version}"))?;
        Ok(LoadedVersion {
            version,
            model,
            batcher,
            metrics: self.metrics.for_version(name, version),
            load_seconds: 0.0,
        })
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

    /// Every model the server was asked to serve has a ready version.
    pub fn all_ready(&self) -> bool {
        self.source_ready.load(Ordering::Relaxed)
            && self
                .models
                .load()
                .values()
                .all(|entry| entry.ready_versions().next().is_some())
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

    pub fn is_ready(&self, model: &str, selector: &VersionSelector) -> Result<bool, ServingError> {
        match self.resolve(model, selector) {
            Ok(_) => Ok(true),
            Err(ServingError::Unavailable(_)) => Ok(false),
            Err(err) => Err(err),
        }
    }

    pub fn metadata(
        &self,
        model: &str,
        selector: &VersionSelector,
    ) -> Result<ModelMetadata, ServingError> {
        let loaded = self.resolve(model, selector)?;
        let table = self.models.load();
        let versions = table
            .get(model)
            .map(|entry| entry.ready_versions().map(|v| v.version).collect())
            .unwrap_or_default();
        Ok(ModelMetadata {
            name: model.to_owned(),
            versions,
            platform: loaded.model.platform().to_owned(),
            inputs: loaded.model.inputs().to_vec(),
            outputs: loaded.model.outputs().to_vec(),
        })
    }

    /// The version a request is for, if it is ready.
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

    /// Runs one request: resolve, check inputs, batch, pick outputs, record metrics.
    pub async fn infer(
        &self,
        request: InferRequest,
        metrics: &Metrics,
    ) -> Result<InferResponse, ServingError> {
        let started = Instant::now();
        let protocol = request.protocol;
        let model = request.model.clone();
        let routed = match request.version {
            VersionSelector::Latest => self.routings.load().get(&request.model).cloned(),
            _ => None,
        };
        let routed = routed.map(|routed| {
            let version = routed
                .routing
                .pick(request.routing_key.as_deref(), random_u64());
            (routed, version)
        });
        let result = self.infer_inner(request, routed.clone()).await;
        if let Some((routed, picked)) = routed {
            // Client mistakes say nothing about a version's health; the canary gate compares
            // what went wrong on our side.
            let (answered, failed) = match &result {
                Ok((response, ..)) => (response.version, false),
                Err(err) => (picked, err.is_server_fault()),
            };
            routed.traffic.record(answered, started.elapsed(), failed);
        }
        match result {
            Ok((response, mut timing, loaded)) => {
                timing.total = started.elapsed();
                loaded.metrics.record_success(protocol, &timing);
                Ok(response)
            }
            Err(err) => {
                metrics.record_failure(&model, protocol, err.metric_label());
                Err(err)
            }
        }
    }

    /// `routed`: the model's routing and the version it picked, for a request that follows it.
    async fn infer_inner(
        &self,
        request: InferRequest,
        routed: Option<(Arc<ModelRouting>, u64)>,
    ) -> Result<(InferResponse, RequestTiming, Arc<LoadedVersion>), ServingError> {
        let loaded = match &routed {
            Some((_, version)) => {
                let version = *version;
                // A routing only goes live once its versions are ready, but a version can fail
                // or be unloaded through the API afterwards; the latest ready one still answers.
                self.resolve(&request.model, &VersionSelector::Number(version))
                    .or_else(|_| self.resolve(&request.model, &VersionSelector::Latest))?
            }
            None => self.resolve(&request.model, &request.version)?,
        };
        let shadow =
            routed.and_then(|(routed, _)| self.shadow_target(&request.model, routed, &loaded));
        let shadow_inputs = shadow.as_ref().map(|_| request.inputs.clone());
        let (inputs, rows) = check_inputs(
            &request.model,
            loaded.model.as_ref(),
            request.inputs,
            &loaded.batcher.settings(),
        )?;
        let selected = select_outputs(&request.model, loaded.model.as_ref(), &request.outputs)?;
        let output = loaded.batcher.submit(inputs, rows).await?;
        if let (Some((slot, target)), Some(inputs)) = (shadow, shadow_inputs) {
            let copy = ShadowCopy {
                slot,
                target,
                model: request.model.clone(),
                inputs,
                answer: output.outputs.clone(),
            };
            tokio::spawn(copy.run(self.metrics.clone()));
        }
        let timing = RequestTiming {
            rows,
            total: Duration::ZERO,
            queued: output.queued,
            compute: output.compute,
            batch_rows: output.batch_rows,
        };
        let mut all = output.outputs;
        let outputs = match selected {
            None => all,
            Some(indices) => indices
                .iter()
                .map(|&i| std::mem::replace(&mut all[i], empty_tensor()))
                .collect(),
        };
        Ok((
            InferResponse {
                model: request.model,
                version: loaded.version,
                id: request.id,
                outputs,
            },
            timing,
            loaded,
        ))
    }
}

impl ModelManager {
    /// The shadow version a routed request is copied to, with a slot reserved for the copy;
    /// `None` when there is no shadow, it is the version that answers, it is not ready, or too
    /// many copies are in flight (counted as dropped).
    fn shadow_target(
        &self,
        model: &str,
        routed: Arc<ModelRouting>,
        answering: &LoadedVersion,
    ) -> Option<(ShadowSlot, Arc<LoadedVersion>)> {
        let version = routed.routing.shadow?;
        if version == answering.version {
            return None;
        }
        let target = self
            .resolve(model, &VersionSelector::Number(version))
            .ok()?;
        if routed.shadow_in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_SHADOW_IN_FLIGHT {
            drop(ShadowSlot(routed));
            count_shadow(&self.metrics, model, version, "dropped");
            return None;
        }
        Some((ShadowSlot(routed), target))
    }
}

/// A copy of an answered request for the deployment's shadow version.
struct ShadowCopy {
    slot: ShadowSlot,
    target: Arc<LoadedVersion>,
    model: String,
    inputs: Vec<Tensor>,
    /// Every output of the answer the client got, to compare the shadow's with.
    answer: Vec<Tensor>,
}

impl ShadowCopy {
    /// Runs the copy; its outputs are only compared with the answer and the outcome counted.
    async fn run(self, metrics: Arc<Metrics>) {
        let ShadowCopy {
            slot,
            target,
            model,
            inputs,
            answer,
        } = self;
        let started = Instant::now();
        let result = match check_inputs(
            &model,
            target.model.as_ref(),
            inputs,
            &target.batcher.settings(),
        ) {
            Ok((inputs, rows)) => target.batcher.submit(inputs, rows).await,
            Err(err) => Err(err),
        };
        drop(slot);
        let status = match result {
            Ok(output) => {
                metrics
                    .shadow_duration
                    .get_or_create(&VersionLabels {
                        model: model.clone(),
                        version: target.version.to_string(),
                    })
                    .observe(started.elapsed().as_secs_f64());
                // Outputs only the shadow has (a new output) are not compared.
                let agree = answer.iter().all(|expected| {
                    output
                        .outputs
                        .iter()
                        .find(|tensor| tensor.name == expected.name)
                        .is_some_and(|tensor| tensor.agrees_with(expected))
                });
                if agree { "agree" } else { "disagree" }
            }
            Err(err) => {
                tracing::debug!(model = model.as_str(), version = target.version, error = %err,
                    "shadow request failed");
                "error"
            }
        };
        count_shadow(&metrics, &model, target.version, status);
    }
}

fn count_shadow(metrics: &Metrics, model: &str, version: u64, status: &'static str) {
    metrics
        .shadow_requests
        .get_or_create(&ShadowLabels {
            model: model.to_owned(),
            version: version.to_string(),
            status,
        })
        .inc();
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

fn join<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    let joined: Vec<String> = items.map(|item| item.to_string()).collect();
    if joined.is_empty() {
        "none".to_owned()
    } else {
        joined.join(", ")
    }
}

fn empty_tensor() -> Tensor {
    Tensor {
        name: String::new(),
        shape: vec![0],
        data: TensorData::Fp32(Vec::new()),
    }
}

/// Checks a request's inputs against the model's signature and puts them in declaration order.
/// Returns the inputs and the request's row count (its first dimension).
fn check_inputs(
    model_name: &str,
    model: &dyn Model,
    mut given: Vec<Tensor>,
    settings: &BatchSettings,
) -> Result<(Vec<Tensor>, usize), ServingError> {
    let specs = model.inputs();
    let expected_names = || join(specs.iter().map(|spec| spec.name.as_str()));
    for (i, tensor) in given.iter().enumerate() {
        if !specs.iter().any(|spec| spec.name == tensor.name) {
            return Err(ServingError::InvalidArgument(format!(
                "unknown input '{}' for model '{model_name}' (inputs: {})",
                tensor.name,
                expected_names()
            )));
        }
        if given[..i].iter().any(|earlier| earlier.name == tensor.name) {
            return Err(ServingError::InvalidArgument(format!(
                "input '{}' is given twice",
                tensor.name
            )));
        }
    }
    let mut ordered = Vec::with_capacity(specs.len());
    for spec in specs {
        let position = given
            .iter()
            .position(|tensor| tensor.name == spec.name)
            .ok_or_else(|| {
                ServingError::InvalidArgument(format!(
                    "missing input '{}' for model '{model_name}' (inputs: {})",
                    spec.name,
                    expected_names()
                ))
            })?;
        let tensor = given.swap_remove(position);
        if tensor.dtype() != spec.dtype {
            return Err(ServingError::InvalidArgument(format!(
                "input '{}': expected datatype {}, got {}",
                spec.name,
                spec.dtype,
                tensor.dtype()
            )));
        }
        if !spec.accepts_shape(&tensor.shape) {
            return Err(ServingError::InvalidArgument(format!(
                "input '{}': expected shape {:?}, got {:?}",
                spec.name,
                spec.wire_shape(),
                tensor.shape
            )));
        }
        ordered.push(tensor);
    }
    let rows = ordered.first().map_or(1, Tensor::rows);
    if settings.max_batch_size > 1 {
        if let Some(other) = ordered.iter().find(|tensor| tensor.rows() != rows) {
            return Err(ServingError::InvalidArgument(format!(
                "inputs disagree on the batch dimension: '{}' has {rows} rows, '{}' has {}",
                ordered[0].name,
                other.name,
                other.rows()
            )));
        }
        if rows > settings.max_batch_size {
            return Err(ServingError::InvalidArgument(format!(
                "input '{}': a batch of {rows} rows exceeds model '{model_name}' max_batch_size {}",
                ordered[0].name, settings.max_batch_size
            )));
        }
    }
    Ok((ordered, rows))
}

/// Indices of the requested outputs in the model's declaration order; `None` means all.
fn select_outputs(
    model_name: &str,
    model: &dyn Model,
    requested: &[String],
) -> Result<Option<Vec<usize>>, ServingError> {
    if requested.is_empty() {
        return Ok(None);
    }
    let specs = model.outputs();
    requested
        .iter()
        .map(|name| {
            specs
                .iter()
                .position(|spec| &spec.name == name)
                .ok_or_else(|| {
                    ServingError::InvalidArgument(format!(
                        "unknown output '{name}' for model '{model_name}' (outputs: {})",
                        join(specs.iter().map(|spec| spec.name.as_str()))
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Runs the model on zeros once per session (backends deal successive calls to successive
/// sessions), so no first real request pays for lazy initialisation. A model that cannot run on
/// zeros still loads; the failure is only logged.
fn warm_up(model: &dyn Model, sessions: usize) {
    let inputs: Result<Vec<Tensor>, _> = model
        .inputs()
        .iter()
        .map(|spec| {
            let shape: Vec<usize> = spec.shape.iter().map(|dim| dim.unwrap_or(1)).collect();
            let count = shape.iter().product();
            let data = zeros(spec.dtype, count);
            Tensor::new(spec.name.clone(), shape, data)
        })
        .collect();
    let inputs = match inputs {
        Ok(inputs) => inputs,
        Err(err) => {
            tracing::warn!(error = %err, "cannot build warm-up inputs");
            return;
        }
    };
    for _ in 0..sessions {
        if let Err(err) = model.run(&inputs) {
            tracing::warn!(error = %err, "warm-up run failed");
            return;
        }
    }
}

fn zeros(dtype: DataType, count: usize) -> TensorData {
    match dtype {
        DataType::Bool => TensorData::Bool(vec![false; count]),
        DataType::Uint8 => TensorData::Uint8(vec![0; count]),
        DataType::Uint16 => TensorData::Uint16(vec![0; count]),
        DataType::Uint32 => TensorData::Uint32(vec![0; count]),
        DataType::Uint64 => TensorData::Uint64(vec![0; count]),
        DataType::Int8 => TensorData::Int8(vec![0; count]),
        DataType::Int16 => TensorData::Int16(vec![0; count]),
        DataType::Int32 => TensorData::Int32(vec![0; count]),
        DataType::Int64 => TensorData::Int64(vec![0; count]),
        DataType::Fp32 => TensorData::Fp32(vec![0.0; count]),
        DataType::Fp64 => TensorData::Fp64(vec![0.0; count]),
        DataType::Bytes => TensorData::Bytes(vec![bytes::Bytes::new(); count]),
    }
}
