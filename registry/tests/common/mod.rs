//! What the end-to-end test binaries share: starting the built `okla-registry` on an ephemeral
//! port, as users run it.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A registry process on an ephemeral port, killed when dropped.
pub(crate) struct RegistryProcess {
    child: Child,
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
        let mut child = Command::new(env!("CARGO_BIN_EXE_okla-registry"))
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("okla-registry binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("okla-registry listening on ") {
                    let _ = sender.send(url.to_owned());
                }
            }
        });
        let url = receiver
            .recv_timeout(Duration::from_secs(60))
            .expect("okla-registry printed its listening address within 60 s");
        RegistryProcess { child, url }
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
