//! The protocol-neutral requests and answers every API (V2 gRPC, V2 REST, TF Serving REST)
//! translates its wire format to and from.

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
