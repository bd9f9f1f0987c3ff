//! Process plumbing every OKLA binary and client shares: waiting for the shutdown signal, the
//! one backoff with jitter that every retry and reconnect loop uses, and the reconnect loop.

mod backoff;
mod reconnect;
mod signal;

pub use backoff::{Backoff, Delays};
pub use reconnect::Reconnect;
pub use signal::shutdown_signal;
