//! End to end on RabbitMQ: the built `okla-registry` with `--amqp-url` publishes model events
//! through the outbox, in order, persistent and confirmed; and with the broker out of reach
//! (a TCP proxy in the test, stopped and restarted) changes still succeed and the backlog
//! arrives in order once the broker is back.
//!
//! Needs RabbitMQ on 127.0.0.1:5672 (guest/guest) and `rabbitmqctl`; `bash scripts/test`
//! starts the broker if it is down. Each test works in a vhost of its own, deleted at the end.

use std::ffi::OsStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use okla_proto::events::ModelEvent;
use okla_proto::events::model_event::Body;
use prost::Message;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

mod common;

use common::RegistryProcess;
use okla_test_support::Vhost;

const BROKER: &str = "127.0.0.1:5672";

/// The registry binary on an ephemeral port with SQLite and a local artifact directory.
struct RunningRegistry {
    process: RegistryProcess,
    client: reqwest::Client,
    _directory: tempfile::TempDir,
}

impl RunningRegistry {
    fn start(amqp_url: &str) -> RunningRegistry {
        let directory = tempfile::tempdir().expect("temp dir");
        let database = format!("sqlite:///{}", directory.path().join("okla.db").display());
        let artifacts = directory.path().join("artifacts");
        let process = RegistryProcess::start(
            [
                OsStr::new("--backend-store-uri"),
                OsStr::new(&database),
                OsStr::new("--artifacts-destination"),
                artifacts.as_os_str(),
                OsStr::new("--amqp-url"),
                OsStr::new(amqp_url),
            ],
            &[],
        );
        RunningRegistry {
            process,
            client: reqwest::Client::new(),
            _directory: directory,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        self.request(method, &format!("api/2.0/mlflow/{path}"), body)
            .await
    }

    async fn request(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .client
            .request(method, format!("{}/{path}", self.process.url))
            .header("x-okla-actor", "ci")
            .json(&body)
            .send()
            .await
            .expect("registry answers");
        let status = response.status();
        let body: Value = response.json().await.expect("JSON answer");
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, body).await
    }

    /// Sets `model`'s explicit deployment (`PUT /api/okla/v1/deployments/{model}`).
    async fn put_deployment(&self, model: &str, body: Value) -> Value {
        let path = format!("api/okla/v1/deployments/{model}");
        self.request(reqwest::Method::PUT, &path, body).await
    }

    /// The okla-native events feed, all of it.
    async fn feed(&self) -> Vec<Value> {
        let body: Value = self
            .client
            .get(format!("{}/api/okla/v1/events", self.process.url))
            .query(&[("after", "0"), ("max_results", "1000")])
            .send()
            .await
            .expect("registry answers")
            .json()
            .await
            .expect("JSON answer");
        body["events"].as_array().expect("events list").clone()
    }
}

/// A TCP proxy to the broker that can be taken down (closing every connection through it)
/// and brought back on the same port.
struct Proxy {
    address: std::net::SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let proxy = Proxy {
            address,
            tasks: Arc::new(Mutex::new(Vec::new())),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let connection = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(BROKER).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().expect("task list").push(connection);
            }
        });
        self.tasks.lock().expect("task list").push(accept);
    }

    /// Stops listening and drops every proxied connection, as a broker crash would.
    fn stop(&self) {
        for task in self.tasks.lock().expect("task list").drain(..) {
            task.abort();
        }
    }

    async fn restart(&self) {
        let listener = TcpListener::bind(self.address)
            .await
            .expect("rebind the proxy's port");
        self.serve(listener);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A test consumer on one queue, acking each delivery it hands out.
struct QueueConsumer {
    connection: Connection,
    consumer: lapin::Consumer,
    queue: String,
}

impl QueueConsumer {
    /// Starts consuming `queue`, waiting up to 20 s for the relay to declare it.
    async fn open(amqp_url: &str, queue: &str) -> QueueConsumer {
        let connection = Connection::connect(amqp_url, ConnectionProperties::default())
            .await
            .expect("test consumer connects");
        // The relay declares the queues once it has connected, which may be after the test's
        // first changes; a consume on a missing queue closes its channel, so each attempt gets a
        // new one.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let consumer = loop {
            let channel = connection.create_channel().await.expect("channel");
            match channel
                .basic_consume(
                    queue.into(),
                    "okla-test".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
            {
                Ok(consumer) => break consumer,
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("{queue} was not declared by the relay within 20 s: {err}"),
            }
        };
        QueueConsumer {
            connection,
            consumer,
            queue: queue.to_owned(),
        }
    }

    /// The next delivery (acked), or `None` if none arrives within `wait`.
    async fn next_within(&mut self, wait: Duration) -> Option<lapin::message::Delivery> {
        let delivery = tokio::time::timeout(wait, self.consumer.next())
            .await
            .ok()?
            .unwrap_or_else(|| panic!("consumer stream on {} closed", self.queue))
            .expect("delivery");
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
        Some(delivery)
    }

    async fn close(self) {
        let _ = self.connection.close(200, "done".into()).await;
    }
}

/// Consumes `count` messages from `queue` (acking each), failing after 20 s without one.
async fn consume(amqp_url: &str, queue: &str, count: usize) -> Vec<lapin::message::Delivery> {
    let mut consumer = QueueConsumer::open(amqp_url, queue).await;
    let mut deliveries = Vec::new();
    while deliveries.len() < count {
        let delivery = consumer
            .next_within(Duration::from_secs(20))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "only {} of {count} messages on {queue} within 20 s",
                    deliveries.len()
                )
            });
        deliveries.push(delivery);
    }
    consumer.close().await;
    deliveries
}

/// Checks the AMQP properties the relay sets and returns the decoded event.
fn decoded(delivery: &lapin::message::Delivery) -> ModelEvent {
    let event = ModelEvent::decode(delivery.data.as_slice()).expect("payload is a ModelEvent");
    let properties = &delivery.properties;
    assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
    assert_eq!(
        properties
            .content_type()
            .as_ref()
            .map(|value| value.as_str()),
        Some("application/x-protobuf")
    );
    assert_eq!(
        properties.kind().as_ref().map(|value| value.as_str()),
        Some("okla.events.v1.ModelEvent")
    );
    assert_eq!(
        properties.message_id().as_ref().map(|value| value.as_str()),
        Some(event.event_id.as_str())
    );
    let headers = properties.headers().as_ref().expect("headers");
    match headers.inner().get("model_sequence") {
        Some(AMQPValue::LongLongInt(sequence)) => assert_eq!(*sequence, event.model_sequence),
        other => panic!("model_sequence header {other:?}"),
    }
    match headers.inner().get("model") {
        Some(AMQPValue::LongString(model)) => {
            assert_eq!(model.to_string(), event.model_name)
        }
        other => panic!("model header {other:?}"),
    }
    assert_eq!(delivery.exchange.as_str(), "okla.ml.models.exchange");
    event
}

/// Registers `name` with versions 1 and 2, promotes 1 to Production and points `champion` at
/// 2: five events, model sequences 1..=5.
async fn make_changes(registry: &RunningRegistry, name: &str) {
    registry
        .post("registered-models/create", json!({ "name": name }))
        .await;
    for number in 1..=2 {
        registry
            .post(
                "model-versions/create",
                json!({ "name": name, "source": format!("s3://bucket/{name}/{number}") }),
            )
            .await;
    }
    registry
        .post(
            "model-versions/transition-stage",
            json!({ "name": name, "version": "1", "stage": "Production", "archive_existing_versions": false }),
        )
        .await;
    registry
        .post(
            "registered-models/alias",
            json!({ "name": name, "alias": "champion", "version": "2" }),
        )
        .await;
}

async fn check_queues(amqp_url: &str, name: &str) {
    let trained = consume(amqp_url, "okla.ml.models.trained", 2).await;
    let trained: Vec<ModelEvent> = trained.iter().map(decoded).collect();
    for (index, event) in trained.iter().enumerate() {
        let number = index as i64 + 1;
        assert_eq!(event.model_name, name);
        assert_eq!(event.model_sequence, number);
        assert_eq!(event.actor, "ci");
        match event.body.as_ref() {
            Some(Body::VersionCreated(created)) => {
                assert_eq!(created.version, number);
                assert_eq!(created.source, format!("s3://bucket/{name}/{number}"));
            }
            other => panic!("unexpected body on trained: {other:?}"),
        }
    }
    let deployed = consume(amqp_url, "okla.ml.models.deployed", 2).await;
    let deployed: Vec<ModelEvent> = deployed.iter().map(decoded).collect();
    assert_eq!(
        deployed
            .iter()
            .map(|event| event.model_sequence)
            .collect::<Vec<_>>(),
        [3, 4]
    );
    match deployed[0].body.as_ref() {
        Some(Body::StageTransitioned(transitioned)) => {
            assert_eq!(transitioned.version, 1);
            assert_eq!(transitioned.from_stage, "None");
            assert_eq!(transitioned.to_stage, "Production");
        }
        other => panic!("unexpected first body on deployed: {other:?}"),
    }
    match deployed[1].body.as_ref() {
        Some(Body::AliasSet(set)) => {
            assert_eq!((set.alias.as_str(), set.version), ("champion", 2));
            assert_eq!(set.previous_version, None);
        }
        other => panic!("unexpected second body on deployed: {other:?}"),
    }
    let mut event_ids: Vec<&str> = trained
        .iter()
        .chain(&deployed)
        .map(|event| event.event_id.as_str())
        .collect();
    event_ids.sort_unstable();
    event_ids.dedup();
    assert_eq!(event_ids.len(), 4, "one message per event");
}

/// Waits until the feed shows every event published (the relay marks after the confirm).
async fn wait_until_all_published(registry: &RunningRegistry, count: usize) {
    // The relay's reconnect backoff reaches 10 s, so allow a little more after a long outage.
    for _ in 0..300 {
        let feed = registry.feed().await;
        if feed.len() == count && feed.iter().all(|event| !event["published_at_ms"].is_null()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("events not all published: {:?}", registry.feed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_changes_reach_rabbitmq_in_order() {
    let vhost = Vhost::create();
    let registry = RunningRegistry::start(&vhost.amqp_url_via(BROKER));
    make_changes(&registry, "churn").await;
    check_queues(&vhost.amqp_url_via(BROKER), "churn").await;
    wait_until_all_published(&registry, 4).await;
    let feed = registry.feed().await;
    assert_eq!(feed[2]["routing_key"], "model.version.transitioned");
    assert_eq!(
        feed[2]["event"]["stage_transitioned"]["to_stage"],
        "Production"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_delays_events_without_failing_changes() {
    let vhost = Vhost::create();
    let proxy = Proxy::start().await;
    let registry = RunningRegistry::start(&vhost.amqp_url_via(&proxy.address.to_string()));
    // The relay declares the queues once connected; the first change proves the path works.
    registry
        .post("registered-models/create", json!({ "name": "warmup" }))
        .await;
    registry
        .post(
            "model-versions/create",
            json!({ "name": "warmup", "source": "s3://bucket/warmup/1" }),
        )
        .await;
    wait_until_all_published(&registry, 1).await;
    let warmup = consume(&vhost.amqp_url_via(BROKER), "okla.ml.models.trained", 1).await;
    assert_eq!(decoded(&warmup[0]).model_name, "warmup");

    proxy.stop();
    make_changes(&registry, "fraud").await;
    // Long enough for the relay to have tried (and failed) several times.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let feed = registry.feed().await;
    assert_eq!(feed.len(), 5, "the changes were all accepted: {feed:?}");
    assert!(
        feed[1..]
            .iter()
            .all(|event| event["published_at_ms"].is_null()),
        "nothing is published while the broker is away: {feed:?}"
    );

    proxy.restart().await;
    wait_until_all_published(&registry, 5).await;
    check_queues(&vhost.amqp_url_via(BROKER), "fraud").await;
}

/// Promotion `index` of the outage test: even ones move the `champion` alias, odd ones put an
/// explicit deployment, each to a version different from that kind's previous one. Returns the
/// version promoted to.
async fn promote(registry: &RunningRegistry, name: &str, index: usize) -> i64 {
    let version = [1, 2, 3][index % 3];
    if index.is_multiple_of(2) {
        registry
            .post(
                "registered-models/alias",
                json!({ "name": name, "alias": "champion", "version": version.to_string() }),
            )
            .await;
    } else {
        registry
            .put_deployment(
                name,
                json!({ "routes": [{ "version": version, "weight": 100 }],
                        "comment": format!("promotion {index}") }),
            )
            .await;
    }
    version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_during_100_promotions_loses_and_duplicates_nothing() {
    const PROMOTIONS: usize = 100;
    const VERSIONS: usize = 3;
    let vhost = Vhost::create();
    let proxy = Proxy::start().await;
    let registry = RunningRegistry::start(&vhost.amqp_url_via(&proxy.address.to_string()));
    let name = "pricing";
    registry
        .post("registered-models/create", json!({ "name": name }))
        .await;
    for number in 1..=VERSIONS {
        registry
            .post(
                "model-versions/create",
                json!({ "name": name, "source": format!("s3://bucket/{name}/{number}") }),
            )
            .await;
    }
    wait_until_all_published(&registry, VERSIONS).await;

    proxy.stop();
    let mut promoted = Vec::with_capacity(PROMOTIONS);
    for index in 0..PROMOTIONS {
        promoted.push(promote(&registry, name, index).await);
    }
    let feed = registry.feed().await;
    assert_eq!(
        feed.len(),
        VERSIONS + PROMOTIONS,
        "every change was accepted"
    );
    proxy.restart().await;
    wait_until_all_published(&registry, VERSIONS + PROMOTIONS).await;

    // An idempotent consumer: the first delivery of each event_id counts, later ones are
    // duplicates. Once every promotion has arrived, the queue is drained until it stays quiet.
    let mut consumer =
        QueueConsumer::open(&vhost.amqp_url_via(BROKER), "okla.ml.models.deployed").await;
    let mut seen = std::collections::HashSet::new();
    let mut events: Vec<ModelEvent> = Vec::new();
    let mut duplicates = 0;
    loop {
        let wait = if events.len() < PROMOTIONS {
            Duration::from_secs(20)
        } else {
            Duration::from_secs(2)
        };
        let Some(delivery) = consumer.next_within(wait).await else {
            break;
        };
        let event = decoded(&delivery);
        if seen.insert(event.event_id.clone()) {
            events.push(event);
        } else {
            duplicates += 1;
        }
    }
    consumer.close().await;
    eprintln!(
        "{} deliveries on okla.ml.models.deployed: {} distinct events, {duplicates} duplicates",
        events.len() + duplicates,
        events.len()
    );

    assert_eq!(events.len(), PROMOTIONS, "exactly one event per promotion");
    let sequences: Vec<i64> = events.iter().map(|event| event.model_sequence).collect();
    let first = VERSIONS as i64 + 1;
    assert_eq!(
        sequences,
        (first..first + PROMOTIONS as i64).collect::<Vec<_>>(),
        "model_sequence strictly increasing without gaps"
    );
    for (index, (event, version)) in events.iter().zip(&promoted).enumerate() {
        assert_eq!(event.model_name, name);
        match (index % 2, event.body.as_ref()) {
            (0, Some(Body::AliasSet(set))) => {
                assert_eq!((set.alias.as_str(), set.version), ("champion", *version));
            }
            (1, Some(Body::DeploymentUpdated(updated))) => {
                let routes = &updated.routes;
                assert_eq!(routes.len(), 1, "{updated:?}");
                assert_eq!((routes[0].version, routes[0].weight), (*version, 100));
            }
            (_, other) => panic!("promotion {index}: unexpected body {other:?}"),
        }
    }
}
