//! Process plumbing every OKLA binary and client shares: waiting for the shutdown signal, the
//! one backoff with jitter that every retry and reconnect loop uses, the reconnect loop, and (feature `http`)
//! the HTTP middleware both servers share.

mod backoff;
#[cfg(feature = "http")]
pub mod http;
mod reconnect;
mod signal;

pub use backoff::{Backoff, Delays};
pub use reconnect::Reconnect;
pub use signal::shutdown_signal;
