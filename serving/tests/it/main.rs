//! Integration tests: the built `okla-serving` binary on ephemeral ports, called over the
//! network as users call it (plain HTTP, and the real `tritonclient` Python package).

mod authenticated;
mod backends;
mod fleet;
mod follow_registry;
mod grpc;
mod http;
mod in_process;
mod registry_events;
mod reload;
mod routing;
mod startup;
mod support;
