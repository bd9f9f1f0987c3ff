//! `okla-registry`: an MLflow-compatible tracking server and model registry.
//!
//! `domain` holds the rules and does no I/O; `store` (SQL), `artifacts` (object storage) and
//! `api` (HTTP) and `ui` (web pages) are adapters around it; `events` publishes the outbox to
//! RabbitMQ; `state` is what every handler shares; `app` wires them together.

pub mod api;
pub mod app;
pub mod artifacts;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod state;
pub mod store;
pub mod ui;
