//! `okla experiments list`.

use clap::Subcommand;
use okla_client::name_contains_filter;

use crate::Context;
use crate::output::{print_json, table, timestamp};

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List the active experiments.
    List {
        /// Only experiments whose name contains this.
        #[arg(long)]
        filter: Option<String>,
    },
}

pub(crate) async fn run(context: &Context, command: Command) -> anyhow::Result<()> {
    match command {
        Command::List { filter } => {
            let filter = filter
                .as_deref()
                .map(name_contains_filter)
                .unwrap_or_default();
            let experiments = context.client.search_experiments(&filter).await?;
            if context.json {
                return print_json(&experiments);
            }
            let mut shown = table(["ID", "NAME", "CREATED", "ARTIFACT LOCATION"]);
            for experiment in &experiments {
                shown.add_row([
                    experiment.experiment_id.to_string(),
                    experiment.name.clone(),
                    timestamp(Some(experiment.creation_time)),
                    experiment.artifact_location.clone(),
                ]);
            }
            out!("{shown}");
            Ok(())
        }
    }
}
