//! The model registry: register a run's model directory as a new version (uploaded, then
//! checked file by file against what the registry recorded), stages, aliases and searches.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::artifacts::{TransferredFile, UploadProgress};
use crate::error::{Error, Result};
use crate::http::Client;
use crate::tracking::Run;
use crate::wire::{Empty, KeyValue};
pub use okla_proto::wire::VersionFile;

/// Where [`Client::register_model_dir`] puts a model's files, under the run's artifact root.
pub const MODEL_ARTIFACT_PATH: &str = "model";

/// Page size of `model-versions/search`.
const SEARCH_PAGE_SIZE: &str = "1000";

/// A model version's stage (deprecated by MLflow in favour of aliases, still supported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    None,
    Staging,
    Production,
    Archived,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::None => "None",
            Stage::Staging => "Staging",
            Stage::Production => "Production",
            Stage::Archived => "Archived",
        })
    }
}

/// A registered model's version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    #[serde(deserialize_with = "crate::wire::version")]
    pub version: u64,
    pub current_stage: Stage,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub run_id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
    #[serde(default)]
    pub creation_timestamp: i64,
    #[serde(default)]
    pub last_updated_timestamp: i64,
}

/// An alias and the version it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    pub alias: String,
    #[serde(deserialize_with = "crate::wire::version")]
    pub version: u64,
}

/// A registered model, with the latest version in each stage and its aliases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredModel {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub latest_versions: Vec<ModelVersion>,
    #[serde(default)]
    pub aliases: Vec<Alias>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct ModelVersionAnswer {
    model_version: ModelVersion,
}

impl Client {
    /// Registers `local_dir` as a new version of `model_name`, from `run`:
    ///
    /// 1. uploads every file of `local_dir` under `<run artifacts>/model/`;
    /// 2. creates the registered model if it does not exist;
    /// 3. creates the version, with `source = <run artifact_uri>/model`;
    /// 4. checks that the files the registry recorded for the version are exactly the ones
    ///    uploaded, with the same size and sha256.
    ///
    /// If an upload fails, nothing is registered (neither the model nor a version). If the check fails ([`Error::Integrity`]),
    /// the version exists but does not hold what was uploaded (the run's `model/` directory
    /// had other files, or the store changed them): do not promote it.
    pub async fn register_model_dir(
        &self,
        model_name: &str,
        run: &Run,
        local_dir: &Path,
    ) -> Result<ModelVersion> {
        self.register_model_dir_reporting(model_name, run, local_dir, None)
            .await
    }

    /// [`Client::register_model_dir`], telling `progress` about every chunk uploaded.
    pub async fn register_model_dir_reporting(
        &self,
        model_name: &str,
        run: &Run,
        local_dir: &Path,
        progress: Option<UploadProgress>,
    ) -> Result<ModelVersion> {
        let uploaded = self
            .upload_dir_reporting(run, local_dir, MODEL_ARTIFACT_PATH, progress)
            .await?;
        if uploaded.is_empty() {
            return Err(Error::Invalid(format!(
                "{} holds no files to register",
                local_dir.display()
            )));
        }
        self.create_registered_model(model_name).await?;
        let source = format!(
            "{}/{MODEL_ARTIFACT_PATH}",
            run.artifact_uri().trim_end_matches('/')
        );
        let answer: ModelVersionAnswer = self
            .send_body(
                Method::POST,
                self.mlflow("model-versions/create"),
                &serde_json::json!({ "name": model_name, "source": source, "run_id": run.id() }),
            )
            .await?;
        let version = answer.model_version;
        let recorded = self.version_files(model_name, version.version).await?;
        check_files(&uploaded, &recorded, model_name, version.version)?;
        Ok(version)
    }

    /// Creates the registered model `name`; one that already exists is fine.
    pub async fn create_registered_model(&self, name: &str) -> Result<()> {
        let created: Result<serde_json::Value> = self
            .send_body(
                Method::POST,
                self.mlflow("registered-models/create"),
                &serde_json::json!({ "name": name }),
            )
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(error) if error.error_code() == Some("RESOURCE_ALREADY_EXISTS") => Ok(()),
            Err(error) => Err(error),
        }
    }

    pub async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        #[derive(Deserialize)]
        struct Answer {
            registered_model: RegisteredModel,
        }
        let answer: Answer = self
            .get_json(self.mlflow("registered-models/get"), &[("name", name)])
            .await?;
        Ok(answer.registered_model)
    }

    pub async fn get_model_version(&self, name: &str, version: u64) -> Result<ModelVersion> {
        let version = version.to_string();
        let answer: ModelVersionAnswer = self
            .get_json(
                self.mlflow("model-versions/get"),
                &[("name", name), ("version", &version)],
            )
            .await?;
        Ok(answer.model_version)
    }

    /// The size and sha256 of every file of a version, as recorded when it was created.
    /// Downloads every file of a model version into `dest`, each streamed and checked against
    /// the size and sha256 the registry recorded when the version was created. A file whose
    /// bytes differ is removed and reported as [`Error::Integrity`]; a path that would leave
    /// `dest` is refused.
    pub async fn download_model_version(
        &self,
        name: &str,
        version: u64,
        dest: &Path,
    ) -> Result<Vec<TransferredFile>> {
        let artifact_uri = self.model_version_download_uri(name, version).await?;
        let mut downloaded = Vec::new();
        for file in self.version_files(name, version).await? {
            let relative = Path::new(&file.path);
            if file.path.is_empty()
                || relative.is_absolute()
                || relative
                    .components()
                    .any(|part| !matches!(part, std::path::Component::Normal(_)))
            {
                return Err(Error::Invalid(format!(
                    "the registry lists an unsafe file path '{}' for {name} version {version}",
                    file.path
                )));
            }
            let target = dest.join(relative);
            let source = self.artifact_url(&artifact_uri, &file.path)?.to_string();
            let got = self.download_file(&source, &target).await?;
            if got.size != file.size || !got.sha256.eq_ignore_ascii_case(&file.sha256) {
                let _ = tokio::fs::remove_file(&target).await;
                return Err(Error::Integrity {
                    path: target.display().to_string(),
                    expected: describe(file.size, &file.sha256),
                    actual: describe(got.size, &got.sha256),
                });
            }
            downloaded.push(got);
        }
        Ok(downloaded)
    }

    /// Where a version's artifacts are stored, e.g. `mlflow-artifacts:/1/models/m-…/artifacts`.
    pub async fn model_version_download_uri(&self, name: &str, version: u64) -> Result<String> {
        #[derive(Deserialize)]
        struct Answer {
            artifact_uri: String,
        }
        let version = version.to_string();
        let answer: Answer = self
            .get_json(
                self.mlflow("model-versions/get-download-uri"),
                &[("name", name), ("version", &version)],
            )
            .await?;
        Ok(answer.artifact_uri)
    }

    pub async fn version_files(&self, name: &str, version: u64) -> Result<Vec<VersionFile>> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            files: Vec<VersionFile>,
        }
        let version = version.to_string();
        let answer: Answer = self
            .get_json(
                self.okla(["models", name, "versions", &version, "files"]),
                &[],
            )
            .await?;
        Ok(answer.files)
    }

    /// Moves a version to `stage`; with `archive_existing`, the other versions in that stage
    /// (Staging or Production only) move to Archived.
    pub async fn transition_stage(
        &self,
        name: &str,
        version: u64,
        stage: Stage,
        archive_existing: bool,
    ) -> Result<ModelVersion> {
        let answer: ModelVersionAnswer = self
            .send_body(
                Method::POST,
                self.mlflow("model-versions/transition-stage"),
                &serde_json::json!({
                    "name": name,
                    "version": version.to_string(),
                    "stage": stage,
                    "archive_existing_versions": archive_existing,
                }),
            )
            .await?;
        Ok(answer.model_version)
    }

    /// Points `alias` at `version`, moving it if it named another.
    pub async fn set_alias(&self, name: &str, alias: &str, version: u64) -> Result<()> {
        let _: Empty = self
            .send_body(
                Method::POST,
                self.mlflow("registered-models/alias"),
                &serde_json::json!({ "name": name, "alias": alias, "version": version.to_string() }),
            )
            .await?;
        Ok(())
    }

    pub async fn delete_alias(&self, name: &str, alias: &str) -> Result<()> {
        let _: Empty = self
            .send_body(
                Method::DELETE,
                self.mlflow("registered-models/alias"),
                &serde_json::json!({ "name": name, "alias": alias }),
            )
            .await?;
        Ok(())
    }

    /// The version `alias` names. An unknown alias is MLflow's 400 `INVALID_PARAMETER_VALUE`.
    pub async fn get_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        let answer: ModelVersionAnswer = self
            .get_json(
                self.mlflow("registered-models/alias"),
                &[("name", name), ("alias", alias)],
            )
            .await?;
        Ok(answer.model_version)
    }

    /// Every version matching `filter` (MLflow's grammar, plus okla's `OR` and parentheses,
    /// e.g. `name = 'pricing'`), all pages, in the registry's default order.
    pub async fn search_model_versions(&self, filter: &str) -> Result<Vec<ModelVersion>> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            model_versions: Vec<ModelVersion>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let mut versions = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut query = vec![("filter", filter), ("max_results", SEARCH_PAGE_SIZE)];
            if let Some(token) = &page_token {
                query.push(("page_token", token));
            }
            let page: Page = self
                .get_json(self.mlflow("model-versions/search"), &query)
                .await?;
            versions.extend(page.model_versions);
            match page.next_page_token {
                Some(token) if !token.is_empty() => page_token = Some(token),
                _ => return Ok(versions),
            }
        }
    }
}

/// The recorded files of a version must be exactly the uploaded ones, byte for byte.
fn check_files(
    uploaded: &[TransferredFile],
    recorded: &[VersionFile],
    name: &str,
    version: u64,
) -> Result<()> {
    let shown = |path: &str| format!("{name} version {version}: {path}");
    let mut recorded: BTreeMap<&str, &VersionFile> = recorded
        .iter()
        .map(|file| (file.path.as_str(), file))
        .collect();
    for file in uploaded {
        let relative = file
            .path
            .strip_prefix(MODEL_ARTIFACT_PATH)
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(&file.path);
        let expected = describe(file.size, &file.sha256);
        match recorded.remove(relative) {
            None => {
                return Err(Error::Integrity {
                    path: shown(relative),
                    expected,
                    actual: "no such file recorded".to_owned(),
                });
            }
            Some(found) if found.size != file.size || found.sha256 != file.sha256 => {
                return Err(Error::Integrity {
                    path: shown(relative),
                    expected,
                    actual: describe(found.size, &found.sha256),
                });
            }
            Some(_) => {}
        }
    }
    if let Some((path, extra)) = recorded.into_iter().next() {
        return Err(Error::Integrity {
            path: shown(path),
            expected: "no such file (not uploaded)".to_owned(),
            actual: describe(extra.size, &extra.sha256),
        });
    }
    Ok(())
}

/// A file's identity as the integrity errors show it.
fn describe(size: u64, sha256: &str) -> String {
    format!("{size} bytes, sha256 {sha256}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uploaded(path: &str, size: u64, sha256: &str) -> TransferredFile {
        TransferredFile {
            path: path.to_owned(),
            size,
            sha256: sha256.to_owned(),
        }
    }

    fn recorded(path: &str, size: u64, sha256: &str) -> VersionFile {
        VersionFile {
            path: path.to_owned(),
            size,
            sha256: sha256.to_owned(),
        }
    }

    #[test]
    fn recorded_files_must_match_the_uploaded_ones() {
        let sent = [uploaded("model/a", 1, "aa"), uploaded("model/d/b", 2, "bb")];
        assert!(
            check_files(
                &sent,
                &[recorded("d/b", 2, "bb"), recorded("a", 1, "aa")],
                "m",
                1
            )
            .is_ok()
        );
        let changed = check_files(
            &sent,
            &[recorded("a", 1, "aa"), recorded("d/b", 2, "cc")],
            "m",
            1,
        );
        assert!(
            matches!(changed, Err(Error::Integrity { ref path, .. }) if path == "m version 1: d/b")
        );
        let missing = check_files(&sent, &[recorded("a", 1, "aa")], "m", 1);
        assert!(matches!(missing, Err(Error::Integrity { .. })));
        let extra = check_files(
            &sent,
            &[
                recorded("a", 1, "aa"),
                recorded("d/b", 2, "bb"),
                recorded("x", 3, "xx"),
            ],
            "m",
            1,
        );
        assert!(
            matches!(extra, Err(Error::Integrity { ref path, .. }) if path == "m version 1: x")
        );
    }

    #[test]
    fn versions_arrive_as_strings_or_numbers() {
        let version: ModelVersion = serde_json::from_str(
            r#"{"name": "m", "version": "3", "current_stage": "Production", "aliases": ["champion"]}"#,
        )
        .unwrap();
        assert_eq!(version.version, 3);
        assert_eq!(version.current_stage, Stage::Production);
        let alias: Alias = serde_json::from_str(r#"{"alias": "a", "version": 4}"#).unwrap();
        assert_eq!(alias.version, 4);
    }
}
