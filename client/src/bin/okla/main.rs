//! `okla`: the command line of the OKLA platform: experiments, runs, models, versions, pushing
//! a model directory, deployments, predictions, tokens, and users with their permissions.
//! Commands live in `okla/`, one file per group.
//!
//! Exit codes: 0 done, 1 the registry refused or a local failure, 2 a usage error (clap's),
//! 3 the registry could not be reached.

/// `println!` that ignores a closed stdout (`okla models list | head -1`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod deploy;
mod experiments;
mod models;
mod output;
mod predict;
mod push;
mod runs;
mod tokens;
mod users;
mod versions;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use okla_client::{Client, ClientOptions, Credentials};

/// Command line of the OKLA model registry.
#[derive(Debug, Parser)]
#[command(name = "okla", version, about)]
struct Cli {
    /// The registry's base URL.
    #[arg(
        long,
        global = true,
        env = "OKLA_REGISTRY_URL",
        default_value = "http://127.0.0.1:5000"
    )]
    registry: String,
    /// Print the answers as JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Who a registry running with `--no-auth` records in a model's history.
    #[arg(long, global = true, env = "OKLA_ACTOR")]
    actor: Option<String>,
    /// A file holding an API token to authenticate with. Without it: `OKLA_TOKEN`, else
    /// `MLFLOW_TRACKING_TOKEN`, else `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD`
    /// (secrets are never taken from the command line, where the process list shows them).
    #[arg(long, global = true, env = "OKLA_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Experiments.
    #[command(subcommand)]
    Experiments(experiments::Command),
    /// Runs: list and compare.
    #[command(subcommand)]
    Runs(runs::Command),
    /// Registered models.
    #[command(subcommand)]
    Models(models::Command),
    /// Model versions: show, stage, alias.
    #[command(subcommand)]
    Versions(versions::Command),
    /// Upload a model directory from a new run and register it as a new version.
    Push(push::Args),
    /// A model's deployment: status, canary, promote, rollback.
    Deploy(deploy::Args),
    /// Ask okla-serving for a prediction (KServe V2 over gRPC).
    Predict(predict::Args),
    /// API tokens and serving nodes' credentials.
    #[command(subcommand)]
    Tokens(tokens::Command),
    /// Users and their permissions (MLflow's auth API).
    #[command(subcommand)]
    Users(users::Command),
}

/// What every command gets: the client, how to print, and the credentials the client signs
/// in with (`okla users set-password` sends the password as the current one).
pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) json: bool,
    pub(crate) credentials: Option<Credentials>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let registry = cli.registry.clone();
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let (message, code) = output::describe_error(&error, &registry);
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let credentials = match &cli.token_file {
        Some(path) => {
            let token = std::fs::read_to_string(path).map_err(|error| {
                anyhow::anyhow!("cannot read --token-file {}: {error}", path.display())
            })?;
            Some(Credentials::Token(token.trim().to_owned()))
        }
        None => Credentials::from_env(|name| std::env::var(name).ok()),
    };
    let options = ClientOptions {
        actor: cli.actor,
        credentials: credentials.clone(),
        ..ClientOptions::default()
    };
    let context = Context {
        client: Client::with_options(&cli.registry, options)?,
        json: cli.json,
        credentials,
    };
    match cli.command {
        Command::Experiments(command) => experiments::run(&context, command).await,
        Command::Runs(command) => runs::run(&context, command).await,
        Command::Models(command) => models::run(&context, command).await,
        Command::Versions(command) => versions::run(&context, command).await,
        Command::Push(args) => push::run(&context, args).await,
        Command::Deploy(args) => deploy::run(&context, args).await,
        Command::Predict(args) => predict::run(&context, args).await,
        Command::Tokens(command) => tokens::run(&context, command).await,
        Command::Users(command) => users::run(&context, command).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
