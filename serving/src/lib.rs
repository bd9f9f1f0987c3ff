//! `okla-serving`: a KServe V2 model server (gRPC and HTTP, plus TF Serving's REST `:predict`)
//! on ONNX Runtime and candle.
//!
//! Data flows one way: a source (the model repository directory, `repository`, or the registry,
//! `registry_source`, which downloads into a directory laid out the same way, woken early by
//! the registry's RabbitMQ events through `registry_events`) says which
//! versions to serve; the `planner` decides what to load, switch and unload, and the `manager`
//! carries that out, loading through the `loader` (a `backend` plus a `batcher` running inference
//! on its own threads); `router` splits a model's traffic between its versions under a registry
//! deployment; `service` is the one request path, which the `api` modules call with the
//! protocol-neutral `request` types.

pub mod access;
pub mod api;
pub mod app;
pub mod backend;
pub mod batcher;
pub mod config;
pub mod content_cache;
pub mod error;
pub mod loader;
pub mod manager;
pub mod metrics;
pub mod node_report;
pub mod planner;
pub mod registry_events;
pub mod registry_source;
pub mod repository;
pub mod request;
pub mod router;
pub mod service;
pub mod tensor;
#[cfg(feature = "testing")]
pub mod testing;
pub mod traffic;
