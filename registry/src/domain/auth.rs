//! Identity and permissions as MLflow's basic-auth app defines them (READ < USE < EDIT <
//! MANAGE, DENY as a veto, a default for resources without a grant), plus okla's principals:
//! users, API tokens and serving nodes. Pure rules; hashing and caching live in `crate::auth`.

use std::fmt;

pub use okla_proto::wire::ResourceType;

use super::now_millis;

/// A permission level, in MLflow's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    Read,
    Use,
    Edit,
    Manage,
    /// An explicit veto: not even reading.
    Deny,
    NoPermissions,
}

/// What a request needs on its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    Edit,
    Manage,
}

impl Permission {
    pub const GRANTABLE: [Permission; 5] = [
        Permission::Read,
        Permission::Use,
        Permission::Edit,
        Permission::Manage,
        Permission::Deny,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "READ",
            Permission::Use => "USE",
            Permission::Edit => "EDIT",
            Permission::Manage => "MANAGE",
            Permission::Deny => "DENY",
            Permission::NoPermissions => "NO_PERMISSIONS",
        }
    }

    /// MLflow's names, case-sensitive, with MLflow's message for anything else.
    pub fn parse(name: &str) -> Result<Permission, String> {
        match name {
            "READ" => Ok(Permission::Read),
            "USE" => Ok(Permission::Use),
            "EDIT" => Ok(Permission::Edit),
            "MANAGE" => Ok(Permission::Manage),
            "DENY" => Ok(Permission::Deny),
            "NO_PERMISSIONS" => Ok(Permission::NoPermissions),
            other => Err(format!(
                "Invalid permission '{other}'. Valid permissions are: ('READ', 'USE', 'EDIT', 'MANAGE', 'NO_PERMISSIONS', 'DENY')"
            )),
        }
    }

    /// Rank among the positive levels; DENY and NO_PERMISSIONS rank below READ.
    fn rank(self) -> u8 {
        match self {
            Permission::Deny | Permission::NoPermissions => 0,
            Permission::Read => 1,
            Permission::Use => 2,
            Permission::Edit => 3,
            Permission::Manage => 4,
        }
    }

    pub fn allows(self, access: Access) -> bool {
        let needed = match access {
            Access::Read => 1,
            Access::Edit => 3,
            Access::Manage => 4,
        };
        self.rank() >= needed
    }

    /// `permissions/get`'s `allowed`: MLflow's `can_use`, false for READ.
    pub fn can_use(self) -> bool {
        self.rank() >= 2
    }

    /// The permission a user has on a resource given its grant (if any) and the server's
    /// default: a positive grant is floored at the default, DENY stays DENY, no grant is the
    /// default (MLflow's `floor_positive_permission`).
    pub fn effective(grant: Option<Permission>, default: Permission) -> Permission {
        match grant {
            None => default,
            Some(Permission::Deny) => Permission::Deny,
            Some(granted) if granted.rank() >= default.rank() => granted,
            Some(_) => default,
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// One grant row: a permission on a resource (or on every resource of the type, id `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub resource_type: ResourceType,
    pub resource_id: String,
    pub permission: Permission,
}

impl Grant {
    /// The grant that applies to `resource_id` among a user's grants: the exact one, else the
    /// wildcard.
    pub fn find(
        grants: &[Grant],
        resource_type: ResourceType,
        resource_id: &str,
    ) -> Option<Permission> {
        let of_type = || {
            grants
                .iter()
                .filter(|grant| grant.resource_type == resource_type)
        };
        of_type()
            .find(|grant| grant.resource_id == resource_id)
            .or_else(|| of_type().find(|grant| grant.resource_id == "*"))
            .map(|grant| grant.permission)
    }
}

/// A stored user.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    /// argon2 PHC string.
    pub password_hash: String,
    pub is_admin: bool,
    pub created_time: i64,
}

impl fmt::Debug for User {
    // The hash stays out of logs and panics: it is a password oracle offline.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("is_admin", &self.is_admin)
            .finish_non_exhaustive()
    }
}

/// A stored API token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// Public id, e.g. `tok_3f9a0c1e2b4d5a67`.
    pub id: String,
    pub user_id: i64,
    pub username: String,
    pub name: String,
    /// Set on a node credential: the token authenticates as `node:<node_id>`.
    pub node_id: Option<String>,
    pub created_time: i64,
    pub expires_time: i64,
    pub revoked_time: Option<i64>,
}

impl StoredToken {
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_time.is_none() && now < self.expires_time
    }
}

/// Who a request acts as, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User {
        id: i64,
        username: String,
        is_admin: bool,
    },
    /// A serving node, by its node credential: reads what it serves, reports as itself.
    Node { node_id: String },
    /// `--no-auth`: nobody is checked; the name is whatever the caller claimed, for the history.
    Unauthenticated { claimed: Option<String> },
}

/// Actors only the registry itself produces; no caller may claim them.
pub fn is_reserved_actor(name: &str) -> bool {
    name == "canary-gate" || name.starts_with("node:")
}

impl Principal {
    /// The actor recorded in the history, the events and the audit log.
    pub fn actor(&self) -> String {
        match self {
            Principal::User { username, .. } => username.clone(),
            Principal::Node { node_id } => format!("node:{node_id}"),
            Principal::Unauthenticated { claimed } => claimed
                .clone()
                .filter(|name| !is_reserved_actor(name))
                .unwrap_or_else(|| "anonymous".to_owned()),
        }
    }

    /// Admins and `--no-auth` skip every permission check.
    pub fn is_superuser(&self) -> bool {
        matches!(
            self,
            Principal::User { is_admin: true, .. } | Principal::Unauthenticated { .. }
        )
    }

    pub fn user_id(&self) -> Option<i64> {
        match self {
            Principal::User { id, .. } => Some(*id),
            _ => None,
        }
    }
}

/// One audited call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub time: i64,
    /// The authenticated principal, or what a refused caller claimed to be.
    pub actor: String,
    pub method: String,
    pub path: String,
    pub status: u16,
}

impl AuditEntry {
    pub fn new(actor: String, method: &str, path: &str, status: u16) -> AuditEntry {
        AuditEntry {
            time: now_millis(),
            actor,
            method: method.to_owned(),
            path: path.to_owned(),
            status,
        }
    }

    /// `ok`, `refused` (401/403) or `failed` (any other error).
    pub fn outcome(&self) -> &'static str {
        match self.status {
            200..=399 => "ok",
            401 | 403 => "refused",
            _ => "failed",
        }
    }
}

/// MLflow's rule for new passwords.
pub fn validate_password(password: &str) -> Result<(), String> {
    if password.chars().count() < 12 {
        return Err("Password must be at least 12 characters.".to_owned());
    }
    Ok(())
}

/// Usernames: non-empty, at most 256 characters, no control characters or `:` (basic auth
/// splits on the first colon), and not a reserved actor.
pub fn validate_username(username: &str) -> Result<(), String> {
    if username.is_empty() {
        return Err("Username and password cannot be empty.".to_owned());
    }
    if username.chars().count() > 256 {
        return Err("Username must be at most 256 characters.".to_owned());
    }
    if username.chars().any(|c| c.is_control() || c == ':') {
        return Err(format!(
            "Username '{}' may not contain ':' or control characters.",
            username.escape_debug()
        ));
    }
    if is_reserved_actor(username) {
        return Err(format!(
            "Username '{username}' is reserved for the registry's own actors."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_permission_floors_positive_grants_and_keeps_deny() {
        use Permission::*;
        let table = [
            (None, Read, Read),
            (None, NoPermissions, NoPermissions),
            (Some(Read), Edit, Edit),
            (Some(Manage), Read, Manage),
            (Some(Deny), Manage, Deny),
            (Some(Use), Read, Use),
        ];
        for (grant, default, expected) in table {
            assert_eq!(
                Permission::effective(grant, default),
                expected,
                "{grant:?}/{default:?}"
            );
        }
    }

    #[test]
    fn access_levels_follow_mlflow() {
        use Permission::*;
        let table = [
            (Read, [true, false, false]),
            (Use, [true, false, false]),
            (Edit, [true, true, false]),
            (Manage, [true, true, true]),
            (Deny, [false, false, false]),
            (NoPermissions, [false, false, false]),
        ];
        for (permission, [read, edit, manage]) in table {
            assert_eq!(permission.allows(Access::Read), read, "{permission}");
            assert_eq!(permission.allows(Access::Edit), edit, "{permission}");
            assert_eq!(permission.allows(Access::Manage), manage, "{permission}");
        }
        assert!(!Read.can_use() && Use.can_use() && !Deny.can_use());
    }

    #[test]
    fn exact_grants_win_over_wildcards() {
        let grant = |id: &str, permission| Grant {
            resource_type: ResourceType::Experiment,
            resource_id: id.to_owned(),
            permission,
        };
        let grants = [grant("*", Permission::Edit), grant("7", Permission::Deny)];
        let find = |id| Grant::find(&grants, ResourceType::Experiment, id);
        assert_eq!(find("7"), Some(Permission::Deny));
        assert_eq!(find("8"), Some(Permission::Edit));
        assert_eq!(
            Grant::find(&grants, ResourceType::RegisteredModel, "7"),
            None
        );
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(validate_password("elevenchars").is_err());
        assert!(validate_password("twelve chars").is_ok());
        for bad in ["", "a:b", "node:1", "canary-gate", "tab\tname"] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
        assert!(Permission::parse("read").is_err());
        assert!(ResourceType::parse("run").is_err());
        let claimed = |name: &str| Principal::Unauthenticated {
            claimed: Some(name.to_owned()),
        };
        assert_eq!(claimed("canary-gate").actor(), "anonymous");
        assert_eq!(claimed("ada").actor(), "ada");
    }
}
