//! API tokens (`/api/okla/v1/tokens`): create one (its secret is shown once), list them, revoke
//! one; and the node credentials serving nodes report with.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use okla_proto::wire::{TokenVerdict, VerifyToken};

use crate::error::Result;
use crate::http::{Client, Idempotency};

/// A token as the registry lists it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub username: String,
    /// Set on a node credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    pub created_time: i64,
    pub expires_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_time: Option<i64>,
}

/// A token just created, with the secret that authenticates with it.
#[derive(Clone, Deserialize)]
pub struct IssuedToken {
    pub token: Token,
    pub secret: String,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("IssuedToken")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// What to create: a token of the caller's, or (admins) another user's or a serving node's.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewToken {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
}

#[derive(Deserialize)]
struct TokenList {
    tokens: Vec<Token>,
}

impl Client {
    pub async fn create_token(&self, token: &NewToken) -> Result<IssuedToken> {
        self.send_body(Method::POST, self.okla(["tokens"]), token)
            .await
    }

    /// The caller's tokens; an admin sees everyone's, or `username`'s.
    pub async fn list_tokens(&self, username: Option<&str>) -> Result<Vec<Token>> {
        let query: Vec<(&str, &str)> = username
            .map(|name| ("username", name))
            .into_iter()
            .collect();
        let list: TokenList = self.get_json(self.okla(["tokens"]), &query).await?;
        Ok(list.tokens)
    }

    /// A serving node's question: is `token` live, and may it use `model`? Needs a node
    /// credential (or an admin). Retried like a read: asking twice changes nothing.
    pub async fn verify_token(&self, token: &str, model: Option<&str>) -> Result<TokenVerdict> {
        let question = VerifyToken {
            token: token.to_owned(),
            model: model.map(str::to_owned),
        };
        let url = self.okla(["tokens", "verify"]);
        self.retrying(Idempotency::Idempotent, || {
            self.send_json(self.request(Method::POST, url.clone()).json(&question))
        })
        .await
    }

    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        let _: Value = self
            .send_body(
                Method::DELETE,
                self.okla(["tokens", id]),
                &serde_json::json!({}),
            )
            .await?;
        Ok(())
    }
}
