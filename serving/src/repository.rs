//! The model repository on disk, in Triton's and TF Serving's layout:
//! `DIR/<model>/<version>/model.onnx` (or `model.safetensors` + `config.json`), versions being
//! positive integers, with an optional `DIR/<model>/config.toml`:
//!
//! ```toml
//! max_batch_size = 32          # rows per batch; 0 turns dynamic batching off
//! max_queue_delay_micros = 200 # how long the first request of a batch waits for company
//! instances = 2                # concurrent sessions (default: one per core)
//!
//! [version_policy]             # which versions to serve; default: the latest one
//! latest = { num_versions = 2 }   # or: specific = { versions = [1, 3] }   or: all = {}
//!
//! [labels]                     # names clients may use instead of numbers
//! stable = 1
//! canary = 2
//! ```
//!
//! This is the local-directory source; the registry source of the fleet produces the same
//! [`ModelConfig`] and version directories, so the manager does not care where a model came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const CONFIG_FILE: &str = "config.toml";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum VersionPolicy {
    Latest { num_versions: usize },
    Specific { versions: Vec<u64> },
    All {},
}

impl Default for VersionPolicy {
    fn default() -> Self {
        VersionPolicy::Latest { num_versions: 1 }
    }
}

impl VersionPolicy {
    /// The versions to serve out of those available (any order in, ascending out).
    pub fn select(&self, available: &[u64]) -> Vec<u64> {
        let mut sorted = available.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        match self {
            VersionPolicy::Latest { num_versions } => {
                let skip = sorted.len().saturating_sub(*num_versions);
                sorted.split_off(skip)
            }
            VersionPolicy::Specific { versions } => {
                sorted.retain(|v| versions.contains(v));
                sorted
            }
            VersionPolicy::All {} => sorted,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `None`: batch up to [`DEFAULT_MAX_BATCH_SIZE`] rows when the model has a batch dimension.
    pub max_batch_size: Option<usize>,
    #[serde(default)]
    pub max_queue_delay_micros: u64,
    /// Concurrent sessions; `None`: the server's default (one per core).
    pub instances: Option<usize>,
    #[serde(default)]
    pub version_policy: VersionPolicy,
    #[serde(default)]
    pub labels: BTreeMap<String, u64>,
}

pub const DEFAULT_MAX_BATCH_SIZE: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    #[error("model repository {0} is not a readable directory: {1}")]
    Unreadable(PathBuf, std::io::Error),
    #[error("model '{0}' not found in the repository")]
    UnknownModel(String),
    #[error("invalid {path}: {message}")]
    BadConfig { path: PathBuf, message: String },
    #[error("model '{0}' has no version directories (positive integers) to serve")]
    NoVersions(String),
    #[error("model '{model}': version policy selects none of the versions on disk {available:?}")]
    PolicySelectsNothing { model: String, available: Vec<u64> },
}

/// A model as found on disk: its configuration and the version directories to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSource {
    pub name: String,
    pub config: ModelConfig,
    /// (version, directory), ascending, already filtered by the version policy.
    pub versions: Vec<(u64, PathBuf)>,
}

#[derive(Debug, Clone)]
pub struct ModelRepository {
    root: PathBuf,
}

impl ModelRepository {
    pub fn new(root: impl Into<PathBuf>) -> ModelRepository {
        ModelRepository { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Names of the model directories (sorted); hidden directories are skipped.
    pub fn model_names(&self) -> Result<Vec<String>, RepositoryError> {
        let entries = std::fs::read_dir(&self.root)
            .map_err(|err| RepositoryError::Unreadable(self.root.clone(), err))?;
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().is_dir())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.'))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Reads one model's configuration and the version directories its policy selects.
    pub fn model(&self, name: &str) -> Result<ModelSource, RepositoryError> {
        // A name from a client must not walk out of the repository.
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\', '\0']) {
            return Err(RepositoryError::UnknownModel(name.to_owned()));
        }
        let dir = self.root.join(name);
        if !dir.is_dir() {
            return Err(RepositoryError::UnknownModel(name.to_owned()));
        }
        let config = read_config(&dir.join(CONFIG_FILE))?;
        let entries =
            std::fs::read_dir(&dir).map_err(|err| RepositoryError::Unreadable(dir.clone(), err))?;
        let available: BTreeMap<u64, PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().is_dir())
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse::<u64>().ok()?;
                (version > 0).then(|| (version, entry.path()))
            })
            .collect();
        if available.is_empty() {
            return Err(RepositoryError::NoVersions(name.to_owned()));
        }
        let numbers: Vec<u64> = available.keys().copied().collect();
        let selected = config.version_policy.select(&numbers);
        if selected.is_empty() {
            return Err(RepositoryError::PolicySelectsNothing {
                model: name.to_owned(),
                available: numbers,
            });
        }
        let versions = selected
            .into_iter()
            .map(|v| (v, available[&v].clone()))
            .collect();
        Ok(ModelSource {
            name: name.to_owned(),
            config,
            versions,
        })
    }
}

fn read_config(path: &Path) -> Result<ModelConfig, RepositoryError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(ModelConfig::default()),
        Err(err) => {
            return Err(RepositoryError::BadConfig {
                path: path.to_owned(),
                message: err.to_string(),
            });
        }
    };
    toml::from_str(&text).map_err(|err| RepositoryError::BadConfig {
        path: path.to_owned(),
        message: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_policies_select_as_tf_serving_does() {
        let available = [3, 1, 2, 10];
        assert_eq!(VersionPolicy::default().select(&available), vec![10]);
        assert_eq!(
            VersionPolicy::Latest { num_versions: 2 }.select(&available),
            vec![3, 10]
        );
        assert_eq!(
            VersionPolicy::Latest { num_versions: 9 }.select(&available),
            vec![1, 2, 3, 10]
        );
        assert_eq!(
            VersionPolicy::Specific {
                versions: vec![2, 7]
            }
            .select(&available),
            vec![2]
        );
        assert_eq!(VersionPolicy::All {}.select(&available), vec![1, 2, 3, 10]);
    }

    #[test]
    fn config_file_parses_every_field() {
        let config: ModelConfig = toml::from_str(
            "max_batch_size = 32\nmax_queue_delay_micros = 200\ninstances = 2\n\
             [version_policy]\nspecific = { versions = [1, 3] }\n[labels]\nstable = 1\ncanary = 3\n",
        )
        .unwrap();
        assert_eq!(config.max_batch_size, Some(32));
        assert_eq!(
            config.version_policy,
            VersionPolicy::Specific {
                versions: vec![1, 3]
            }
        );
        assert_eq!(config.labels["canary"], 3);
        let all: ModelConfig = toml::from_str("[version_policy]\nall = {}\n").unwrap();
        assert_eq!(all.version_policy, VersionPolicy::All {});
    }

    #[test]
    fn scanning_finds_versions_and_reports_bad_configs() {
        let root = tempfile::tempdir().unwrap();
        for dir in [
            "pricing/1",
            "pricing/2",
            "pricing/notes",
            "pricing/0",
            ".hidden/1",
            "empty",
        ] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        let repo = ModelRepository::new(root.path());
        assert_eq!(repo.model_names().unwrap(), vec!["empty", "pricing"]);
        let pricing = repo.model("pricing").unwrap();
        assert_eq!(
            pricing.versions.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
            vec![2]
        );
        assert!(matches!(
            repo.model("empty"),
            Err(RepositoryError::NoVersions(_))
        ));
        assert!(matches!(
            repo.model("../pricing"),
            Err(RepositoryError::UnknownModel(_))
        ));
        std::fs::write(root.path().join("pricing/config.toml"), "max_batch = 3").unwrap();
        let err = repo.model("pricing").unwrap_err();
        assert!(err.to_string().contains("max_batch"), "{err}");
    }
}
