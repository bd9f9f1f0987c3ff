//! `okla versions show|stage|alias|unalias`.

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use okla_client::{ModelVersion, Stage, VersionFile};
use serde::Serialize;

use crate::Context;
use crate::output::{print_json, table, timestamp};

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// A version, with every file's size and sha256.
    Show { name: String, version: u64 },
    /// Move a version to a stage.
    Stage {
        name: String,
        version: u64,
        #[arg(value_enum, ignore_case = true)]
        stage: StageArg,
        /// Move the other versions in that stage to Archived.
        #[arg(long)]
        archive_existing: bool,
    },
    /// Point an alias at a version.
    Alias {
        name: String,
        alias: String,
        version: u64,
    },
    /// Remove an alias.
    Unalias { name: String, alias: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum StageArg {
    None,
    Staging,
    Production,
    Archived,
}

impl From<StageArg> for Stage {
    fn from(stage: StageArg) -> Stage {
        match stage {
            StageArg::None => Stage::None,
            StageArg::Staging => Stage::Staging,
            StageArg::Production => Stage::Production,
            StageArg::Archived => Stage::Archived,
        }
    }
}

#[derive(Debug, Serialize)]
struct Shown {
    version: ModelVersion,
    files: Vec<VersionFile>,
}

pub(crate) async fn run(context: &Context, command: Command) -> anyhow::Result<()> {
    let client = &context.client;
    match command {
        Command::Show { name, version } => {
            let what = || format!("model '{name}' version {version}");
            let found = client
                .get_model_version(&name, version)
                .await
                .with_context(what)?;
            let files = client
                .version_files(&name, version)
                .await
                .with_context(what)?;
            if context.json {
                return print_json(&Shown {
                    version: found,
                    files,
                });
            }
            print_version(&found);
            let mut shown = table(["PATH", "SIZE", "SHA256"]);
            for file in &files {
                shown.add_row([
                    file.path.clone(),
                    file.size.to_string(),
                    file.sha256.clone(),
                ]);
            }
            out!("{shown}");
            Ok(())
        }
        Command::Stage {
            name,
            version,
            stage,
            archive_existing,
        } => {
            let moved = client
                .transition_stage(&name, version, stage.into(), archive_existing)
                .await?;
            if context.json {
                return print_json(&moved);
            }
            out!(
                "{} version {}: stage {}",
                moved.name,
                moved.version,
                moved.current_stage
            );
            Ok(())
        }
        Command::Alias {
            name,
            alias,
            version,
        } => {
            client.set_alias(&name, &alias, version).await?;
            let found = client.get_version_by_alias(&name, &alias).await?;
            if context.json {
                return print_json(&found);
            }
            out!("{name}@{alias} → version {}", found.version);
            Ok(())
        }
        Command::Unalias { name, alias } => {
            client.delete_alias(&name, &alias).await?;
            if context.json {
                return print_json(
                    &serde_json::json!({ "name": name, "alias": alias, "deleted": true }),
                );
            }
            out!("{name}@{alias} removed");
            Ok(())
        }
    }
}

/// A version's fields, one per line.
pub(crate) fn print_version(version: &ModelVersion) {
    out!("model:    {}", version.name);
    out!("version:  {}", version.version);
    out!("stage:    {}", version.current_stage);
    out!("aliases:  {}", version.aliases.join(", "));
    out!("status:   {}", version.status);
    out!("run id:   {}", version.run_id);
    out!("source:   {}", version.source);
    out!("created:  {}", timestamp(Some(version.creation_timestamp)));
}
