//! `okla users`: users (create, list, show, set-password, set-admin, delete) and their grants
//! on experiments and registered models (grant, revoke, permissions). Passwords are read from
//! a file or stdin, never from the command line, where the process list would show them.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use okla_client::{Credentials, Permission, ResourceType, User};
use serde_json::json;

use crate::Context;
use crate::output::{print_json, table};

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a user (admins only), with the password from --password-file or --password-stdin.
    Create {
        username: String,
        /// Make the new user an admin.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Every user.
    List,
    /// One user (admins: anyone; users: themselves).
    Show { username: String },
    /// Set a user's password. Admins may reset anyone else's; changing your own needs the
    /// current one, taken from MLFLOW_TRACKING_PASSWORD.
    SetPassword {
        username: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Make a user an admin, or no longer one (admins only).
    SetAdmin {
        username: String,
        #[arg(action = clap::ArgAction::Set)]
        is_admin: bool,
    },
    /// Delete a user with its tokens and grants (admins only, and not yourself).
    Delete { username: String },
    /// Grant a user a permission on an experiment or a model (admins, or MANAGE holders). A
    /// user holds one grant per resource: revoke the old one to change it.
    Grant {
        username: String,
        #[command(flatten)]
        resource: Resource,
        #[arg(value_enum, ignore_case = true)]
        permission: GrantedPermission,
    },
    /// Remove a user's grant on an experiment or a model.
    Revoke {
        username: String,
        #[command(flatten)]
        resource: Resource,
    },
    /// A user's grants.
    Permissions { username: String },
}

/// Where a password comes from: exactly one of these.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct PasswordSource {
    /// A file holding the password (12 characters or more); one trailing newline is ignored.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Read the password from stdin; one trailing newline is ignored.
    #[arg(long)]
    password_stdin: bool,
}

impl PasswordSource {
    /// The password, without one trailing newline (`echo` and editors add it).
    fn read(&self) -> anyhow::Result<String> {
        let mut password = match &self.password_file {
            Some(path) => std::fs::read_to_string(path).map_err(|error| {
                anyhow::anyhow!("cannot read --password-file {}: {error}", path.display())
            })?,
            None => {
                let mut read = String::new();
                std::io::stdin()
                    .read_to_string(&mut read)
                    .context("cannot read the password from stdin")?;
                read
            }
        };
        if password.ends_with('\n') {
            password.pop();
            if password.ends_with('\r') {
                password.pop();
            }
        }
        Ok(password)
    }
}

/// The resource a grant names: exactly one of these.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct Resource {
    /// An experiment, by id (`*`: every experiment).
    #[arg(long, value_name = "ID")]
    experiment: Option<String>,
    /// A registered model, by name (`*`: every model).
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
}

impl Resource {
    fn parts(&self) -> (ResourceType, &str) {
        match (&self.experiment, &self.model) {
            (Some(id), _) => (ResourceType::Experiment, id),
            (None, Some(name)) => (ResourceType::RegisteredModel, name),
            (None, None) => unreachable!("clap requires --experiment or --model"),
        }
    }
}

/// The permissions a grant may give (NO_PERMISSIONS is only ever reported).
#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "UPPER")]
pub(crate) enum GrantedPermission {
    Read,
    Use,
    Edit,
    Manage,
    Deny,
}

impl From<GrantedPermission> for Permission {
    fn from(permission: GrantedPermission) -> Permission {
        match permission {
            GrantedPermission::Read => Permission::Read,
            GrantedPermission::Use => Permission::Use,
            GrantedPermission::Edit => Permission::Edit,
            GrantedPermission::Manage => Permission::Manage,
            GrantedPermission::Deny => Permission::Deny,
        }
    }
}

pub(crate) async fn run(context: &Context, command: Command) -> anyhow::Result<()> {
    let client = &context.client;
    match command {
        Command::Create {
            username,
            admin,
            password,
        } => {
            let password = password.read()?;
            let mut user = client.create_user(&username, &password).await?;
            if admin {
                client
                    .update_admin(&username, true)
                    .await
                    .with_context(|| {
                        format!("user '{username}' was created, but not made an admin")
                    })?;
                user.is_admin = true;
            }
            if context.json {
                return print_json(&user);
            }
            let role = if user.is_admin { "an admin" } else { "a user" };
            out!("created {} (id {}) as {role}", user.username, user.id);
        }
        Command::List => {
            let users = client.list_users().await?;
            if context.json {
                return print_json(&users);
            }
            print_users(&users);
        }
        Command::Show { username } => {
            let user = client.get_user(&username).await?;
            if context.json {
                return print_json(&user);
            }
            print_users(&[user]);
        }
        Command::SetPassword { username, password } => {
            let password = password.read()?;
            // The registry asks for the current password when users change their own; the
            // CLI already holds it when it signs in as that user with a password.
            let current = match &context.credentials {
                Some(Credentials::Basic {
                    username: own,
                    password: current,
                }) if *own == username => Some(current.as_str()),
                _ => None,
            };
            client
                .update_password(&username, &password, current)
                .await?;
            print_done(
                context,
                json!({ "username": username, "password_changed": true }),
                format!("password of {username} changed"),
            )?;
        }
        Command::SetAdmin { username, is_admin } => {
            client.update_admin(&username, is_admin).await?;
            let text = if is_admin {
                format!("{username} is an admin")
            } else {
                format!("{username} is no longer an admin")
            };
            print_done(
                context,
                json!({ "username": username, "is_admin": is_admin }),
                text,
            )?;
        }
        Command::Delete { username } => {
            client.delete_user(&username).await?;
            print_done(
                context,
                json!({ "username": username, "deleted": true }),
                format!("deleted {username}"),
            )?;
        }
        Command::Grant {
            username,
            resource,
            permission,
        } => {
            let (resource_type, resource_id) = resource.parts();
            let permission = Permission::from(permission);
            client
                .grant_permission(&username, resource_type, resource_id, permission)
                .await?;
            print_done(
                context,
                json!({
                    "username": username,
                    "resource_type": resource_type,
                    "resource_id": resource_id,
                    "permission": permission,
                }),
                format!("granted {permission} on {resource_type} '{resource_id}' to {username}"),
            )?;
        }
        Command::Revoke { username, resource } => {
            let (resource_type, resource_id) = resource.parts();
            client
                .revoke_permission(&username, resource_type, resource_id)
                .await?;
            print_done(
                context,
                json!({
                    "username": username,
                    "resource_type": resource_type,
                    "resource_id": resource_id,
                    "revoked": true,
                }),
                format!("revoked {username}'s grant on {resource_type} '{resource_id}'"),
            )?;
        }
        Command::Permissions { username } => {
            let permissions = client.list_permissions(&username).await?;
            if context.json {
                return print_json(&permissions);
            }
            if permissions.is_admin {
                out!("{username} is an admin: grants do not limit them");
            }
            if permissions.permissions.is_empty() {
                out!("no grants for {username}");
                return Ok(());
            }
            let mut shown = table(["RESOURCE TYPE", "RESOURCE", "PERMISSION"]);
            for grant in &permissions.permissions {
                shown.add_row([
                    grant.resource_type.to_string(),
                    grant.resource_id.clone(),
                    grant.permission.to_string(),
                ]);
            }
            out!("{shown}");
        }
    }
    Ok(())
}

fn print_users(users: &[User]) {
    let mut shown = table(["ID", "USERNAME", "ADMIN"]);
    for user in users {
        shown.add_row([
            user.id.to_string(),
            user.username.clone(),
            if user.is_admin { "yes" } else { "no" }.to_owned(),
        ]);
    }
    out!("{shown}");
}

/// What a change that the registry answers with nothing prints: `text`, or `json` with `--json`.
fn print_done(context: &Context, json: serde_json::Value, text: String) -> anyhow::Result<()> {
    if context.json {
        return print_json(&json);
    }
    out!("{text}");
    Ok(())
}
