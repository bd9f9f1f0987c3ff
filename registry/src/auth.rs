//! Authentication and authorization: who a request is (basic auth with argon2-hashed passwords,
//! bearer API tokens, node credentials) and what it may do (MLflow's per-user grants, see
//! `domain::auth`), fast enough to sit in front of every request.
//!
//! A slow hash on every request would cap the server at a few dozen requests per second per
//! core, so verified credentials are cached for `--auth-cache-seconds` (MLflow's
//! `auth_cache_ttl_seconds`), keyed by a SHA-256 of username and password, as are a user's grants
//! and token lookups; every change this process makes (password, admin flag, grant, revocation,
//! deletion) clears the affected entries at once, so only another replica's changes wait for the
//! cache to expire. Hashing runs on the blocking pool behind a semaphore, so a flood of wrong
//! passwords cannot starve the executor, and failures from one client address delay that
//! address's next attempts without touching anyone else's (no lockout of the real user).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use moka::sync::Cache;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::domain::auth::{
    Access, Grant, Permission, Principal, ResourceType, StoredToken, User, validate_password,
    validate_username,
};
use crate::domain::now_millis;
use crate::error::{Error, Result};
use crate::store::Store;

/// Failed attempts from one address before its attempts are slowed down.
const FREE_FAILURES: u32 = 5;
/// The longest delay a failing address waits before its next credential is checked.
const MAX_FAILURE_DELAY: Duration = Duration::from_secs(5);
/// How long failures are remembered for an address that stops failing.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// How long a web UI sign-in lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Prefix of every token secret, so secret scanners and people recognise one.
pub const TOKEN_PREFIX: &str = "okla_";
/// The longest lifetime a token may be given.
pub const MAX_TOKEN_DAYS: i64 = 366;

/// Authentication settings, from the configuration.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `--no-auth`: every request acts as an unauthenticated superuser.
    pub disabled: bool,
    /// What users have on resources they hold no grant on (`--default-permission`).
    pub default_permission: Permission,
    /// How long verified credentials, token lookups and grants are reused.
    pub cache_ttl: Duration,
}

/// Why a request could not be authenticated: answered 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unauthenticated {
    Missing,
    Invalid,
}

/// Credentials as a request carries them in its `Authorization` header.
pub enum Credentials<'a> {
    Basic { username: String, password: String },
    Bearer(&'a str),
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(formatter, "Basic({username}, ***)"),
            Credentials::Bearer(_) => formatter.write_str("Bearer(***)"),
        }
    }
}

impl<'a> Credentials<'a> {
    /// Parses an `Authorization` header value; `None` when it is neither a well-formed Basic
    /// nor a Bearer credential.
    pub fn parse(header: &'a str) -> Option<Credentials<'a>> {
        let (scheme, value) = header.trim().split_once(' ')?;
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value)
                .ok()?;
            let pair = String::from_utf8(decoded).ok()?;
            let (username, password) = pair.split_once(':')?;
            return Some(Credentials::Basic {
                username: username.to_owned(),
                password: password.to_owned(),
            });
        }
        if scheme.eq_ignore_ascii_case("bearer") && !value.is_empty() {
            return Some(Credentials::Bearer(value));
        }
        None
    }
}

/// The web UI's session cookie.
pub const SESSION_COOKIE: &str = "okla_session";

/// A cookie's value in a request's `Cookie` headers.
pub fn cookie_value(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == name)
        .map(|cookie| cookie.value().to_owned())
}

/// The UI session secret a request carries, if any.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    cookie_value(headers, SESSION_COOKIE)
}

/// 256 random bits from the operating system, base64url without padding.
pub fn random_secret() -> String {
    let mut random = [0u8; 32];
    OsRng.fill_bytes(&mut random);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
}

/// A newly created token: its stored form and the secret, shown once.
pub struct IssuedToken {
    pub token: StoredToken,
    pub secret: String,
}

/// Shared by every request; cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    settings: AuthSettings,
    store: Store,
    /// SHA-256(username NUL password) of recently verified passwords -> the user.
    verified: Cache<[u8; 32], Principal>,
    /// SHA-256 of token secrets -> what they authenticate as (`None`: no live token).
    tokens: Cache<String, Option<Principal>>,
    /// SHA-256 of UI session secrets -> who is signed in (`None`: no live session).
    sessions: Cache<String, Option<Principal>>,
    /// User id -> every grant the user holds.
    grants: Cache<i64, Arc<Vec<Grant>>>,
    /// Run id -> its experiment (never changes once the run exists).
    run_experiments: Cache<String, i64>,
    /// Client address -> recent failed attempts.
    failures: Cache<IpAddr, u32>,
    hashing: Semaphore,
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            hasher.update([0]);
        }
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// Hashes a password with argon2id (OWASP's parameters, the crate's defaults) on the blocking pool.
pub async fn hash_password(password: &str) -> Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| Error::Internal(anyhow::anyhow!("hashing a password: {error}")))
    })
    .await
    .map_err(|error| Error::Internal(error.into()))?
}

fn verify_password_blocking(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

impl Auth {
    pub fn new(store: Store, settings: AuthSettings) -> Auth {
        let ttl = settings.cache_ttl.max(Duration::from_millis(1));
        let hashing_permits = std::thread::available_parallelism().map_or(2, |n| n.get());
        Auth {
            inner: Arc::new(Inner {
                verified: Cache::builder()
                    .max_capacity(10_000)
                    .time_to_live(ttl)
                    .build(),
                tokens: Cache::builder()
                    .max_capacity(10_000)
                    .time_to_live(ttl)
                    .build(),
                sessions: Cache::builder()
                    .max_capacity(10_000)
                    .time_to_live(ttl)
                    .build(),
                grants: Cache::builder()
                    .max_capacity(10_000)
                    .time_to_live(ttl)
                    .build(),
                run_experiments: Cache::builder().max_capacity(100_000).build(),
                failures: Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(FAILURE_MEMORY)
                    .build(),
                hashing: Semaphore::new(hashing_permits),
                store,
                settings,
            }),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.inner.settings.disabled
    }

    pub fn default_permission(&self) -> Permission {
        self.inner.settings.default_permission
    }

    /// On an empty user store, creates `admin` with `admin_password`; refuses to go on without
    /// one. Does nothing once any user exists, or with authentication off.
    pub async fn bootstrap(&self, admin_password: Option<&str>) -> Result<()> {
        if !self.enabled() || self.inner.store.count_users().await? > 0 {
            return Ok(());
        }
        let password = admin_password.filter(|password| !password.is_empty()).ok_or_else(|| {
            Error::invalid(
                "no users exist yet: set OKLA_ADMIN_PASSWORD or pass --admin-password-file FILE \
                 (at least 12 characters) to create the user 'admin', or run with --no-auth on a \
                 loopback address",
            )
        })?;
        validate_password(password)
            .map_err(|why| Error::invalid(format!("the admin password is too short: {why}")))?;
        let hash = hash_password(password).await?;
        self.inner.store.create_user("admin", &hash, true).await?;
        tracing::info!("created the admin user 'admin'");
        Ok(())
    }

    /// Who a request is, from its `Authorization` header (and, with authentication off, the
    /// name it claims in `x-okla-actor`).
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        claimed_actor: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<Principal, Unauthenticated> {
        let credentials = authorization.and_then(Credentials::parse);
        if !self.enabled() {
            let claimed = match &credentials {
                Some(Credentials::Basic { username, .. }) if !username.is_empty() => {
                    Some(username.clone())
                }
                _ => claimed_actor.map(str::to_owned),
            };
            return Ok(Principal::Unauthenticated { claimed });
        }
        let credentials = match (authorization, credentials) {
            (None, _) => return Err(Unauthenticated::Missing),
            (Some(_), None) => return Err(Unauthenticated::Invalid),
            (Some(_), Some(credentials)) => credentials,
        };
        let principal = match credentials {
            Credentials::Basic { username, password } => {
                self.verify_password(&username, &password, client).await
            }
            Credentials::Bearer(secret) => self.verify_token(secret).await,
        };
        match principal {
            Some(principal) => Ok(principal),
            None => {
                self.count_failure(client);
                Err(Unauthenticated::Invalid)
            }
        }
    }

    /// How long an address that failed `failures` times waits before its next check.
    fn failure_delay(failures: u32) -> Duration {
        if failures < FREE_FAILURES {
            return Duration::ZERO;
        }
        let doublings = (failures - FREE_FAILURES).min(16);
        (Duration::from_millis(100) * 2u32.pow(doublings)).min(MAX_FAILURE_DELAY)
    }

    async fn verify_password(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Option<Principal> {
        let key = digest(&[username.as_bytes(), password.as_bytes()]);
        if let Some(principal) = self.inner.verified.get(&key) {
            return Some(principal);
        }
        if let Some(failures) = client.and_then(|client| self.inner.failures.get(&client)) {
            tokio::time::sleep(Self::failure_delay(failures)).await;
        }
        let user = match self.inner.store.find_user(username).await {
            Ok(user) => user,
            Err(error) => {
                tracing::error!(%error, "reading a user to authenticate");
                return None;
            }
        };
        let _permit = self.inner.hashing.acquire().await.ok()?;
        // An unknown user costs a hash too, so timing does not tell which usernames exist.
        let hash = user.as_ref().map(|user| user.password_hash.clone());
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || match hash {
            Some(hash) => verify_password_blocking(&password, &hash),
            None => {
                let _ = verify_password_blocking(&password, DUMMY_HASH);
                false
            }
        })
        .await
        .unwrap_or(false);
        let user = user.filter(|_| matches)?;
        let principal = Principal::User {
            id: user.id,
            username: user.username,
            is_admin: user.is_admin,
        };
        self.inner.verified.insert(key, principal.clone());
        Some(principal)
    }

    /// Who a token authenticates, if it is live; for serving nodes checking their callers'
    /// tokens (no failure is counted against the asking node).
    pub async fn token_principal(&self, secret: &str) -> Option<Principal> {
        self.verify_token(secret).await
    }

    async fn verify_token(&self, secret: &str) -> Option<Principal> {
        let key = hex::encode(digest(&[secret.as_bytes()]));
        if let Some(cached) = self.inner.tokens.get(&key) {
            return cached;
        }
        let found = match self.inner.store.find_token(&key).await {
            Ok(found) => found,
            Err(error) => {
                tracing::error!(%error, "reading a token to authenticate");
                return None;
            }
        };
        let principal =
            found
                .filter(|(token, _)| token.is_live(now_millis()))
                .map(|(token, user)| match token.node_id {
                    Some(node_id) => Principal::Node { node_id },
                    None => Principal::User {
                        id: user.id,
                        username: user.username,
                        is_admin: user.is_admin,
                    },
                });
        self.inner.tokens.insert(key, principal.clone());
        principal
    }

    /// Checks a username and password from the UI's sign-in form, with the same cache and
    /// slow-down as basic auth.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Option<Principal> {
        let principal = self.verify_password(username, password, client).await;
        if principal.is_none() {
            self.count_failure(client);
        }
        principal
    }

    fn count_failure(&self, client: Option<IpAddr>) {
        if let Some(client) = client {
            let failures = self.inner.failures.get(&client).unwrap_or(0);
            self.inner
                .failures
                .insert(client, failures.saturating_add(1));
        }
    }

    /// Starts a UI session for a user; returns the cookie's secret.
    pub async fn start_session(&self, user_id: i64) -> Result<String> {
        let secret = random_secret();
        let lifetime = i64::try_from(SESSION_LIFETIME.as_millis()).unwrap_or(i64::MAX);
        let key = hex::encode(digest(&[secret.as_bytes()]));
        self.inner
            .store
            .create_session(&key, user_id, now_millis() + lifetime)
            .await?;
        Ok(secret)
    }

    /// Who a UI session cookie signs in, if it is live.
    pub async fn session(&self, secret: &str) -> Option<Principal> {
        let key = hex::encode(digest(&[secret.as_bytes()]));
        if let Some(cached) = self.inner.sessions.get(&key) {
            return cached;
        }
        let principal = match self.inner.store.find_session(&key).await {
            Ok(user) => user.map(|user| Principal::User {
                id: user.id,
                username: user.username,
                is_admin: user.is_admin,
            }),
            Err(error) => {
                tracing::error!(%error, "reading a UI session");
                return None;
            }
        };
        self.inner.sessions.insert(key, principal.clone());
        principal
    }

    /// Ends a UI session (signing out).
    pub async fn end_session(&self, secret: &str) -> Result<()> {
        let key = hex::encode(digest(&[secret.as_bytes()]));
        self.inner.store.delete_session(&key).await?;
        self.inner.sessions.invalidate(&key);
        Ok(())
    }

    /// Checks a user's current password (a self-service password change).
    pub async fn check_password(&self, user: &User, password: &str) -> bool {
        let Ok(_permit) = self.inner.hashing.acquire().await else {
            return false;
        };
        let (password, hash) = (password.to_owned(), user.password_hash.clone());
        tokio::task::spawn_blocking(move || verify_password_blocking(&password, &hash))
            .await
            .unwrap_or(false)
    }

    /// The permission `principal` has on a resource.
    pub async fn permission(
        &self,
        principal: &Principal,
        resource_type: ResourceType,
        resource_id: &str,
    ) -> Result<Permission> {
        match principal {
            _ if principal.is_superuser() => Ok(Permission::Manage),
            // A node serves whatever is deployed to it, so it reads every model and artifact.
            Principal::Node { .. } => Ok(Permission::Read),
            Principal::User { id, .. } => {
                let grants = self.grants(*id).await?;
                let grant = Grant::find(&grants, resource_type, resource_id);
                Ok(Permission::effective(grant, self.default_permission()))
            }
            Principal::Unauthenticated { .. } => Ok(Permission::Manage),
        }
    }

    /// Whether `principal` has `access` on a resource.
    pub async fn allows(
        &self,
        principal: &Principal,
        resource_type: ResourceType,
        resource_id: &str,
        access: Access,
    ) -> Result<bool> {
        if principal.is_superuser() {
            return Ok(true);
        }
        Ok(self
            .permission(principal, resource_type, resource_id)
            .await?
            .allows(access))
    }

    async fn grants(&self, user_id: i64) -> Result<Arc<Vec<Grant>>> {
        if let Some(grants) = self.inner.grants.get(&user_id) {
            return Ok(grants);
        }
        let grants = Arc::new(self.inner.store.list_grants(user_id).await?);
        self.inner.grants.insert(user_id, grants.clone());
        Ok(grants)
    }

    /// The experiment of a run, `None` for an unknown run.
    pub async fn run_experiment(&self, run_id: &str) -> Result<Option<i64>> {
        if let Some(experiment_id) = self.inner.run_experiments.get(run_id) {
            return Ok(Some(experiment_id));
        }
        let experiment_id = self.inner.store.run_experiment_id(run_id).await?;
        if let Some(experiment_id) = experiment_id {
            self.inner
                .run_experiments
                .insert(run_id.to_owned(), experiment_id);
        }
        Ok(experiment_id)
    }

    /// A user's grants changed.
    pub fn forget_grants(&self, user_id: i64) {
        self.inner.grants.invalidate(&user_id);
    }

    /// Grants on a registered model changed for possibly many users (a rename or delete).
    pub fn forget_all_grants(&self) {
        self.inner.grants.invalidate_all();
    }

    /// A user's password, admin flag or existence changed, or a token was revoked: nothing
    /// verified before may be reused.
    pub fn forget_credentials(&self) {
        self.inner.verified.invalidate_all();
        self.inner.tokens.invalidate_all();
        self.inner.sessions.invalidate_all();
    }

    /// Creates a user after checking the name and the password rule.
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        is_admin: bool,
    ) -> Result<User> {
        validate_username(username).map_err(Error::invalid)?;
        validate_password(password).map_err(Error::invalid)?;
        let hash = hash_password(password).await?;
        self.inner
            .store
            .create_user(username, &hash, is_admin)
            .await
    }

    pub async fn set_password(&self, username: &str, password: &str) -> Result<()> {
        validate_password(password).map_err(Error::invalid)?;
        let hash = hash_password(password).await?;
        self.inner
            .store
            .update_user_password(username, &hash)
            .await?;
        self.forget_credentials();
        Ok(())
    }

    /// Issues a token for `owner`, valid `days` days; `node_id` makes it a node credential.
    pub async fn issue_token(
        &self,
        owner: &User,
        name: &str,
        days: i64,
        node_id: Option<String>,
    ) -> Result<IssuedToken> {
        if name.trim().is_empty() || name.chars().count() > 256 {
            return Err(Error::invalid(
                "A token needs a 'name' of 1 to 256 characters, to tell it apart when revoking.",
            ));
        }
        if !(1..=MAX_TOKEN_DAYS).contains(&days) {
            return Err(Error::invalid(format!(
                "'expires_in_days' must be between 1 and {MAX_TOKEN_DAYS}, got {days}."
            )));
        }
        if let Some(node_id) = &node_id {
            crate::domain::nodes::validate_node_id(node_id).map_err(Error::invalid)?;
        }
        let mut random = [0u8; 40];
        OsRng.fill_bytes(&mut random);
        let secret = format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&random[..32])
        );
        let now = now_millis();
        let token = StoredToken {
            id: format!("tok_{}", hex::encode(&random[32..])),
            user_id: owner.id,
            username: owner.username.clone(),
            name: name.to_owned(),
            node_id,
            created_time: now,
            expires_time: now + days * 24 * 60 * 60 * 1000,
            revoked_time: None,
        };
        let secret_sha256 = hex::encode(digest(&[secret.as_bytes()]));
        self.inner
            .store
            .create_token(&token, &secret_sha256)
            .await?;
        Ok(IssuedToken { token, secret })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }
}

/// The authenticated caller of a request, put in its extensions by the API's access check.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            Error::Internal(anyhow::anyhow!(
                "a handler that needs its caller ran on a route without authentication"
            ))
        })
    }
}

impl Caller {
    pub fn actor(&self) -> String {
        self.0.actor()
    }

    /// Keeps the items the caller may read, by the resource each belongs to.
    pub async fn readable<T>(
        &self,
        auth: &Auth,
        resource_type: ResourceType,
        items: Vec<T>,
        id_of: impl Fn(&T) -> String,
    ) -> Result<Vec<T>> {
        if self.0.is_superuser() || matches!(self.0, Principal::Node { .. }) {
            return Ok(items);
        }
        let mut kept = Vec::with_capacity(items.len());
        for item in items {
            if auth
                .allows(&self.0, resource_type, &id_of(&item), Access::Read)
                .await?
            {
                kept.push(item);
            }
        }
        Ok(kept)
    }

    /// The caller was just granted MANAGE on what it created: its cached grants are stale.
    pub fn forget_own_grants(&self, auth: &Auth) {
        if let Some(user_id) = self.0.user_id() {
            auth.forget_grants(user_id);
        }
    }

    /// The experiments among `ids` the caller may read.
    pub async fn readable_experiments(&self, auth: &Auth, ids: Vec<i64>) -> Result<Vec<i64>> {
        self.readable(auth, ResourceType::Experiment, ids, i64::to_string)
            .await
    }

    /// Whether the caller may act with `access` on a resource.
    pub async fn may(
        &self,
        auth: &Auth,
        resource_type: ResourceType,
        id: &str,
        access: Access,
    ) -> Result<bool> {
        auth.allows(&self.0, resource_type, id, access).await
    }

    /// Whether the caller may read a resource (a page's subject): a missing grant answers as
    /// the default permission does.
    pub async fn may_read(
        &self,
        auth: &Auth,
        resource_type: ResourceType,
        id: &str,
    ) -> Result<bool> {
        self.may(auth, resource_type, id, Access::Read).await
    }
}

/// A valid argon2id hash of a random password, verified against when the user does not exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3i5qK9Wd8u2C9rV6pKZ2mXJ0bVtYqH0cF1m1kYH6c7E";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_headers_parse_without_exposing_secrets() {
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ada:pa:ss word")
        );
        match Credentials::parse(&basic) {
            Some(Credentials::Basic { username, password }) => {
                assert_eq!(
                    (username.as_str(), password.as_str()),
                    ("ada", "pa:ss word")
                );
            }
            other => panic!("{other:?}"),
        }
        let parsed = Credentials::parse("bearer okla_secret").expect("bearer");
        assert!(matches!(parsed, Credentials::Bearer("okla_secret")));
        assert_eq!(format!("{parsed:?}"), "Bearer(***)");
        for bad in [
            "Basic !!!",
            "Basic YWRh",
            "Bearer ",
            "Digest x",
            "",
            "Basic",
        ] {
            assert!(Credentials::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn failing_addresses_wait_longer_up_to_a_cap() {
        assert_eq!(Auth::failure_delay(0), Duration::ZERO);
        assert_eq!(Auth::failure_delay(FREE_FAILURES - 1), Duration::ZERO);
        assert_eq!(
            Auth::failure_delay(FREE_FAILURES),
            Duration::from_millis(100)
        );
        assert_eq!(
            Auth::failure_delay(FREE_FAILURES + 2),
            Duration::from_millis(400)
        );
        assert_eq!(Auth::failure_delay(1_000), MAX_FAILURE_DELAY);
    }

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let hash = runtime
            .block_on(hash_password("correct horse battery"))
            .expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password_blocking("correct horse battery", &hash));
        assert!(!verify_password_blocking("correct horse battery!", &hash));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
