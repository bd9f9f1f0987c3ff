//! Users, API tokens and per-user grants (the tables of `migrations/*/..._auth.sql`). Hashing
//! and every rule about who may do what live in `crate::auth`; this file only stores rows.

use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::Store;
use super::sql::{get_i64, get_opt_i64, get_opt_text, get_text, is_unique_violation};
use crate::domain::auth::{Grant, Permission, ResourceType, StoredToken, User};
use crate::domain::now_millis;
use crate::error::{Error, Result};

const USER_COLUMNS: &str = "id, username, password_hash, is_admin, created_time";
const TOKEN_COLUMNS: &str = "t.id, t.user_id, u.username, t.name, t.node_id, t.created_time, \
     t.expires_time, t.revoked_time";

fn user_from_row(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: get_i64(row, "id")?,
        username: get_text(row, "username")?,
        password_hash: get_text(row, "password_hash")?,
        is_admin: get_i64(row, "is_admin")? != 0,
        created_time: get_i64(row, "created_time")?,
    })
}

fn token_from_row(row: &AnyRow) -> Result<StoredToken> {
    Ok(StoredToken {
        id: get_text(row, "id")?,
        user_id: get_i64(row, "user_id")?,
        username: get_text(row, "username")?,
        name: get_text(row, "name")?,
        node_id: get_opt_text(row, "node_id")?,
        created_time: get_i64(row, "created_time")?,
        expires_time: get_i64(row, "expires_time")?,
        revoked_time: get_opt_i64(row, "revoked_time")?,
    })
}

fn grant_from_row(row: &AnyRow) -> Result<Grant> {
    let resource_type = get_text(row, "resource_type")?;
    let permission = get_text(row, "permission")?;
    Ok(Grant {
        resource_type: ResourceType::parse(&resource_type).map_err(Error::invalid)?,
        resource_id: get_text(row, "resource_id")?,
        permission: Permission::parse(&permission).map_err(Error::invalid)?,
    })
}

pub(super) fn user_not_found(username: &str) -> Error {
    Error::not_found(format!("User with username={username} not found"))
}

/// Gives `user_id` MANAGE on a resource it just created, inside the creating transaction, as
/// MLflow's after-request hook does (replacing a grant left from an earlier resource of that id).
pub(super) async fn grant_creator(
    transaction: &mut Transaction<'_, Any>,
    user_id: i64,
    resource_type: ResourceType,
    resource_id: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO permissions (user_id, resource_type, resource_id, permission) \
         VALUES ($1, $2, $3, 'MANAGE') \
         ON CONFLICT (user_id, resource_type, resource_id) DO UPDATE SET permission = 'MANAGE'",
    )
    .bind(user_id)
    .bind(resource_type.as_str())
    .bind(resource_id)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

/// Moves every grant on registered model `from` to `to` (a rename), in the renaming transaction.
pub(super) async fn rename_model_grants(
    transaction: &mut Transaction<'_, Any>,
    from: &str,
    to: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE permissions SET resource_id = $1 \
         WHERE resource_type = 'registered_model' AND resource_id = $2",
    )
    .bind(to)
    .bind(from)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

/// Removes every grant on registered model `name` (a delete), in the deleting transaction, so a
/// model later created under the same name inherits none of them.
pub(super) async fn delete_model_grants(
    transaction: &mut Transaction<'_, Any>,
    name: &str,
) -> Result<()> {
    sqlx::query(
        "DELETE FROM permissions WHERE resource_type = 'registered_model' AND resource_id = $1",
    )
    .bind(name)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

impl Store {
    pub async fn count_users(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.reader)
            .await?;
        get_i64(&row, "n")
    }

    /// Creates a user from an already hashed password.
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        is_admin: bool,
    ) -> Result<User> {
        let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO users (username, password_hash, is_admin, created_time) \
             VALUES ($1, $2, $3, $4) RETURNING {USER_COLUMNS}"
        )))
        .bind(username)
        .bind(password_hash)
        .bind(i64::from(is_admin))
        .bind(now_millis())
        .fetch_one(&self.writer)
        .await;
        match inserted {
            Ok(row) => user_from_row(&row),
            // MLflow's message, without the SQL (and the new password's hash) it appends.
            Err(error) if is_unique_violation(&error) => Err(Error::AlreadyExists(format!(
                "User (username={username}) already exists."
            ))),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn get_user(&self, username: &str) -> Result<User> {
        self.find_user(username)
            .await?
            .ok_or_else(|| user_not_found(username))
    }

    pub async fn find_user(&self, username: &str) -> Result<Option<User>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        )))
        .bind(username)
        .fetch_optional(&self.reader)
        .await?
        .map(|row| user_from_row(&row))
        .transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY id"
        )))
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(user_from_row)
        .collect()
    }

    pub async fn update_user_password(&self, username: &str, password_hash: &str) -> Result<()> {
        let updated = sqlx::query("UPDATE users SET password_hash = $1 WHERE username = $2")
            .bind(password_hash)
            .bind(username)
            .execute(&self.writer)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(user_not_found(username));
        }
        Ok(())
    }

    pub async fn update_user_admin(&self, username: &str, is_admin: bool) -> Result<()> {
        let updated = sqlx::query("UPDATE users SET is_admin = $1 WHERE username = $2")
            .bind(i64::from(is_admin))
            .bind(username)
            .execute(&self.writer)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(user_not_found(username));
        }
        Ok(())
    }

    /// Deletes a user with its tokens and grants (one transaction).
    pub async fn delete_user(&self, username: &str) -> Result<()> {
        let mut transaction = self.writer.begin().await?;
        let user = sqlx::query("SELECT id FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&mut *transaction)
            .await?
            .ok_or_else(|| user_not_found(username))?;
        let user_id = get_i64(&user, "id")?;
        for table in ["api_tokens", "permissions", "ui_sessions"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE user_id = $1"
            )))
            .bind(user_id)
            .execute(&mut *transaction)
            .await?;
        }
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Stores a new token (its secret only as a digest).
    pub async fn create_token(&self, token: &StoredToken, secret_sha256: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, secret_sha256, node_id, created_time, expires_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&token.id)
        .bind(token.user_id)
        .bind(&token.name)
        .bind(secret_sha256)
        .bind(token.node_id.as_deref())
        .bind(token.created_time)
        .bind(token.expires_time)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The token whose secret has this digest, with its owner, revoked or not.
    pub async fn find_token(&self, secret_sha256: &str) -> Result<Option<(StoredToken, User)>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS}, u.password_hash, u.is_admin, u.created_time AS user_created_time \
             FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.secret_sha256 = $1"
        )))
        .bind(secret_sha256)
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let token = token_from_row(&row)?;
        let user = User {
            id: token.user_id,
            username: token.username.clone(),
            password_hash: get_text(&row, "password_hash")?,
            is_admin: get_i64(&row, "is_admin")? != 0,
            created_time: get_i64(&row, "user_created_time")?,
        };
        Ok(Some((token, user)))
    }

    /// Tokens, newest first: one user's, or everyone's when `user_id` is `None`.
    pub async fn list_tokens(&self, user_id: Option<i64>) -> Result<Vec<StoredToken>> {
        let query = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE ($1 IS NULL OR t.user_id = $1) ORDER BY t.created_time DESC, t.id"
        );
        sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(user_id)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(token_from_row)
            .collect()
    }

    pub async fn get_token(&self, id: &str) -> Result<StoredToken> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.reader)
        .await?
        .map(|row| token_from_row(&row))
        .transpose()?
        .ok_or_else(|| Error::not_found(format!("Token '{id}' not found")))
    }

    /// Marks a token revoked (idempotent: an earlier revocation time is kept).
    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE api_tokens SET revoked_time = COALESCE(revoked_time, $1) WHERE id = $2",
        )
        .bind(now_millis())
        .bind(id)
        .execute(&self.writer)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(Error::not_found(format!("Token '{id}' not found")));
        }
        Ok(())
    }

    /// Adds a grant; an existing grant for the same user and resource is an error, as in MLflow
    /// (revoke first). Returns the user's id.
    pub async fn create_grant(&self, username: &str, grant: &Grant) -> Result<i64> {
        let user = self.get_user(username).await?;
        let inserted = sqlx::query(
            "INSERT INTO permissions (user_id, resource_type, resource_id, permission) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(user.id)
        .bind(grant.resource_type.as_str())
        .bind(&grant.resource_id)
        .bind(grant.permission.as_str())
        .execute(&self.writer)
        .await;
        match inserted {
            Ok(_) => Ok(user.id),
            Err(error) if is_unique_violation(&error) => Err(Error::AlreadyExists(format!(
                "Permission for user={username} on resource_type={}, resource_id={} already exists.",
                grant.resource_type.as_str(),
                grant.resource_id
            ))),
            Err(error) => Err(error.into()),
        }
    }

    /// Removes a grant; returns the user's id.
    pub async fn delete_grant(
        &self,
        username: &str,
        resource_type: ResourceType,
        resource_id: &str,
    ) -> Result<i64> {
        let user = self.get_user(username).await?;
        let deleted = sqlx::query(
            "DELETE FROM permissions WHERE user_id = $1 AND resource_type = $2 AND resource_id = $3",
        )
        .bind(user.id)
        .bind(resource_type.as_str())
        .bind(resource_id)
        .execute(&self.writer)
        .await?;
        if deleted.rows_affected() == 0 {
            return Err(Error::not_found(format!(
                "Permission for user={username} on resource_type={}, resource_id={resource_id} not found.",
                resource_type.as_str()
            )));
        }
        Ok(user.id)
    }

    /// Every grant a user holds.
    pub async fn list_grants(&self, user_id: i64) -> Result<Vec<Grant>> {
        sqlx::query(
            "SELECT resource_type, resource_id, permission FROM permissions \
             WHERE user_id = $1 ORDER BY resource_type, resource_id",
        )
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(grant_from_row)
        .collect()
    }

    /// Stores a web UI session (its secret only as a digest).
    pub async fn create_session(
        &self,
        secret_sha256: &str,
        user_id: i64,
        expires_time: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO ui_sessions (secret_sha256, user_id, created_time, expires_time) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(secret_sha256)
        .bind(user_id)
        .bind(now_millis())
        .bind(expires_time)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The user of a live session, `None` for an unknown or expired one.
    pub async fn find_session(&self, secret_sha256: &str) -> Result<Option<User>> {
        sqlx::query(
            "SELECT u.id, u.username, u.password_hash, u.is_admin, u.created_time \
             FROM ui_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.secret_sha256 = $1 AND s.expires_time > $2",
        )
        .bind(secret_sha256)
        .bind(now_millis())
        .fetch_optional(&self.reader)
        .await?
        .map(|row| user_from_row(&row))
        .transpose()
    }

    /// Ends a session; also drops every expired one, so the table does not grow forever.
    pub async fn delete_session(&self, secret_sha256: &str) -> Result<()> {
        sqlx::query("DELETE FROM ui_sessions WHERE secret_sha256 = $1 OR expires_time <= $2")
            .bind(secret_sha256)
            .bind(now_millis())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The experiment a run belongs to, `None` for an unknown run.
    pub async fn run_experiment_id(&self, run_id: &str) -> Result<Option<i64>> {
        sqlx::query("SELECT experiment_id FROM runs WHERE run_uuid = $1")
            .bind(run_id)
            .fetch_optional(&self.reader)
            .await?
            .map(|row| get_i64(&row, "experiment_id"))
            .transpose()
    }

    /// The experiment a logged model belongs to, `None` for an unknown model id.
    pub async fn logged_model_experiment_id(&self, model_id: &str) -> Result<Option<i64>> {
        sqlx::query("SELECT experiment_id FROM logged_models WHERE model_id = $1")
            .bind(model_id)
            .fetch_optional(&self.reader)
            .await?
            .map(|row| get_i64(&row, "experiment_id"))
            .transpose()
    }
}
