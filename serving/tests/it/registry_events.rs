//! Serving reacts to the registry's model events on RabbitMQ (`--amqp-url`): the registry
//! publishes through its outbox relay into a vhost of the test's own, and the node, polling
//! only every hour, must serve a new champion within seconds, which only an event explains.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::follow_registry::{Registry, counter};
use crate::support::{Server, Vhost, wait_until};

/// How soon a change must be served; the poll interval is an hour.
const REACTION: Duration = Duration::from_secs(10);
const EVENTS: &str = "okla_serving_registry_events_total";

/// Fails unless `condition` holds within [`REACTION`].
async fn within_reaction<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + REACTION;
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "not within {REACTION:?}: {what} (polling alone would take an hour)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `model_version` a routed V2 infer call on `pricing` answers with; `None` on a failure.
async fn answering_version(client: &reqwest::Client, server: &Server) -> Option<String> {
    let body = json!({"inputs": [{"name": "features", "shape": [1, 8],
        "datatype": "FP32", "data": [3, 2019, 60000, 1.6, 0, 1, 4, 12]}]});
    let response = client
        .post(format!("{}/v2/models/pricing/infer", server.http))
        .json(&body)
        .send()
        .await
        .ok()?;
    if response.status() != StatusCode::OK {
        return None;
    }
    let answer: Value = response.json().await.ok()?;
    answer["model_version"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn champion_changes_reach_the_node_through_events() {
    let vhost = Vhost::create();
    let amqp_url = vhost.amqp_url();
    let registry = Registry::start_with(
        TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback port"),
        Some(&amqp_url),
    )
    .await;
    let cache = tempfile::tempdir().expect("temporary directory");
    let server = Server::start_args(&[
        "--registry",
        &registry.url,
        "--registry-poll-seconds",
        "3600",
        "--amqp-url",
        &amqp_url,
        "--cache-dir",
        cache.path().to_str().expect("UTF-8 temp path"),
    ]);
    let client = reqwest::Client::new();
    // The first poll found nothing to serve; from here on only events make the node poll.
    wait_until("the node has polled once", || async {
        client
            .get(format!("{}/v2/health/ready", server.http))
            .send()
            .await
            .is_ok_and(|response| response.status() == StatusCode::OK)
    })
    .await;

    let v1 = registry.register("pricing", ["--alias", "champion"]).await;
    assert_eq!(v1, 1);
    within_reaction("the new champion serves", || async {
        answering_version(&client, &server).await.as_deref() == Some("1")
    })
    .await;

    // A new version in Staging changes nothing served (its event makes one idle poll).
    let v2 = registry.register("pricing", ["--stage", "Staging"]).await;
    assert_eq!(v2, 2);
    let events_before_move = counter(&client, &server, EVENTS).await;
    assert!(
        events_before_move >= 1.0,
        "events counted: {events_before_move}"
    );
    assert_eq!(
        answering_version(&client, &server).await.as_deref(),
        Some("1")
    );

    registry.set_alias("pricing", "champion", v2).await;
    within_reaction("the moved champion answers", || async {
        answering_version(&client, &server).await.as_deref() == Some("2")
    })
    .await;
    let versions: Value = client
        .get(format!("{}/v2/models/pricing", server.http))
        .send()
        .await
        .expect("server answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(versions["versions"], json!(["2"]));
    // The swap may come first: the poll that one of version 2's events asked for "once more"
    // can already see the moved alias before the alias's own event arrives.
    within_reaction("the alias event is counted", || async {
        counter(&client, &server, EVENTS).await > events_before_move
    })
    .await;
}
