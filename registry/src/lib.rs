//! `okla-registry`: an MLflow-compatible tracking server and model registry.
//!
//! `domain` holds the rules and does no I/O; `store` (SQL), `artifacts` (object storage) and
//! `api` (HTTP) and `ui` (web pages) are adapters around it; `events` publishes the outbox to
//! RabbitMQ; `security` decides which hosts, origins and content types the HTTP surface accepts;
//! `auth` who a request is and what it may do, `audit` records what it did; `state` is what every handler shares; `app`
//! wires them together.

pub mod api;
pub mod app;
pub mod artifacts;
pub mod audit;
pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod housekeeping;
pub mod security;
pub mod state;
pub mod store;
pub mod ui;
