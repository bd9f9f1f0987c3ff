//! The protocol-neutral face of the server: what every API (V2 gRPC, V2 REST, TF Serving REST)
//! calls. It resolves model names, versions and labels, checks inputs against the model's
//! signature, hands work to the version's batcher and records metrics. The API modules only
//! translate between their wire format and these types.

use std::sync::Arc;

use crate::error::ServingError;
use crate::manager::ModelManager;
use crate::metrics::Metrics;
use crate::tensor::{Tensor, TensorSpec};

/// Which API a request came through (the `protocol` label of the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Grpc,
    Http,
    TfServing,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Grpc, Protocol::Http, Protocol::TfServing];

    /// Position in [`Protocol::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::Http => "http",
            Protocol::TfServing => "tfserving",
        }
    }
}

/// A version selector as clients write it: a number, a label (`stable`, `canary`), or nothing
/// (the highest ready version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSelector {
    Latest,
    Number(u64),
    Label(String),
}

impl VersionSelector {
    /// Reads the V2 `model_version` field: empty means latest, digits a number, anything else a label.
    pub fn parse(version: &str) -> VersionSelector {
        if version.is_empty() {
            VersionSelector::Latest
        } else if let Ok(number) = version.parse::<u64>() {
            VersionSelector::Number(number)
        } else {
            VersionSelector::Label(version.to_owned())
        }
    }
}

pub struct InferRequest {
    pub model: String,
    pub version: VersionSelector,
    /// Echoed back in the response.
    pub id: String,
    pub inputs: Vec<Tensor>,
    /// Output names to return; empty means every output.
    pub outputs: Vec<String>,
    pub protocol: Protocol,
    /// Keeps a client on one version of a model with a sticky deployment: the value of the
    /// deployment's routing-key header, or the V2 request parameter `routing_key`.
    pub routing_key: Option<String>,
}

#[derive(Debug)]
pub struct InferResponse {
    pub model: String,
    /// The version number that answered.
    pub version: u64,
    pub id: String,
    /// The requested outputs, in the order requested (declaration order when none were named).
    pub outputs: Vec<Tensor>,
}

#[derive(Debug, Clone)]
pub struct ModelMetadata {
    pub name: String,
    /// Ready versions, ascending.
    pub versions: Vec<u64>,
    pub platform: String,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// One row of the repository index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryEntry {
    pub name: String,
    pub version: Option<u64>,
    /// `READY`, `LOADING`, `UNAVAILABLE` (failed or unloaded), as Triton reports states.
    pub state: String,
    /// Why a version is not ready (the load error), empty otherwise.
    pub reason: String,
}

pub struct ServerMetadata {
    pub name: &'static str,
    pub version: &'static str,
    pub extensions: Vec<&'static str>,
}

#[derive(Clone)]
pub struct InferenceService {
    manager: Arc<ModelManager>,
    metrics: Arc<Metrics>,
}

impl InferenceService {
    pub fn new(manager: Arc<ModelManager>, metrics: Arc<Metrics>) -> InferenceService {
        InferenceService { manager, metrics }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The metrics for a task that outlives this handle (the registry source).
    pub fn metrics_handle(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub fn manager(&self) -> &Arc<ModelManager> {
        &self.manager
    }

    pub fn server_metadata(&self) -> ServerMetadata {
        ServerMetadata {
            name: "okla-serving",
            version: env!("CARGO_PKG_VERSION"),
            extensions: vec!["binary_tensor_data", "model_repository"],
        }
    }

    /// The process is up and answering.
    pub fn live(&self) -> bool {
        true
    }

    /// Every configured model has a ready version.
    pub fn ready(&self) -> bool {
        self.manager.all_ready()
    }

    /// Whether the selected version is ready; unknown models and versions are `NotFound`.
    pub fn model_ready(
        &self,
        model: &str,
        version: &VersionSelector,
    ) -> Result<bool, ServingError> {
        self.manager.is_ready(model, version)
    }

    pub fn model_metadata(
        &self,
        model: &str,
        version: &VersionSelector,
    ) -> Result<ModelMetadata, ServingError> {
        self.manager.metadata(model, version)
    }

    pub async fn infer(&self, request: InferRequest) -> Result<InferResponse, ServingError> {
        self.manager.infer(request, &self.metrics).await
    }

    /// The header (lower case) that carries the routing key of the model's sticky deployment.
    pub fn sticky_header(&self, model: &str) -> Option<String> {
        self.manager.sticky_header(model)
    }

    pub fn repository_index(&self, ready_only: bool) -> Vec<RepositoryEntry> {
        self.manager.index(ready_only)
    }

    /// Loads (or reloads) a model from the repository, returning when it is ready or failed.
    pub async fn load_model(&self, model: &str) -> Result<(), ServingError> {
        self.manager.load_model(model).await
    }

    pub async fn unload_model(&self, model: &str) -> Result<(), ServingError> {
        self.manager.unload_model(model).await
    }
}
