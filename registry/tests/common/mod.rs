//! What the end-to-end test binaries share: starting the built `okla-registry` on an ephemeral
//! port, as users run it.

use std::ffi::OsStr;
use std::process::Command;
use std::time::Duration;

use okla_test_support::TestProcess;

const LISTENING: &str = "okla-registry listening on ";

/// A registry process on an ephemeral port, killed when dropped.
pub(crate) struct RegistryProcess {
    _process: TestProcess,
    /// `http://127.0.0.1:PORT`
    pub(crate) url: String,
}

impl RegistryProcess {
    /// Starts the binary with `args` after `--host 127.0.0.1 --port 0`, and `env` added to the
    /// test's environment; returns once it printed its address.
    pub(crate) fn start<I, S>(args: I, env: &[(&str, &str)]) -> RegistryProcess
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(env!("CARGO_BIN_EXE_okla-registry"));
        command
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn");
        let process = TestProcess::start(command, &[LISTENING], Duration::from_secs(60));
        let url = process.address(LISTENING).to_owned();
        RegistryProcess {
            _process: process,
            url,
        }
    }
}
