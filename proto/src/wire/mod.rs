//! The okla-native JSON shapes under `/api/okla/v1`, as they go on the wire: the registry's
//! answers are built from them and the client reads them. Versions and revisions are numbers
//! (`u64`), weights `u32`. Serde only; the registry keeps its own lenient reading of requests.

pub mod auth;
pub mod deployments;
pub mod events;
pub mod model_registry;
pub mod nodes;
pub mod tokens;

pub use auth::ResourceType;
pub use deployments::{
    CanaryGate, Deployment, DeploymentAnswer, DeploymentList, DeploymentSpec, Route, Sticky,
};
pub use events::{EventsPage, FeedEvent};
pub use model_registry::{HistoryEntry, ModelHistory, VersionFile, VersionFiles};
pub use nodes::{
    ModelReport, Node, NodeAnswer, NodeList, NodeModel, NodeReport, NodeVersion, VersionReport,
    VersionState,
};
pub use tokens::{TokenVerdict, VerifyToken};
