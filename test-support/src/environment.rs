//! The environment the tests run in: variables `bash scripts/test` sets, the workspace's
//! location, loopback ports, and the test venv's Python.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The value of `name`, which `bash scripts/test` sets; fails the test loudly when unset,
/// since a skipped check would pass silently.
pub fn required_env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is unset; run the tests with `bash scripts/test`"))
}

/// The workspace's root directory (where `Cargo.toml` lists the members).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support/ sits in the workspace")
        .to_owned()
}

/// A loopback port free at the time of the call, for a program that must be told its port
/// rather than binding port 0 itself (another process may take it in between; rarely matters).
pub fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind an ephemeral loopback port")
        .port()
}

/// Runs `script` with the test venv's interpreter (`OKLA_TEST_PYTHON`), `args` and `env` added
/// to the test's environment; fails the test with the script's output unless it exits 0.
/// Returns its stdout.
pub fn run_python(script: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let python = required_env("OKLA_TEST_PYTHON");
    let output = Command::new(python)
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        script.display()
    );
    stdout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"), "{manifest}");
    }

    #[test]
    fn a_free_port_can_be_bound() {
        let port = free_loopback_port();
        assert_ne!(port, 0);
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
    }
}
