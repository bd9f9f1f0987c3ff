//! The web UI suite: every page of the server-rendered UI on SQLite and on PostgreSQL, driven
//! over HTTP. It checks statuses, the ids and classes the charts and the browser test rely on,
//! that user text is always escaped, and the error pages (400 for a bad filter, 404 for unknown
//! ids).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestServer;

backend_test_suite!(server:
    root_redirects_and_assets_are_served,
    experiment_and_run_pages_escape_user_text,
    runs_table_sorts_pages_and_picks_columns,
    malformed_filter_is_400_with_the_message_inline,
    unknown_ids_are_404_pages,
    compare_marks_differences_and_hides_equal_rows,
    compare_refuses_fewer_than_two_runs,
    model_and_deployment_pages_show_versions_history_and_nodes,
);

const API: &str = "/api/2.0/mlflow";
const SCRIPT_NAME: &str = "<script>alert(1)</script>";
const NASTY_VALUE: &str = "\"'><b>";

/// GETs a page without following redirects; returns the status and the body as text.
async fn page(server: &TestServer, path: &str) -> (StatusCode, String) {
    let (status, body) = server.send_bytes(server.client.get(server.url(path))).await;
    (status, String::from_utf8(body).expect("pages are UTF-8"))
}

async fn page_ok(server: &TestServer, path: &str) -> String {
    let (status, body) = page(server, path).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    assert!(body.starts_with("<!doctype html>"), "GET {path}: {body}");
    body
}

/// The escaping askama applies to text (numeric references: `<` is `&#60;`, the same
/// character as `&lt;`), for building expected fragments.
fn escaped(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

async fn create_experiment(server: &TestServer, name: &str) -> String {
    server
        .post_ok(
            &format!("{API}/experiments/create"),
            json!({ "name": name }),
        )
        .await["experiment_id"]
        .as_str()
        .expect("experiment id")
        .to_owned()
}

/// Creates a run with params and metric histories (`(key, [values by step])`); returns its id.
async fn create_run(
    server: &TestServer,
    experiment_id: &str,
    name: &str,
    params: &[(&str, &str)],
    metrics: &[(&str, &[f64])],
) -> String {
    let run = server
        .post_ok(
            &format!("{API}/runs/create"),
            json!({ "experiment_id": experiment_id, "user_id": "ada", "run_name": name, "start_time": 1_700_000_000_000_i64 }),
        )
        .await;
    let run_id = run["run"]["info"]["run_id"]
        .as_str()
        .expect("run id")
        .to_owned();
    let params: Vec<Value> = params
        .iter()
        .map(|(key, value)| json!({ "key": key, "value": value }))
        .collect();
    let mut points = Vec::new();
    for (key, values) in metrics {
        for (step, value) in values.iter().enumerate() {
            points.push(json!({ "key": key, "value": value, "timestamp": 1_700_000_000_000_i64 + step as i64, "step": step }));
        }
    }
    server
        .post_ok(
            &format!("{API}/runs/log-batch"),
            json!({ "run_id": run_id, "params": params, "metrics": points, "tags": [{ "key": "team", "value": NASTY_VALUE }] }),
        )
        .await;
    run_id
}

async fn put_artifact(server: &TestServer, path: &str, bytes: &[u8]) {
    let (status, body) = server
        .send_bytes(
            server
                .client
                .put(server.url(&format!("/api/2.0/mlflow-artifacts/artifacts/{path}")))
                .body(bytes.to_vec()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
}

async fn root_redirects_and_assets_are_served(server: &TestServer) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let answer = client.get(server.url("/")).send().await.expect("GET /");
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()["location"], "/experiments");

    let css = client
        .get(server.url("/ui/assets/app.css"))
        .send()
        .await
        .expect("GET app.css");
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    for file in ["charts.js", "uplot.min.js", "uplot.min.css"] {
        let (status, _) = page(server, &format!("/ui/assets/{file}")).await;
        assert_eq!(status, StatusCode::OK, "{file}");
    }
    let (status, body) = page(server, "/ui/assets/..%2Fmod.rs").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = page(server, "/ui/assets/secret.txt").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let body = page_ok(server, "/experiments").await;
    for fragment in [
        "<link rel=stylesheet href=/ui/assets/uplot.min.css>",
        "<script src=/ui/assets/uplot.min.js defer></script><script src=/ui/assets/charts.js defer></script>",
        "href=\"/experiments\"",
        "href=\"/models\"",
        "href=\"/deployments\"",
        "id=\"experiment-search\"",
    ] {
        assert!(body.contains(fragment), "missing {fragment}: {body}");
    }
}

async fn experiment_and_run_pages_escape_user_text(server: &TestServer) {
    let experiment_id = create_experiment(server, "exp <i>one</i>").await;
    let other = create_experiment(server, "unrelated").await;
    let run_id = create_run(
        server,
        &experiment_id,
        SCRIPT_NAME,
        &[("p", NASTY_VALUE), ("alpha", "0.5")],
        &[("rmse", &[3.0, 2.0, 2.5])],
    )
    .await;
    put_artifact(
        server,
        &format!("{experiment_id}/{run_id}/artifacts/model/MLmodel"),
        b"flavors: {}",
    )
    .await;
    put_artifact(
        server,
        &format!("{experiment_id}/{run_id}/artifacts/notes one.txt"),
        b"hi",
    )
    .await;
    server
        .post_ok(
            &format!("{API}/registered-models/create"),
            json!({ "name": "escaper" }),
        )
        .await;
    server
        .post_ok(
            &format!("{API}/model-versions/create"),
            json!({ "name": "escaper", "source": format!("runs:/{run_id}/model"), "run_id": run_id }),
        )
        .await;

    let list = page_ok(server, "/experiments").await;
    assert!(
        list.contains(&format!(
            "<a href=\"/experiments/{experiment_id}\">{}</a>",
            escaped("exp <i>one</i>")
        )),
        "{list}"
    );
    assert!(!list.contains("<i>one"), "{list}");
    let searched = page_ok(server, "/experiments?q=%3Ci%3E").await;
    assert!(
        searched.contains(&format!("/experiments/{experiment_id}\"")),
        "{searched}"
    );
    assert!(
        !searched.contains(&format!("/experiments/{other}\"")),
        "{searched}"
    );

    let runs = page_ok(server, &format!("/experiments/{experiment_id}")).await;
    for fragment in [
        format!("<tr class=\"run\" data-run-id=\"{run_id}\">"),
        format!(
            "<input type=\"checkbox\" class=\"run-select\" name=\"runs\" value=\"{run_id}\" form=\"compare-form\">"
        ),
        format!("<a href=\"/runs/{run_id}\">{}</a>", escaped(SCRIPT_NAME)),
        "<form id=\"run-filter\" method=\"get\"".to_owned(),
        "<form id=\"compare-form\" action=\"/compare\" method=\"get\">".to_owned(),
        "<button id=\"compare-selected\" type=\"submit\">Compare</button>".to_owned(),
        escaped(NASTY_VALUE),
        "params.alpha".to_owned(),
        "metrics.rmse".to_owned(),
    ] {
        assert!(runs.contains(&fragment), "missing {fragment}: {runs}");
    }
    assert!(
        runs.contains("<input type=\"text\" name=\"filter\""),
        "{runs}"
    );
    assert!(!runs.contains(SCRIPT_NAME), "{runs}");
    assert!(!runs.contains(NASTY_VALUE), "{runs}");

    let run = page_ok(server, &format!("/runs/{run_id}")).await;
    assert!(run.contains(&escaped(SCRIPT_NAME)), "{run}");
    assert!(!run.contains(SCRIPT_NAME), "{run}");
    assert!(!run.contains(NASTY_VALUE), "{run}");
    let series = json!([{ "label": SCRIPT_NAME, "run_id": run_id, "key": "rmse" }]).to_string();
    assert!(
        run.contains(&format!(
            "<div class=\"chart\" data-series='{}'></div>",
            escaped(&series)
        )),
        "{run}"
    );
    // The latest value by step is 2.5.
    assert!(run.contains("<td class=\"num\">2.5</td>"), "{run}");
    assert!(
        run.contains(&format!("href=\"/runs/{run_id}?path=model\">model/</a>")),
        "{run}"
    );
    assert!(
        run.contains(&format!("href=\"/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/notes%20one.txt\"")),
        "{run}"
    );
    assert!(
        run.contains("<a href=\"/models/escaper\">escaper v1</a>"),
        "{run}"
    );
    let inside = page_ok(server, &format!("/runs/{run_id}?path=model")).await;
    assert!(
        inside.contains(&format!("href=\"/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/model/MLmodel\"")),
        "{inside}"
    );
    let (status, body) = page(server, &format!("/runs/{run_id}?path=../../etc")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

async fn runs_table_sorts_pages_and_picks_columns(server: &TestServer) {
    let experiment_id = create_experiment(server, "sweep").await;
    let mut ids = Vec::new();
    for (index, rmse) in [0.3, 0.1, 0.2].into_iter().enumerate() {
        let name = format!("run-{index}");
        ids.push(
            create_run(
                server,
                &experiment_id,
                &name,
                &[("alpha", &index.to_string())],
                &[("rmse", &[rmse])],
            )
            .await,
        );
    }
    let base = format!("/experiments/{experiment_id}");
    let sorted = page_ok(
        server,
        &format!(
            "{base}?order_by=metrics.%60rmse%60+ASC&columns=metrics.rmse,tags.team&max_results=2"
        ),
    )
    .await;
    let first = sorted
        .find(&format!("data-run-id=\"{}\"", ids[1]))
        .expect("best run listed");
    let second = sorted
        .find(&format!("data-run-id=\"{}\"", ids[2]))
        .expect("second run listed");
    assert!(first < second, "{sorted}");
    assert!(
        !sorted.contains(&format!("data-run-id=\"{}\"", ids[0])),
        "{sorted}"
    );
    // The sorted column's header now links to the descending order; only chosen columns show.
    assert!(
        sorted.contains("order_by=metrics.%60rmse%60+DESC"),
        "{sorted}"
    );
    assert!(sorted.contains(">tags.team</a>"), "{sorted}");
    assert!(!sorted.contains(">params.alpha</a>"), "{sorted}");
    let next_start = sorted
        .find("id=\"next-page\" href=\"")
        .expect("a next page")
        + "id=\"next-page\" href=\"".len();
    let next = sorted[next_start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&");
    let second_page = page_ok(server, &next).await;
    assert!(
        second_page.contains(&format!("data-run-id=\"{}\"", ids[0])),
        "{second_page}"
    );
    assert!(!second_page.contains("id=\"next-page\""), "{second_page}");

    let (status, body) = page(server, &format!("{base}?columns=bogus.x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("id=\"filter-error\""), "{body}");
}

async fn malformed_filter_is_400_with_the_message_inline(server: &TestServer) {
    let experiment_id = create_experiment(server, "filters").await;
    create_run(server, &experiment_id, "r", &[], &[("rmse", &[1.0])]).await;
    for filter in [
        "metrics.rmse <",
        "params.alpha = 'unterminated",
        "bogus.x = 1",
        "metrics.rmse < 'a'",
    ] {
        let (status, api_answer) = server
            .post(
                &format!("{API}/runs/search"),
                json!({ "experiment_ids": [experiment_id], "filter": filter }),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let message = api_answer["message"].as_str().expect("message");
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("filter", filter)
            .finish();
        let (status, body) = page(server, &format!("/experiments/{experiment_id}?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{filter}: {body}");
        assert!(
            body.contains(&format!(
                "<div class=\"error\" id=\"filter-error\">{}</div>",
                escaped(message)
            )),
            "{filter}: {body}"
        );
        assert!(!body.contains("<tr class=\"run\""), "{body}");
        // The filter stays in its box, escaped.
        assert!(
            body.contains(&format!("name=\"filter\" value=\"{}\"", escaped(filter))),
            "{body}"
        );
    }
    let (status, body) = page(
        server,
        &format!("/experiments/{experiment_id}?page_token=%%%"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

async fn unknown_ids_are_404_pages(server: &TestServer) {
    for path in [
        "/experiments/987654",
        "/experiments/not-a-number",
        "/runs/0123456789abcdef0123456789abcdef",
        "/runs/%3Cscript%3E",
        "/models/nope",
        "/deployments/nope",
        "/compare?runs=0123456789abcdef0123456789abcdef&runs=fedcba9876543210fedcba9876543210",
    ] {
        let (status, body) = page(server, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(body.contains("<h1>Not found</h1>"), "{path}: {body}");
        assert!(!body.contains("<script>"), "{path}: {body}");
    }
}

async fn compare_marks_differences_and_hides_equal_rows(server: &TestServer) {
    let first_experiment = create_experiment(server, "a").await;
    let second_experiment = create_experiment(server, "b").await;
    let one = create_run(
        server,
        &first_experiment,
        "one",
        &[("alpha", "0.1"), ("beta", "same")],
        &[("rmse", &[5.0, 1.0, 2.0])],
    )
    .await;
    let two = create_run(
        server,
        &second_experiment,
        SCRIPT_NAME,
        &[("alpha", "0.2"), ("beta", "same")],
        &[("rmse", &[4.0, 3.0])],
    )
    .await;

    let path = format!("/compare?runs={one}&runs={two}");
    let body = page_ok(server, &path).await;
    assert!(body.contains("<table id=\"params\">"), "{body}");
    assert!(
        body.contains("<tr class=\"differs\" data-key=\"alpha\">"),
        "{body}"
    );
    assert!(body.contains("<tr data-key=\"beta\">"), "{body}");
    assert!(
        body.contains("<a id=\"differences-only\" href=\""),
        "{body}"
    );
    assert!(body.contains("diff=1"), "{body}");
    assert!(!body.contains(SCRIPT_NAME), "{body}");
    // Metrics: last, then min and max over the history.
    assert!(body.contains("<table id=\"metrics\">"), "{body}");
    assert!(
        body.contains(
            "<td class=\"num last\">2</td><td class=\"num min\">1</td><td class=\"num max\">5</td>"
        ),
        "{body}"
    );
    assert!(
        body.contains(
            "<td class=\"num last\">3</td><td class=\"num min\">3</td><td class=\"num max\">4</td>"
        ),
        "{body}"
    );
    let series = json!([
        { "label": "one", "run_id": one, "key": "rmse" },
        { "label": SCRIPT_NAME, "run_id": two, "key": "rmse" },
    ])
    .to_string();
    assert!(
        body.contains(&format!("data-series='{}'", escaped(&series))),
        "{body}"
    );
    assert!(body.contains("id=\"scatter-form\""), "{body}");

    let scatter = page_ok(
        server,
        &format!("/compare?runs={one},{two}&x=params.alpha&y=metrics.rmse"),
    )
    .await;
    let points = json!([
        { "label": "one", "run_id": one, "x": 0.1, "y": 2.0 },
        { "label": SCRIPT_NAME, "run_id": two, "x": 0.2, "y": 3.0 },
    ])
    .to_string();
    assert!(
        scatter.contains(&format!(
            "<div class=\"chart scatter\" data-points='{}' data-x-label=\"params.alpha\" data-y-label=\"metrics.rmse\"></div>",
            escaped(&points)
        )),
        "{scatter}"
    );
    // A non-numeric axis gives no points.
    let text_axis = page_ok(
        server,
        &format!("/compare?runs={one},{two}&x=params.beta&y=metrics.rmse"),
    )
    .await;
    assert!(text_axis.contains("data-points='[]'"), "{text_axis}");

    let differences = page_ok(server, &format!("{path}&diff=1")).await;
    assert!(differences.contains("data-key=\"alpha\""), "{differences}");
    assert!(!differences.contains("data-key=\"beta\""), "{differences}");
}

async fn compare_refuses_fewer_than_two_runs(server: &TestServer) {
    let experiment_id = create_experiment(server, "solo").await;
    let run_id = create_run(server, &experiment_id, "only", &[], &[]).await;
    for path in [
        format!("/compare?runs={run_id}"),
        format!("/compare?runs={run_id}&runs={run_id}"),
        "/compare".to_owned(),
    ] {
        let (status, body) = page(server, &path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(body.contains("2 to 50"), "{body}");
    }
    let many: Vec<String> = (0..51).map(|index| format!("{index:032x}")).collect();
    let (status, _) = page(server, &format!("/compare?runs={}", many.join(","))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn model_and_deployment_pages_show_versions_history_and_nodes(server: &TestServer) {
    let experiment_id = create_experiment(server, "models").await;
    let run_id = create_run(server, &experiment_id, "trainer", &[], &[]).await;
    put_artifact(
        server,
        &format!("{experiment_id}/{run_id}/artifacts/model/MLmodel"),
        b"flavors: {}",
    )
    .await;
    server
        .post_ok(
            &format!("{API}/registered-models/create"),
            json!({ "name": "scorer", "description": NASTY_VALUE }),
        )
        .await;
    for _ in 0..2 {
        server
            .post_ok(
                &format!("{API}/model-versions/create"),
                json!({ "name": "scorer", "source": format!("runs:/{run_id}/model"), "run_id": run_id }),
            )
            .await;
    }
    server
        .post_ok(
            &format!("{API}/registered-models/alias"),
            json!({ "name": "scorer", "alias": "champion", "version": "1" }),
        )
        .await;
    let (status, answer) = server
        .send(
            server
                .client
                .put(server.url("/api/okla/v1/deployments/scorer"))
                .json(&json!({ "routes": [{ "version": 1, "weight": 90 }, { "version": 2, "weight": 10 }], "shadow": null })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = server
        .send(
            server
                .client
                .post(server.url("/api/okla/v1/deployments/scorer/rollback"))
                .header("x-okla-actor", "bob")
                .json(&json!({ "reason": "errors <up>" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let report = json!({
        "report_seconds": 2.0,
        "models": [{ "model": "scorer", "revision": 2, "versions": [{
            "version": 1, "state": "serving", "requests": 100, "requests_per_second": 12.34,
            "errors": 5, "latency_bounds_seconds": [0.01, 0.05, 0.1],
            "latency_counts": [90, 5, 5, 0],
        }, {
            "version": 2, "state": "serving", "requests": 0,
        }]}],
    });
    let (status, answer) = server
        .send(
            server
                .client
                .put(server.url("/api/okla/v1/nodes/node-a"))
                .json(&report),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Stale 30 ms after its report: its last rate must not pass for a live one.
    let (status, answer) = server
        .send(
            server
                .client
                .put(server.url("/api/okla/v1/nodes/node-z"))
                .json(&json!({
                    "report_seconds": 0.01,
                    "models": [{ "model": "scorer", "revision": 2, "versions": [{
                        "version": 1, "state": "serving", "requests": 7, "requests_per_second": 3.5,
                    }]}],
                })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let models = page_ok(server, "/models?q=sco").await;
    assert!(
        models.contains("<a href=\"/models/scorer\">scorer</a>"),
        "{models}"
    );
    assert!(models.contains("@champion → v1"), "{models}");
    assert!(!models.contains("http-equiv=\"refresh\""), "{models}");
    let none = page_ok(server, "/models?q=zzz").await;
    assert!(!none.contains("/models/scorer\""), "{none}");

    let model = page_ok(server, "/models/scorer").await;
    assert!(model.contains(&escaped(NASTY_VALUE)), "{model}");
    assert!(!model.contains(NASTY_VALUE), "{model}");
    assert!(
        model.contains("<tr class=\"version\" data-version=\"2\">"),
        "{model}"
    );
    assert!(
        model.contains(&format!(
            "<a href=\"/runs/{run_id}\" class=\"mono\">{run_id}</a>"
        )),
        "{model}"
    );
    assert!(model.contains("<td>MLmodel</td>"), "{model}");
    assert!(model.contains("<ol id=\"history\">"), "{model}");
    assert!(model.contains("alias"), "{model}");
    assert!(model.contains(&escaped("errors <up>")), "{model}");
    assert!(model.contains("<ul id=\"lineage\">"), "{model}");
    assert!(model.contains("→ version 1 →"), "{model}");

    let deployments = page_ok(server, "/deployments").await;
    assert!(
        deployments.contains("<a href=\"/deployments/scorer\">scorer</a>"),
        "{deployments}"
    );
    assert!(deployments.contains("v1 100%"), "{deployments}");
    assert!(
        !deployments.contains("http-equiv=\"refresh\""),
        "only the detail page refreshes itself: {deployments}"
    );

    let deployment = page_ok(server, "/deployments/scorer").await;
    assert!(
        deployment.contains("<td>v1</td><td class=\"num\">100%</td>"),
        "{deployment}"
    );
    assert!(
        deployment.contains("data-node-id=\"node-a\""),
        "{deployment}"
    );
    assert!(
        deployment.contains(
            "<td class=\"num\">100</td><td class=\"num\">12.3</td><td class=\"num\">5.00%</td><td class=\"num\">100.0 ms</td>"
        ),
        "{deployment}"
    );
    assert!(
        deployment.contains(
            "<td>v2</td><td>serving</td><td class=\"num\">0</td><td class=\"num\">—</td>"
        ),
        "no rate without a previous report: {deployment}"
    );
    assert!(
        deployment.contains(
            "<td>stale</td><td>2</td><td>v1</td><td>serving</td><td class=\"num\">7</td><td class=\"num\">—</td>"
        ),
        "{deployment}"
    );
    assert!(
        deployment.contains("<meta http-equiv=\"refresh\" content=\"5\">"),
        "{deployment}"
    );
    assert!(deployment.contains("<ol id=\"rollbacks\">"), "{deployment}");
    assert!(deployment.contains("<strong>bob</strong>"), "{deployment}");
    assert!(deployment.contains(&escaped("errors <up>")), "{deployment}");

    // A model without an effective deployment still has a page.
    server
        .post_ok(
            &format!("{API}/registered-models/create"),
            json!({ "name": "idle" }),
        )
        .await;
    let idle = page_ok(server, "/deployments/idle").await;
    assert!(idle.contains("no effective deployment"), "{idle}");
}
