//! What the end-to-end test binaries share: starting the built `okla-registry` on an ephemeral
//! port, as users run it.

use std::ffi::OsStr;
use std::process::Command;
use std::time::Duration;

use okla_test_support::TestProcess;

const LISTENING: &str = "okla-registry listening on ";

/// A registry process on an ephemeral port, killed when dropped.
pub(crate) struct RegistryProcess {
    process: TestProcess,
    /// `http://127.0.0.1:PORT`
    pub(crate) url: String,
}

impl RegistryProcess {
    /// Starts the binary with authentication off (`--no-auth`, as every test but the auth
    /// tests runs it), `args` after `--host 127.0.0.1 --port 0`, and `env` added to the test's
    /// environment; returns once it printed its address.
    #[allow(dead_code)] // each test binary compiles this module and uses one of the two
    pub(crate) fn start<I, S>(args: I, env: &[(&str, &str)]) -> RegistryProcess
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::launch(true, args, env)
    }

    /// Like [`RegistryProcess::start`], but with authentication on, as users run it: `env`
    /// must give the first admin's password (`OKLA_ADMIN_PASSWORD`) for an empty user store.
    #[allow(dead_code)] // each test binary compiles this module and uses one of the two
    pub(crate) fn start_authenticated<I, S>(args: I, env: &[(&str, &str)]) -> RegistryProcess
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::launch(false, args, env)
    }

    fn launch<I, S>(no_auth: bool, args: I, env: &[(&str, &str)]) -> RegistryProcess
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(env!("CARGO_BIN_EXE_okla-registry"));
        command
            .args(["--host", "127.0.0.1", "--port", "0"])
            // Whether and how auth is on is the test's choice, not its environment's.
            .env_remove("OKLA_NO_AUTH")
            .env_remove("OKLA_ADMIN_PASSWORD")
            .env_remove("OKLA_ADMIN_PASSWORD_FILE")
            .env_remove("OKLA_DEFAULT_PERMISSION");
        if no_auth {
            command.arg("--no-auth");
        }
        command
            .env("RUST_LOG", "warn")
            .args(args)
            .envs(env.iter().copied());
        let process = TestProcess::start(command, &[LISTENING], Duration::from_secs(60));
        let url = process.address(LISTENING).to_owned();
        RegistryProcess { process, url }
    }

    /// Everything the registry printed so far (its log).
    #[allow(dead_code)] // each test binary compiles this module; only the auth tests read logs
    pub(crate) fn output(&self) -> String {
        self.process.output()
    }
}
