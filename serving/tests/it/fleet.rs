//! The whole loop with every real service: okla-registry on PostgreSQL with artifacts in S3
//! (the moto server `scripts/test` starts) publishing to RabbitMQ, two okla-serving nodes
//! following it through RabbitMQ events, and models logged with the official mlflow client.
//! Register → Production → canary → sticky A/B → promote under load → a version that cannot
//! load is refused → a version that errors is rolled back by the canary gate; every step's
//! event is observed on the exchange.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use okla_proto::events::ModelEvent;
use okla_proto::events::model_event::Body;
use okla_proto::events::topology::EXCHANGE;
use okla_registry::app::{self, AppState};
use okla_registry::config::RegistryConfig;
use prost::Message;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::AnyPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::{Server, Traffic, Vhost, required_env, run_python, wait_until};

const MODEL: &str = "pricing";
const NODES: [&str; 2] = ["node-a", "node-b"];

/// A PostgreSQL database and an S3 bucket of this test's own, removed at the end.
struct Stores {
    admin: AnyPool,
    database: String,
    database_url: String,
    s3_endpoint: String,
    bucket: String,
}

impl Stores {
    async fn create() -> Stores {
        sqlx::any::install_default_drivers();
        let admin_url = required_env("TEST_DATABASE_URL");
        let s3_endpoint = required_env("TEST_S3_ENDPOINT");
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("okla_fleet_{suffix}");
        let admin = AnyPool::connect(&admin_url)
            .await
            .expect("connect to TEST_DATABASE_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&admin)
            .await
            .expect("create database");
        let bucket = format!("okla-fleet-{suffix}");
        // moto accepts an unsigned bucket creation.
        let created = reqwest::Client::new()
            .put(format!("{s3_endpoint}/{bucket}"))
            .send()
            .await
            .expect("S3 server answers");
        assert!(
            created.status().is_success(),
            "bucket: {}",
            created.status()
        );
        let database_url = format!(
            "{}/{database}",
            admin_url.rsplit_once('/').expect("URL has a database").0
        );
        Stores {
            admin,
            database,
            database_url,
            s3_endpoint,
            bucket,
        }
    }

    async fn drop_database(&self) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.database
        )))
        .execute(&self.admin)
        .await
        .expect("drop database");
    }
}

/// The registry in this process, on PostgreSQL + S3, publishing to `amqp_url`.
async fn start_registry(stores: &Stores, amqp_url: &str, shutdown: CancellationToken) -> String {
    let mut config = RegistryConfig::for_test(
        &stores.database_url,
        &format!("s3://{}/mlartifacts", stores.bucket),
    );
    config.amqp_url = Some(amqp_url.to_owned());
    let env: HashMap<String, String> = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("MLFLOW_S3_ENDPOINT_URL", stores.s3_endpoint.as_str()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    let state = AppState::open(&config, &env)
        .await
        .expect("registry opens PostgreSQL and S3");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    tokio::spawn(app::serve(state, listener, shutdown));
    url
}

/// Every event published on the exchange, in arrival order, with its routing key.
#[derive(Clone, Default)]
struct Observed(Arc<Mutex<Vec<(String, ModelEvent)>>>);

impl Observed {
    /// Binds a queue of its own to every routing key before anything happens.
    async fn start(amqp_url: &str) -> Observed {
        let connection = Connection::connect(amqp_url, ConnectionProperties::default())
            .await
            .expect("RabbitMQ");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .exchange_declare(
                EXCHANGE.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("exchange");
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("queue");
        channel
            .queue_bind(
                queue.name().clone(),
                EXCHANGE.into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        let mut consumer = channel
            .basic_consume(
                queue.name().clone(),
                "fleet-test".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume");
        let observed = Observed::default();
        let events = observed.0.clone();
        tokio::spawn(async move {
            let _connection = connection;
            while let Some(Ok(delivery)) = consumer.next().await {
                let event = ModelEvent::decode(delivery.data.as_slice()).expect("protobuf event");
                events
                    .lock()
                    .unwrap()
                    .push((delivery.routing_key.to_string(), event));
            }
        });
        observed
    }

    fn matching(&self, accept: impl Fn(&str, &ModelEvent) -> bool) -> Vec<ModelEvent> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(key, event)| accept(key, event))
            .map(|(_, event)| event.clone())
            .collect()
    }

    /// Waits until an event under `routing_key` satisfies `accept`.
    async fn wait_for(
        &self,
        routing_key: &str,
        accept: impl Fn(&ModelEvent) -> bool,
    ) -> ModelEvent {
        let mut found = None;
        wait_until(&format!("a {routing_key} event"), || {
            found = self
                .matching(|key, event| key == routing_key && accept(event))
                .into_iter()
                .next();
            std::future::ready(found.is_some())
        })
        .await;
        found.expect("found")
    }
}

/// What node `node` said when it put `version` live, if it has.
fn deployed_on(event: &ModelEvent, node: &str, version: i64) -> bool {
    matches!(&event.body, Some(Body::ModelDeployed(deployed))
        if deployed.node_id == node && deployed.version == version)
}

fn serve_node(registry: &str, amqp_url: &str, node: &str, cache: &Path) -> Server {
    Server::start_args(&[
        "--registry",
        registry,
        "--amqp-url",
        amqp_url,
        "--models",
        MODEL,
        // Long enough that only the events can explain a prompt reaction.
        "--registry-poll-seconds",
        "600",
        "--report-seconds",
        "1",
        "--node-id",
        node,
        "--cache-dir",
        cache.to_str().expect("UTF-8 temp path"),
    ])
}

fn features() -> Value {
    json!({"inputs": [{"name": "features", "shape": [1, 8], "datatype": "FP32",
        "data": [3, 2019, 60000, 1.6, 0, 1, 4, 12]}]})
}

/// One unversioned call: the version that answered, or the HTTP status of a failure.
async fn infer(
    client: &reqwest::Client,
    node: &Server,
    routing_key: Option<&str>,
) -> Result<u64, StatusCode> {
    let mut request = client
        .post(format!("{}/v2/models/{MODEL}/infer", node.http))
        .json(&features());
    if let Some(key) = routing_key {
        request = request.header("x-okla-routing-key", key);
    }
    let response = request.send().await.expect("node answers");
    if response.status() != StatusCode::OK {
        return Err(response.status());
    }
    let answer: Value = response.json().await.expect("JSON answer");
    Ok(answer["model_version"]
        .as_str()
        .and_then(|version| version.parse().ok())
        .unwrap_or_else(|| panic!("no model_version in {answer}")))
}

/// Versions that answered `count` unversioned calls to each node.
async fn tally(client: &reqwest::Client, nodes: &[Server], count: usize) -> BTreeMap<u64, usize> {
    let mut answers = BTreeMap::new();
    for node in nodes {
        for _ in 0..count {
            let version = infer(client, node, None).await.expect("answered");
            *answers.entry(version).or_default() += 1;
        }
    }
    answers
}

/// Waits until 20 calls in a row to each node are answered by `version` (a node still on the
/// previous deployment may fail or answer another version meanwhile).
async fn wait_until_all_answer(client: &reqwest::Client, nodes: &[Server], version: u64) {
    wait_until(&format!("every node answers version {version}"), || async {
        for node in nodes {
            for _ in 0..20 {
                if infer(client, node, None).await != Ok(version) {
                    return false;
                }
            }
        }
        true
    })
    .await;
}

async fn registry_call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Value,
) -> Value {
    let response = client
        .request(method, url)
        .header("x-okla-actor", "fleet-test")
        .json(&body)
        .send()
        .await
        .expect("registry answers");
    let status = response.status();
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(status, StatusCode::OK, "registry refused: {answer}");
    answer
}

async fn put_deployment(client: &reqwest::Client, registry: &str, body: Value) -> Value {
    registry_call(
        client,
        reqwest::Method::PUT,
        format!("{registry}/api/okla/v1/deployments/{MODEL}"),
        body,
    )
    .await["deployment"]
        .clone()
}

/// Logs `file` with the mlflow client, registers it and moves it to `target`; the version.
async fn register(registry: &str, file: &Path, target: [&str; 2], plain: bool) -> u64 {
    let mut args = vec![
        registry.to_owned(),
        MODEL.to_owned(),
        file.to_str().expect("UTF-8 path").to_owned(),
        target[0].to_owned(),
        target[1].to_owned(),
    ];
    if plain {
        args.push("--as-plain-artifact".to_owned());
    }
    let stdout = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_python("register_onnx_model.py", &args)
    })
    .await
    .expect("python task");
    stdout
        .lines()
        .last()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or_else(|| panic!("no version number in\n{stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_follow_the_registry_through_canary_promotion_and_rollback() {
    let stores = Stores::create().await;
    let vhost = Vhost::create();
    let amqp_url = vhost.amqp_url();
    let observed = Observed::start(&amqp_url).await;
    let shutdown = CancellationToken::new();
    let registry = start_registry(&stores, &amqp_url, shutdown.clone()).await;
    let caches = tempfile::tempdir().expect("temp dir");
    let nodes: Vec<Server> = NODES
        .iter()
        .map(|node| serve_node(&registry, &amqp_url, node, &caches.path().join(node)))
        .collect();
    let client = reqwest::Client::new();
    let models = crate::support::example_models();
    let fixtures = crate::support::workspace_root().join("serving/tests/fixtures");

    // v1, logged with mlflow.onnx.log_model, to Production: both nodes serve it.
    let pricing = models.join("pricing/1/model.onnx");
    let v1 = register(&registry, &pricing, ["--stage", "Production"], false).await;
    assert_eq!(v1, 1);
    wait_until_all_answer(&client, &nodes, 1).await;
    observed
        .wait_for("model.version.created", |e| e.model_name == MODEL)
        .await;
    observed
        .wait_for("model.version.transitioned", |e| e.model_name == MODEL)
        .await;
    for node in NODES {
        let event = observed
            .wait_for("model.deployed", |e| deployed_on(e, node, 1))
            .await;
        assert_eq!(event.actor, format!("node:{node}"));
    }

    // v2 as a 10% canary.
    let v2 = register(&registry, &pricing, ["--alias", "challenger"], false).await;
    assert_eq!(v2, 2);
    let canary = put_deployment(
        &client,
        &registry,
        json!({"routes": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}],
               "comment": "canary v2"}),
    )
    .await;
    observed
        .wait_for("deployment.updated", |e| e.model_name == MODEL)
        .await;
    for node in NODES {
        observed
            .wait_for("model.deployed", |e| deployed_on(e, node, 2))
            .await;
    }
    wait_until("both nodes route to v2", || async {
        tally(&client, &nodes, 50).await.contains_key(&2)
    })
    .await;
    let shares = tally(&client, &nodes, 500).await;
    let share = shares.get(&2).copied().unwrap_or(0) as f64 / 1000.0;
    // 1000 draws at p = 0.1: the standard deviation is under one point.
    assert!(
        (0.06..=0.14).contains(&share),
        "v2's share {share} is not near 10% ({shares:?}, revision {})",
        canary["revision"]
    );

    // Sticky A/B: a routing key reaches the same version on every call and on both nodes.
    put_deployment(
        &client,
        &registry,
        json!({"routes": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}],
               "sticky": {"routing_key_header": "x-okla-routing-key"}}),
    )
    .await;
    // Twenty keys, three calls each on both nodes: while either node still draws the 90/10 canary
    // per request, all 120 answers agreeing key by key is beyond chance (the keys the sticky
    // deployment gives v2 would need a 10% draw six times over), so this waits for both nodes.
    wait_until("both nodes follow the sticky deployment", || async {
        let mut agreed = true;
        for key in 0..20 {
            let key = format!("user-{key}");
            let answers = futures::future::join_all(
                nodes
                    .iter()
                    .flat_map(|node| [node, node, node])
                    .map(|node| infer(&client, node, Some(&key))),
            )
            .await;
            agreed &= answers.windows(2).all(|pair| pair[0] == pair[1]);
        }
        agreed
    })
    .await;
    let mut by_key = BTreeMap::new();
    for key in 0..200 {
        let key = format!("user-{key}");
        let version = infer(&client, &nodes[0], Some(&key))
            .await
            .expect("answered");
        for node in &nodes {
            for _ in 0..3 {
                assert_eq!(
                    infer(&client, node, Some(&key)).await,
                    Ok(version),
                    "key {key} moved"
                );
            }
        }
        *by_key.entry(version).or_insert(0) += 1;
    }
    assert_eq!(by_key.len(), 2, "both versions get keys: {by_key:?}");

    // Promote v2 while both nodes take closed-loop traffic: no request fails.
    let traffic: Vec<Traffic> = nodes
        .iter()
        .map(|node| Traffic::start(&client, format!("{}/v2/models/{MODEL}/infer", node.http)))
        .collect();
    put_deployment(
        &client,
        &registry,
        json!({"routes": [{"version": 2, "weight": 100}], "comment": "promote v2"}),
    )
    .await;
    wait_until_all_answer(&client, &nodes, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for traffic in traffic {
        let (answered, failed) = traffic.finish().await;
        assert!(answered > 0);
        assert_eq!(
            failed, 0,
            "{failed} of {answered} requests failed during the swap"
        );
    }

    // v3 is no ONNX model: every node refuses it, reports it, and v2 keeps answering alone.
    let garbage = caches.path().join("garbage.onnx");
    std::fs::write(&garbage, b"not an ONNX model").expect("write");
    let v3 = register(&registry, &garbage, ["--alias", "broken"], true).await;
    put_deployment(
        &client,
        &registry,
        json!({"routes": [{"version": 2, "weight": 90}, {"version": v3, "weight": 10}]}),
    )
    .await;
    for node in NODES {
        let failed = observed
            .wait_for("model.load_failed", |e| {
                matches!(&e.body, Some(Body::ModelLoadFailed(failed))
                    if failed.node_id == node && failed.version == v3 as i64)
            })
            .await;
        let Some(Body::ModelLoadFailed(failed)) = failed.body else {
            unreachable!()
        };
        assert!(!failed.error.is_empty());
    }
    assert_eq!(
        tally(&client, &nodes, 50).await.keys().collect::<Vec<_>>(),
        [&2]
    );

    // v4 loads (warm-up sends zeros) but fails on real input: the canary gate rolls it back.
    let v4 = register(
        &registry,
        &fixtures.join("fails_on_real_input.onnx"),
        ["--alias", "risky"],
        false,
    )
    .await;
    let gated = put_deployment(
        &client,
        &registry,
        json!({"routes": [{"version": 2, "weight": 70}, {"version": v4, "weight": 30}],
               "canary_gate": {"version": v4, "max_error_rate_delta": 0.05,
                               "max_p99_ratio": 20.0, "min_requests": 20}}),
    )
    .await;
    let gated_revision = gated["revision"].as_i64().expect("revision");
    wait_until("the canary gate rolls v4 back", || async {
        for node in &nodes {
            for _ in 0..10 {
                // v4's failures are what the gate judges.
                let _ = infer(&client, node, None).await;
            }
        }
        !observed
            .matching(|key, event| key == "deployment.rolled_back" && event.model_name == MODEL)
            .is_empty()
    })
    .await;
    let rolled_back = observed
        .wait_for("deployment.rolled_back", |e| e.model_name == MODEL)
        .await;
    assert_eq!(rolled_back.actor, "canary-gate");
    let Some(Body::DeploymentRolledBack(body)) = rolled_back.body else {
        unreachable!()
    };
    assert_eq!(body.to_version, 2);
    assert!(body.revision > gated_revision);
    assert!(body.reason.contains("error rate"), "{}", body.reason);
    wait_until_all_answer(&client, &nodes, 2).await;
    let deployment = registry_call(
        &client,
        reqwest::Method::GET,
        format!("{registry}/api/okla/v1/deployments/{MODEL}"),
        json!({}),
    )
    .await;
    assert_eq!(
        deployment["deployment"]["routes"],
        json!([{"version": 2, "weight": 100}])
    );

    // The registry knows what each node serves.
    let listed = registry_call(
        &client,
        reqwest::Method::GET,
        format!("{registry}/api/okla/v1/nodes?model={MODEL}"),
        json!({}),
    )
    .await;
    let ids: Vec<&str> = listed["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|node| node["node_id"].as_str())
        .collect();
    assert_eq!(ids, NODES);

    // Every event the registry committed for the model reached the exchange, in order: after
    // deduplication by event id (delivery is at least once) the model sequence counts 1, 2, 3...
    let committed = || async {
        let feed = registry_call(
            &client,
            reqwest::Method::GET,
            format!("{registry}/api/okla/v1/events?after=0&max_results=1000"),
            json!({}),
        )
        .await;
        feed["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|event| event["model_name"] == MODEL)
            .count()
    };
    let received = || {
        let mut seen = std::collections::HashSet::new();
        observed
            .matching(|_, event| event.model_name == MODEL)
            .into_iter()
            .filter(|event| seen.insert(event.event_id.clone()))
            .map(|event| event.model_sequence)
            .collect::<Vec<i64>>()
    };
    wait_until("every committed event is observed", || async {
        received().len() == committed().await
    })
    .await;
    let sequences = received();
    assert_eq!(sequences, (1..=sequences.len() as i64).collect::<Vec<_>>());

    drop(nodes);
    shutdown.cancel();
    stores.drop_database().await;
}
