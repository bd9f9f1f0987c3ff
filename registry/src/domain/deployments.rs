//! Deployments: which versions of a registered model the serving fleet serves and how traffic
//! splits between them (weighted routes, sticky A/B, a shadow, a canary gate), every rule a
//! deployment spec must satisfy, and the effective deployment of a model (its explicit one, else
//! nothing once explicitly undeployed, else the default from the `champion` alias or the
//! Production stage). Pure: no I/O, no async.

use std::collections::BTreeSet;

use okla_proto::policy;
use serde::{Deserialize, Serialize};

/// The weights of a deployment's routes sum to exactly this: they are percentages.
pub const TOTAL_WEIGHT: i64 = 100;
/// More routes than this is a configuration mistake, not an experiment anyone can read.
pub const MAX_ROUTES: usize = 10;
/// The alias that, when set, decides the default deployment ahead of the Production stage.
pub use okla_proto::policy::CHAMPION_ALIAS;
/// Longest sticky routing-key header name accepted; real header names are far shorter.
pub const MAX_HEADER_NAME_CHARS: usize = 128;
/// Longest comment or rollback reason recorded in the model history.
pub const MAX_COMMENT_CHARS: usize = 5000;
/// Bounds of the canary gate's `min_requests`.
pub const MAX_MIN_REQUESTS: i64 = 1_000_000_000;
/// Upper bound of the canary gate's `max_p99_ratio`: beyond it the gate could never trip.
pub const MAX_P99_RATIO: f64 = 100.0;

/// One version's share of the traffic, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub version: i64,
    pub weight: i64,
}

/// Sticky assignment: requests with the same value of this header always reach the same route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sticky {
    pub routing_key_header: String,
}

/// When the registry rolls a canary back by itself, judged on the serving nodes' reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CanaryGate {
    pub version: i64,
    pub max_error_rate_delta: f64,
    pub max_p99_ratio: f64,
    pub min_requests: i64,
}

/// What an explicit deployment says. Also the stored JSON form (`deployments.spec`), so fields
/// are only ever added, with defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentSpec {
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<Sticky>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_gate: Option<CanaryGate>,
}

impl DeploymentSpec {
    /// One version taking all of the traffic: the shape of every default deployment.
    pub fn single(version: i64) -> DeploymentSpec {
        DeploymentSpec {
            routes: vec![Route {
                version,
                weight: TOTAL_WEIGHT,
            }],
            sticky: None,
            shadow: None,
            canary_gate: None,
        }
    }

    /// Checks every rule and returns the spec in canonical form (the sticky header in lower
    /// case, since header names are case-insensitive and serving nodes compare them as bytes).
    /// Errors name the offending field, e.g. `routes[1].weight`.
    pub fn validated(mut self) -> Result<DeploymentSpec, String> {
        if self.routes.is_empty() {
            return Err(invalid(
                "routes",
                "must list at least one {version, weight}".to_owned(),
            ));
        }
        if self.routes.len() > MAX_ROUTES {
            return Err(invalid(
                "routes",
                format!(
                    "has {} entries; at most {MAX_ROUTES} are allowed",
                    self.routes.len()
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        for (index, route) in self.routes.iter().enumerate() {
            check_version(route.version, &format!("routes[{index}].version"))?;
            if !(1..=TOTAL_WEIGHT).contains(&route.weight) {
                return Err(invalid(
                    &format!("routes[{index}].weight"),
                    format!(
                        "must be an integer from 1 to {TOTAL_WEIGHT}, got {}",
                        route.weight
                    ),
                ));
            }
            if !seen.insert(route.version) {
                return Err(invalid(
                    &format!("routes[{index}].version"),
                    format!(
                        "version {} appears more than once; give each version one route",
                        route.version
                    ),
                ));
            }
        }
        // Each weight is at most 100 and there are at most 10, so the sum cannot overflow.
        let total: i64 = self.routes.iter().map(|route| route.weight).sum();
        if total != TOTAL_WEIGHT {
            return Err(invalid(
                "routes",
                format!("weights must sum to exactly {TOTAL_WEIGHT}, they sum to {total}"),
            ));
        }
        if let Some(sticky) = &mut self.sticky {
            sticky.routing_key_header = sticky.routing_key_header.trim().to_ascii_lowercase();
            check_header_name(&sticky.routing_key_header)?;
        }
        if let Some(shadow) = self.shadow {
            check_version(shadow, "shadow")?;
            if seen.contains(&shadow) {
                return Err(invalid(
                    "shadow",
                    format!(
                        "version {shadow} is also a route; a shadow receives a copy of the traffic and never answers, so it cannot be a route"
                    ),
                ));
            }
        }
        if let Some(gate) = &self.canary_gate {
            check_canary_gate(gate, &seen)?;
        }
        Ok(self)
    }

    /// Every version the fleet must hold for this spec: the routes, then the shadow.
    pub fn versions(&self) -> Vec<i64> {
        self.routes
            .iter()
            .map(|route| route.version)
            .chain(self.shadow)
            .collect()
    }

    /// The field that makes `version` part of this spec, if any (for refusals that name it).
    pub fn field_referencing(&self, version: i64) -> Option<String> {
        if let Some(index) = self
            .routes
            .iter()
            .position(|route| route.version == version)
        {
            return Some(format!("routes[{index}]"));
        }
        (self.shadow == Some(version)).then(|| "shadow".to_owned())
    }

    /// The version a rollback goes back to when the caller names none: the version the canary
    /// gate protects (the heaviest route that is not the canary), else the heaviest route. Ties
    /// go to the lowest version number, the older and presumably stable one. A single route has
    /// nothing to go back to.
    pub fn rollback_target(&self) -> Result<i64, String> {
        if let [only] = self.routes.as_slice() {
            return Err(format!(
                "Invalid rollback: the deployment already sends 100% to version {}; name the version to roll back to in 'to_version'",
                only.version
            ));
        }
        let canary = self.canary_gate.map(|gate| gate.version);
        self.routes
            .iter()
            .filter(|route| Some(route.version) != canary)
            // Heaviest first; among equals, the lowest version.
            .max_by_key(|route| (route.weight, std::cmp::Reverse(route.version)))
            .map(|route| route.version)
            .ok_or_else(|| "Invalid rollback: the deployment has no route to go back to".to_owned())
    }

    /// The spec after rolling back to `to_version`: it takes 100%. The sticky header stays (it
    /// configures assignment, not versions); the canary gate goes (it needs two routes); the
    /// shadow stays unless it is the version rolled back to, which now answers instead.
    pub fn rolled_back_to(&self, to_version: i64) -> Result<DeploymentSpec, String> {
        check_version(to_version, "to_version")?;
        DeploymentSpec {
            routes: vec![Route {
                version: to_version,
                weight: TOTAL_WEIGHT,
            }],
            sticky: self.sticky.clone(),
            shadow: self.shadow.filter(|shadow| *shadow != to_version),
            canary_gate: None,
        }
        .validated()
    }

    /// The stored form; also what the model history records as a change's from/to.
    pub fn to_json(&self) -> String {
        // A struct of strings, integers and finite floats always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the stored form back.
    pub fn from_json(text: &str) -> Result<DeploymentSpec, String> {
        serde_json::from_str(text).map_err(|error| format!("stored deployment spec: {error}"))
    }
}

/// A rollback's reason (required) or a change's comment (optional): recorded in the history.
pub fn validate_comment(comment: &str, field: &str) -> Result<(), String> {
    if comment.chars().count() > MAX_COMMENT_CHARS {
        return Err(invalid(
            field,
            format!("is longer than {MAX_COMMENT_CHARS} characters"),
        ));
    }
    Ok(())
}

/// The reason every rollback must give.
pub fn validate_reason(reason: &str) -> Result<(), String> {
    if reason.trim().is_empty() {
        return Err(
            "Missing value for required parameter 'reason': a rollback must say why".to_owned(),
        );
    }
    validate_comment(reason, "reason")
}

fn check_version(version: i64, field: &str) -> Result<(), String> {
    if version < 1 {
        return Err(invalid(
            field,
            format!("must be a model version number (1 or more), got {version}"),
        ));
    }
    Ok(())
}

/// RFC 9110 token characters: what a header name may contain.
fn check_header_name(name: &str) -> Result<(), String> {
    let field = "sticky.routing_key_header";
    if name.is_empty() {
        return Err(invalid(
            field,
            "must name a request header such as 'x-user-id'".to_owned(),
        ));
    }
    if name.chars().count() > MAX_HEADER_NAME_CHARS {
        return Err(invalid(
            field,
            format!("is longer than {MAX_HEADER_NAME_CHARS} characters"),
        ));
    }
    let is_token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !name.chars().all(is_token) {
        return Err(invalid(
            field,
            format!("'{name}' is not a valid HTTP header name"),
        ));
    }
    Ok(())
}

fn check_canary_gate(gate: &CanaryGate, routes: &BTreeSet<i64>) -> Result<(), String> {
    check_version(gate.version, "canary_gate.version")?;
    if !routes.contains(&gate.version) {
        return Err(invalid(
            "canary_gate.version",
            format!("version {} is not one of the routes", gate.version),
        ));
    }
    if routes.len() < 2 {
        return Err(invalid(
            "canary_gate.version",
            format!(
                "version {} is the only route; a canary needs another route to fall back to",
                gate.version
            ),
        ));
    }
    let delta = gate.max_error_rate_delta;
    if !delta.is_finite() || !(0.0..=1.0).contains(&delta) {
        return Err(invalid(
            "canary_gate.max_error_rate_delta",
            format!("must be a fraction from 0 to 1 (0.02 = 2 percentage points), got {delta}"),
        ));
    }
    let ratio = gate.max_p99_ratio;
    if !ratio.is_finite() || !(1.0..=MAX_P99_RATIO).contains(&ratio) {
        return Err(invalid(
            "canary_gate.max_p99_ratio",
            format!("must be from 1 to {MAX_P99_RATIO} (1.5 = 50% slower), got {ratio}"),
        ));
    }
    if !(1..=MAX_MIN_REQUESTS).contains(&gate.min_requests) {
        return Err(invalid(
            "canary_gate.min_requests",
            format!(
                "must be from 1 to {MAX_MIN_REQUESTS}, got {}",
                gate.min_requests
            ),
        ));
    }
    Ok(())
}

fn invalid(field: &str, problem: String) -> String {
    format!("Invalid deployment: '{field}' {problem}")
}

/// Where a model's effective deployment comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentSource {
    /// Set through the deployments API.
    Explicit,
    /// Default: the version of the `champion` alias at 100%.
    Champion,
    /// Default: the Production version at 100%.
    Production,
}

impl DeploymentSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentSource::Explicit => "explicit",
            DeploymentSource::Champion => "champion",
            DeploymentSource::Production => "production",
        }
    }
}

/// What the fleet serves for a model, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveDeployment {
    pub source: DeploymentSource,
    pub spec: DeploymentSpec,
}

/// The deployment the fleet serves: the explicit one when set; else nothing when the model was
/// explicitly undeployed (and not deployed again since); else the `champion` alias's version (an
/// alias is a deliberate pointer, so it wins over a stage); else the Production version, the
/// highest-numbered one when several are in Production (MLflow's "latest" per stage); else none.
pub fn effective_deployment(
    explicit: Option<&DeploymentSpec>,
    undeployed: bool,
    champion: Option<i64>,
    production_versions: &[i64],
) -> Option<EffectiveDeployment> {
    if let Some(spec) = explicit {
        return Some(EffectiveDeployment {
            source: DeploymentSource::Explicit,
            spec: spec.clone(),
        });
    }
    if undeployed {
        return None;
    }
    let (source, version) = policy::default_version(champion, production_versions.iter().copied())?;
    Some(EffectiveDeployment {
        source: match source {
            policy::DefaultSource::Champion => DeploymentSource::Champion,
            policy::DefaultSource::Production => DeploymentSource::Production,
        },
        spec: DeploymentSpec::single(version),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(pairs: &[(i64, i64)]) -> Vec<Route> {
        pairs
            .iter()
            .map(|&(version, weight)| Route { version, weight })
            .collect()
    }

    fn spec(pairs: &[(i64, i64)]) -> DeploymentSpec {
        DeploymentSpec {
            routes: routes(pairs),
            sticky: None,
            shadow: None,
            canary_gate: None,
        }
    }

    fn gate(version: i64) -> CanaryGate {
        CanaryGate {
            version,
            max_error_rate_delta: 0.02,
            max_p99_ratio: 1.5,
            min_requests: 500,
        }
    }

    fn full() -> DeploymentSpec {
        DeploymentSpec {
            routes: routes(&[(3, 90), (4, 10)]),
            sticky: Some(Sticky {
                routing_key_header: " X-User-Id ".to_owned(),
            }),
            shadow: Some(5),
            canary_gate: Some(gate(4)),
        }
    }

    #[test]
    fn a_full_spec_is_valid_and_canonical() {
        let valid = full().validated().expect("valid");
        assert_eq!(
            valid.sticky.as_ref().map(|s| s.routing_key_header.as_str()),
            Some("x-user-id")
        );
        assert_eq!(valid.versions(), vec![3, 4, 5]);
        assert_eq!(DeploymentSpec::from_json(&valid.to_json()), Ok(valid));
        assert!(spec(&[(7, 100)]).validated().is_ok());
    }

    #[test]
    fn every_invalid_spec_is_refused_naming_the_field() {
        let too_many: Vec<(i64, i64)> = (1..=11).map(|version| (version, 1)).collect();
        let mut cases: Vec<(DeploymentSpec, &str)> = vec![
            (spec(&[]), "'routes'"),
            (spec(&too_many), "'routes' has 11 entries"),
            (spec(&[(3, 90), (4, 20)]), "sum to 110"),
            (spec(&[(3, 50), (4, 40)]), "sum to 90"),
            (spec(&[(3, 0), (4, 100)]), "'routes[0].weight'"),
            (spec(&[(3, 101)]), "'routes[0].weight'"),
            (spec(&[(3, -10), (4, 110)]), "'routes[0].weight'"),
            (spec(&[(3, 50), (3, 50)]), "'routes[1].version'"),
            (spec(&[(0, 100)]), "'routes[0].version'"),
        ];
        let mut shadow_is_route = spec(&[(3, 90), (4, 10)]);
        shadow_is_route.shadow = Some(4);
        cases.push((shadow_is_route, "'shadow'"));
        let mut bad_shadow = spec(&[(3, 100)]);
        bad_shadow.shadow = Some(-1);
        cases.push((bad_shadow, "'shadow'"));
        for (header, expected) in [
            ("", "must name"),
            ("x user", "not a valid"),
            ("x:y", "not a valid"),
        ] {
            let mut sticky = spec(&[(3, 100)]);
            sticky.sticky = Some(Sticky {
                routing_key_header: header.to_owned(),
            });
            cases.push((sticky, expected));
        }
        let mut long_header = spec(&[(3, 100)]);
        long_header.sticky = Some(Sticky {
            routing_key_header: "x".repeat(129),
        });
        cases.push((long_header, "'sticky.routing_key_header'"));
        let mut gate_not_route = spec(&[(3, 90), (4, 10)]);
        gate_not_route.canary_gate = Some(gate(5));
        cases.push((gate_not_route, "not one of the routes"));
        let mut gate_only_route = spec(&[(3, 100)]);
        gate_only_route.canary_gate = Some(gate(3));
        cases.push((gate_only_route, "only route"));
        type Mutation = fn(&mut CanaryGate);
        let gate_limits: [(Mutation, &str); 7] = [
            (|g| g.max_error_rate_delta = -0.1, "max_error_rate_delta"),
            (|g| g.max_error_rate_delta = 1.5, "max_error_rate_delta"),
            (
                |g| g.max_error_rate_delta = f64::NAN,
                "max_error_rate_delta",
            ),
            (|g| g.max_p99_ratio = 0.9, "max_p99_ratio"),
            (|g| g.max_p99_ratio = f64::INFINITY, "max_p99_ratio"),
            (|g| g.min_requests = 0, "min_requests"),
            (|g| g.min_requests = MAX_MIN_REQUESTS + 1, "min_requests"),
        ];
        for (mutate, expected) in gate_limits {
            let mut with_gate = spec(&[(3, 90), (4, 10)]);
            let mut canary = gate(4);
            mutate(&mut canary);
            with_gate.canary_gate = Some(canary);
            cases.push((with_gate, expected));
        }
        for (invalid, expected) in cases {
            let described = format!("{invalid:?}");
            let message = invalid.validated().expect_err(&described);
            assert!(message.starts_with("Invalid deployment: "), "{message}");
            assert!(
                message.contains(expected),
                "{described}: {message} lacks {expected}"
            );
        }
    }

    #[test]
    fn limits_at_their_edges_are_accepted() {
        let ten: Vec<(i64, i64)> = (1..=10).map(|version| (version, 10)).collect();
        assert!(spec(&ten).validated().is_ok());
        let mut edges = spec(&[(1, 1), (2, 99)]);
        edges.canary_gate = Some(CanaryGate {
            version: 1,
            max_error_rate_delta: 0.0,
            max_p99_ratio: 1.0,
            min_requests: 1,
        });
        assert!(edges.validated().is_ok());
    }

    #[test]
    fn rollback_goes_to_the_protected_or_heaviest_route() {
        assert_eq!(full().rollback_target(), Ok(3));
        // The canary is the heavier route: the gate still protects the other one.
        let mut heavy_canary = spec(&[(3, 40), (4, 60)]);
        heavy_canary.canary_gate = Some(gate(4));
        assert_eq!(heavy_canary.rollback_target(), Ok(3));
        assert_eq!(spec(&[(3, 20), (4, 50), (5, 30)]).rollback_target(), Ok(4));
        assert_eq!(spec(&[(6, 50), (2, 50)]).rollback_target(), Ok(2));
        let single = spec(&[(3, 100)])
            .rollback_target()
            .expect_err("single route");
        assert!(single.contains("to_version"), "{single}");

        let rolled = full()
            .validated()
            .expect("valid")
            .rolled_back_to(3)
            .expect("rollback");
        assert_eq!(rolled.routes, routes(&[(3, 100)]));
        assert_eq!(rolled.shadow, Some(5));
        assert_eq!(rolled.canary_gate, None);
        assert!(rolled.sticky.is_some());
        // Rolling back to the shadow makes it answer, so it is no longer a shadow.
        let to_shadow = full().rolled_back_to(5).expect("rollback to the shadow");
        assert_eq!(to_shadow.shadow, None);
        assert!(full().rolled_back_to(0).is_err());
    }

    #[test]
    fn field_referencing_names_routes_and_shadow() {
        let spec = full();
        assert_eq!(spec.field_referencing(4).as_deref(), Some("routes[1]"));
        assert_eq!(spec.field_referencing(5).as_deref(), Some("shadow"));
        assert_eq!(spec.field_referencing(6), None);
    }

    #[test]
    fn effective_deployment_prefers_explicit_then_undeployed_then_champion_then_production() {
        let explicit = spec(&[(3, 90), (4, 10)]);
        for undeployed in [false, true] {
            let chosen =
                effective_deployment(Some(&explicit), undeployed, Some(2), &[1]).expect("explicit");
            assert_eq!(chosen.source, DeploymentSource::Explicit);
            assert_eq!(chosen.spec, explicit);
        }

        let chosen = effective_deployment(None, false, Some(2), &[1]).expect("champion");
        assert_eq!(chosen.source, DeploymentSource::Champion);
        assert_eq!(chosen.spec, DeploymentSpec::single(2));

        let chosen = effective_deployment(None, false, None, &[1, 5, 3]).expect("production");
        assert_eq!(chosen.source, DeploymentSource::Production);
        assert_eq!(chosen.spec, DeploymentSpec::single(5));

        assert_eq!(effective_deployment(None, false, None, &[]), None);
        // An undeployed model serves nothing, whatever its alias and stages say.
        assert_eq!(effective_deployment(None, true, Some(2), &[1]), None);
    }

    #[test]
    fn comments_and_reasons() {
        assert!(validate_reason("canary errors").is_ok());
        assert!(validate_reason("  ").is_err());
        assert!(validate_comment(&"x".repeat(MAX_COMMENT_CHARS + 1), "comment").is_err());
        assert!(validate_comment("", "comment").is_ok());
    }
}
