//! Process plumbing every OKLA binary and client shares: waiting for the shutdown signal, and
//! the one backoff with jitter that every retry and reconnect loop uses.

mod backoff;
mod signal;

pub use backoff::{Backoff, Delays};
pub use signal::shutdown_signal;
