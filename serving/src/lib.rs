//! `okla-serving`: the KServe V2 model server that follows the registry.
//!
//! Not built yet; the crate holds its place in the workspace so that its edges (it depends on
//! `okla-proto`, never on `okla-registry`) are fixed from the start.
