//! Users and their permissions through MLflow's auth API: users under `/api/2.0/mlflow/users`,
//! grants under `/api/3.0/mlflow/users/permissions`. Admins manage users; a user may read and
//! change itself; whoever may MANAGE a resource may grant and revoke on it.

use std::fmt;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::Result;
use crate::http::{Client, Idempotency};
use crate::wire::Empty;
pub use okla_proto::wire::ResourceType;

/// A registry user. Its password never leaves the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub is_admin: bool,
}

/// A permission level, in MLflow's names: READ < USE < EDIT < MANAGE; DENY vetoes even
/// reading. NO_PERMISSIONS is never granted, only reported for a resource without a grant
/// when that is the registry's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Permission {
    Read,
    Use,
    Edit,
    Manage,
    Deny,
    NoPermissions,
}

impl Permission {
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
}

impl fmt::Display for Permission {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// One grant a user holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub resource_type: ResourceType,
    /// The experiment id or model name, or `*` for every resource of the type. The registry
    /// lists it as `resource_pattern`, though grant and revoke take it as `resource_id`.
    #[serde(rename = "resource_pattern")]
    pub resource_id: String,
    pub permission: Permission,
}

/// A user's grants, as [`Client::list_permissions`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPermissions {
    /// An admin may do everything, whatever its grants say.
    pub is_admin: bool,
    #[serde(default)]
    pub permissions: Vec<Grant>,
}

/// What a user may do on one resource, as [`Client::get_permission`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectivePermission {
    /// The user's grant on the resource, floored at the registry's default, or that default.
    pub permission: Permission,
    /// MLflow's `can_use`: USE or more. False for READ.
    pub allowed: bool,
}

#[derive(Deserialize)]
struct UserAnswer {
    user: User,
}

#[derive(Serialize)]
struct GrantRequest<'a> {
    username: &'a str,
    resource_type: ResourceType,
    resource_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    permission: Option<Permission>,
}

impl Client {
    /// Creates a user who is not an admin (admins only; the password needs 12 characters or
    /// more). The registry ignores an admin flag here: follow with [`Client::update_admin`].
    pub async fn create_user(&self, username: &str, password: &str) -> Result<User> {
        let answer: UserAnswer = self
            .send_body(
                Method::POST,
                self.mlflow("users/create"),
                &serde_json::json!({ "username": username, "password": password }),
            )
            .await?;
        Ok(answer.user)
    }

    /// A user: admins may see anyone, users themselves.
    pub async fn get_user(&self, username: &str) -> Result<User> {
        let answer: UserAnswer = self
            .get_json(self.mlflow("users/get"), &[("username", username)])
            .await?;
        Ok(answer.user)
    }

    /// Every user, oldest first; any authenticated caller may list them.
    pub async fn list_users(&self) -> Result<Vec<User>> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            users: Vec<User>,
        }
        let answer: Answer = self.get_json(self.mlflow("users/list"), &[]).await?;
        Ok(answer.users)
    }

    /// Sets a user's password. An admin may reset anyone else's with `current_password`
    /// `None`; changing one's own (admins too) needs the current password.
    ///
    /// Not retried: had a lost attempt changed the password, the repeat would be refused for
    /// a current password that no longer matches.
    pub async fn update_password(
        &self,
        username: &str,
        password: &str,
        current_password: Option<&str>,
    ) -> Result<()> {
        let mut body = serde_json::json!({ "username": username, "password": password });
        if let Some(current) = current_password {
            body["current_password"] = current.into();
        }
        let _: Empty = self
            .send_body(Method::PATCH, self.mlflow("users/update-password"), &body)
            .await?;
        Ok(())
    }

    /// Makes a user an admin, or not (admins only). Retried like a read: setting the flag
    /// twice leaves it as once.
    pub async fn update_admin(&self, username: &str, is_admin: bool) -> Result<()> {
        let body = serde_json::json!({ "username": username, "is_admin": is_admin });
        let url = self.mlflow("users/update-admin");
        let _: Empty = self
            .retrying(Idempotency::Idempotent, || {
                self.send_json(self.request(Method::PATCH, url.clone()).json(&body))
            })
            .await?;
        Ok(())
    }

    /// Deletes a user with its tokens and grants (admins only, and not themselves).
    pub async fn delete_user(&self, username: &str) -> Result<()> {
        let _: Empty = self
            .send_body(
                Method::DELETE,
                self.mlflow("users/delete"),
                &serde_json::json!({ "username": username }),
            )
            .await?;
        Ok(())
    }

    /// Grants `permission` on a resource (`resource_id` `*`: every resource of the type). A
    /// user holds one grant per resource: a second is `RESOURCE_ALREADY_EXISTS`, so revoke
    /// first to change it. [`Permission::NoPermissions`] is refused.
    pub async fn grant_permission(
        &self,
        username: &str,
        resource_type: ResourceType,
        resource_id: &str,
        permission: Permission,
    ) -> Result<()> {
        let request = GrantRequest {
            username,
            resource_type,
            resource_id,
            permission: Some(permission),
        };
        let _: Empty = self
            .send_body(Method::POST, self.permissions_url("grant"), &request)
            .await?;
        Ok(())
    }

    /// Removes a user's grant on a resource; none there is `RESOURCE_DOES_NOT_EXIST`.
    pub async fn revoke_permission(
        &self,
        username: &str,
        resource_type: ResourceType,
        resource_id: &str,
    ) -> Result<()> {
        let request = GrantRequest {
            username,
            resource_type,
            resource_id,
            permission: None,
        };
        let _: Empty = self
            .send_body(Method::POST, self.permissions_url("revoke"), &request)
            .await?;
        Ok(())
    }

    /// What a user may do on one resource, as a non-admin: an admin's own flag is not taken
    /// into account here.
    pub async fn get_permission(
        &self,
        username: &str,
        resource_type: ResourceType,
        resource_id: &str,
    ) -> Result<EffectivePermission> {
        self.get_json(
            self.permissions_url("get"),
            &[
                ("username", username),
                ("resource_type", resource_type.as_str()),
                ("resource_id", resource_id),
            ],
        )
        .await
    }

    /// Every grant a user holds (admins: anyone's; users: their own).
    pub async fn list_permissions(&self, username: &str) -> Result<UserPermissions> {
        self.get_json(self.permissions_url("list"), &[("username", username)])
            .await
    }

    /// `/api/3.0/mlflow/users/permissions/<endpoint>`.
    fn permissions_url(&self, endpoint: &str) -> Url {
        self.url(["api", "3.0", "mlflow", "users", "permissions", endpoint])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_read_as_the_registry_lists_them() {
        let listed: UserPermissions = serde_json::from_str(
            r#"{"is_admin": false, "permissions": [
                {"resource_type": "registered_model", "resource_pattern": "pricing", "permission": "READ"},
                {"resource_type": "experiment", "resource_pattern": "*", "permission": "NO_PERMISSIONS"}
            ]}"#,
        )
        .unwrap();
        assert_eq!(
            listed.permissions,
            [
                Grant {
                    resource_type: ResourceType::RegisteredModel,
                    resource_id: "pricing".to_owned(),
                    permission: Permission::Read,
                },
                Grant {
                    resource_type: ResourceType::Experiment,
                    resource_id: "*".to_owned(),
                    permission: Permission::NoPermissions,
                },
            ]
        );
    }

    #[test]
    fn grant_requests_use_mlflows_field_names() {
        let request = GrantRequest {
            username: "bob",
            resource_type: ResourceType::RegisteredModel,
            resource_id: "pricing",
            permission: Some(Permission::Manage),
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({
                "username": "bob",
                "resource_type": "registered_model",
                "resource_id": "pricing",
                "permission": "MANAGE",
            })
        );
        let client = Client::new("http://registry:5000").unwrap();
        assert_eq!(
            client.permissions_url("grant").as_str(),
            "http://registry:5000/api/3.0/mlflow/users/permissions/grant"
        );
    }
}
