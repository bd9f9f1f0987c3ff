//! MLflow's auth API (`/api/2.0/mlflow/users/*`, `/api/3.0/mlflow/users/permissions/*`, as
//! `mlflow.server.get_app_client("basic-auth")` calls it) and okla's API tokens
//! (`/api/okla/v1/tokens`), and the audit log (`/api/okla/v1/audit`, admins only). Who may
//! call each is decided here: admins everything, users themselves, MANAGE holders the grants on
//! their resource.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{delete, get, patch, post};
use okla_proto::wire::{TokenVerdict, VerifyToken};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::extract::{Fields, MlflowQuery};
use super::{empty, required};
use crate::auth::Caller;
use crate::auth::MAX_TOKEN_DAYS;
use crate::domain::auth::{Access, Grant, Permission, Principal, ResourceType, StoredToken, User};
use crate::error::{Error, Result};
use crate::state::AppState;

/// Routes under `/api/2.0/mlflow/users` (and `/ajax-api/...`).
pub(super) fn user_routes() -> Router<AppState> {
    Router::new()
        .route("/create", post(create_user))
        .route("/get", get(get_user))
        .route("/current", get(current_user))
        .route("/list", get(list_users))
        .route("/update-password", patch(update_password))
        .route("/update-admin", patch(update_admin))
        .route("/delete", delete(delete_user))
}

/// Routes under `/api/3.0/mlflow/users` (and `/ajax-api/...`).
pub(super) fn permission_routes() -> Router<AppState> {
    Router::new()
        .route("/permissions/grant", post(grant))
        .route("/permissions/revoke", post(revoke))
        .route("/permissions/get", get(get_permission))
        .route("/permissions/list", get(list_permissions))
        .route("/current/permissions", get(current_permissions))
}

fn permission_denied() -> Error {
    Error::Forbidden("Permission denied".to_owned())
}

fn require_admin(caller: &Caller) -> Result<()> {
    if caller.0.is_superuser() {
        Ok(())
    } else {
        Err(permission_denied())
    }
}

/// The caller's own user name, when the caller is a user.
fn own_username(caller: &Caller) -> Option<&str> {
    match &caller.0 {
        Principal::User { username, .. } => Some(username),
        _ => None,
    }
}

/// Admins may act on anyone; users on themselves.
fn require_admin_or_self(caller: &Caller, username: &str) -> Result<()> {
    if caller.0.is_superuser() || own_username(caller) == Some(username) {
        Ok(())
    } else {
        Err(permission_denied())
    }
}

fn user_json(user: &User) -> Value {
    json!({ "id": user.id, "is_admin": user.is_admin, "username": user.username })
}

#[derive(Deserialize)]
pub(super) struct Credentials {
    username: Option<String>,
    password: Option<String>,
}

async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Fields(request): Fields<Credentials>,
) -> Result<Json<Value>> {
    require_admin(&caller)?;
    let username = required(request.username, "username")?;
    let password = required(request.password, "password")?;
    let user = state.auth.create_user(&username, &password, false).await?;
    Ok(Json(json!({ "user": user_json(&user) })))
}

#[derive(Deserialize)]
pub(super) struct UserRef {
    username: Option<String>,
}

async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Fields(request): Fields<UserRef>,
) -> Result<Json<Value>> {
    let username = required(request.username, "username")?;
    require_admin_or_self(&caller, &username)?;
    let user = state.store.get_user(&username).await?;
    Ok(Json(json!({ "user": user_json(&user) })))
}

async fn current_user(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>> {
    let user = match &caller.0 {
        Principal::User { username, .. } => user_json(&state.store.get_user(username).await?),
        other => json!({ "id": null, "is_admin": other.is_superuser(), "username": other.actor() }),
    };
    Ok(Json(
        json!({ "is_basic_auth": state.auth.enabled(), "user": user }),
    ))
}

async fn list_users(State(state): State<AppState>, _caller: Caller) -> Result<Json<Value>> {
    // Every authenticated user may list users, as in MLflow without workspaces: granting a
    // colleague access starts from their name.
    let users: Vec<Value> = state
        .store
        .list_users()
        .await?
        .iter()
        .map(|user| {
            let mut json = user_json(user);
            json["roles"] = json!([]);
            json
        })
        .collect();
    Ok(Json(json!({ "users": users })))
}

#[derive(Deserialize)]
pub(super) struct UpdatePassword {
    username: Option<String>,
    password: Option<String>,
    current_password: Option<String>,
}

async fn update_password(
    State(state): State<AppState>,
    caller: Caller,
    Fields(request): Fields<UpdatePassword>,
) -> Result<Json<Value>> {
    let username = required(request.username, "username")?;
    let password = required(request.password, "password")?;
    require_admin_or_self(&caller, &username)?;
    // A password change by the user needs the current one, so a stolen session or token cannot
    // take the account over; an admin resetting someone else's does not.
    if own_username(&caller) == Some(username.as_str()) {
        let current = request.current_password.ok_or_else(|| {
            Error::invalid("Current password is required when changing your own password.")
        })?;
        let user = state.store.get_user(&username).await?;
        if !state.auth.check_password(&user, &current).await {
            return Err(Error::invalid("Current password does not match."));
        }
        if current == password {
            return Err(Error::invalid(
                "New password must differ from the current password.",
            ));
        }
    }
    state.auth.set_password(&username, &password).await?;
    Ok(empty())
}

#[derive(Deserialize)]
pub(super) struct UpdateAdmin {
    username: Option<String>,
    is_admin: Option<bool>,
}

async fn update_admin(
    State(state): State<AppState>,
    caller: Caller,
    Fields(request): Fields<UpdateAdmin>,
) -> Result<Json<Value>> {
    require_admin(&caller)?;
    let username = required(request.username, "username")?;
    let is_admin = required(request.is_admin, "is_admin")?;
    state.store.update_user_admin(&username, is_admin).await?;
    state.auth.forget_credentials();
    Ok(empty())
}

async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    Fields(request): Fields<UserRef>,
) -> Result<Json<Value>> {
    require_admin(&caller)?;
    let username = required(request.username, "username")?;
    if own_username(&caller) == Some(username.as_str()) {
        return Err(Error::BadRequest(
            "Users cannot delete their own account. Ask another admin to delete this user instead."
                .to_owned(),
        ));
    }
    let user = state.store.get_user(&username).await?;
    state.store.delete_user(&username).await?;
    state.auth.forget_credentials();
    state.auth.forget_grants(user.id);
    Ok(empty())
}

#[derive(Deserialize)]
pub(super) struct GrantRequest {
    username: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    permission: Option<String>,
}

/// The resource a grant request names, after checking the caller may manage its grants.
async fn managed_resource(
    state: &AppState,
    caller: &Caller,
    resource_type: Option<String>,
    resource_id: Option<String>,
) -> Result<(ResourceType, String)> {
    let resource_type =
        ResourceType::parse(&required(resource_type, "resource_type")?).map_err(Error::invalid)?;
    let resource_id = required(resource_id, "resource_id")?;
    if !caller
        .may(&state.auth, resource_type, &resource_id, Access::Manage)
        .await?
    {
        return Err(permission_denied());
    }
    Ok((resource_type, resource_id))
}

async fn grant(
    State(state): State<AppState>,
    caller: Caller,
    Fields(request): Fields<GrantRequest>,
) -> Result<Json<Value>> {
    let username = required(request.username, "username")?;
    let (resource_type, resource_id) =
        managed_resource(&state, &caller, request.resource_type, request.resource_id).await?;
    let name = required(request.permission, "permission")?;
    let permission = Permission::parse(&name).map_err(Error::invalid)?;
    if !Permission::GRANTABLE.contains(&permission) {
        return Err(Error::invalid(format!(
            "Invalid permission '{name}' for resource_type='{}'. Resource-level grants accept only: ('DENY', 'EDIT', 'MANAGE', 'READ', 'USE').",
            resource_type.as_str()
        )));
    }
    let grant = Grant {
        resource_type,
        resource_id,
        permission,
    };
    let user_id = state.store.create_grant(&username, &grant).await?;
    state.auth.forget_grants(user_id);
    Ok(empty())
}

async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Fields(request): Fields<GrantRequest>,
) -> Result<Json<Value>> {
    let username = required(request.username, "username")?;
    let (resource_type, resource_id) =
        managed_resource(&state, &caller, request.resource_type, request.resource_id).await?;
    let user_id = state
        .store
        .delete_grant(&username, resource_type, &resource_id)
        .await?;
    state.auth.forget_grants(user_id);
    Ok(empty())
}

#[derive(Deserialize)]
pub(super) struct PermissionQuery {
    username: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
}

async fn get_permission(
    State(state): State<AppState>,
    caller: Caller,
    MlflowQuery(request): MlflowQuery<PermissionQuery>,
) -> Result<Json<Value>> {
    let username = required(request.username, "username")?;
    require_admin_or_self(&caller, &username)?;
    let resource_type = ResourceType::parse(&required(request.resource_type, "resource_type")?)
        .map_err(Error::invalid)?;
    let resource_id = required(request.resource_id, "resource_id")?;
    let user = state.store.get_user(&username).await?;
    let principal = Principal::User {
        id: user.id,
        username: user.username,
        is_admin: false,
    };
    let permission = state
        .auth
        .permission(&principal, resource_type, &resource_id)
        .await?;
    Ok(Json(
        json!({ "allowed": permission.can_use(), "permission": permission.as_str() }),
    ))
}

fn permissions_json(user: &User, grants: &[Grant]) -> Value {
    let permissions: Vec<Value> = grants
        .iter()
        .map(|grant| {
            json!({
                "resource_type": grant.resource_type.as_str(),
                "resource_pattern": grant.resource_id,
                "permission": grant.permission.as_str(),
            })
        })
        .collect();
    json!({ "is_admin": user.is_admin, "permissions": permissions })
}

async fn list_permissions(
    State(state): State<AppState>,
    caller: Caller,
    MlflowQuery(request): MlflowQuery<UserRef>,
) -> Result<Json<Value>> {
    let username = required(request.username, "username")?;
    require_admin_or_self(&caller, &username)?;
    let user = state.store.get_user(&username).await?;
    let grants = state.store.list_grants(user.id).await?;
    Ok(Json(permissions_json(&user, &grants)))
}

async fn current_permissions(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>> {
    let username = own_username(&caller).ok_or_else(permission_denied)?;
    let user = state.store.get_user(username).await?;
    let grants = state.store.list_grants(user.id).await?;
    Ok(Json(permissions_json(&user, &grants)))
}

/// A token as lists show it: never its secret.
#[derive(Serialize)]
struct TokenWire<'a> {
    id: &'a str,
    name: &'a str,
    username: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    node_id: Option<&'a str>,
    created_time: i64,
    expires_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_time: Option<i64>,
}

impl<'a> From<&'a StoredToken> for TokenWire<'a> {
    fn from(token: &'a StoredToken) -> TokenWire<'a> {
        TokenWire {
            id: &token.id,
            name: &token.name,
            username: &token.username,
            node_id: token.node_id.as_deref(),
            created_time: token.created_time,
            expires_time: token.expires_time,
            revoked_time: token.revoked_time,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct CreateToken {
    name: Option<String>,
    expires_in_days: Option<i64>,
    /// Admins only: issue the token to another user.
    username: Option<String>,
    /// Admins only: a node credential for this serving node id.
    node_id: Option<String>,
}

/// Tokens live 90 days unless asked otherwise.
const DEFAULT_TOKEN_DAYS: i64 = 90;

pub(super) async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Fields(request): Fields<CreateToken>,
) -> Result<Json<Value>> {
    let own = own_username(&caller)
        .ok_or_else(|| Error::Forbidden("Permission denied: only users hold tokens".to_owned()))?
        .to_owned();
    if (request.username.is_some() || request.node_id.is_some()) && !caller.0.is_superuser() {
        return Err(Error::Forbidden(
            "Permission denied: only an admin may issue tokens to other users or to serving nodes"
                .to_owned(),
        ));
    }
    let owner = state
        .store
        .get_user(request.username.as_deref().unwrap_or(&own))
        .await?;
    let name = required(request.name, "name")?;
    let days = request.expires_in_days.unwrap_or(DEFAULT_TOKEN_DAYS);
    if days > MAX_TOKEN_DAYS {
        return Err(Error::invalid(format!(
            "'expires_in_days' must be at most {MAX_TOKEN_DAYS}, got {days}."
        )));
    }
    let issued = state
        .auth
        .issue_token(&owner, &name, days, request.node_id)
        .await?;
    Ok(Json(json!({
        "token": TokenWire::from(&issued.token),
        "secret": issued.secret,
    })))
}

pub(super) async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    MlflowQuery(request): MlflowQuery<UserRef>,
) -> Result<Json<Value>> {
    let user_id = match (&request.username, caller.0.is_superuser()) {
        (None, true) => None,
        (Some(username), _) => {
            require_admin_or_self(&caller, username)?;
            Some(state.store.get_user(username).await?.id)
        }
        (None, false) => Some(caller.0.user_id().ok_or_else(permission_denied)?),
    };
    let tokens = state.store.list_tokens(user_id).await?;
    let tokens: Vec<TokenWire> = tokens.iter().map(TokenWire::from).collect();
    Ok(Json(json!({ "tokens": tokens })))
}

pub(super) async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(token_id): Path<String>,
) -> Result<Json<Value>> {
    let token = state.store.get_token(&token_id).await?;
    if !caller.0.is_superuser() && caller.0.user_id() != Some(token.user_id) {
        // Someone else's token is answered as missing: ids are not an oracle.
        return Err(Error::not_found(format!("Token '{token_id}' not found")));
    }
    state.store.revoke_token(&token_id).await?;
    state.auth.forget_credentials();
    Ok(empty())
}

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    after: Option<i64>,
    max_results: Option<i64>,
}

/// The audit log from `after` (an entry id), oldest first, at most `max_results` (1000) entries;
/// `next_after` continues it. Admins only (the access rule of every unnamed okla route).
pub(super) async fn audit_log(
    State(state): State<AppState>,
    MlflowQuery(request): MlflowQuery<AuditQuery>,
) -> Result<Json<Value>> {
    let after = request.after.unwrap_or(0).max(0);
    let limit = request.max_results.unwrap_or(1000).clamp(1, 1000);
    state.audit.flush().await;
    let entries = state.store.audit_entries(after, limit).await?;
    let next_after = entries.last().map_or(after, |(id, _)| *id);
    let entries: Vec<Value> = entries
        .iter()
        .map(|(id, entry)| {
            json!({
                "id": id,
                "time": entry.time,
                "actor": entry.actor,
                "method": entry.method,
                "path": entry.path,
                "status": entry.status,
                "outcome": entry.outcome(),
            })
        })
        .collect();
    Ok(Json(
        json!({ "entries": entries, "next_after": next_after }),
    ))
}

/// A serving node asks whether a caller's token is live and may use a model; nodes cache the
/// verdict briefly, so this is called once per token and model per node every few seconds.
pub(super) async fn verify_token(
    State(state): State<AppState>,
    Fields(request): Fields<VerifyToken>,
) -> Result<Json<TokenVerdict>> {
    let Some(principal) = state.auth.token_principal(&request.token).await else {
        return Ok(Json(TokenVerdict::invalid()));
    };
    let may_read = match &request.model {
        Some(model) => {
            state
                .auth
                .allows(
                    &principal,
                    ResourceType::RegisteredModel,
                    model,
                    Access::Read,
                )
                .await?
        }
        None => false,
    };
    Ok(Json(TokenVerdict {
        valid: true,
        subject: Some(principal.actor()),
        is_admin: principal.is_superuser(),
        may_read,
    }))
}
