//! Starting the real binary and running the Python clients against it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

/// An `okla-serving` process on ephemeral ports, killed when dropped.
pub(crate) struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub(crate) http: String,
    /// `127.0.0.1:PORT`
    pub(crate) grpc: String,
}

impl Server {
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

    /// Starts the server with exactly these flags besides host and ports (e.g. `--registry`
    /// without `--model-repository`).
    pub(crate) fn start_args(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_okla-serving"))
            .args([
                "--host",
                "127.0.0.1",
                "--http-port",
                "0",
                "--grpc-port",
                "0",
            ])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("okla-serving binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("okla-serving http listening on ") {
                    let _ = sender.send(("http", url.to_owned()));
                } else if let Some(address) = line.strip_prefix("okla-serving grpc listening on ") {
                    let _ = sender.send(("grpc", address.to_owned()));
                } else {
                    // The server's warnings, shown with the test's output when it fails.
                    eprintln!("okla-serving: {line}");
                }
            }
        });
        let (mut http, mut grpc) = (None, None);
        while http.is_none() || grpc.is_none() {
            let (kind, address) = receiver
                .recv_timeout(Duration::from_secs(120))
                .expect("okla-serving printed its listening addresses within 120 s");
            match kind {
                "http" => http = Some(address),
                _ => grpc = Some(address),
            }
        }
        Server {
            child,
            http: http.expect("http address"),
            grpc: grpc.expect("grpc address"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("serving/ sits in the workspace")
        .to_owned()
}

/// The committed example model repository (`examples/models`).
pub(crate) fn example_models() -> PathBuf {
    workspace_root().join("examples/models")
}

pub(crate) fn required_env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is unset; run the tests with `bash scripts/test`"))
}

/// Runs a Python script from `serving/tests/` with the test venv's interpreter and fails with
/// its output unless it exits 0. Returns its stdout.
pub(crate) fn run_python(script: &str, args: &[&str]) -> String {
    let python = required_env("OKLA_TEST_PYTHON");
    let output = Command::new(python)
        .arg(workspace_root().join("serving/tests").join(script))
        .args(args)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    stdout
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
                let body = json!({"inputs": [{"name": "features", "shape": [1, 8],
                    "datatype": "FP32", "data": [3, 2019, 60000, 1.6, 0, 1, 4, 12]}]});
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

/// A RabbitMQ vhost of its own on the broker at 127.0.0.1:5672 (guest/guest), deleted on drop
/// (also when the test panics). Needs `rabbitmqctl`; `bash scripts/test` starts the broker.
pub(crate) struct Vhost {
    name: String,
}

impl Vhost {
    pub(crate) fn create() -> Vhost {
        static CREATED: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let name = format!(
            "okla_serving_test_{}_{}_{nanos}",
            std::process::id(),
            CREATED.fetch_add(1, Ordering::Relaxed)
        );
        rabbitmqctl(&["add_vhost", &name]);
        let vhost = Vhost { name };
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &vhost.name,
            "guest",
            ".*",
            ".*",
            ".*",
        ]);
        vhost
    }

    pub(crate) fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:5672/{}", self.name)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let deleted = Command::new("rabbitmqctl")
            .args(["-q", "delete_vhost", &self.name])
            .output();
        if !deleted.is_ok_and(|output| output.status.success()) {
            eprintln!("could not delete RabbitMQ vhost {}", self.name);
        }
    }
}

fn rabbitmqctl(args: &[&str]) {
    let output = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .expect("rabbitmqctl runs (RabbitMQ must be installed; `bash scripts/test` starts it)");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
