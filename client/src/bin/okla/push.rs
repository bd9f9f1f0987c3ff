//! `okla push`: a new run uploads a model directory (with a progress bar on a terminal), the
//! registry records it as a new version, optionally staged and aliased; the run then ends.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use okla_client::{ModelVersion, RunStatus, UploadProgress};

use crate::Context;
use crate::output::print_json;
use crate::versions::{StageArg, print_version};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The registered model's name (created if new).
    model: String,
    /// The directory to upload; every file under it becomes part of the version.
    dir: PathBuf,
    /// The experiment of the run that uploads it (created if new).
    #[arg(long, default_value = "Default")]
    experiment: String,
    /// The run's name; `push-<MODEL>` by default.
    #[arg(long)]
    run_name: Option<String>,
    /// Move the new version to this stage.
    #[arg(long, value_enum, ignore_case = true)]
    stage: Option<StageArg>,
    /// Point this alias at the new version.
    #[arg(long)]
    alias: Option<String>,
}

pub(crate) async fn run(context: &Context, args: Args) -> anyhow::Result<()> {
    let client = &context.client;
    let metadata = std::fs::metadata(&args.dir)
        .with_context(|| format!("cannot read {}", args.dir.display()))?;
    anyhow::ensure!(
        metadata.is_dir(),
        "{} is not a directory",
        args.dir.display()
    );
    let total = directory_size(&args.dir);

    let experiment = client.get_or_create_experiment(&args.experiment).await?;
    let run_name = args
        .run_name
        .clone()
        .unwrap_or_else(|| format!("push-{}", args.model));
    let run = client
        .create_run(&experiment, &run_name, &[("okla.push.model", &args.model)])
        .await?;

    let bar = if context.json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(format!("uploading {}", args.dir.display()));
        bar
    };
    let counting = bar.clone();
    let progress: UploadProgress = Arc::new(move |bytes| counting.inc(bytes));
    let registered = client
        .register_model_dir_reporting(&args.model, &run, &args.dir, Some(progress))
        .await;
    bar.finish_and_clear();

    let version = match finish(context, &args, registered).await {
        Ok(version) => version,
        Err(error) => {
            // The run records the failure; the error the user sees is the one that matters.
            let _ = run.end_run(RunStatus::Failed).await;
            return Err(error);
        }
    };
    run.end_run(RunStatus::Finished).await?;
    if context.json {
        return print_json(&version);
    }
    out!(
        "pushed {} version {} (run {})",
        version.name,
        version.version,
        run.id()
    );
    print_version(&version);
    Ok(())
}

/// After the upload: stage and alias the version, and read it back as it now is.
async fn finish(
    context: &Context,
    args: &Args,
    registered: okla_client::Result<ModelVersion>,
) -> anyhow::Result<ModelVersion> {
    let client = &context.client;
    let version = registered?;
    if let Some(stage) = args.stage {
        client
            .transition_stage(&args.model, version.version, stage.into(), false)
            .await
            .context("version registered, but not staged")?;
    }
    if let Some(alias) = &args.alias {
        client
            .set_alias(&args.model, alias, version.version)
            .await
            .context("version registered, but not aliased")?;
    }
    Ok(client
        .get_model_version(&args.model, version.version)
        .await?)
}

/// Bytes of every file under `dir`, for the progress bar's length; unreadable entries count
/// as empty (the upload itself reports them).
fn directory_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            match std::fs::metadata(entry.path()) {
                Ok(metadata) if metadata.is_dir() => pending.push(entry.path()),
                Ok(metadata) => total += metadata.len(),
                Err(_) => {}
            }
        }
    }
    total
}
