//! `okla-client`: the Rust client for training jobs and the `okla` CLI.
//!
//! Not built yet; the crate holds its place in the workspace. It will depend on `okla-proto` only.
