//! The registry's integration test binary: the store conformance suite, the HTTP suite, the
//! outbox suite and the deployments suite, each run against both SQLite and PostgreSQL, the
//! HTTP hardening suite (on SQLite: it refuses requests before any store is touched), the web
//! UI sign-in (on SQLite), plus the
//! tidy checks. Run it with `bash scripts/test`, or `cargo nextest run -p okla-registry --test it` with
//! `TEST_DATABASE_URL` set.

#[macro_use]
mod support;

mod deployments;
mod http_api;
mod login;
mod migrations;
mod nodes;
mod outbox;
mod retention;
mod security;
mod series;
mod statistics;
mod store_conformance;
mod tidy;
mod ui;
