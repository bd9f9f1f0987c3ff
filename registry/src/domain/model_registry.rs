//! Registered models, versions, stages, aliases and their history, with MLflow's rules.

use super::KeyValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    None,
    Staging,
    Production,
    Archived,
}

impl Stage {
    pub const ALL: [Stage; 4] = [
        Stage::None,
        Stage::Staging,
        Stage::Production,
        Stage::Archived,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::None => "None",
            Stage::Staging => "Staging",
            Stage::Production => "Production",
            Stage::Archived => "Archived",
        }
    }

    /// Stage names are case-insensitive on input and canonical on output, as in MLflow.
    pub fn parse(text: &str) -> Result<Stage, String> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                format!(
                    "Invalid Model Version stage: {text}. Value must be one of None, Staging, Production, Archived."
                )
            })
    }

    /// Only these targets may archive the versions already in them.
    pub fn allows_archiving_existing(self) -> bool {
        matches!(self, Stage::Staging | Stage::Production)
    }
}

#[derive(Debug, Clone)]
pub struct RegisteredModel {
    pub name: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub description: Option<String>,
    pub tags: Vec<KeyValue>,
    pub aliases: Vec<(String, i64)>,
    pub latest_versions: Vec<ModelVersion>,
}

#[derive(Debug, Clone)]
pub struct ModelVersion {
    pub name: String,
    pub version: i64,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub description: Option<String>,
    pub user_id: Option<String>,
    pub current_stage: String,
    pub source: String,
    pub run_id: Option<String>,
    pub run_link: Option<String>,
    pub status: String,
    pub status_message: Option<String>,
    pub storage_location: Option<String>,
    pub model_id: Option<String>,
    pub tags: Vec<KeyValue>,
    pub aliases: Vec<String>,
}

/// One artifact file of a model version, as recorded when the version was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionFile {
    pub path: String,
    pub size: i64,
    pub sha256: String,
}

/// What an entry of the append-only model history records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryKind {
    Stage,
    Alias,
    /// An explicit deployment created or replaced; from/to hold the specs as JSON.
    Deployment,
    /// The explicit deployment removed; the default applies again, or, with none, the model is
    /// undeployed.
    DeploymentDelete,
    /// The deployment rolled back to one version; the comment holds the reason.
    DeploymentRollback,
    /// The model taken out of the fleet; from holds what served (the effective spec as JSON).
    Undeploy,
}

impl HistoryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryKind::Stage => "stage",
            HistoryKind::Alias => "alias",
            HistoryKind::Deployment => "deployment",
            HistoryKind::DeploymentDelete => "deployment_delete",
            HistoryKind::DeploymentRollback => "deployment_rollback",
            HistoryKind::Undeploy => "undeploy",
        }
    }
}

#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub id: i64,
    pub name: String,
    pub version: Option<i64>,
    pub kind: String,
    pub from_value: Option<String>,
    pub to_value: Option<String>,
    pub actor: String,
    pub time: i64,
    pub comment: Option<String>,
}

pub fn validate_model_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err(
            "Missing value for required parameter 'name'. Registered model name cannot be empty."
                .to_owned(),
        );
    }
    if name.chars().count() > 256 || name.contains(['\0', '\n', '\r']) {
        return Err(format!("Invalid registered model name: '{name}'"));
    }
    Ok(())
}

/// Versions are strings on the wire; they must hold a positive integer.
pub fn parse_version(text: &str) -> Result<i64, String> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|version| *version >= 1)
        .ok_or_else(|| format!("Model version must be an integer, got '{text}'"))
}

/// Alias rules: `latest` and `v<digits>` are reserved because model URIs use them.
pub fn validate_alias(alias: &str) -> Result<(), String> {
    if alias.is_empty() {
        return Err("Missing value for required parameter 'alias'".to_owned());
    }
    if alias.eq_ignore_ascii_case("latest") {
        return Err("'latest' alias name (case insensitive) is reserved.".to_owned());
    }
    let lower = alias.to_ascii_lowercase();
    if let Some(digits) = lower.strip_prefix('v')
        && !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
    {
        return Err(format!("Version alias name '{alias}' is reserved."));
    }
    if alias.chars().count() > 255
        || !alias
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(format!(
            "Invalid alias name: '{alias}'. Alias names may only contain alphanumerics, underscores, dashes and periods."
        ));
    }
    Ok(())
}

/// Where a model version's files live, resolved from its `source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSource {
    /// `models:/m-<id>`: a logged model's artifacts.
    LoggedModel(String),
    /// `runs:/<run_id>/<path>`: a path under a run's artifacts.
    Run { run_id: String, path: String },
    /// Anything else: an artifact URI stored as given.
    Uri(String),
}

impl VersionSource {
    pub fn parse(source: &str) -> VersionSource {
        if let Some(rest) = source.strip_prefix("models:/")
            && rest.starts_with("m-")
            && !rest.contains('/')
        {
            return VersionSource::LoggedModel(rest.to_owned());
        }
        if let Some(rest) = source.strip_prefix("runs:/") {
            let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
            return VersionSource::Run {
                run_id: run_id.to_owned(),
                path: path.trim_matches('/').to_owned(),
            };
        }
        VersionSource::Uri(source.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_parse_case_insensitively() {
        assert_eq!(Stage::parse("staging"), Ok(Stage::Staging));
        assert_eq!(Stage::parse("PRODUCTION"), Ok(Stage::Production));
        assert_eq!(Stage::parse("None"), Ok(Stage::None));
        assert!(
            Stage::parse("Bogus")
                .unwrap_err()
                .contains("Invalid Model Version stage: Bogus")
        );
    }

    #[test]
    fn reserved_aliases() {
        let table = [
            ("champion", true),
            ("latest", false),
            ("LATEST", false),
            ("v3", false),
            ("V10", false),
            ("v", true),
            ("vx1", true),
            ("bad alias", false),
        ];
        for (alias, ok) in table {
            assert_eq!(validate_alias(alias).is_ok(), ok, "{alias}");
        }
    }

    #[test]
    fn sources() {
        assert_eq!(
            VersionSource::parse("models:/m-abc"),
            VersionSource::LoggedModel("m-abc".into())
        );
        assert_eq!(
            VersionSource::parse("runs:/0123/model"),
            VersionSource::Run {
                run_id: "0123".into(),
                path: "model".into()
            }
        );
        assert_eq!(
            VersionSource::parse("mlflow-artifacts:/1/x"),
            VersionSource::Uri("mlflow-artifacts:/1/x".into())
        );
    }
}
