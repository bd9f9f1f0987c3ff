//! A training job's last steps with okla-client: track a run, register its model directory
//! (every file's sha256 checked against the registry's record), and point an alias at it.
//!
//! ```sh
//! cargo run -p okla-client --example push_model -- \
//!     --registry http://127.0.0.1:5000 --model pricing --dir examples/models/pricing/1 \
//!     --alias challenger
//! ```
//!
//! Prints the new version's number. The run is ended FAILED if registering fails.

use std::path::PathBuf;

use clap::Parser;
use okla_client::{Client, RunStatus};

#[derive(Debug, Parser)]
#[command(about = "Log a run and register a model directory as a new version")]
struct Args {
    /// okla-registry (or any MLflow tracking server), e.g. http://127.0.0.1:5000.
    #[arg(long)]
    registry: String,
    /// Registered model to add a version to (created if missing).
    #[arg(long)]
    model: String,
    /// The model directory to register, e.g. one holding model.onnx.
    #[arg(long)]
    dir: PathBuf,
    /// Alias to point at the new version, e.g. `challenger` or `champion`.
    #[arg(long)]
    alias: Option<String>,
    /// Experiment to log the run in; default: the model's name.
    #[arg(long)]
    experiment: Option<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> okla_client::Result<()> {
    let client = Client::new(&args.registry)?;
    let experiment = client
        .get_or_create_experiment(args.experiment.as_deref().unwrap_or(&args.model))
        .await?;
    let run = client
        .create_run(
            &experiment,
            "push_model",
            &[("source", "okla-client example")],
        )
        .await?;
    println!("run {}", run.id());

    let outcome = async {
        run.log_param("model", &args.model).await?;
        run.log_param("dir", &args.dir.display().to_string())
            .await?;
        // A training loop would log as it goes: `log` only queues the point, a background task
        // sends them in batches, and `flush` reports a batch the registry refused.
        let metrics = run.metrics();
        for step in 0..20_i64 {
            let epoch = step as f64;
            metrics
                .log("train_rmse", 4000.0 / (1.0 + epoch), step)
                .await?;
            metrics
                .log("val_rmse", 4200.0 / (1.0 + epoch) + 150.0, step)
                .await?;
        }
        metrics.flush().await?;

        let version = client
            .register_model_dir(&args.model, &run, &args.dir)
            .await?;
        if let Some(alias) = &args.alias {
            client
                .set_alias(&args.model, alias, version.version)
                .await?;
        }
        Ok::<_, okla_client::Error>(version)
    }
    .await;

    match outcome {
        Ok(version) => {
            run.end_run(RunStatus::Finished).await?;
            let alias = args
                .alias
                .map(|alias| format!(" (alias '{alias}')"))
                .unwrap_or_default();
            println!(
                "registered {} version {}{alias}",
                args.model, version.version
            );
            Ok(())
        }
        Err(error) => {
            // Best effort: the registration's error is the one worth reporting.
            let _ = run.end_run(RunStatus::Failed).await;
            Err(error)
        }
    }
}
