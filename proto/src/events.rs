//! `okla.events.v1`: the `ModelEvent` the registry publishes on RabbitMQ and serves from its
//! events feed, and the RabbitMQ topology it travels on ([`topology`]).

#[allow(unreachable_pub, clippy::all, clippy::pedantic)]
mod generated {
    tonic::include_proto!("okla.events.v1");
}

pub use generated::*;

/// The names on RabbitMQ: the exchange, the registry's durable queues and their bindings, the
/// routing key of every event body, and the bindings of a serving node's own queue. The
/// registry declares all of it; a serving node declares the exchange (with the same arguments,
/// so whichever starts first creates it) and a queue of its own.
pub mod topology {
    use super::model_event::Body;

    /// The durable topic exchange every event is published to.
    pub const EXCHANGE: &str = "okla.ml.models.exchange";
    /// Where the queues below dead-letter rejected or expired messages (fanout).
    pub const DEAD_LETTER_EXCHANGE: &str = "okla.ml.models.dlx";
    /// Holds what the queues dead-lettered, for an operator to inspect or replay.
    pub const DEAD_LETTER_QUEUE: &str = "okla.ml.models.dlq";
    /// New model versions: what product services and evaluation jobs pick up.
    pub const TRAINED_QUEUE: &str = "okla.ml.models.trained";
    /// Stage, alias, deletion and deployment changes: what the serving fleet converges on.
    pub const DEPLOYED_QUEUE: &str = "okla.ml.models.deployed";
    /// The binding keys of `TRAINED_QUEUE`.
    pub const TRAINED_BINDINGS: &[&str] = &["model.version.created"];
    /// The binding keys of `DEPLOYED_QUEUE`: whatever changes which versions the fleet may serve
    /// (a deleted version or model must stop serving). `deployment.*` carries the deployments'
    /// changes; `model.deployed` and `model.load_failed` say what the serving nodes report they
    /// serve (written by the registry from the nodes' reports).
    pub const DEPLOYED_BINDINGS: &[&str] = &[
        "model.version.transitioned",
        "model.version.deleted",
        "model.alias.*",
        "model.renamed",
        "model.deleted",
        "deployment.*",
        "model.deployed",
        "model.load_failed",
    ];
    /// The binding keys of a serving node's own queue: what changes what the fleet serves.
    /// `model.version.created` does not (a new version serves only once a stage, alias or
    /// deployment names it); `model.deployed` and `model.load_failed` are what nodes themselves
    /// report.
    pub const NODE_BINDINGS: &[&str] = &[
        "model.version.transitioned",
        "model.version.deleted",
        "model.alias.*",
        "model.renamed",
        "model.deleted",
        "deployment.*",
    ];
    /// AMQP `content_type` of every event.
    pub const CONTENT_TYPE: &str = "application/x-protobuf";
    /// AMQP `type` of every event: the protobuf message name, versioned by its package.
    pub const MESSAGE_TYPE: &str = "okla.events.v1.ModelEvent";

    /// The routing key an event body is published under.
    pub fn routing_key(body: &Body) -> &'static str {
        match body {
            Body::VersionCreated(_) => "model.version.created",
            Body::StageTransitioned(_) => "model.version.transitioned",
            Body::AliasSet(_) => "model.alias.set",
            Body::AliasDeleted(_) => "model.alias.deleted",
            Body::VersionDeleted(_) => "model.version.deleted",
            Body::ModelRenamed(_) => "model.renamed",
            Body::ModelDeleted(_) => "model.deleted",
            Body::DeploymentUpdated(_) => "deployment.updated",
            Body::DeploymentDeleted(_) => "deployment.deleted",
            Body::DeploymentRolledBack(_) => "deployment.rolled_back",
            Body::ModelDeployed(_) => "model.deployed",
            Body::ModelLoadFailed(_) => "model.load_failed",
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Whether `binding` (a topic pattern: `*` is one word, `#` any number) matches `key`.
        fn matches(binding: &str, key: &str) -> bool {
            fn words(pattern: &[&str], key: &[&str]) -> bool {
                match (pattern.split_first(), key.split_first()) {
                    (None, None) => true,
                    (Some((&"#", rest)), _) => {
                        words(rest, key) || (!key.is_empty() && words(pattern, &key[1..]))
                    }
                    (Some((word, rest)), Some((first, key_rest))) => {
                        (*word == "*" || word == first) && words(rest, key_rest)
                    }
                    _ => false,
                }
            }
            let pattern: Vec<&str> = binding.split('.').collect();
            let key: Vec<&str> = key.split('.').collect();
            words(&pattern, &key)
        }

        fn bound(bindings: &[&str], key: &str) -> bool {
            bindings.iter().any(|binding| matches(binding, key))
        }

        const EVERY_KEY: &[&str] = &[
            "model.version.created",
            "model.version.transitioned",
            "model.alias.set",
            "model.alias.deleted",
            "model.version.deleted",
            "model.renamed",
            "model.deleted",
            "deployment.updated",
            "deployment.deleted",
            "deployment.rolled_back",
            "model.deployed",
            "model.load_failed",
        ];

        #[test]
        fn every_event_reaches_a_durable_queue() {
            for key in EVERY_KEY {
                assert!(
                    bound(TRAINED_BINDINGS, key) || bound(DEPLOYED_BINDINGS, key),
                    "{key} reaches no queue"
                );
            }
        }

        #[test]
        fn nodes_follow_what_changes_serving_but_not_what_nodes_publish() {
            for key in EVERY_KEY {
                let expected = !matches!(
                    *key,
                    "model.version.created" | "model.deployed" | "model.load_failed"
                );
                assert_eq!(bound(NODE_BINDINGS, key), expected, "{key}");
            }
            for binding in NODE_BINDINGS {
                assert!(DEPLOYED_BINDINGS.contains(binding), "{binding}");
            }
        }
    }
}
