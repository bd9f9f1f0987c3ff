//! `okla tokens`: API tokens for training jobs and CI (`create` prints the secret once), and
//! node credentials for serving nodes (`create --node-id`, admins only).

use clap::Subcommand;
use okla_client::NewToken;

use crate::Context;
use crate::output::{print_json, table, timestamp};

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a token and print its secret (shown only this once).
    Create {
        /// What the token is for, to tell it apart when revoking.
        name: String,
        /// Days until it expires (1 to 366).
        #[arg(long, default_value_t = 90)]
        expires_in_days: i64,
        /// Admins: a node credential, with which a serving node reports as this node id.
        #[arg(long)]
        node_id: Option<String>,
        /// Admins: issue the token to this user.
        #[arg(long)]
        username: Option<String>,
    },
    /// Your tokens (admins: everyone's, or one user's).
    List {
        #[arg(long)]
        username: Option<String>,
    },
    /// Revoke a token by its id (`tok_...`): it stops working at once on this registry.
    Revoke { id: String },
}

pub(crate) async fn run(context: &Context, command: Command) -> anyhow::Result<()> {
    let client = &context.client;
    match command {
        Command::Create {
            name,
            expires_in_days,
            node_id,
            username,
        } => {
            let issued = client
                .create_token(&NewToken {
                    name,
                    expires_in_days: Some(expires_in_days),
                    username,
                    node_id,
                })
                .await?;
            if context.json {
                print_json(&serde_json::json!({ "token": issued.token, "secret": issued.secret }))?;
            } else {
                // The secret alone on stdout, so `okla tokens create ci > token` works; the
                // rest on stderr.
                eprintln!(
                    "created token {} ({}), expires {}; the secret is shown only now:",
                    issued.token.id,
                    issued.token.name,
                    timestamp(Some(issued.token.expires_time))
                );
                out!("{}", issued.secret);
            }
        }
        Command::List { username } => {
            let tokens = client.list_tokens(username.as_deref()).await?;
            if context.json {
                return print_json(&tokens);
            }
            let mut shown = table(["ID", "NAME", "USER", "NODE", "EXPIRES", "REVOKED"]);
            for token in &tokens {
                shown.add_row([
                    token.id.clone(),
                    token.name.clone(),
                    token.username.clone(),
                    token.node_id.clone().unwrap_or_else(|| "-".to_owned()),
                    timestamp(Some(token.expires_time)),
                    timestamp(token.revoked_time),
                ]);
            }
            out!("{shown}");
        }
        Command::Revoke { id } => {
            client.revoke_token(&id).await?;
            out!("revoked {id}");
        }
    }
    Ok(())
}
