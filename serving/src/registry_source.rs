//! The registry source: serving follows okla-registry.
//!
//! Every poll asks the registry for each followed model's effective deployment (its explicit
//! one: weighted routes, sticky routing, a shadow; else its `champion` alias, else its latest
//! Production version, at 100%; for a registry without deployments, `okla_client` applies the
//! champion/Production rule), downloads the artifact files of every version the deployment needs into
//! the cache directory through the artifact proxy, checks every file's sha256 against the one the
//! registry recorded, and lays the cache out as a model repository (`CACHE/<model>/<version>/`,
//! `CACHE/<model>/config.toml`), so the manager loads it as it loads any directory.
//!
//! A rollout moves the model's version policy from `[old…]` to `[old… ∪ new…]` and, only once
//! every new version is ready, switches the model's [`Routing`] and the policy to `[new…]`
//! together: a version that fails to download, verify or load never takes the old deployment
//! down. Failures are retried with exponential backoff; a registry that cannot be reached leaves
//! everything as it is.
//!
//! A model leaves the node only when the registry says it was undeployed (source `undeployed`).
//! A registry that names nothing for a model the node serves (the model is not found, has no
//! deployment, or an unusable one: an empty database, a proxy answering 404, a rename) is a
//! disagreement, not an order: the node keeps serving, and reports it (log, the
//! `unconfirmed_models` gauge, the node report's `unconfirmed`). What the node follows is
//! recorded beside the cache (`.followed.json`), so a node restarted while the registry is
//! unreachable serves its last known deployments from its verified files.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use okla_client::{Client, Deployment, Error as ClientError, VersionFile};
use okla_proto::mlflow::safe_proxied_path;
use okla_runtime::{Backoff, Delays};
use tokio_util::sync::CancellationToken;

use crate::content_cache::ContentCache;
use crate::manager::ModelManager;
use crate::metrics::{Metrics, ModelLabels};
use crate::node_report::SourceFailures;
use crate::repository::CONFIG_FILE;
use crate::request::VersionSelector;
use crate::router::Routing;

/// Hidden, so the repository scan never takes it for a model.
const STAGING_DIR: &str = ".staging";
/// The content cache's directory; hidden for the same reason.
const BLOBS_DIR: &str = ".blobs";
const ONNX_FILE: &str = "model.onnx";
const MLMODEL_FILE: &str = "MLmodel";
/// The deployments the node follows, by model; hidden so the repository scan skips it.
const FOLLOWED_FILE: &str = ".followed.json";
/// How long a failed rollout waits before it is tried again.
const RETRY: Backoff = Backoff {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(300),
};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Registry(#[from] ClientError),
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The routing a registry deployment asks for; `Ok(None)` when it serves nothing (`none`).
pub fn deployment_routing(deployment: &Deployment) -> Result<Option<Routing>, String> {
    if deployment.source == "none" || deployment.routes.is_empty() {
        return Ok(None);
    }
    let version = |number: u64, field: &str| {
        Some(number)
            .filter(|&version| version > 0)
            .ok_or_else(|| format!("{field} {number} is not a version number"))
    };
    let routes = deployment
        .routes
        .iter()
        .map(|route| Ok((version(route.version, "route version")?, route.weight)))
        .collect::<Result<Vec<_>, String>>()?;
    if routes.iter().all(|&(_, weight)| weight == 0) {
        return Err("every route has weight 0".to_owned());
    }
    let shadow = deployment
        .shadow
        .map(|shadow| version(shadow, "shadow version"))
        .transpose()?;
    let revision = i64::try_from(deployment.revision)
        .map_err(|_| format!("revision {} is out of range", deployment.revision))?;
    Ok(Some(Routing {
        revision,
        routes,
        sticky_header: deployment
            .sticky
            .as_ref()
            .map(|sticky| sticky.routing_key_header.to_ascii_lowercase()),
        shadow,
    }))
}

/// A registry file path as a relative path that stays inside the version directory.
pub fn safe_relative_path(path: &str) -> Option<PathBuf> {
    if path.is_empty() || path.starts_with('/') || path.contains(['\\', '\0']) {
        return None;
    }
    let mut relative = PathBuf::new();
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return None;
        }
        relative.push(part);
    }
    Some(relative)
}

/// A model name usable as a directory of the cache (the repository scan's rule).
fn usable_model_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0'])
}

/// The file an MLmodel's `onnx` flavor names (`flavors.onnx.data`). MLmodel is YAML, but the
/// flavor block mlflow writes is simple `key: value` lines, so no YAML parser is pulled in.
pub fn onnx_flavor_file(mlmodel: &str) -> Option<String> {
    let mut in_flavors = false;
    let mut onnx_indent: Option<usize> = None;
    for line in mlmodel.lines() {
        let content = line.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent == 0 {
            in_flavors = content == "flavors:";
            onnx_indent = None;
            continue;
        }
        if !in_flavors {
            continue;
        }
        match onnx_indent {
            Some(onnx) if indent > onnx => {
                if let Some(value) = content.strip_prefix("data:") {
                    let value = value.trim().trim_matches(['"', '\'']);
                    return (!value.is_empty()).then(|| value.to_owned());
                }
            }
            _ => onnx_indent = (content == "onnx:").then_some(indent),
        }
    }
    None
}

/// `config.toml` serving exactly `versions`.
fn config_text(versions: &[u64]) -> String {
    let list: Vec<String> = versions.iter().map(u64::to_string).collect();
    format!(
        "# Written by okla-serving from the registry; changes are overwritten.\n\
         [version_policy]\nspecific = {{ versions = [{}] }}\n",
        list.join(", ")
    )
}

#[derive(Debug, Default)]
struct Followed {
    /// The routing that serves; its versions alone are in the version policy once its rollout
    /// finished.
    serving: Option<Routing>,
    /// The versions `config.toml` names, as last written by this source.
    configured: Vec<u64>,
    retry: Option<Retry>,
    /// Why the registry does not confirm what serves, while that lasts.
    unconfirmed: Option<String>,
}

impl Followed {
    /// Schedules the next try of `versions`: the same versions back off further, others start
    /// over. Returns the wait.
    fn schedule_retry(&mut self, versions: &[u64]) -> Duration {
        let mut delays = match self.retry.take() {
            Some(retry) if retry.versions == versions => retry.delays,
            _ => RETRY.delays(),
        };
        let delay = delays.next_delay();
        self.retry = Some(Retry {
            versions: versions.to_vec(),
            delays,
            at: Instant::now() + delay,
        });
        delay
    }
}

#[derive(Debug)]
struct Retry {
    /// The versions of the deployment whose rollout failed.
    versions: Vec<u64>,
    delays: Delays,
    at: Instant,
}

/// What the registry says of the models the node follows or could follow.
#[derive(Debug, Default)]
struct Wanted {
    /// What to serve, by model.
    serve: BTreeMap<String, Routing>,
    /// Models explicitly taken out of the fleet: the only ones the node drops.
    undeployed: BTreeSet<String>,
    /// Models the registry names nothing for, with the reason.
    unconfirmed: BTreeMap<String, String>,
}

pub struct RegistrySource {
    client: Client,
    /// Empty: every model that has a version to serve.
    models: Vec<String>,
    cache: PathBuf,
    manager: Arc<ModelManager>,
    metrics: Arc<Metrics>,
    followed: HashMap<String, Followed>,
    failures: Arc<SourceFailures>,
    /// Verified files by sha256, so versions that come back need no download.
    blobs: ContentCache,
}

impl RegistrySource {
    /// Prepares the cache directory; leftovers of an interrupted download are removed. Files
    /// no version uses any more are kept up to `content_cache_bytes`.
    pub async fn new(
        client: Client,
        models: Vec<String>,
        cache: PathBuf,
        content_cache_bytes: u64,
        manager: Arc<ModelManager>,
        metrics: Arc<Metrics>,
    ) -> Result<RegistrySource, SourceError> {
        let staging = cache.join(STAGING_DIR);
        remove_dir_if_present(&staging).await?;
        tokio::fs::create_dir_all(&staging)
            .await
            .map_err(io_error(&staging))?;
        let blobs_dir = cache.join(BLOBS_DIR);
        // Opening scans the directory and deletes leftovers.
        let blobs = {
            let dir = blobs_dir.clone();
            tokio::task::spawn_blocking(move || ContentCache::open(dir, content_cache_bytes))
                .await
                .map_err(std::io::Error::other)
                .flatten()
                .map_err(io_error(&blobs_dir))?
        };
        let mut source = RegistrySource {
            client,
            models,
            cache,
            manager,
            metrics,
            followed: HashMap::new(),
            failures: Arc::default(),
            blobs,
        };
        source.restore().await;
        Ok(source)
    }

    /// Serves what the node followed before it stopped, from the verified files in the cache,
    /// so a restart does not wait for the registry. Models whose record or files are missing
    /// wait for the registry as on a first start.
    async fn restore(&mut self) {
        let path = self.cache.join(FOLLOWED_FILE);
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return,
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "cannot read what the node followed; waiting for the registry");
                return;
            }
        };
        let recorded: BTreeMap<String, Routing> = match serde_json::from_str(&text) {
            Ok(recorded) => recorded,
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "unreadable record of what the node followed; waiting for the registry");
                return;
            }
        };
        let mut restored = Vec::new();
        for (name, routing) in recorded {
            let versions = routing.versions();
            let mut complete = usable_model_name(&name)
                && is_file(&self.cache.join(&name).join(CONFIG_FILE)).await;
            for version in &versions {
                complete =
                    complete && is_dir(&self.cache.join(&name).join(version.to_string())).await;
            }
            if !complete {
                tracing::warn!(
                    model = name.as_str(),
                    "the cache no longer holds what the node served; waiting for the registry"
                );
                continue;
            }
            self.manager.set_routing(&name, Some(routing.clone()));
            self.followed.insert(
                name.clone(),
                Followed {
                    serving: Some(routing),
                    configured: versions,
                    ..Followed::default()
                },
            );
            restored.push(name);
        }
        // Anything else in the cache (a first rollout that never finished) is not what served.
        for (name, path) in subdirectories(&self.cache).await {
            if !name.starts_with('.') && !self.followed.contains_key(&name) {
                self.remove_model_dir(&name, &path).await;
            }
        }
        if restored.is_empty() {
            return;
        }
        self.manager.sync_with_repository().await;
        tracing::info!(models = ?restored, "serving what the node followed before it stopped, until the registry answers");
        let all_ready = restored.iter().all(|name| {
            self.followed[name].configured.iter().all(|&version| {
                self.manager
                    .is_ready(name, &VersionSelector::Number(version))
                    .unwrap_or(false)
            })
        });
        if all_ready {
            self.manager.set_source_ready(true);
        }
    }

    /// What serves, by model.
    fn followed_routings(&self) -> BTreeMap<String, Routing> {
        self.followed
            .iter()
            .filter_map(|(name, followed)| Some((name.clone(), followed.serving.clone()?)))
            .collect()
    }

    /// Records what the node follows (see [`RegistrySource::restore`]), atomically.
    async fn record_followed(&self) {
        let followed = self.followed_routings();
        let path = self.cache.join(FOLLOWED_FILE);
        let temporary = self.cache.join(STAGING_DIR).join(FOLLOWED_FILE);
        let written = async {
            let text = serde_json::to_vec_pretty(&followed).map_err(std::io::Error::other)?;
            tokio::fs::write(&temporary, text).await?;
            tokio::fs::rename(&temporary, &path).await
        };
        if let Err(err) = written.await {
            tracing::warn!(path = %path.display(), error = %err, "cannot record what the node follows; a restart waits for the registry");
        }
    }

    /// The versions this source failed to fetch, for the node's reports.
    pub fn failures(&self) -> Arc<SourceFailures> {
        self.failures.clone()
    }

    /// Polls now and then every `every`, and whenever `wake` is notified (the registry's events,
    /// [`crate::registry_events`]), until `shutdown` is cancelled. Notifications coalesce:
    /// a burst polls once more, and one that comes during a poll (a stored permit) polls again
    /// right after it, so no change is left for the next tick.
    pub async fn run(
        mut self,
        every: Duration,
        wake: Arc<tokio::sync::Notify>,
        shutdown: CancellationToken,
    ) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
                _ = wake.notified() => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.poll() => {}
            }
        }
    }

    /// One round: learn what to serve, download and verify what is missing, roll out.
    pub async fn poll(&mut self) {
        let wanted = match self.wanted().await {
            Ok(wanted) => wanted,
            Err(err) => {
                self.metrics.registry_poll_failures.inc();
                tracing::warn!(error = %err, "cannot reach the model registry; serving what is loaded");
                return;
            }
        };
        let recorded = self.followed_routings();
        self.drop_unfollowed(&wanted).await;
        self.note_unconfirmed(&wanted);
        let aspired = wanted.serve;

        let mut rolling = Vec::new();
        let mut reload = Vec::new();
        for (name, routing) in &aspired {
            if self.manager.is_unloaded_on_request(name) {
                continue;
            }
            let versions = routing.versions();
            match self.prepare(name, routing).await {
                Ok(Prepared::Nothing) => {}
                Ok(Prepared::Rollout { retry_load }) => {
                    rolling.push((name.clone(), routing.clone()));
                    if retry_load {
                        reload.push(name.clone());
                    }
                }
                Err(err) => {
                    self.metrics
                        .download_failures
                        .get_or_create(&ModelLabels {
                            model: name.clone(),
                        })
                        .inc();
                    let delay = self.schedule_retry(name, &versions);
                    tracing::error!(model = name.as_str(), ?versions, error = %err, retry_in = ?delay,
                        "cannot download the deployment's versions; the previous deployment keeps serving");
                }
            }
        }
        self.manager.sync_with_repository().await;
        for name in reload {
            // Failures are recorded, logged and counted by the manager.
            let _ = self.manager.load_model(&name).await;
        }

        let mut finished = Vec::new();
        for (name, routing) in rolling {
            let versions = routing.versions();
            let unready: Vec<u64> = versions
                .iter()
                .copied()
                .filter(|&version| {
                    !self
                        .manager
                        .is_ready(&name, &VersionSelector::Number(version))
                        .unwrap_or(false)
                })
                .collect();
            if !unready.is_empty() {
                let delay = self.schedule_retry(&name, &versions);
                tracing::error!(model = name.as_str(), ?unready, retry_in = ?delay,
                    "model versions did not load; the previous deployment keeps serving");
                continue;
            }
            // Every version of the new routing is ready and the old ones still are, so the
            // switch drops no request; the old versions go in the sync below.
            self.manager.set_routing(&name, Some(routing.clone()));
            if let Err(err) = self.write_config(&name, &versions).await {
                tracing::error!(model = name.as_str(), error = %err, "cannot finish the rollout");
                continue;
            }
            let followed = self.followed.entry(name.clone()).or_default();
            followed.serving = Some(routing.clone());
            followed.retry = None;
            finished.push((name, routing));
        }
        if !finished.is_empty() {
            self.manager.sync_with_repository().await;
            for (name, routing) in finished {
                tracing::info!(
                    model = name.as_str(),
                    revision = routing.revision,
                    routes = ?routing.routes,
                    shadow = ?routing.shadow,
                    "serving the registry's deployment"
                );
                self.remove_other_versions(&name, &routing.versions()).await;
            }
        }
        if self.followed_routings() != recorded {
            self.record_followed().await;
        }
        let all_served = aspired.keys().all(|name| {
            self.followed
                .get(name)
                .is_some_and(|followed| followed.serving.is_some())
        });
        if all_served {
            self.manager.set_source_ready(true);
        }
    }

    /// What the registry says of each model the node follows or could follow: the listed ones
    /// (`--models`, else every registered model) and every model the node serves, which a
    /// listing may leave out (deleted, renamed) but only an undeploy removes.
    async fn wanted(&self) -> Result<Wanted, ClientError> {
        let mut names: BTreeSet<String> = if self.models.is_empty() {
            self.client
                .search_registered_models("")
                .await?
                .into_iter()
                .map(|model| model.name)
                .collect()
        } else {
            self.models.iter().cloned().collect()
        };
        names.extend(
            self.followed
                .iter()
                .filter(|(_, followed)| followed.serving.is_some())
                .map(|(name, _)| name.clone()),
        );
        let mut wanted = Wanted::default();
        for name in names {
            if !usable_model_name(&name) {
                tracing::warn!(
                    model = name.as_str(),
                    "model name cannot be a directory; skipped"
                );
                continue;
            }
            match self.client.effective_deployment(&name).await? {
                Some(deployment) if deployment.source == "undeployed" => {
                    wanted.undeployed.insert(name);
                }
                Some(deployment) => match deployment_routing(&deployment) {
                    Ok(Some(routing)) => {
                        wanted.serve.insert(name, routing);
                    }
                    Ok(None) => {
                        wanted.unconfirmed.insert(
                            name,
                            "the registry names no version to serve (no deployment, no champion alias, no Production version)".to_owned(),
                        );
                    }
                    Err(err) => {
                        wanted.unconfirmed.insert(
                            name,
                            format!("the registry's deployment cannot be used: {err}"),
                        );
                    }
                },
                None => {
                    wanted
                        .unconfirmed
                        .insert(name, "the model is not in the registry".to_owned());
                }
            }
        }
        Ok(wanted)
    }

    /// Logs, counts and reports the models that keep serving without the registry's
    /// confirmation, and those it confirms again.
    fn note_unconfirmed(&mut self, wanted: &Wanted) {
        let mut count = 0;
        for (name, followed) in &mut self.followed {
            if followed.serving.is_none() {
                continue;
            }
            let reason = wanted.unconfirmed.get(name).cloned();
            if reason.is_some() {
                count += 1;
            }
            if followed.unconfirmed == reason {
                continue;
            }
            match &reason {
                Some(reason) => tracing::warn!(
                    model = name.as_str(),
                    reason = reason.as_str(),
                    "the registry names nothing for this model to serve; it keeps serving its last deployment until it is undeployed"
                ),
                None => tracing::info!(
                    model = name.as_str(),
                    "the registry confirms what this model serves again"
                ),
            }
            self.failures.set_unconfirmed(name, reason.clone());
            followed.unconfirmed = reason;
        }
        self.metrics.unconfirmed_models.set(count);
    }

    /// Undeployed models leave the cache, and so do leftovers of models the node does not
    /// serve; the next sync unloads them.
    async fn drop_unfollowed(&mut self, wanted: &Wanted) {
        for (name, path) in subdirectories(&self.cache).await {
            let serving = self
                .followed
                .get(&name)
                .is_some_and(|followed| followed.serving.is_some());
            let keep =
                wanted.serve.contains_key(&name) || (serving && !wanted.undeployed.contains(&name));
            if name.starts_with('.') || keep {
                continue;
            }
            if self.remove_model_dir(&name, &path).await {
                tracing::info!(
                    model = name.as_str(),
                    "model undeployed or no longer served"
                );
            }
        }
    }

    /// Removes a model's directory from the cache and forgets the model; false if it stays.
    async fn remove_model_dir(&mut self, name: &str, path: &Path) -> bool {
        // Renamed out of sight first, so a scan never sees half a model.
        let trash = self
            .cache
            .join(STAGING_DIR)
            .join(format!("removed-{name}-{}", std::process::id()));
        if let Err(err) = tokio::fs::rename(path, &trash).await {
            tracing::warn!(model = name, error = %err, "cannot remove");
            return false;
        }
        if let Err(err) = tokio::fs::remove_dir_all(&trash).await {
            tracing::warn!(path = %trash.display(), error = %err, "cannot remove");
        }
        self.followed.remove(name);
        self.failures.forget(name);
        self.manager.set_routing(name, None);
        true
    }

    async fn prepare(&mut self, name: &str, routing: &Routing) -> Result<Prepared, SourceError> {
        let versions = routing.versions();
        let followed = self.followed.entry(name.to_owned()).or_default();
        if let Some(serving) = &followed.serving
            && serving.versions() == versions
        {
            if serving != routing {
                // Same versions, already loaded: only the split changes, at once.
                tracing::info!(model = name, revision = routing.revision, routes = ?routing.routes,
                    shadow = ?routing.shadow, "deployment changed; routing switched");
                self.manager.set_routing(name, Some(routing.clone()));
                followed.serving = Some(routing.clone());
            }
            if followed.configured == versions {
                return Ok(Prepared::Nothing);
            }
            // Back to the serving deployment while another rollout was failing.
            followed.retry = None;
            self.write_config(name, &versions).await?;
            return Ok(Prepared::Rollout { retry_load: false });
        }
        if let Some(retry) = &followed.retry
            && retry.versions == versions
            && Instant::now() < retry.at
        {
            return Ok(Prepared::Nothing);
        }
        let previous = followed
            .serving
            .as_ref()
            .map(Routing::versions)
            .unwrap_or_default();
        let retrying = followed
            .retry
            .as_ref()
            .is_some_and(|r| r.versions == versions);
        for &version in &versions {
            if let Err(err) = self.materialise(name, version).await {
                self.failures.record(name, version, err.to_string());
                return Err(err);
            }
            self.failures.clear(name, version);
        }
        let mut both: Vec<u64> = previous.into_iter().chain(versions).collect();
        both.sort_unstable();
        both.dedup();
        let same_config = self.write_config(name, &both).await?;
        // An unchanged directory is not reloaded by the sync, so a failed load is retried here.
        Ok(Prepared::Rollout {
            retry_load: retrying && same_config,
        })
    }

    fn schedule_retry(&mut self, name: &str, versions: &[u64]) -> Duration {
        self.followed
            .entry(name.to_owned())
            .or_default()
            .schedule_retry(versions)
    }

    /// Puts the version's files at `CACHE/<name>/<version>/` unless already there. A version
    /// directory only ever appears whole and verified (renamed from staging), so one that
    /// exists is not downloaded again.
    async fn materialise(&self, name: &str, version: u64) -> Result<(), SourceError> {
        let target = self.cache.join(name).join(version.to_string());
        if is_dir(&target).await {
            return Ok(());
        }
        let uri = self
            .client
            .model_version_download_uri(name, version)
            .await?;
        if safe_proxied_path(&uri).is_none() {
            return Err(SourceError::Invalid(format!(
                "artifacts at '{uri}' are not served by the registry's artifact proxy"
            )));
        }
        let files = self.client.version_files(name, version).await?;
        if files.is_empty() {
            return Err(SourceError::Invalid(format!(
                "the registry records no files for model '{name}' version {version}"
            )));
        }
        let staging = self
            .cache
            .join(STAGING_DIR)
            .join(format!("{name}-{version}"));
        remove_dir_if_present(&staging).await?;
        let result = match self.download_into(&staging, &uri, &files).await {
            Ok(()) => place_onnx_file(&staging).await,
            Err(err) => Err(err),
        };
        let result = match result {
            Ok(()) => {
                let model_dir = self.cache.join(name);
                tokio::fs::create_dir_all(&model_dir)
                    .await
                    .map_err(io_error(&model_dir))?;
                tokio::fs::rename(&staging, &target)
                    .await
                    .map_err(io_error(&target))
            }
            Err(err) => Err(err),
        };
        if result.is_err() {
            let _ = tokio::fs::remove_dir_all(&staging).await;
        }
        result
    }

    async fn download_into(
        &self,
        staging: &Path,
        artifact_uri: &str,
        files: &[VersionFile],
    ) -> Result<(), SourceError> {
        for file in files {
            let relative = safe_relative_path(&file.path).ok_or_else(|| {
                SourceError::Invalid(format!("unsafe artifact file path '{}'", file.path))
            })?;
            let dest = staging.join(relative);
            if let Some(parent) = dest.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(io_error(parent))?;
            }
            if self
                .blobs
                .link_into(&file.sha256, file.size, &dest)
                .await
                .map_err(io_error(&dest))?
            {
                continue;
            }
            let downloaded = self
                .client
                .download_artifact(artifact_uri, &file.path, &dest)
                .await?;
            let (size, sha256) = (downloaded.size, downloaded.sha256);
            if size != file.size || !sha256.eq_ignore_ascii_case(&file.sha256) {
                return Err(SourceError::Invalid(format!(
                    "{} does not match the registry's record: {size} bytes with sha256 {sha256}, expected {} bytes with sha256 {}",
                    file.path, file.size, file.sha256
                )));
            }
            if let Err(err) = self.blobs.keep(&sha256, size, &dest).await {
                // Only a later download is lost.
                tracing::warn!(file = %dest.display(), error = %err, "cannot keep in the content cache");
            }
        }
        Ok(())
    }

    /// Writes `config.toml` (atomically) naming `versions`; returns whether it was unchanged.
    async fn write_config(&mut self, name: &str, versions: &[u64]) -> Result<bool, SourceError> {
        let model_dir = self.cache.join(name);
        let path = model_dir.join(CONFIG_FILE);
        let text = config_text(versions);
        let unchanged = tokio::fs::read_to_string(&path)
            .await
            .is_ok_and(|current| current == text);
        if !unchanged {
            tokio::fs::create_dir_all(&model_dir)
                .await
                .map_err(io_error(&model_dir))?;
            let temporary = model_dir.join(format!(".{CONFIG_FILE}.tmp"));
            tokio::fs::write(&temporary, &text)
                .await
                .map_err(io_error(&temporary))?;
            tokio::fs::rename(&temporary, &path)
                .await
                .map_err(io_error(&path))?;
        }
        self.followed.entry(name.to_owned()).or_default().configured = versions.to_vec();
        Ok(unchanged)
    }

    /// Version directories the manager no longer serves; their sessions hold what they need.
    async fn remove_other_versions(&self, name: &str, keep: &[u64]) {
        for (entry, path) in subdirectories(&self.cache.join(name)).await {
            let is_other_version = entry
                .parse::<u64>()
                .is_ok_and(|version| !keep.contains(&version));
            if is_other_version && let Err(err) = tokio::fs::remove_dir_all(&path).await {
                tracing::warn!(path = %path.display(), error = %err, "cannot remove");
            }
        }
    }
}

enum Prepared {
    Nothing,
    /// `config.toml` now names the aspired versions; `retry_load`: load it again although the
    /// directory did not change (an earlier load failed).
    Rollout {
        retry_load: bool,
    },
}

/// The ONNX backend loads `model.onnx`; an mlflow `onnx` flavor may name its file otherwise.
async fn place_onnx_file(dir: &Path) -> Result<(), SourceError> {
    let onnx = dir.join(ONNX_FILE);
    let mlmodel = dir.join(MLMODEL_FILE);
    if tokio::fs::try_exists(&onnx).await.unwrap_or(false) || !is_file(&mlmodel).await {
        return Ok(());
    }
    let text = tokio::fs::read_to_string(&mlmodel)
        .await
        .map_err(io_error(&mlmodel))?;
    let Some(data) = onnx_flavor_file(&text) else {
        return Ok(());
    };
    let unheld = || {
        SourceError::Invalid(format!(
            "MLmodel names '{data}' as the ONNX file, which the version does not hold"
        ))
    };
    let source = dir.join(safe_relative_path(&data).ok_or_else(unheld)?);
    if !is_file(&source).await {
        return Err(unheld());
    }
    if tokio::fs::hard_link(&source, &onnx).await.is_err() {
        tokio::fs::copy(&source, &onnx)
            .await
            .map_err(io_error(&onnx))?;
    }
    Ok(())
}

async fn is_dir(path: &Path) -> bool {
    tokio::fs::metadata(path)
        .await
        .is_ok_and(|metadata| metadata.is_dir())
}

async fn is_file(path: &Path) -> bool {
    tokio::fs::metadata(path)
        .await
        .is_ok_and(|metadata| metadata.is_file())
}

async fn remove_dir_if_present(path: &Path) -> Result<(), SourceError> {
    match tokio::fs::remove_dir_all(path).await {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(io_error(path)(err)),
        _ => Ok(()),
    }
}

/// The subdirectories of `dir` with UTF-8 names, as (name, path); none when it cannot be read.
async fn subdirectories(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return found;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let is_dir = entry.file_type().await.is_ok_and(|kind| kind.is_dir());
        if let (true, Ok(name)) = (is_dir, entry.file_name().into_string()) {
            found.push((name, entry.path()));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    fn deployment(source: &str, routes: &[(u64, u32)], shadow: Option<u64>) -> Deployment {
        Deployment {
            name: "pricing".to_owned(),
            source: source.to_owned(),
            revision: 3,
            routes: routes
                .iter()
                .map(|&(version, weight)| okla_client::Route { version, weight })
                .collect(),
            sticky: Some(okla_client::Sticky {
                routing_key_header: "X-User-Id".to_owned(),
            }),
            shadow,
            canary_gate: None,
            updated_at: None,
            updated_by: None,
        }
    }

    #[test]
    fn deployments_become_routings() {
        let routing = deployment_routing(&deployment("explicit", &[(1, 90), (2, 10)], Some(3)))
            .unwrap()
            .unwrap();
        assert_eq!(routing.routes, vec![(1, 90), (2, 10)]);
        assert_eq!(routing.sticky_header.as_deref(), Some("x-user-id"));
        assert_eq!(routing.versions(), vec![1, 2, 3]);
        assert_eq!(routing.revision, 3);
        assert_eq!(deployment_routing(&deployment("none", &[], None)), Ok(None));
        for bad in [
            deployment("explicit", &[(0, 100)], None),
            deployment("explicit", &[(1, 0)], None),
            deployment("explicit", &[(1, 100)], Some(0)),
        ] {
            assert!(deployment_routing(&bad).is_err(), "{bad:?}");
        }
        // Negative weights and versions do not even decode.
        for bad in [
            serde_json::json!({"routes": [{"version": 1, "weight": -5}, {"version": 2, "weight": 105}]}),
            serde_json::json!({"routes": [{"version": 1, "weight": 100}], "shadow": -1}),
        ] {
            assert!(
                serde_json::from_value::<Deployment>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn file_paths_stay_inside_the_version() {
        assert_eq!(
            safe_relative_path("data/model.onnx"),
            Some(PathBuf::from("data").join("model.onnx"))
        );
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a\\b",
            "./a",
        ] {
            assert_eq!(safe_relative_path(bad), None, "{bad}");
        }
        assert!(!usable_model_name("../x"));
        assert!(!usable_model_name(".staging"));
        assert!(usable_model_name("pricing-v2"));
    }

    #[test]
    fn mlmodel_onnx_flavor_names_the_file() {
        let mlmodel = "artifact_path: model\nflavors:\n  python_function:\n    data: ignored.onnx\n    loader_module: mlflow.onnx\n  onnx:\n    code: null\n    data: model.onnx\n    onnx_version: 1.17.0\nmlflow_version: 3.1.0\n";
        assert_eq!(onnx_flavor_file(mlmodel).as_deref(), Some("model.onnx"));
        assert_eq!(
            onnx_flavor_file("flavors:\n  onnx:\n    data: 'custom.onnx'\n").as_deref(),
            Some("custom.onnx")
        );
        assert_eq!(
            onnx_flavor_file("flavors:\n  sklearn:\n    pickled_model: model.pkl\n"),
            None
        );
    }

    #[test]
    fn retries_of_the_same_versions_back_off_and_other_versions_start_over() {
        let within = |delay: Duration, nominal_secs: u64| {
            let nominal = Duration::from_secs(nominal_secs);
            assert!(
                delay >= nominal / 2 && delay <= nominal,
                "{delay:?} is not within [{:?}, {nominal:?}]",
                nominal / 2
            );
        };
        let mut followed = Followed::default();
        within(followed.schedule_retry(&[2]), 1);
        within(followed.schedule_retry(&[2]), 2);
        within(followed.schedule_retry(&[2]), 4);
        within(followed.schedule_retry(&[2, 3]), 1);
        for _ in 0..20 {
            followed.schedule_retry(&[2, 3]);
        }
        within(followed.schedule_retry(&[2, 3]), 300);
    }

    #[test]
    fn config_names_exactly_the_versions() {
        let config: crate::repository::ModelConfig = toml::from_str(&config_text(&[2, 3])).unwrap();
        assert_eq!(
            config.version_policy,
            crate::repository::VersionPolicy::Specific {
                versions: vec![2, 3]
            }
        );
    }
}
