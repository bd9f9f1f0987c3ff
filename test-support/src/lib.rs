//! What the OKLA crates' tests share: starting our binaries ([`TestProcess`]), a RabbitMQ vhost
//! ([`Vhost`]) or a PostgreSQL database ([`PostgresDatabase`]) of a test's own, the test
//! environment `bash scripts/test` sets up ([`required_env`], [`run_python`]), and the tidy
//! checks every crate runs over its own sources ([`tidy`]).
//!
//! Dev-only: no crate depends on it outside `[dev-dependencies]`.

mod database;
mod environment;
mod process;
pub mod tidy;
mod vhost;

pub use database::PostgresDatabase;
pub use environment::{free_loopback_port, required_env, run_python, workspace_root};
pub use process::TestProcess;
pub use vhost::Vhost;
