//! `okla models list` and `okla models show`.

use anyhow::Context as _;
use clap::Subcommand;
use okla_client::{ModelVersion, RegisteredModel, name_contains_filter};
use serde::Serialize;

use crate::Context;
use crate::output::{print_json, table, timestamp};

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List the registered models.
    List {
        /// Only models whose name contains this.
        #[arg(long)]
        filter: Option<String>,
    },
    /// A model's versions, stages and aliases.
    Show {
        /// The model's name.
        name: String,
    },
}

#[derive(Debug, Serialize)]
struct Shown {
    model: RegisteredModel,
    versions: Vec<ModelVersion>,
}

pub(crate) async fn run(context: &Context, command: Command) -> anyhow::Result<()> {
    match command {
        Command::List { filter } => {
            let filter = filter
                .as_deref()
                .map(name_contains_filter)
                .unwrap_or_default();
            let models = context.client.search_registered_models(&filter).await?;
            if context.json {
                return print_json(&models);
            }
            let mut shown = table(["NAME", "LATEST VERSIONS", "ALIASES"]);
            for model in &models {
                let latest: Vec<String> = model
                    .latest_versions
                    .iter()
                    .map(|version| format!("{} ({})", version.version, version.current_stage))
                    .collect();
                let aliases: Vec<String> = model
                    .aliases
                    .iter()
                    .map(|alias| format!("{} → {}", alias.alias, alias.version))
                    .collect();
                shown.add_row([model.name.clone(), latest.join(", "), aliases.join(", ")]);
            }
            out!("{shown}");
            Ok(())
        }
        Command::Show { name } => {
            let model = context
                .client
                .get_registered_model(&name)
                .await
                .with_context(|| format!("model '{name}'"))?;
            let filter = format!(
                "name = '{}'",
                name.replace('\\', "\\\\").replace('\'', "''")
            );
            let mut versions = context.client.search_model_versions(&filter).await?;
            versions.sort_by_key(|version| std::cmp::Reverse(version.version));
            if context.json {
                return print_json(&Shown { model, versions });
            }
            out!("model {}", model.name);
            if !model.description.is_empty() {
                out!("{}", model.description);
            }
            if versions.is_empty() {
                out!("no versions");
                return Ok(());
            }
            let mut shown = table(["VERSION", "STAGE", "ALIASES", "STATUS", "CREATED", "RUN ID"]);
            for version in &versions {
                shown.add_row([
                    version.version.to_string(),
                    version.current_stage.to_string(),
                    version.aliases.join(", "),
                    version.status.clone(),
                    timestamp(Some(version.creation_timestamp)),
                    version.run_id.clone(),
                ]);
            }
            out!("{shown}");
            Ok(())
        }
    }
}
