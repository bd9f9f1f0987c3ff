//! The `okla` binary against a real okla-registry in-process: each command's output and exit
//! code, `--json`, and the errors (a refusal exits 1, a usage error 2, an unreachable registry 3).

use std::time::Duration;

use okla_client::{
    Client, ClientOptions, Credentials, EffectivePermission, Permission, ResourceType, RunStatus,
};
use serde_json::Value;

mod common;

use common::{Registry, Serving, model_dir};

/// What a run of `okla` left.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn success(self) -> Ran {
        assert_eq!(self.code, Some(0), "{self:#?}");
        assert!(self.stderr.is_empty(), "{self:#?}");
        self
    }

    fn json(self) -> Value {
        let ran = self.success();
        serde_json::from_str(&ran.stdout).unwrap_or_else(|err| panic!("{err}: {ran:#?}"))
    }
}

/// Runs the built `okla` with `--registry url` and `args`, off the async runtime.
async fn okla(url: &str, args: &[&str]) -> Ran {
    okla_env(url, args, &[]).await
}

/// [`okla`] with `env` set (credentials), and none from the test's own environment.
async fn okla_env(url: &str, args: &[&str], env: &[(&str, &str)]) -> Ran {
    okla_stdin(url, args, env, "").await
}

/// [`okla_env`] with `stdin` as the standard input.
async fn okla_stdin(url: &str, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Ran {
    let url = url.to_owned();
    let stdin = stdin.to_owned();
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let output = assert_cmd::Command::cargo_bin("okla")
            .expect("okla is built")
            .env_remove("OKLA_REGISTRY_URL")
            .env_remove("OKLA_ACTOR")
            .env_remove("OKLA_TOKEN")
            .env_remove("OKLA_TOKEN_FILE")
            .env_remove("MLFLOW_TRACKING_TOKEN")
            .env_remove("MLFLOW_TRACKING_USERNAME")
            .env_remove("MLFLOW_TRACKING_PASSWORD")
            .envs(env)
            .arg("--registry")
            .arg(url)
            .args(args)
            .write_stdin(stdin)
            .timeout(Duration::from_secs(60))
            .output()
            .expect("okla runs");
        Ran {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .expect("okla task")
}

/// Pushes a directory of `files` as a new version of `model`; returns the version.
async fn push(registry: &Registry, model: &str, files: &[(&str, &[u8])]) -> u64 {
    let directory = model_dir(files);
    let path = directory
        .path()
        .to_str()
        .expect("UTF-8 temp path")
        .to_owned();
    let answer = okla(&registry.url, &["--json", "push", model, &path])
        .await
        .json();
    answer["version"].as_u64().expect("a version number")
}

/// The data row of a table whose cells include `key`, as its cells.
fn row<'a>(table: &'a str, key: &str) -> Option<Vec<&'a str>> {
    table
        .lines()
        .map(|line| {
            line.split(['│', '┆'])
                .map(str::trim)
                .filter(|cell| !cell.is_empty())
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.contains(&key))
}

#[tokio::test(flavor = "multi_thread")]
async fn push_show_stage_and_alias() {
    let registry = Registry::start().await;
    let url = registry.url.as_str();
    let directory = model_dir(&[("model.onnx", b"weights"), ("conf/config.toml", b"a = 1")]);
    let path = directory.path().to_str().expect("UTF-8 temp path");

    let pushed = okla(
        url,
        &[
            "push",
            "pricing",
            path,
            "--experiment",
            "pricing-jobs",
            "--run-name",
            "nightly",
        ],
    )
    .await
    .success();
    assert!(
        pushed.stdout.contains("pushed pricing version 1"),
        "{pushed:#?}"
    );

    let shown = okla(url, &["models", "show", "pricing"]).await.success();
    let version_row = row(&shown.stdout, "1").expect("version 1 listed");
    assert!(version_row.contains(&"None"), "{shown:#?}");

    let files = okla(url, &["versions", "show", "pricing", "1"])
        .await
        .success();
    let weights = row(&files.stdout, "model.onnx").expect("model.onnx listed");
    assert_eq!(weights[1], "7", "{files:#?}");
    assert_eq!(weights[2].len(), 64, "a sha256: {files:#?}");
    assert!(
        row(&files.stdout, "conf/config.toml").is_some(),
        "{files:#?}"
    );
    let files = okla(url, &["--json", "versions", "show", "pricing", "1"])
        .await
        .json();
    assert_eq!(files["files"].as_array().map(Vec::len), Some(2), "{files}");

    let staged = okla(url, &["versions", "stage", "pricing", "1", "production"])
        .await
        .success();
    assert!(
        staged
            .stdout
            .contains("pricing version 1: stage Production"),
        "{staged:#?}"
    );
    let aliased = okla(url, &["versions", "alias", "pricing", "champion", "1"])
        .await
        .success();
    assert!(aliased.stdout.contains("pricing@champion"), "{aliased:#?}");

    let shown = okla(url, &["--json", "models", "show", "pricing"])
        .await
        .json();
    assert_eq!(
        shown["versions"][0]["current_stage"], "Production",
        "{shown}"
    );
    assert_eq!(shown["versions"][0]["aliases"][0], "champion", "{shown}");

    okla(url, &["versions", "unalias", "pricing", "champion"])
        .await
        .success();
    let shown = okla(url, &["--json", "models", "show", "pricing"])
        .await
        .json();
    assert_eq!(shown["model"]["aliases"], serde_json::json!([]), "{shown}");

    let models = okla(url, &["--json", "models", "list", "--filter", "ric"])
        .await
        .json();
    assert_eq!(models[0]["name"], "pricing", "{models}");
    let models = okla(url, &["models", "list", "--filter", "nothing-like-it"])
        .await
        .success();
    assert!(!models.stdout.contains("pricing"), "{models:#?}");

    let experiments = okla(url, &["experiments", "list", "--filter", "pricing"])
        .await
        .success();
    assert!(
        row(&experiments.stdout, "pricing-jobs").is_some(),
        "{experiments:#?}"
    );

    // A second push with a stage and alias: version 2, staged and aliased at once.
    let directory = model_dir(&[("model.onnx", b"weights2")]);
    let path = directory.path().to_str().expect("UTF-8 temp path");
    let pushed = okla(
        url,
        &[
            "--json",
            "push",
            "pricing",
            path,
            "--stage",
            "Staging",
            "--alias",
            "challenger",
        ],
    )
    .await
    .json();
    assert_eq!(pushed["version"], 2, "{pushed}");
    assert_eq!(pushed["current_stage"], "Staging", "{pushed}");
    assert_eq!(pushed["aliases"][0], "challenger", "{pushed}");
}

async fn logged_run(client: &Client, alpha: &str, rmse: f64) -> String {
    let experiment = client
        .get_or_create_experiment("sweep")
        .await
        .expect("experiment");
    let run = client
        .create_run(&experiment, &format!("alpha-{alpha}"), &[])
        .await
        .expect("run");
    run.log_param("alpha", alpha).await.expect("param");
    run.log_param("layers", "3").await.expect("param");
    let metrics = run.metrics();
    metrics.log("rmse", rmse + 1.0, 0).await.expect("metric");
    metrics.log("rmse", rmse, 1).await.expect("metric");
    metrics.log("epochs", 2.0, 0).await.expect("metric");
    run.end_run(RunStatus::Finished).await.expect("ended");
    run.id().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_list_and_compare() {
    let registry = Registry::start().await;
    let client = registry.client();
    let url = registry.url.as_str();
    let first = logged_run(&client, "0.5", 0.75).await;
    let second = logged_run(&client, "0.7", 1.5).await;

    let listed = okla(url, &["runs", "list", "sweep"]).await.success();
    assert!(row(&listed.stdout, &first).is_some(), "{listed:#?}");
    assert!(row(&listed.stdout, &second).is_some(), "{listed:#?}");
    let filtered = okla(
        url,
        &[
            "--json",
            "runs",
            "list",
            "sweep",
            "--filter",
            "metrics.rmse < 1",
        ],
    )
    .await
    .json();
    let ids: Vec<&str> = filtered
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|run| run["info"]["run_id"].as_str())
        .collect();
    assert_eq!(ids, [first.as_str()], "{filtered}");
    let ordered = okla(
        url,
        &[
            "--json",
            "runs",
            "list",
            "sweep",
            "--order-by",
            "metrics.rmse DESC",
            "--max",
            "1",
        ],
    )
    .await
    .json();
    assert_eq!(ordered[0]["info"]["run_id"], second.as_str(), "{ordered}");
    assert_eq!(ordered.as_array().map(Vec::len), Some(1), "{ordered}");

    let compared = okla(url, &["runs", "compare", &first, &second])
        .await
        .success();
    let alpha = row(&compared.stdout, "alpha").expect("alpha row");
    assert_eq!(alpha, ["*", "alpha", "0.5", "0.7"], "{compared:#?}");
    let layers = row(&compared.stdout, "layers").expect("layers row");
    assert_eq!(layers, ["layers", "3", "3"], "{compared:#?}");
    let rmse = row(&compared.stdout, "rmse").expect("rmse row");
    assert_eq!(
        rmse,
        ["*", "rmse", "0.75", "1.5"],
        "latest values: {compared:#?}"
    );
    assert!(row(&compared.stdout, "epochs").is_some(), "{compared:#?}");

    let differing = okla(url, &["runs", "compare", &first, &second, "--diff-only"])
        .await
        .success();
    assert!(row(&differing.stdout, "alpha").is_some(), "{differing:#?}");
    assert!(row(&differing.stdout, "layers").is_none(), "{differing:#?}");
    assert!(row(&differing.stdout, "epochs").is_none(), "{differing:#?}");

    let json = okla(url, &["--json", "runs", "compare", &first, &second])
        .await
        .json();
    assert_eq!(json["params"][0]["key"], "alpha", "{json}");
    assert_eq!(json["params"][0]["differs"], true, "{json}");

    let missing = okla(url, &["runs", "compare", &first, "no-such-run"]).await;
    assert_eq!(missing.code, Some(1), "{missing:#?}");
    assert!(missing.stderr.starts_with("error: "), "{missing:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_promote_canary_status_and_rollback() {
    let registry = Registry::start().await;
    let url = registry.url.as_str();
    let v1 = push(
        &registry,
        "pricing",
        &[("model.bin", b"v1"), ("meta.json", b"{}")],
    )
    .await;
    let v2 = push(
        &registry,
        "pricing",
        &[("model.bin", b"v2"), ("meta.json", b"{}")],
    )
    .await;
    assert_eq!((v1, v2), (1, 2));

    let status = okla(url, &["deploy", "status", "pricing"]).await.success();
    assert!(
        status.stdout.contains("no serving node reports pricing"),
        "{status:#?}"
    );

    let promoted = okla(
        url,
        &["--actor", "alice", "deploy", "pricing", "--promote", "1"],
    )
    .await
    .success();
    assert_eq!(
        row(&promoted.stdout, "100%").expect("route"),
        ["1", "100%"],
        "{promoted:#?}"
    );
    let canary = okla(
        url,
        &["deploy", "pricing", "--canary", "2", "--weight", "10"],
    )
    .await
    .success();
    assert_eq!(row(&canary.stdout, "90%").expect("old"), ["1", "90%"]);
    assert_eq!(row(&canary.stdout, "10%").expect("canary"), ["2", "10%"]);
    // A second canary on a split deployment is refused before anything is sent.
    let again = okla(
        url,
        &["deploy", "pricing", "--canary", "2", "--weight", "20"],
    )
    .await;
    assert_eq!(again.code, Some(1), "{again:#?}");
    assert!(again.stderr.contains("has 2 routes"), "{again:#?}");

    let status = okla(url, &["--json", "deploy", "status", "pricing"])
        .await
        .json();
    assert_eq!(status["deployment"]["source"], "explicit", "{status}");
    assert_eq!(status["deployment"]["routes"][1]["version"], 2, "{status}");
    assert_eq!(status["nodes"], serde_json::json!([]), "{status}");

    let rolled_back = okla(
        url,
        &[
            "deploy",
            "pricing",
            "--rollback",
            "--to",
            "1",
            "--reason",
            "canary too slow",
        ],
    )
    .await
    .success();
    assert_eq!(
        row(&rolled_back.stdout, "100%").expect("route"),
        ["1", "100%"],
        "{rolled_back:#?}"
    );
    let status = okla(url, &["--json", "deploy", "status", "pricing"])
        .await
        .json();
    assert_eq!(
        status["deployment"]["routes"],
        serde_json::json!([{"version": 1, "weight": 100}]),
        "{status}"
    );

    // No node serves anything: waiting runs out, and says so.
    let waited = okla(url, &["deploy", "pricing", "--promote", "2", "--wait", "0"]).await;
    assert_eq!(waited.code, Some(1), "{waited:#?}");
    assert!(waited.stderr.contains("no node reports"), "{waited:#?}");

    let usage = okla(url, &["deploy", "pricing"]).await;
    assert_eq!(usage.code, Some(2), "{usage:#?}");
    let usage = okla(
        url,
        &["deploy", "pricing", "--canary", "2", "--weight", "100"],
    )
    .await;
    assert_eq!(usage.code, Some(2), "{usage:#?}");
    // --reason goes with --rollback or --undeploy only.
    let usage = okla(
        url,
        &["deploy", "pricing", "--promote", "1", "--reason", "x"],
    )
    .await;
    assert_eq!(usage.code, Some(2), "{usage:#?}");

    // Undeploying takes the model out of the fleet, with the reason in its history.
    let undeployed = okla(
        url,
        &[
            "--json",
            "deploy",
            "pricing",
            "--undeploy",
            "--reason",
            "retired",
        ],
    )
    .await
    .json();
    assert_eq!(
        undeployed["deployment"]["source"], "undeployed",
        "{undeployed}"
    );
    assert_eq!(undeployed["deployment"]["routes"], serde_json::json!([]));
    let status = okla(url, &["--json", "deploy", "status", "pricing"])
        .await
        .json();
    assert_eq!(status["deployment"]["source"], "undeployed", "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_exit_1_with_the_registry_message() {
    let registry = Registry::start().await;
    let url = registry.url.as_str();
    for args in [
        &["models", "show", "nope"][..],
        &["versions", "show", "nope", "1"],
        &["deploy", "status", "nope"],
        &["runs", "list", "no-such-experiment"],
    ] {
        let ran = okla(url, args).await;
        assert_eq!(ran.code, Some(1), "{args:?}: {ran:#?}");
        assert!(
            ran.stderr.starts_with("error: ") && ran.stderr.contains("RESOURCE_DOES_NOT_EXIST"),
            "{args:?}: {ran:#?}"
        );
        assert_eq!(ran.stderr.lines().count(), 1, "one line: {ran:#?}");
        assert!(ran.stdout.is_empty(), "{ran:#?}");
    }
    let not_a_dir = okla(url, &["push", "pricing", "/nonexistent/okla-cli-test"]).await;
    assert_eq!(not_a_dir.code, Some(1), "{not_a_dir:#?}");
    assert!(not_a_dir.stderr.contains("/nonexistent/okla-cli-test"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_registry_exits_3_with_a_hint() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("bound"))
    };
    let ran = okla(&closed, &["models", "list"]).await;
    assert_eq!(ran.code, Some(3), "{ran:#?}");
    assert!(
        ran.stderr.contains(&format!(
            "is okla-registry running at {closed}? set --registry or OKLA_REGISTRY_URL"
        )),
        "{ran:#?}"
    );
    let usage = okla(&closed, &["models", "frobnicate"]).await;
    assert_eq!(usage.code, Some(2), "{usage:#?}");
    let bad_url = okla("registry:5000", &["models", "list"]).await;
    assert_eq!(bad_url.code, Some(1), "{bad_url:#?}");
    assert!(
        bad_url.stderr.contains("invalid registry URL"),
        "{bad_url:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn predict_answers_with_the_version_and_names_bad_input() {
    let registry = Registry::start().await;
    let serving = Serving::start().await;
    let input = r#"{"features": [[3, 2019, 60000, 1.6, 0, 1, 4, 12]]}"#;
    let answer = okla(
        &registry.url,
        &[
            "--json",
            "predict",
            "pricing",
            "--serving",
            &serving.grpc_url,
            "--input",
            input,
        ],
    )
    .await
    .json();
    assert_eq!(answer["model_version"], 1);
    let price = answer["outputs"][0]["data"][0].as_f64().expect("a price");
    assert!(price.is_finite() && price > 0.0, "{answer}");

    let table = okla(
        &registry.url,
        &[
            "predict",
            "pricing",
            "--serving",
            &serving.grpc_url,
            "--input",
            input,
        ],
    )
    .await
    .success();
    assert!(
        table.stdout.contains("answered by pricing version 1"),
        "{table:#?}"
    );

    let misnamed = okla(
        &registry.url,
        &[
            "predict",
            "pricing",
            "--serving",
            &serving.grpc_url,
            "--input",
            r#"{"featurez": [[1]]}"#,
        ],
    )
    .await;
    assert_eq!(misnamed.code, Some(1), "{misnamed:#?}");
    assert!(
        misnamed.stderr.contains("no input 'featurez'") && misnamed.stderr.contains("features"),
        "{misnamed:#?}"
    );

    let unreachable = okla(
        &registry.url,
        &[
            "predict",
            "pricing",
            "--serving",
            "http://127.0.0.1:9",
            "--input",
            input,
        ],
    )
    .await;
    assert_eq!(unreachable.code, Some(3), "{unreachable:#?}");
    assert!(
        unreachable.stderr.contains("OKLA_SERVING_URL"),
        "{unreachable:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_come_from_the_environment_and_tokens_are_created_listed_and_revoked() {
    let password = "cli-admin-password";
    let registry = Registry::start_with_admin(Some(password)).await;
    let admin = [
        ("MLFLOW_TRACKING_USERNAME", "admin"),
        ("MLFLOW_TRACKING_PASSWORD", password),
    ];

    let anonymous = okla(&registry.url, &["models", "list"]).await;
    assert_eq!(anonymous.code, Some(1), "{anonymous:#?}");
    assert!(
        anonymous.stderr.contains("UNAUTHENTICATED"),
        "{anonymous:#?}"
    );
    let wrong = okla_env(
        &registry.url,
        &["models", "list"],
        &[
            ("MLFLOW_TRACKING_USERNAME", "admin"),
            ("MLFLOW_TRACKING_PASSWORD", "wrong-password"),
        ],
    )
    .await;
    assert!(wrong.stderr.contains("UNAUTHENTICATED"), "{wrong:#?}");

    let created = okla_env(&registry.url, &["tokens", "create", "ci"], &admin).await;
    assert_eq!(created.code, Some(0), "{created:#?}");
    let secret = created.stdout.trim().to_owned();
    assert!(secret.starts_with("okla_"), "{created:#?}");
    assert!(
        !created.stderr.contains(&secret),
        "the secret goes to stdout only"
    );

    let with_token = [("OKLA_TOKEN", secret.as_str())];
    okla_env(&registry.url, &["models", "list"], &with_token)
        .await
        .success();
    let listed = okla_env(&registry.url, &["--json", "tokens", "list"], &with_token)
        .await
        .json();
    let tokens = listed.as_array().expect("a list");
    assert_eq!(tokens.len(), 1, "{listed}");
    assert_eq!(tokens[0]["name"], "ci");
    assert!(
        !listed.to_string().contains(&secret),
        "a list never shows a secret"
    );

    let id = tokens[0]["id"].as_str().expect("id").to_owned();
    okla_env(&registry.url, &["tokens", "revoke", &id], &admin)
        .await
        .success();
    let revoked = okla_env(&registry.url, &["models", "list"], &with_token).await;
    assert_eq!(revoked.code, Some(1), "{revoked:#?}");
    assert!(revoked.stderr.contains("UNAUTHENTICATED"), "{revoked:#?}");

    // A token file works as the variable does, and a missing file is named.
    let directory = tempfile::tempdir().expect("temporary directory");
    let file = directory.path().join("token");
    let fresh = okla_env(&registry.url, &["tokens", "create", "file"], &admin).await;
    std::fs::write(&file, fresh.stdout).expect("write token");
    let file = file.to_str().expect("UTF-8 path");
    okla(&registry.url, &["--token-file", file, "models", "list"])
        .await
        .success();
    let missing = okla(
        &registry.url,
        &["--token-file", "/nonexistent/token", "models", "list"],
    )
    .await;
    assert!(
        missing.stderr.contains("/nonexistent/token"),
        "{missing:#?}"
    );
}

/// The admin's password on the registries the `users` tests start.
const ADMIN_PASSWORD: &str = "cli-admin-password";

/// The environment that signs `okla` in as `username` with `password`.
fn basic<'a>(username: &'a str, password: &'a str) -> [(&'static str, &'a str); 2] {
    [
        ("MLFLOW_TRACKING_USERNAME", username),
        ("MLFLOW_TRACKING_PASSWORD", password),
    ]
}

/// Runs `okla` against one registry and keeps everything it printed, so a test can check what
/// never shows.
struct Transcript {
    url: String,
    printed: String,
}

impl Transcript {
    fn new(registry: &Registry) -> Transcript {
        Transcript {
            url: registry.url.clone(),
            printed: String::new(),
        }
    }

    async fn okla(&mut self, args: &[&str], env: &[(&str, &str)]) -> Ran {
        self.okla_stdin(args, env, "").await
    }

    async fn okla_stdin(&mut self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Ran {
        let ran = okla_stdin(&self.url, args, env, stdin).await;
        self.printed.push_str(&ran.stdout);
        self.printed.push_str(&ran.stderr);
        ran
    }

    fn assert_never_printed(&self, secret: &str) {
        assert!(
            !self.printed.contains(secret),
            "'{secret}' was printed:\n{}",
            self.printed
        );
    }
}

/// Asserts `ran` failed with exit code 1 and `error_code` on stderr.
fn assert_refused(ran: &Ran, error_code: &str) {
    assert_eq!(ran.code, Some(1), "{ran:#?}");
    assert!(
        ran.stderr.starts_with("error: ") && ran.stderr.contains(error_code),
        "{error_code}: {ran:#?}"
    );
}

/// A file holding `contents`, in `directory`.
fn secret_file(directory: &tempfile::TempDir, name: &str, contents: &str) -> String {
    let path = directory.path().join(name);
    std::fs::write(&path, contents).expect("write the password file");
    path.to_str().expect("UTF-8 temp path").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn users_are_created_sign_in_become_admins_and_are_deleted() {
    let registry = Registry::start_with_admin(Some(ADMIN_PASSWORD)).await;
    let mut cli = Transcript::new(&registry);
    let admin = basic("admin", ADMIN_PASSWORD);
    let password = "bobs-password-1234";
    let directory = tempfile::tempdir().expect("temporary directory");
    // With the newline `echo` leaves: signing in below shows it was not part of the password.
    let password_file = secret_file(&directory, "bob", &format!("{password}\n"));
    let bob = basic("bob", password);

    let created = cli
        .okla(
            &["users", "create", "bob", "--password-file", &password_file],
            &admin,
        )
        .await
        .success();
    assert!(created.stdout.contains("created bob"), "{created:#?}");
    cli.okla(&["models", "list"], &bob).await.success();
    let shown = cli
        .okla(&["--json", "users", "show", "bob"], &bob)
        .await
        .json();
    assert_eq!(shown["username"], "bob", "{shown}");
    assert_eq!(shown["is_admin"], false, "{shown}");
    let listed = cli.okla(&["users", "list"], &bob).await.success();
    assert_eq!(
        row(&listed.stdout, "admin").expect("admin listed")[1..],
        ["admin", "yes"]
    );
    assert_eq!(
        row(&listed.stdout, "bob").expect("bob listed")[1..],
        ["bob", "no"]
    );

    let refused = cli
        .okla(
            &[
                "users",
                "create",
                "carol",
                "--password-file",
                &password_file,
            ],
            &bob,
        )
        .await;
    assert_refused(&refused, "PERMISSION_DENIED");
    let refused = cli.okla(&["users", "show", "admin"], &bob).await;
    assert_refused(&refused, "PERMISSION_DENIED");

    // The flag takes effect on bob's next call, cached credentials notwithstanding.
    let promoted = cli
        .okla(&["users", "set-admin", "bob", "true"], &admin)
        .await
        .success();
    assert_eq!(promoted.stdout.trim(), "bob is an admin", "{promoted:#?}");
    cli.okla(
        &[
            "users",
            "create",
            "carol",
            "--password-file",
            &password_file,
        ],
        &bob,
    )
    .await
    .success();
    let demoted = cli
        .okla(&["--json", "users", "set-admin", "bob", "false"], &admin)
        .await
        .json();
    assert_eq!(demoted["is_admin"], false, "{demoted}");
    let refused = cli.okla(&["users", "delete", "carol"], &bob).await;
    assert_refused(&refused, "PERMISSION_DENIED");
    let usage = cli
        .okla(&["users", "set-admin", "bob", "maybe"], &admin)
        .await;
    assert_eq!(usage.code, Some(2), "{usage:#?}");

    let created = cli
        .okla(
            &[
                "--json",
                "users",
                "create",
                "dana",
                "--admin",
                "--password-file",
                &password_file,
            ],
            &admin,
        )
        .await
        .json();
    assert_eq!(created["is_admin"], true, "{created}");
    let shown = cli
        .okla(&["--json", "users", "show", "dana"], &admin)
        .await
        .json();
    assert_eq!(shown["is_admin"], true, "{shown}");

    let deleted = cli
        .okla(&["users", "delete", "bob"], &admin)
        .await
        .success();
    assert_eq!(deleted.stdout.trim(), "deleted bob", "{deleted:#?}");
    let gone = cli.okla(&["models", "list"], &bob).await;
    assert_refused(&gone, "UNAUTHENTICATED");
    let gone = cli.okla(&["users", "show", "bob"], &admin).await;
    assert_refused(&gone, "RESOURCE_DOES_NOT_EXIST");
    let itself = cli.okla(&["users", "delete", "admin"], &admin).await;
    assert_refused(&itself, "BAD_REQUEST");

    cli.assert_never_printed(password);
    cli.assert_never_printed(ADMIN_PASSWORD);
}

#[tokio::test(flavor = "multi_thread")]
async fn users_grants_are_listed_enforced_and_revoked() {
    let registry = Registry::start_with_admin(Some(ADMIN_PASSWORD)).await;
    let mut cli = Transcript::new(&registry);
    let admin = basic("admin", ADMIN_PASSWORD);
    let password = "bobs-password-1234";
    let bob = basic("bob", password);
    cli.okla_stdin(
        &["users", "create", "bob", "--password-stdin"],
        &admin,
        password,
    )
    .await
    .success();
    let admin_client = Client::with_options(
        &registry.url,
        ClientOptions {
            credentials: Some(Credentials::Basic {
                username: "admin".to_owned(),
                password: ADMIN_PASSWORD.to_owned(),
            }),
            ..ClientOptions::default()
        },
    )
    .expect("client");
    admin_client
        .create_registered_model("pricing")
        .await
        .expect("model created");
    let experiment = admin_client
        .get_or_create_experiment("pricing-jobs")
        .await
        .expect("experiment created");

    let none = cli
        .okla(&["users", "permissions", "bob"], &admin)
        .await
        .success();
    assert_eq!(none.stdout.trim(), "no grants for bob", "{none:#?}");

    let granted = cli
        .okla(
            &["users", "grant", "bob", "--model", "pricing", "READ"],
            &admin,
        )
        .await
        .success();
    assert_eq!(
        granted.stdout.trim(),
        "granted READ on registered_model 'pricing' to bob",
        "{granted:#?}"
    );
    cli.okla(
        &[
            "users",
            "grant",
            "bob",
            "--experiment",
            &experiment.0,
            "edit",
        ],
        &admin,
    )
    .await
    .success();
    let listed = cli
        .okla(&["users", "permissions", "bob"], &admin)
        .await
        .success();
    assert_eq!(
        row(&listed.stdout, "pricing").expect("the model's grant"),
        ["registered_model", "pricing", "READ"],
        "{listed:#?}"
    );
    assert_eq!(
        row(&listed.stdout, &experiment.0).expect("the experiment's grant"),
        ["experiment", experiment.0.as_str(), "EDIT"],
        "{listed:#?}"
    );
    // Users may read their own grants.
    let own = cli
        .okla(&["--json", "users", "permissions", "bob"], &bob)
        .await
        .json();
    assert_eq!(own["is_admin"], false, "{own}");
    assert_eq!(
        own["permissions"][1],
        serde_json::json!({
            "resource_type": "registered_model",
            "resource_pattern": "pricing",
            "permission": "READ",
        }),
        "{own}"
    );
    assert_eq!(
        admin_client
            .get_permission("bob", ResourceType::RegisteredModel, "pricing")
            .await
            .expect("bob's permission"),
        EffectivePermission {
            permission: Permission::Read,
            allowed: false,
        }
    );

    let again = cli
        .okla(
            &["users", "grant", "bob", "--model", "pricing", "EDIT"],
            &admin,
        )
        .await;
    assert_refused(&again, "RESOURCE_ALREADY_EXISTS");
    let own_grant = cli
        .okla(
            &["users", "grant", "bob", "--model", "pricing", "MANAGE"],
            &bob,
        )
        .await;
    assert_refused(&own_grant, "PERMISSION_DENIED");

    let revoked = cli
        .okla(&["users", "revoke", "bob", "--model", "pricing"], &admin)
        .await
        .success();
    assert_eq!(
        revoked.stdout.trim(),
        "revoked bob's grant on registered_model 'pricing'",
        "{revoked:#?}"
    );
    let listed = cli
        .okla(&["--json", "users", "permissions", "bob"], &admin)
        .await
        .json();
    assert_eq!(
        listed["permissions"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    let missing = cli
        .okla(&["users", "revoke", "bob", "--model", "pricing"], &admin)
        .await;
    assert_refused(&missing, "RESOURCE_DOES_NOT_EXIST");

    // A DENY grant takes effect at once; revoking it gives the default (READ) back.
    cli.okla(&["models", "show", "pricing"], &bob)
        .await
        .success();
    cli.okla(
        &["users", "grant", "bob", "--model", "pricing", "DENY"],
        &admin,
    )
    .await
    .success();
    let denied = cli.okla(&["models", "show", "pricing"], &bob).await;
    assert_refused(&denied, "PERMISSION_DENIED");
    cli.okla(&["users", "revoke", "bob", "--model", "pricing"], &admin)
        .await
        .success();
    cli.okla(&["models", "show", "pricing"], &bob)
        .await
        .success();

    for usage in [
        &["users", "grant", "bob", "READ"][..],
        &[
            "users",
            "grant",
            "bob",
            "--model",
            "pricing",
            "--experiment",
            "1",
            "READ",
        ],
        &[
            "users",
            "grant",
            "bob",
            "--model",
            "pricing",
            "NO_PERMISSIONS",
        ],
        &["users", "revoke", "bob"],
    ] {
        let ran = cli.okla(usage, &admin).await;
        assert_eq!(ran.code, Some(2), "{usage:?}: {ran:#?}");
    }
    cli.assert_never_printed(password);
}

#[tokio::test(flavor = "multi_thread")]
async fn users_passwords_come_from_a_file_or_stdin_never_the_command_line() {
    let registry = Registry::start_with_admin(Some(ADMIN_PASSWORD)).await;
    let mut cli = Transcript::new(&registry);
    let admin = basic("admin", ADMIN_PASSWORD);
    let directory = tempfile::tempdir().expect("temporary directory");
    let first = "first-password-1234";
    let second = "second-password-1234";
    let third = "third-password-1234";

    let unsourced = cli.okla(&["users", "create", "bob"], &admin).await;
    assert_eq!(unsourced.code, Some(2), "{unsourced:#?}");
    assert!(
        unsourced.stderr.contains("--password-file")
            && unsourced.stderr.contains("--password-stdin"),
        "{unsourced:#?}"
    );
    let on_the_command_line = cli
        .okla(&["users", "create", "bob", "--password", first], &admin)
        .await;
    assert_eq!(
        on_the_command_line.code,
        Some(2),
        "{on_the_command_line:#?}"
    );
    let both = cli
        .okla_stdin(
            &[
                "users",
                "create",
                "bob",
                "--password-stdin",
                "--password-file",
                "/nonexistent/password",
            ],
            &admin,
            first,
        )
        .await;
    assert_eq!(both.code, Some(2), "{both:#?}");
    let missing = cli
        .okla(
            &[
                "users",
                "create",
                "bob",
                "--password-file",
                "/nonexistent/password",
            ],
            &admin,
        )
        .await;
    assert_eq!(missing.code, Some(1), "{missing:#?}");
    assert!(
        missing.stderr.contains("/nonexistent/password"),
        "{missing:#?}"
    );
    let short = cli
        .okla_stdin(
            &["users", "create", "bob", "--password-stdin"],
            &admin,
            "short\n",
        )
        .await;
    assert_refused(&short, "at least 12 characters");
    cli.assert_never_printed("short");

    cli.okla_stdin(
        &["users", "create", "bob", "--password-stdin"],
        &admin,
        &format!("{first}\r\n"),
    )
    .await
    .success();
    cli.okla(&["models", "list"], &basic("bob", first))
        .await
        .success();

    // An admin resets bob's password: the old one stops working at once.
    cli.okla_stdin(
        &["users", "set-password", "bob", "--password-stdin"],
        &admin,
        &format!("{second}\n"),
    )
    .await
    .success();
    let old = cli.okla(&["models", "list"], &basic("bob", first)).await;
    assert_refused(&old, "UNAUTHENTICATED");
    let bob = basic("bob", second);
    cli.okla(&["models", "list"], &bob).await.success();

    // Bob changes his own: the password he signs in with goes as the current one.
    let third_file = secret_file(&directory, "third", third);
    let changed = cli
        .okla(
            &[
                "users",
                "set-password",
                "bob",
                "--password-file",
                &third_file,
            ],
            &bob,
        )
        .await
        .success();
    assert_eq!(
        changed.stdout.trim(),
        "password of bob changed",
        "{changed:#?}"
    );
    let bob = basic("bob", third);
    cli.okla(&["models", "list"], &bob).await.success();

    // Signed in with a token, he has no current password to send, and the registry asks.
    let token = cli
        .okla(&["tokens", "create", "laptop"], &bob)
        .await
        .stdout
        .trim()
        .to_owned();
    let with_token = cli
        .okla(
            &[
                "users",
                "set-password",
                "bob",
                "--password-file",
                &third_file,
            ],
            &[("OKLA_TOKEN", token.as_str())],
        )
        .await;
    assert_refused(&with_token, "Current password is required");

    for password in [first, second, third, ADMIN_PASSWORD] {
        cli.assert_never_printed(password);
    }
}
