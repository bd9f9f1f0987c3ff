//! End to end in headless Chromium: runs logged with the official `mlflow` client
//! (`ui_runs.py`) are found through the web UI, selected, compared, charted and escaped; and,
//! with authentication on, signing in and out (CSRF-checked) and artifacts that download
//! instead of rendering.
//!
//! Needs `OKLA_TEST_PYTHON` (the venv with `mlflow`) and `OKLA_TEST_CHROMEDRIVER`
//! (`/usr/bin/chromedriver`, Chromium at `/usr/bin/chromium`); `scripts/test` provides both.
//! A screenshot of the compare page is left in `target/ui-screenshots/compare.png`.

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::json;

mod common;

use common::RegistryProcess;
use okla_test_support::{free_loopback_port, required_env, workspace_root};

const EXPERIMENT: &str = "ui-e2e";
const HOSTILE_RUN_NAME: &str = "<script>alert(1)</script>";
const ESCAPED_RUN_NAME: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a page element may take to appear (charts: `data-rendered="true"`).
const WAIT: Duration = Duration::from_secs(10);

/// `chromedriver` on a free port, in its own process group; dropping it (also while a failed
/// assertion unwinds) kills the group, so no Chromium outlives the test.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        let binary = required_env("OKLA_TEST_CHROMEDRIVER");
        let port = free_loopback_port();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("{binary} starts: {error}"));
        let driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The process group holds chromedriver and the browser it started. Signalled through
        // killpg, never a `kill` command line, where a mis-parsed `-PID` means every process.
        if let Ok(id) = i32::try_from(self.child.id())
            && id > 1
        {
            let _ = killpg(Pid::from_raw(id), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session with the flags this closed network needs (SETUP.md).
async fn open_browser(driver: &ChromeDriver, profile: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    // An alert stays open instead of being dismissed, so `get_alert_text` would see it.
    capabilities.insert("unhandledPromptBehavior".into(), json!("ignore"));
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                format!("--user-data-dir={}", profile.display()),
                "--window-size=1400,1000",
            ],
        }),
    );
    let client = ClientBuilder::rustls()
        .expect("rustls connector")
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("chromedriver opens a Chromium session");
    client
        .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
            Some(Duration::from_secs(30)),
            Some(Duration::from_secs(30)),
            Some(Duration::ZERO),
        ))
        .await
        .expect("timeouts set");
    client
}

struct LoggedRuns {
    experiment_id: String,
    run_ids: Vec<String>,
}

/// Logs the three runs through the official client (`ui_runs.py`).
fn log_runs(tracking_uri: &str) -> LoggedRuns {
    let python = required_env("OKLA_TEST_PYTHON");
    let output = Command::new(python)
        .arg(workspace_root().join("registry/tests/ui_runs.py"))
        .env("MLFLOW_TRACKING_URI", tracking_uri)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "ui_runs.py failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    let line = stdout.lines().last().unwrap_or_default();
    let logged: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|error| panic!("ui_runs.py printed no JSON ({error}):\n{stdout}"));
    LoggedRuns {
        experiment_id: logged["experiment_id"]
            .as_str()
            .expect("experiment_id")
            .to_owned(),
        run_ids: logged["run_ids"]
            .as_array()
            .expect("run_ids")
            .iter()
            .map(|id| id.as_str().expect("run id").to_owned())
            .collect(),
    }
}

/// The row of `table` (an id) whose first cell reads `key`, if there is one.
async fn table_row(client: &Client, table: &str, key: &str) -> Option<Element> {
    let xpath = format!("//table[@id='{table}']//tr[*[1][normalize-space()='{key}']]");
    client.find(Locator::XPath(&xpath)).await.ok()
}

async fn classes(element: &Element) -> Vec<String> {
    element
        .attr("class")
        .await
        .expect("class attribute readable")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Polls `check` every 100 ms until it holds or `WAIT` passes.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {} s",
            WAIT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// No alert is open, and the hostile run name is on the page only as escaped text.
async fn assert_no_script_injection(client: &Client, page: &str) {
    if let Ok(text) = client.get_alert_text().await {
        panic!("{page}: a JavaScript alert is open: {text:?}");
    }
    let source = client.source().await.expect("page source");
    assert!(
        source.contains(ESCAPED_RUN_NAME),
        "{page}: the run name {HOSTILE_RUN_NAME:?} is not shown escaped ({ESCAPED_RUN_NAME})"
    );
    let injected = client
        .execute(
            "return Array.from(document.scripts).some(s => s.textContent.includes('alert(1)'));",
            vec![],
        )
        .await
        .expect("script runs");
    assert_eq!(
        injected,
        json!(false),
        "{page}: the run name became a <script> element"
    );
}

/// Clicks the element with this id.
async fn click(client: &Client, id: &str) {
    client
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|error| panic!("#{id}: {error}"))
        .click()
        .await
        .unwrap_or_else(|error| panic!("#{id} clicks: {error}"));
}

/// Types `text` into the element with this id.
async fn type_into(client: &Client, id: &str, text: &str) {
    client
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|error| panic!("#{id}: {error}"))
        .send_keys(text)
        .await
        .unwrap_or_else(|error| panic!("typing into #{id}: {error}"));
}

async fn current_path(client: &Client) -> String {
    client
        .current_url()
        .await
        .expect("current url")
        .path()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn compare_runs_in_headless_chromium() {
    let directory = tempfile::tempdir().expect("temp dir");
    let profile = directory.path().join("chromium-profile");
    let registry = registry_in(directory.path(), None);
    let logged = log_runs(&registry.url);
    assert_eq!(logged.run_ids.len(), 3);

    let driver = ChromeDriver::start();
    let client = open_browser(&driver, &profile).await;
    let base = &registry.url;

    // The experiments list links to the experiment's runs.
    client
        .goto(&format!("{base}/experiments"))
        .await
        .expect("GET /experiments");
    let link = client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::LinkText(EXPERIMENT))
        .await
        .unwrap_or_else(|error| panic!("/experiments has no link {EXPERIMENT:?}: {error}"));
    link.click().await.expect("experiment link clicks");
    let runs_path = format!("/experiments/{}", logged.experiment_id);
    eventually(&format!("navigation to {runs_path}"), || async {
        current_path(&client).await == runs_path
    })
    .await;

    // The runs page: one `tr.run` per run; select all three and compare.
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("tr.run"))
        .await
        .expect("runs table rows");
    let rows = client
        .find_all(Locator::Css("tr.run"))
        .await
        .expect("tr.run rows");
    assert_eq!(rows.len(), 3, "{runs_path} shows {} runs", rows.len());
    let mut shown = BTreeSet::new();
    for row in &rows {
        let id = row
            .attr("data-run-id")
            .await
            .expect("data-run-id readable")
            .expect("tr.run has data-run-id");
        let checkbox = row
            .find(Locator::Css("input.run-select"))
            .await
            .unwrap_or_else(|_| panic!("run {id} has an input.run-select"));
        assert_eq!(
            checkbox.attr("value").await.expect("value").as_deref(),
            Some(id.as_str()),
            "the checkbox of run {id} carries its id"
        );
        checkbox.click().await.expect("checkbox clicks");
        assert!(
            checkbox.is_selected().await.expect("checkbox state"),
            "run {id} selected"
        );
        shown.insert(id);
    }
    let logged_ids: BTreeSet<String> = logged.run_ids.iter().cloned().collect();
    assert_eq!(shown, logged_ids, "the rows are the logged runs");
    assert_no_script_injection(&client, &runs_path).await;

    click(&client, "compare-selected").await;
    eventually("navigation to /compare", || async {
        current_path(&client).await == "/compare"
    })
    .await;
    let compare_url = client.current_url().await.expect("url");
    let compared: BTreeSet<String> = compare_url
        .query_pairs()
        .filter(|(key, _)| key == "runs")
        .map(|(_, value)| value.into_owned())
        .collect();
    assert_eq!(
        compared, logged_ids,
        "{compare_url} names the selected runs"
    );

    // Params: alpha differs, model_type does not.
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("params"))
        .await
        .expect("#params table");
    let alpha = table_row(&client, "params", "alpha")
        .await
        .expect("#params has an alpha row");
    assert!(
        classes(&alpha).await.iter().any(|c| c == "differs"),
        "the alpha row is marked differs"
    );
    let alpha_text = alpha.text().await.expect("alpha row text");
    for value in ["0.1", "0.5", "0.9"] {
        assert!(
            alpha_text.contains(value),
            "the alpha row shows {value}: {alpha_text:?}"
        );
    }
    let model_type = table_row(&client, "params", "model_type")
        .await
        .expect("#params has a model_type row");
    assert!(
        !classes(&model_type).await.iter().any(|c| c == "differs"),
        "the model_type row is not marked differs"
    );
    assert!(model_type.is_displayed().await.expect("displayed"));

    // Metrics and charts.
    let metrics = client
        .find(Locator::Id("metrics"))
        .await
        .expect("#metrics table");
    let metrics_text = metrics.text().await.expect("#metrics text");
    assert!(
        metrics_text.contains("rmse"),
        "#metrics lists rmse: {metrics_text:?}"
    );
    let chart = match client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("div.chart[data-rendered='true']"))
        .await
    {
        Ok(chart) => chart,
        Err(error) => {
            let charts = client
                .execute(
                    "return Array.from(document.querySelectorAll('div.chart')).map(d => ({ \
                     class: d.className, rendered: d.getAttribute('data-rendered'), \
                     text: d.textContent.trim().slice(0, 300) }));",
                    vec![],
                )
                .await
                .unwrap_or_default();
            panic!(
                "no div.chart reached data-rendered=\"true\" within 10 s ({error}); charts: {charts}"
            )
        }
    };
    chart
        .find(Locator::Css("canvas"))
        .await
        .expect("a rendered chart holds a <canvas>");
    assert_no_script_injection(&client, "/compare").await;

    // The screenshot, kept for people to look at.
    let png = client.screenshot().await.expect("screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is a PNG"
    );
    assert!(
        png.len() > 10 * 1024,
        "the screenshot is {} bytes: a blank page?",
        png.len()
    );
    let screenshots = workspace_root().join("target/ui-screenshots");
    std::fs::create_dir_all(&screenshots).expect("screenshot directory");
    std::fs::write(screenshots.join("compare.png"), &png).expect("screenshot written");

    // Differences only: model_type goes, alpha stays.
    click(&client, "differences-only").await;
    eventually("#differences-only hides the model_type row", || async {
        match table_row(&client, "params", "model_type").await {
            None => true,
            Some(row) => !row.is_displayed().await.unwrap_or(true),
        }
    })
    .await;
    let alpha = table_row(&client, "params", "alpha")
        .await
        .expect("the alpha row stays with differences only");
    assert!(alpha.is_displayed().await.expect("displayed"));
    if let Ok(text) = client.get_alert_text().await {
        panic!("a JavaScript alert is open: {text:?}");
    }

    client.close().await.expect("session closes");
    drop(driver);
}

const ADMIN_PASSWORD: &str = "browser-admin-password";

/// The registry on SQLite and an artifact directory under `directory`; with `admin_password`,
/// authentication is on.
fn registry_in(directory: &Path, admin_password: Option<&str>) -> RegistryProcess {
    let database = format!("sqlite:///{}", directory.join("okla.db").display());
    let artifacts = directory.join("artifacts");
    let args = [
        "--backend-store-uri",
        database.as_str(),
        "--artifacts-destination",
        artifacts.to_str().expect("utf-8 path"),
    ];
    match admin_password {
        Some(password) => {
            RegistryProcess::start_authenticated(args, &[("OKLA_ADMIN_PASSWORD", password)])
        }
        None => RegistryProcess::start(args, &[]),
    }
}

/// An admin's JSON call, for the set-up the browser then looks at.
async fn as_admin(
    http: &reqwest::Client,
    url: String,
    body: serde_json::Value,
) -> serde_json::Value {
    let answer = http
        .post(url)
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&body)
        .send()
        .await
        .expect("registry answers");
    assert!(answer.status().is_success(), "{}", answer.status());
    answer.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_csrf_and_artifact_downloads_in_headless_chromium() {
    let directory = tempfile::tempdir().expect("temp dir");
    let profile = directory.path().join("chromium-profile");
    let registry = registry_in(directory.path(), Some(ADMIN_PASSWORD));
    let http = reqwest::Client::new();
    let created = as_admin(
        &http,
        format!("{}/api/2.0/mlflow/experiments/create", registry.url),
        json!({"name": "signed-in-experiment"}),
    )
    .await;
    let experiment_id = created["experiment_id"].as_str().expect("id").to_owned();
    // An uploaded page that would retitle the tab if a browser ever ran it on our origin.
    let page = format!("{experiment_id}/run/artifacts/page.html");
    let uploaded = http
        .put(format!("{}/api/2.0/mlflow-artifacts/artifacts/{page}", registry.url))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .body("<html><head><title>injected</title></head><body><script>document.title='pwned'</script></body></html>")
        .send()
        .await
        .expect("upload answers");
    assert!(uploaded.status().is_success(), "{}", uploaded.status());

    let driver = ChromeDriver::start();
    let client = open_browser(&driver, &profile).await;

    // A page without a session goes to the sign-in form and comes back after it.
    client
        .goto(&format!("{}/experiments", registry.url))
        .await
        .expect("navigate");
    assert_eq!(current_path(&client).await, "/login");
    type_into(&client, "username", "admin").await;
    type_into(&client, "password", ADMIN_PASSWORD).await;
    click(&client, "sign-in").await;
    eventually("signed in and back on the experiments", || async {
        current_path(&client).await == "/experiments"
    })
    .await;
    let source = client.source().await.expect("page source");
    assert!(source.contains("signed-in-experiment"), "{source}");
    // The session cookie is HttpOnly: page script cannot read it.
    let cookies = client
        .execute("return document.cookie;", vec![])
        .await
        .expect("script");
    assert!(
        !cookies.as_str().unwrap_or("").contains("okla_session"),
        "{cookies}"
    );

    // The artifact is downloaded, never rendered on our origin.
    let title_before = client.title().await.expect("title");
    client
        .goto(&format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{page}",
            registry.url
        ))
        .await
        .expect("navigate");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let title = client.title().await.expect("title");
    assert!(
        title != "pwned" && title != "injected",
        "the artifact rendered: {title}"
    );
    assert_eq!(title, title_before, "the tab left the UI page");

    // Signing out is a CSRF-checked form: a forged token is refused and the session survives.
    client
        .goto(&format!("{}/logout", registry.url))
        .await
        .expect("navigate");
    client
        .execute(
            "document.querySelector('input[name=csrf]').value = 'forged';",
            vec![],
        )
        .await
        .expect("script");
    click(&client, "sign-out").await;
    eventually("the forged sign-out is refused", || async {
        client
            .source()
            .await
            .is_ok_and(|source| source.contains("CSRF check failed"))
    })
    .await;
    client
        .goto(&format!("{}/experiments", registry.url))
        .await
        .expect("navigate");
    assert_eq!(
        current_path(&client).await,
        "/experiments",
        "still signed in"
    );

    client
        .goto(&format!("{}/logout", registry.url))
        .await
        .expect("navigate");
    click(&client, "sign-out").await;
    eventually("signed out", || async {
        current_path(&client).await == "/login"
    })
    .await;
    client
        .goto(&format!("{}/experiments", registry.url))
        .await
        .expect("navigate");
    assert_eq!(current_path(&client).await, "/login", "the session ended");
    client.close().await.expect("close the browser");
}
