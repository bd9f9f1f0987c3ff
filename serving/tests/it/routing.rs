//! Serving applies the registry's deployments: a weighted canary split, sticky A/B by a
//! routing-key header, and a shadow version that gets copies of the traffic without answering,
//! all while requests run and none fails.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use okla_serving::router::Routing;

use crate::follow_registry::{Registry, counter, serve_registry};
use crate::support::{Server, Traffic, wait_until};

/// Sets the model's explicit deployment through the registry's API.
async fn put_deployment(client: &reqwest::Client, registry: &Registry, body: Value) {
    let response = client
        .put(format!("{}/api/okla/v1/deployments/pricing", registry.url))
        .header("x-okla-actor", "routing-test")
        .json(&body)
        .send()
        .await
        .expect("registry answers");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "deployment refused: {text}");
}

/// One unversioned V2 infer call; returns the version that answered.
async fn infer(client: &reqwest::Client, server: &Server, user: Option<&str>, body: &Value) -> u64 {
    let mut request = client
        .post(format!("{}/v2/models/pricing/infer", server.http))
        .json(body);
    if let Some(user) = user {
        request = request.header("X-User-Id", user);
    }
    let response = request.send().await.expect("server answers");
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.expect("JSON answer");
    answer["model_version"]
        .as_str()
        .and_then(|version| version.parse().ok())
        .unwrap_or_else(|| panic!("no model_version in {answer}"))
}

fn features() -> Value {
    json!({"inputs": [{"name": "features", "shape": [1, 8], "datatype": "FP32",
        "data": [3, 2019, 60000, 1.6, 0, 1, 4, 12]}]})
}

async fn wait_until_pricing_ready(client: &reqwest::Client, server: &Server) {
    wait_until("the Production version serves", || async {
        client
            .get(format!("{}/v2/models/pricing/ready", server.http))
            .send()
            .await
            .is_ok_and(|response| response.status() == StatusCode::OK)
    })
    .await;
}

/// How many of `count` unversioned calls each version answered.
async fn tally(client: &reqwest::Client, server: &Server, count: usize) -> HashMap<u64, usize> {
    let body = features();
    let mut answers = HashMap::new();
    for _ in 0..count {
        *answers
            .entry(infer(client, server, None, &body).await)
            .or_default() += 1;
    }
    answers
}

#[tokio::test(flavor = "multi_thread")]
async fn serving_splits_sticks_and_shadows_as_deployed() {
    let registry = Registry::start(
        TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback port"),
    )
    .await;
    assert_eq!(
        registry
            .register("pricing", ["--stage", "Production"])
            .await,
        1
    );
    assert_eq!(
        registry.register("pricing", ["--stage", "Staging"]).await,
        2
    );
    let cache = tempfile::tempdir().expect("temporary directory");
    let server = serve_registry(&registry.url, cache.path());
    let client = reqwest::Client::new();
    wait_until_pricing_ready(&client, &server).await;
    let traffic = Traffic::start(&client, format!("{}/v2/models/pricing/infer", server.http));

    // A 90/10 canary.
    put_deployment(
        &client,
        &registry,
        json!({"routes": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]}),
    )
    .await;
    wait_until("both versions answer", || async {
        tally(&client, &server, 100).await.len() == 2
    })
    .await;
    let answers = tally(&client, &server, 2000).await;
    let canary = answers.get(&2).copied().unwrap_or(0);
    assert_eq!(answers.values().sum::<usize>(), 2000);
    assert!(
        (120..=280).contains(&canary),
        "version 2 answered {canary} of 2000 under a 10% canary: {answers:?}"
    );

    // Sticky 50/50 by the x-user-id header.
    put_deployment(
        &client,
        &registry,
        json!({"routes": [{"version": 1, "weight": 50}, {"version": 2, "weight": 50}],
               "sticky": {"routing_key_header": "x-user-id"}}),
    )
    .await;
    // Where each user must land: the server's router hashes keys the same way everywhere.
    let sticky = Routing {
        revision: 0,
        routes: vec![(1, 50), (2, 50)],
        sticky_header: Some("x-user-id".to_owned()),
        shadow: None,
    };
    let expected = |user: &str| sticky.pick(Some(user), 0);
    let users: Vec<String> = (0..200).map(|user| format!("user-{user}")).collect();
    let on_one = users
        .iter()
        .find(|user| expected(user) == 1)
        .expect("a user on 1");
    let on_two = users
        .iter()
        .find(|user| expected(user) == 2)
        .expect("a user on 2");
    let body = features();
    wait_until("users stick to their versions", || async {
        for _ in 0..20 {
            if infer(&client, &server, Some(on_one), &body).await != 1
                || infer(&client, &server, Some(on_two), &body).await != 2
            {
                return false;
            }
        }
        true
    })
    .await;
    for user in ["bob", "carol", "dave"] {
        for _ in 0..20 {
            assert_eq!(
                infer(&client, &server, Some(user), &body).await,
                expected(user),
                "{user}"
            );
        }
    }
    // The V2 request parameter carries the same key when a client cannot set headers.
    let alice = expected("alice");
    let mut with_parameter = features();
    with_parameter["parameters"] = json!({"routing_key": "alice"});
    for _ in 0..10 {
        assert_eq!(infer(&client, &server, None, &with_parameter).await, alice);
    }
    let mut on_v2 = 0;
    for user in &users {
        let version = infer(&client, &server, Some(user), &body).await;
        assert_eq!(version, expected(user), "{user}");
        if version == 2 {
            on_v2 += 1;
        }
    }
    assert!(
        (60..=140).contains(&on_v2),
        "{on_v2} of 200 users on version 2 under a 50/50 split"
    );

    // Version 1 answers everything; version 2 shadows it.
    put_deployment(
        &client,
        &registry,
        json!({"routes": [{"version": 1, "weight": 100}], "shadow": 2}),
    )
    .await;
    let shadowed =
        "okla_serving_shadow_requests_total{model=\"pricing\",version=\"2\",status=\"agree\"}";
    wait_until("version 2 gets shadow copies", || async {
        counter(&client, &server, shadowed).await > 0.0
    })
    .await;
    let before = counter(&client, &server, shadowed).await;
    let answers = tally(&client, &server, 200).await;
    assert_eq!(answers, HashMap::from([(1, 200)]));
    wait_until("the shadow counter grows", || async {
        counter(&client, &server, shadowed).await > before
    })
    .await;

    let (answered, failed) = traffic.finish().await;
    assert_eq!(failed, 0, "requests failed while deployments changed");
    assert!(answered > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_promotions_end_on_the_last_committed_deployment() {
    let registry = Registry::start(
        TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback port"),
    )
    .await;
    for stage in ["Production", "Staging", "Staging"] {
        registry.register("pricing", ["--stage", stage]).await;
    }
    let cache = tempfile::tempdir().expect("temporary directory");
    let server = serve_registry(&registry.url, cache.path());
    let client = reqwest::Client::new();
    wait_until_pricing_ready(&client, &server).await;

    // Promotions racing each other, as from several operators or pipelines at once.
    let promotions = (0..24u64).map(|index| {
        let client = client.clone();
        let registry = &registry;
        async move {
            let version = index % 3 + 1;
            put_deployment(
                &client,
                registry,
                json!({"routes": [{"version": version, "weight": 100}],
                       "comment": format!("promotion {index}")}),
            )
            .await;
        }
    });
    futures::future::join_all(promotions).await;
    let committed: Value = client
        .get(format!("{}/api/okla/v1/deployments/pricing", registry.url))
        .send()
        .await
        .expect("registry answers")
        .json()
        .await
        .expect("JSON");
    let last = committed["deployment"]["routes"][0]["version"]
        .as_u64()
        .expect("one route");

    wait_until("the server serves the last committed version", || async {
        tally(&client, &server, 20).await.keys().eq([&last])
    })
    .await;
    // And stays there: no older promotion arrives late.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        tally(&client, &server, 100).await,
        HashMap::from([(last, 100)])
    );
}
