//! What MLflow's auth API names in a grant (`/api/3.0/mlflow/users/permissions/*`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The resource types grants name. MLflow knows more (prompts, gateway, scorers); the registry
/// has experiments and registered models, and refuses the rest by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    /// Addressed by experiment id; governs its runs, logged models and artifacts.
    Experiment,
    /// Addressed by name; governs its versions, aliases, stages and deployment.
    RegisteredModel,
}

impl ResourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Experiment => "experiment",
            ResourceType::RegisteredModel => "registered_model",
        }
    }

    pub fn parse(name: &str) -> Result<ResourceType, String> {
        match name {
            "experiment" => Ok(ResourceType::Experiment),
            "registered_model" => Ok(ResourceType::RegisteredModel),
            other => Err(format!(
                "Invalid resource type '{other}'. Valid resource types are: ('experiment', 'registered_model')"
            )),
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}
