//! API tokens as the registry answers them, and a token's verdict as a serving node asks for
//! it (`POST /api/okla/v1/tokens/verify`).

use serde::{Deserialize, Serialize};

/// What a serving node asks about a token a caller presented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyToken {
    pub token: String,
    /// The model the caller wants to use; its read permission is answered in `may_read`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// The registry's verdict on a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenVerdict {
    /// A live token (known, not expired, not revoked).
    pub valid: bool,
    /// Who it authenticates (a username), when valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default)]
    pub is_admin: bool,
    /// Whether it may read (and so call) `model`; false without a model.
    #[serde(default)]
    pub may_read: bool,
}

impl TokenVerdict {
    pub fn invalid() -> TokenVerdict {
        TokenVerdict {
            valid: false,
            subject: None,
            is_admin: false,
            may_read: false,
        }
    }
}
