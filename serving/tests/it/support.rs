//! Starting the real binary and running the Python clients against it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use okla_test_support::TestProcess;
pub(crate) use okla_test_support::{Vhost, required_env, workspace_root};
use reqwest::StatusCode;
use serde_json::json;

const HTTP_LISTENING: &str = "okla-serving http listening on ";
const GRPC_LISTENING: &str = "okla-serving grpc listening on ";

/// An `okla-serving` process on ephemeral ports, killed when dropped.
pub(crate) struct Server {
    process: TestProcess,
    /// Holds `--admin-token-file` for as long as the server runs.
    _admin_token: Option<tempfile::TempDir>,
    /// `http://127.0.0.1:PORT`
    pub(crate) http: String,
    /// `127.0.0.1:PORT`
    pub(crate) grpc: String,
}

impl Server {
    /// Sends the server SIGTERM, as Kubernetes does to stop a pod.
    pub(crate) fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.process.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM sent");
    }

    /// How the server exited, if it did.
    pub(crate) fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.process.exit_status()
    }

    /// Serves `repository` with default flags.
    pub(crate) fn start(repository: &Path) -> Server {
        Server::start_with(repository, &[])
    }

    /// Serves `repository` with extra command-line flags.
    pub(crate) fn start_with(repository: &Path, extra_args: &[&str]) -> Server {
        let repository = repository.to_str().expect("UTF-8 repository path");
        let mut args = vec!["--model-repository", repository];
        args.extend_from_slice(extra_args);
        Server::start_args(&args)
    }

    /// Serves `repository` with model control on (`--model-control explicit`), loads and
    /// unloads allowed with [`ADMIN_TOKEN`], and `extra_args`.
    pub(crate) fn start_controlled(repository: &Path, extra_args: &[&str]) -> Server {
        let directory = tempfile::tempdir().expect("temporary directory");
        let token_file = directory.path().join("admin-token");
        std::fs::write(&token_file, ADMIN_TOKEN).expect("write the admin token");
        let mut args = vec![
            "--model-control",
            "explicit",
            "--admin-token-file",
            token_file.to_str().expect("UTF-8 path"),
        ];
        args.extend_from_slice(extra_args);
        let mut server = Server::start_with(repository, &args);
        server._admin_token = Some(directory);
        server
    }

    /// Starts the server with exactly these flags besides host and ports (e.g. `--registry`
    /// without `--model-repository`).
    pub(crate) fn start_args(args: &[&str]) -> Server {
        Server::start_args_env(args, &[])
    }

    /// [`Server::start_args`] with `env` added to the test's environment.
    pub(crate) fn start_args_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_okla-serving"));
        command.envs(env.iter().copied());
        command
            .args([
                "--host",
                "127.0.0.1",
                "--http-port",
                "0",
                "--grpc-port",
                "0",
            ])
            .args(args)
            .env("RUST_LOG", "warn");
        let process = TestProcess::start(
            command,
            &[HTTP_LISTENING, GRPC_LISTENING],
            Duration::from_secs(120),
        );
        Server {
            http: process.address(HTTP_LISTENING).to_owned(),
            grpc: process.address(GRPC_LISTENING).to_owned(),
            process,
            _admin_token: None,
        }
    }
}

/// The committed example model repository (`examples/models`).
pub(crate) fn example_models() -> PathBuf {
    workspace_root().join("examples/models")
}

/// The token [`Server::start_controlled`] gives model control to.
pub(crate) const ADMIN_TOKEN: &str = "serving-tests-admin-token";

/// Runs a Python script from `serving/tests/` with the test venv's interpreter and fails with
/// its output unless it exits 0. Returns its stdout.
pub(crate) fn run_python(script: &str, args: &[&str]) -> String {
    run_python_env(script, args, &[])
}

/// [`run_python`] with `env` added to the script's environment.
pub(crate) fn run_python_env(script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    okla_test_support::run_python(
        &workspace_root().join("serving/tests").join(script),
        args,
        env,
    )
}

/// Polls `condition` every 100 ms, failing the test after 60 s.
pub(crate) async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A V2 infer request body for the pricing model: one car's eight features.
pub(crate) fn pricing_request() -> serde_json::Value {
    json!({"inputs": [{"name": "features", "shape": [1, 8],
        "datatype": "FP32", "data": [3, 2019, 60000, 1.6, 0, 1, 4, 12]}]})
}

/// Closed-loop V2 infer calls on the pricing model, counting answers and failures, until
/// [`Traffic::finish`]: what must see no failure while versions come and go.
pub(crate) struct Traffic {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    pub(crate) fn start(client: &reqwest::Client, infer_url: String) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let task = {
            let client = client.clone();
            let (stop, answered, failed) = (stop.clone(), answered.clone(), failed.clone());
            tokio::spawn(async move {
                let body = pricing_request();
                while !stop.load(Ordering::Relaxed) {
                    match client.post(&infer_url).json(&body).send().await {
                        Ok(response) if response.status() == StatusCode::OK => {
                            answered.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        };
        Traffic {
            stop,
            answered,
            failed,
            task,
        }
    }

    /// Stops the calls and returns (answered, failed).
    pub(crate) async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("traffic task");
        (
            self.answered.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}
