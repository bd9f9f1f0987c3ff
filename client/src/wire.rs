//! Small pieces of MLflow's JSON shared by the modules: `{key, value}` pairs, and the version
//! and double helpers of `okla_proto::mlflow` under the names the modules use.

use serde::{Deserialize, Serialize};

/// A tag or param as MLflow sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

pub(crate) use okla_proto::mlflow::{
    deserialize_double as double, deserialize_version as version, serialize_double,
};

/// The answer `{}` of calls that return nothing.
#[derive(Deserialize)]
pub(crate) struct Empty {}

/// Milliseconds since the Unix epoch, as MLflow's timestamps.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or_default()
}
