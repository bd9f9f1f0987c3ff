//! `okla deploy`: a model's deployment and what each serving node serves of it (`status`), and
//! changes: a canary beside the current single route, promotion to 100%, rollback, undeploy;
//! with `--wait`, until the fleet serves the version the change puts first.

use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use okla_client::{Deployment, DeploymentSpec, Node, Route};
use serde::Serialize;

use crate::Context;
use crate::output::{print_json, table, timestamp};

#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    group = clap::ArgGroup::new("change").required(true).args(["canary", "promote", "rollback", "undeploy"]),
    group = clap::ArgGroup::new("explained").args(["rollback", "undeploy"])
)]
pub(crate) struct Args {
    #[command(subcommand)]
    status: Option<StatusCommand>,
    /// The model to change.
    #[arg(required = true)]
    model: Option<String>,
    /// Send `--weight` percent of the traffic to this version, the rest to the current route.
    #[arg(long, requires = "weight", value_name = "VERSION")]
    canary: Option<u64>,
    /// The canary's share of the traffic, in percent.
    #[arg(long, requires = "canary", value_parser = clap::value_parser!(u32).range(1..100))]
    weight: Option<u32>,
    /// Send all the traffic to this version.
    #[arg(long, value_name = "VERSION")]
    promote: Option<u64>,
    /// Put one version back at 100%: `--to`, else the one the canary gate protects, else the
    /// heaviest route.
    #[arg(long)]
    rollback: bool,
    /// The version to roll back to.
    #[arg(long, requires = "rollback", value_name = "VERSION")]
    to: Option<u64>,
    /// Take the model out of the fleet: every serving node stops serving it, until a
    /// deployment, the `champion` alias or a Production version deploys it again.
    #[arg(long)]
    undeploy: bool,
    /// Why, recorded in the model's history (with --rollback or --undeploy).
    #[arg(long, requires = "explained")]
    reason: Option<String>,
    /// Then wait up to this many seconds until every serving node serves the version.
    #[arg(long, value_name = "SECONDS")]
    wait: Option<u64>,
}

#[derive(Debug, Subcommand)]
enum StatusCommand {
    /// The model's deployment, and per serving node the versions it serves.
    Status { model: String },
}

#[derive(Debug, Serialize)]
struct Status {
    deployment: Deployment,
    nodes: Vec<Node>,
}

pub(crate) async fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    if let Some(StatusCommand::Status { model }) = &args.status {
        return status(context, model).await;
    }
    let Some(model) = args.model.as_deref() else {
        anyhow::bail!("name the model to deploy, or use `okla deploy status MODEL`");
    };
    let client = &context.client;
    let (deployment, target) = if args.undeploy {
        let reason = args.reason.as_deref().unwrap_or("okla deploy --undeploy");
        (client.undeploy(model, reason).await?, None)
    } else if args.rollback {
        let reason = args.reason.as_deref().unwrap_or("okla deploy --rollback");
        let deployment = client.rollback(model, args.to, reason).await?;
        let target = heaviest(&deployment);
        (deployment, target)
    } else {
        let current = client
            .get_deployment(model)
            .await
            .with_context(|| format!("model '{model}'"))?;
        let spec = if let (Some(canary), Some(weight)) = (args.canary, args.weight) {
            canary_spec(&current, canary, weight)?
        } else if let Some(version) = args.promote {
            DeploymentSpec {
                routes: vec![Route {
                    version,
                    weight: 100,
                }],
                sticky: current.sticky.clone(),
                comment: Some(format!("okla deploy --promote {version}")),
                ..DeploymentSpec::default()
            }
        } else {
            anyhow::bail!(
                "say what to change: --canary V --weight W, --promote V, --rollback or --undeploy"
            );
        };
        let target = args.canary.or(args.promote);
        let deployment = client
            .put_deployment(model, &spec, Some(current.revision))
            .await?;
        (deployment, target)
    };
    let served = match (args.wait, target) {
        (Some(seconds), Some(version)) => Some(
            client
                .wait_until_served(model, version, Duration::from_secs(seconds))
                .await?,
        ),
        _ => None,
    };
    if context.json {
        return print_json(&serde_json::json!({ "deployment": deployment, "served_by": served }));
    }
    print_deployment(&deployment);
    if let (Some(nodes), Some(version)) = (served, target) {
        let names: Vec<&str> = nodes.iter().map(|node| node.node_id.as_str()).collect();
        out!("version {version} served by {}", names.join(", "));
    }
    Ok(())
}

/// The current single route at `100 - weight` and `canary` at `weight`, keeping sticky routing
/// and the shadow.
fn canary_spec(current: &Deployment, canary: u64, weight: u32) -> anyhow::Result<DeploymentSpec> {
    let [route] = current.routes.as_slice() else {
        anyhow::bail!(
            "{} has {} routes; --canary needs exactly one to split (promote or roll back first)",
            current.name,
            current.routes.len()
        );
    };
    anyhow::ensure!(
        route.version != canary,
        "{} version {canary} already takes all the traffic",
        current.name
    );
    Ok(DeploymentSpec {
        routes: vec![
            Route {
                version: route.version,
                weight: 100 - weight,
            },
            Route {
                version: canary,
                weight,
            },
        ],
        sticky: current.sticky.clone(),
        shadow: current.shadow.filter(|shadow| *shadow != canary),
        comment: Some(format!("okla deploy --canary {canary} --weight {weight}")),
        ..DeploymentSpec::default()
    })
}

fn heaviest(deployment: &Deployment) -> Option<u64> {
    deployment
        .routes
        .iter()
        .max_by_key(|route| route.weight)
        .map(|route| route.version)
}

async fn status(context: &Context, model: &str) -> anyhow::Result<()> {
    let deployment = context
        .client
        .get_deployment(model)
        .await
        .with_context(|| format!("model '{model}'"))?;
    let nodes = context.client.nodes(model).await?;
    if context.json {
        return print_json(&Status { deployment, nodes });
    }
    print_deployment(&deployment);
    if nodes.is_empty() {
        out!("no serving node reports {model}");
        return Ok(());
    }
    let mut shown = table(["NODE", "REPORTED", "REVISION", "VERSIONS"]);
    for node in &nodes {
        let reported = node
            .models
            .iter()
            .filter(|reported| reported.model == model);
        let revision: Vec<String> = reported
            .clone()
            .filter_map(|reported| reported.revision)
            .map(|revision| revision.to_string())
            .collect();
        let versions: Vec<String> = reported
            .flat_map(|reported| &reported.versions)
            .map(|version| match &version.error {
                Some(error) => format!("{} {} ({error})", version.version, version.state),
                None => format!("{} {}", version.version, version.state),
            })
            .collect();
        let when = timestamp(Some(node.reported_at_ms));
        shown.add_row([
            node.node_id.clone(),
            if node.stale {
                format!("{when} (stale)")
            } else {
                when
            },
            revision.join(", "),
            versions.join(", "),
        ]);
    }
    out!("{shown}");
    Ok(())
}

fn print_deployment(deployment: &Deployment) {
    out!(
        "{}: revision {}, source {}{}",
        deployment.name,
        deployment.revision,
        deployment.source,
        deployment
            .updated_by
            .as_deref()
            .map(|by| format!(", updated by {by} at {}", timestamp(deployment.updated_at)))
            .unwrap_or_default()
    );
    if deployment.routes.is_empty() {
        out!("no routes: the fleet serves nothing of {}", deployment.name);
        return;
    }
    let mut shown = table(["VERSION", "WEIGHT"]);
    for route in &deployment.routes {
        shown.add_row([route.version.to_string(), format!("{}%", route.weight)]);
    }
    out!("{shown}");
    if let Some(shadow) = deployment.shadow {
        out!("shadow: version {shadow}");
    }
    if let Some(sticky) = &deployment.sticky {
        out!("sticky on header {}", sticky.routing_key_header);
    }
}
