//! Who may call what on a serving node: model control (load, unload: off unless
//! `--model-control explicit`, then only with an admin token) and, with `--require-token`,
//! inference and model metadata (a registry token that may read the model).
//!
//! Tokens are checked against the registry (`POST /api/okla/v1/tokens/verify`, with the node's
//! own credential), not on every request: a verdict is reused for `--token-cache-seconds`
//! (30), so a revoked token stops working within that time, and the last verdict for a token is kept beside, so an
//! unreachable registry never stops the node from accepting a token it accepted before.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use okla_client::TokenVerdict;
use sha2::{Digest, Sha256};

use crate::error::ServingError;

/// Whether models may be loaded and unloaded over the API, as Triton's `--model-control-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelControl {
    /// The repository or the registry decides what is served; load and unload are refused.
    None,
    /// Load and unload over HTTP and gRPC, with an admin token.
    Explicit,
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need<'a> {
    /// Inference or metadata of a model.
    Model(&'a str),
    /// Loading or unloading models.
    ModelControl,
    /// Listing the repository: any valid token with `--require-token`.
    AnyToken,
}

/// What a node needs to know of a registry verdict; `Copy`, so the request path allocates
/// nothing to use one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Verdict {
    valid: bool,
    is_admin: bool,
    may_read: bool,
}

impl From<&TokenVerdict> for Verdict {
    fn from(verdict: &TokenVerdict) -> Verdict {
        Verdict {
            valid: verdict.valid,
            is_admin: verdict.is_admin,
            may_read: verdict.may_read,
        }
    }
}

struct Checked {
    verdict: Verdict,
    at: Instant,
}

/// Tokens the node has seen, the verdicts per model ("" for none), and when each was checked.
/// Read on every guarded request, so a lookup takes a shared lock and allocates nothing;
/// written only when the registry was asked.
#[derive(Default)]
struct Verdicts(RwLock<HashMap<String, HashMap<String, Checked>>>);

/// Tokens remembered before the oldest are forgotten.
const MAX_TOKENS: usize = 100_000;

impl Verdicts {
    /// The verdict on `token` for `model`, if one was checked within `max_age` (any age: `None`).
    fn get(&self, token: &str, model: &str, max_age: Option<Duration>) -> Option<Verdict> {
        let entries = self
            .0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let checked = entries.get(token)?.get(model)?;
        match max_age {
            Some(max_age) if checked.at.elapsed() >= max_age => None,
            _ => Some(checked.verdict),
        }
    }

    fn insert(&self, token: &str, model: &str, verdict: Verdict, max_age: Duration) {
        let mut entries = self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= MAX_TOKENS && !entries.contains_key(token) {
            // Bounded: forget what is stale, and everything if that is not enough.
            entries.retain(|_, models| models.values().any(|c| c.at.elapsed() < max_age));
            if entries.len() >= MAX_TOKENS {
                entries.clear();
            }
        }
        entries.entry(token.to_owned()).or_default().insert(
            model.to_owned(),
            Checked {
                verdict,
                at: Instant::now(),
            },
        );
    }
}

/// The registry's answers about tokens, cached.
pub struct TokenVerifier {
    registry: okla_client::Client,
    ttl: Duration,
    verdicts: Verdicts,
}

impl TokenVerifier {
    /// Verdicts are reused for `ttl`.
    pub fn new(registry: okla_client::Client, ttl: Duration) -> TokenVerifier {
        TokenVerifier {
            registry,
            ttl,
            verdicts: Verdicts::default(),
        }
    }

    /// The cached verdict, if it is younger than the cache's time to live.
    fn fresh_verdict(&self, token: &str, model: Option<&str>) -> Option<Verdict> {
        self.verdicts
            .get(token, model.unwrap_or(""), Some(self.ttl))
    }

    async fn verdict(&self, token: &str, model: Option<&str>) -> Result<Verdict, ServingError> {
        if let Some(verdict) = self.fresh_verdict(token, model) {
            return Ok(verdict);
        }
        let model_key = model.unwrap_or("");
        match self.registry.verify_token(token, model).await {
            Ok(answer) => {
                let verdict = Verdict::from(&answer);
                self.verdicts.insert(token, model_key, verdict, self.ttl);
                Ok(verdict)
            }
            Err(error) => match self.verdicts.get(token, model_key, None) {
                Some(verdict) => {
                    tracing::warn!(%error, "the registry cannot verify a token; using its last verdict");
                    Ok(verdict)
                }
                None => {
                    tracing::warn!(%error, "the registry cannot verify a token");
                    Err(ServingError::Unavailable(
                        "cannot verify the token: the registry does not answer; retry later"
                            .to_owned(),
                    ))
                }
            },
        }
    }
}

/// The node's access rules, from its configuration.
pub struct Access {
    pub model_control: ModelControl,
    pub require_token: bool,
    /// SHA-256 of the `--admin-token-file` token, which may always control models.
    admin_token_sha256: Option<[u8; 32]>,
    verifier: Option<TokenVerifier>,
}

impl Access {
    /// No token needed for inference, no model control: the default without a registry.
    pub fn open() -> Arc<Access> {
        Arc::new(Access {
            model_control: ModelControl::None,
            require_token: false,
            admin_token_sha256: None,
            verifier: None,
        })
    }

    pub fn new(
        model_control: ModelControl,
        require_token: bool,
        admin_token: Option<&str>,
        verifier: Option<TokenVerifier>,
    ) -> Arc<Access> {
        Arc::new(Access {
            model_control,
            require_token,
            admin_token_sha256: admin_token.map(|token| Sha256::digest(token.as_bytes()).into()),
            verifier,
        })
    }

    /// Admits a request that presented `bearer` (the token of `Authorization: Bearer`), or
    /// answers why not: 401 without a usable token, 403 when the token may not.
    pub async fn check(&self, bearer: Option<&str>, need: Need<'_>) -> Result<(), ServingError> {
        match self.requirement(bearer, need)? {
            Requirement::Nothing => Ok(()),
            Requirement::Verdict { token, model } => {
                let verifier = self
                    .verifier
                    .as_ref()
                    .ok_or_else(|| ServingError::Unauthenticated("invalid token".to_owned()))?;
                judge(verifier.verdict(token, model).await?, need)
            }
        }
    }

    /// [`Access::check`] when it can decide without asking the registry (no token needed, or
    /// a fresh cached verdict), so the request path needs no future of its own; `None` when
    /// the registry must be asked.
    pub fn check_now(
        &self,
        bearer: Option<&str>,
        need: Need<'_>,
    ) -> Option<Result<(), ServingError>> {
        match self.requirement(bearer, need) {
            Err(error) => Some(Err(error)),
            Ok(Requirement::Nothing) => Some(Ok(())),
            Ok(Requirement::Verdict { token, model }) => match &self.verifier {
                None => Some(Err(ServingError::Unauthenticated(
                    "invalid token".to_owned(),
                ))),
                Some(verifier) => verifier
                    .fresh_verdict(token, model)
                    .map(|verdict| judge(verdict, need)),
            },
        }
    }

    /// What `need` takes beyond the request itself: nothing, or the registry's verdict on the
    /// token.
    fn requirement<'a>(
        &self,
        bearer: Option<&'a str>,
        need: Need<'a>,
    ) -> Result<Requirement<'a>, ServingError> {
        let token =
            |refusal: &str| bearer.ok_or_else(|| ServingError::Unauthenticated(refusal.to_owned()));
        const REQUIRED: &str = "this node requires a token: send Authorization: Bearer <token>";
        match need {
            Need::Model(_) | Need::AnyToken if !self.require_token => Ok(Requirement::Nothing),
            Need::AnyToken => Ok(Requirement::Verdict {
                token: token(REQUIRED)?,
                model: None,
            }),
            Need::ModelControl if self.model_control == ModelControl::None => {
                Err(ServingError::PermissionDenied(
                    "model control is off on this node: what it serves follows its repository or registry; start it with --model-control explicit to load and unload over the API".to_owned(),
                ))
            }
            Need::ModelControl => {
                let token = token(
                    "loading and unloading models needs an admin token (Authorization: Bearer)",
                )?;
                let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                if self.admin_token_sha256 == Some(digest) {
                    Ok(Requirement::Nothing)
                } else {
                    Ok(Requirement::Verdict { token, model: None })
                }
            }
            Need::Model(model) => Ok(Requirement::Verdict {
                token: token(REQUIRED)?,
                model: Some(model),
            }),
        }
    }
}

/// See [`Access::requirement`].
enum Requirement<'a> {
    Nothing,
    Verdict {
        token: &'a str,
        model: Option<&'a str>,
    },
}

/// Whether the registry's verdict on a token meets `need`.
fn judge(verdict: Verdict, need: Need<'_>) -> Result<(), ServingError> {
    if !verdict.valid {
        return Err(ServingError::Unauthenticated(
            "invalid token: unknown, expired or revoked".to_owned(),
        ));
    }
    match need {
        Need::ModelControl if !verdict.is_admin => Err(ServingError::PermissionDenied(
            "loading and unloading models needs an admin's token".to_owned(),
        )),
        Need::Model(model) if !verdict.may_read => Err(ServingError::PermissionDenied(format!(
            "the token may not use model '{model}'"
        ))),
        _ => Ok(()),
    }
}

/// The token of an `Authorization: Bearer` header value.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn model_control_is_off_unless_explicit_and_then_needs_the_admin_token() {
        let off = Access::new(ModelControl::None, false, Some("admin-secret"), None);
        let refused = block_on(off.check(Some("admin-secret"), Need::ModelControl));
        assert!(matches!(refused, Err(ServingError::PermissionDenied(_))));
        let explicit = Access::new(ModelControl::Explicit, false, Some("admin-secret"), None);
        assert!(block_on(explicit.check(Some("admin-secret"), Need::ModelControl)).is_ok());
        for token in [None, Some("wrong")] {
            let refused = block_on(explicit.check(token, Need::ModelControl));
            assert!(
                matches!(refused, Err(ServingError::Unauthenticated(_))),
                "{token:?}"
            );
        }
        // Inference stays open without --require-token.
        assert!(block_on(explicit.check(None, Need::Model("m"))).is_ok());
    }

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }
}
