//! Who may call what: every request is authenticated, then checked against the one table of
//! rules below before any handler runs (MLflow's before-request validators, in one place).
//!
//! The table fails closed: a path it does not name is for admins only. A rule names the
//! resource the request acts on (an experiment, a run's experiment, a registered model, an
//! artifact's experiment) and the access it needs; where the resource is named in the request's
//! fields, they are read from the query string of a GET or from the JSON body of a write, which
//! is then handed on unchanged. Searches and listings are open to every authenticated caller
//! and drop what the caller may not read in their handlers (`Caller::readable`).

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::Value;

use super::extract::parse_json;
use crate::auth::{Caller, Unauthenticated};
use crate::domain::auth::{Access, AuditEntry, Principal, ResourceType};
use crate::error::{Error, Result};
use crate::state::AppState;

/// Where a rule finds the id of its resource.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Locate {
    /// The first of these request fields that is present.
    Field(&'static [&'static str]),
    /// A path segment, already taken from the URL.
    Path(String),
}

/// The resource a request acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Experiment(Locate),
    /// `runs/create`: the experiment in `experiment_id`, MLflow's Default experiment without one.
    ExperimentOrDefault,
    ExperimentByName,
    Run(Locate),
    LoggedModel(Locate),
    Model(Locate),
    /// An artifact path (`<experiment id>/<run id>/artifacts/...`): its first segment.
    Artifact(Locate),
}

/// What a route needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// No credentials needed.
    Public,
    /// Any authenticated caller; the handler decides the rest (searches, users, tokens).
    Authenticated,
    Admin,
    /// A serving node reporting as itself.
    OwnNode(String),
    /// Any serving node's credential (or an admin).
    Node,
    On(Target, Access),
}

const RUN: Locate = Locate::Field(&["run_id", "run_uuid"]);
const EXPERIMENT: Locate = Locate::Field(&["experiment_id"]);
const MODEL: Locate = Locate::Field(&["name"]);

fn decode(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

/// The rule for a request; see the module's documentation.
fn rule(method: &Method, path: &str) -> Rule {
    let strip = |prefixes: &[&str]| prefixes.iter().find_map(|prefix| path.strip_prefix(prefix));
    if let Some(route) = strip(&["/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/"]) {
        return mlflow_rule(method, route);
    }
    if let Some(route) = strip(&["/api/3.0/mlflow/", "/ajax-api/3.0/mlflow/"]) {
        return match route {
            "server-info" => Rule::Public,
            _ if route.starts_with("users/") => Rule::Authenticated,
            _ => Rule::Admin,
        };
    }
    if let Some(route) = strip(&[
        "/api/2.0/mlflow-artifacts/",
        "/ajax-api/2.0/mlflow-artifacts/",
    ]) {
        return artifact_rule(method, route);
    }
    if let Some(route) = path.strip_prefix("/api/okla/v1/") {
        return okla_rule(method, route);
    }
    match path {
        "/health" | "/version" | "/login" => Rule::Public,
        _ if path.starts_with("/ui/assets/") => Rule::Public,
        // The web UI's pages, and unknown paths (404 once authenticated, as in MLflow).
        _ => Rule::Authenticated,
    }
}

fn mlflow_rule(method: &Method, route: &str) -> Rule {
    use Access::{Edit, Manage, Read};
    let on = |target, access| Rule::On(target, access);
    let experiment = |access| on(Target::Experiment(EXPERIMENT), access);
    let run = |access| on(Target::Run(RUN), access);
    let model = |access| on(Target::Model(MODEL), access);
    if let Some(rest) = route.strip_prefix("logged-models/") {
        let segments: Vec<&str> = rest.split('/').collect();
        let logged = |access| {
            on(
                Target::LoggedModel(Locate::Path(decode(segments[0]))),
                access,
            )
        };
        return match (method, segments.as_slice()) {
            (_, ["search"]) => Rule::Authenticated,
            (&Method::GET, [_]) => logged(Read),
            (&Method::DELETE, [_]) => logged(Manage),
            (_, [_]) | (_, [_, "tags" | "params"]) | (_, [_, "tags", _]) => logged(Edit),
            _ => Rule::Admin,
        };
    }
    match route {
        "experiments/create" | "registered-models/create" => Rule::Authenticated,
        "experiments/search"
        | "runs/search"
        | "registered-models/search"
        | "model-versions/search" => Rule::Authenticated,
        _ if route.starts_with("users/") => Rule::Authenticated,
        "experiments/get" => experiment(Read),
        "experiments/get-by-name" => on(Target::ExperimentByName, Read),
        "experiments/update"
        | "experiments/set-experiment-tag"
        | "experiments/delete-experiment-tag" => experiment(Edit),
        "experiments/delete" | "experiments/restore" => experiment(Manage),
        "runs/create" => on(Target::ExperimentOrDefault, Edit),
        "logged-models" => experiment(Edit),
        "runs/get" | "metrics/get-history" => run(Read),
        "runs/update" | "runs/log-parameter" | "runs/log-metric" | "runs/log-batch"
        | "runs/set-tag" | "runs/delete-tag" | "runs/outputs" | "runs/log-inputs" => run(Edit),
        "runs/delete" | "runs/restore" => run(Manage),
        "registered-models/get"
        | "registered-models/get-latest-versions"
        | "model-versions/get"
        | "model-versions/get-download-uri" => model(Read),
        "registered-models/alias" => match *method {
            Method::GET => model(Read),
            Method::DELETE => model(Manage),
            _ => model(Edit),
        },
        "registered-models/rename"
        | "registered-models/update"
        | "registered-models/set-tag"
        | "registered-models/delete-tag"
        | "model-versions/create"
        | "model-versions/update"
        | "model-versions/transition-stage"
        | "model-versions/set-tag" => model(Edit),
        "registered-models/delete" | "model-versions/delete" | "model-versions/delete-tag" => {
            model(Manage)
        }
        _ => Rule::Admin,
    }
}

fn artifact_rule(method: &Method, route: &str) -> Rule {
    if route == "artifacts" {
        return Rule::On(Target::Artifact(Locate::Field(&["path"])), Access::Read);
    }
    let (kind, path) = route.split_once('/').unwrap_or((route, ""));
    let target = Target::Artifact(Locate::Path(decode(path)));
    match (kind, method) {
        ("artifacts", &Method::GET) => Rule::On(target, Access::Read),
        ("artifacts", &Method::DELETE) => Rule::On(target, Access::Manage),
        ("artifacts", _) => Rule::On(target, Access::Edit),
        ("mpu", _) => {
            // `mpu/<create|complete|abort|part>/<path>`
            let path = path.split_once('/').map_or("", |(_, path)| path);
            Rule::On(Target::Artifact(Locate::Path(decode(path))), Access::Edit)
        }
        _ => Rule::Admin,
    }
}

fn okla_rule(method: &Method, route: &str) -> Rule {
    let segments: Vec<&str> = route.split('/').collect();
    let model = |name: &str, access| Rule::On(Target::Model(Locate::Path(decode(name))), access);
    match (method, segments.as_slice()) {
        (&Method::GET, ["models", name, "versions", _, "files"])
        | (&Method::GET, ["models", name, "history"]) => model(name, Access::Read),
        (&Method::GET, ["runs", run_id, "metrics", _, "series"]) => {
            Rule::On(Target::Run(Locate::Path(decode(run_id))), Access::Read)
        }
        (&Method::GET, ["events" | "deployments" | "nodes"]) => Rule::Authenticated,
        (&Method::GET, ["deployments", name]) => model(name, Access::Read),
        (_, ["deployments", name]) | (_, ["deployments", name, "rollback" | "undeploy"]) => {
            model(name, Access::Manage)
        }
        (&Method::GET, ["nodes", _]) => Rule::Authenticated,
        (&Method::PUT, ["nodes", node_id]) => Rule::OwnNode(decode(node_id)),
        (&Method::POST, ["tokens", "verify"]) => Rule::Node,
        (_, ["tokens"]) | (_, ["tokens", _]) => Rule::Authenticated,
        _ => Rule::Admin,
    }
}

/// The request fields a rule may name, read without materialising the rest of the body.
#[derive(Debug, Default, Deserialize)]
struct Locators {
    experiment_id: Option<Value>,
    experiment_name: Option<Value>,
    run_id: Option<Value>,
    run_uuid: Option<Value>,
    name: Option<Value>,
    path: Option<Value>,
}

impl Locators {
    fn get(&self, field: &str) -> Option<String> {
        let value = match field {
            "experiment_id" => &self.experiment_id,
            "experiment_name" => &self.experiment_name,
            "run_id" => &self.run_id,
            "run_uuid" => &self.run_uuid,
            "name" => &self.name,
            "path" => &self.path,
            _ => &None,
        };
        match value.as_ref()? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }

    fn first(&self, fields: &[&str]) -> Option<String> {
        fields.iter().find_map(|field| self.get(field))
    }
}

fn needs_fields(rule: &Rule) -> bool {
    match rule {
        Rule::On(
            Target::Experiment(locate)
            | Target::Run(locate)
            | Target::LoggedModel(locate)
            | Target::Model(locate)
            | Target::Artifact(locate),
            _,
        ) => matches!(locate, Locate::Field(_)),
        Rule::On(Target::ExperimentOrDefault | Target::ExperimentByName, _) => true,
        _ => false,
    }
}

/// Whether a call changes something, and so belongs in the audit log when it succeeds. A few
/// MLflow reads are POSTs. A run's own data (metrics, params, tags, inputs, outputs) is left
/// out: training jobs write it thousands of times a second, the run records who created it, and
/// a refused write is audited like any refusal.
fn is_mutation(method: &Method, path: &str) -> bool {
    const RUN_DATA: [&str; 7] = [
        "/runs/log-metric",
        "/runs/log-batch",
        "/runs/log-parameter",
        "/runs/set-tag",
        "/runs/delete-tag",
        "/runs/log-inputs",
        "/runs/outputs",
    ];
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        && !path.ends_with("/search")
        && !path.ends_with("/get-latest-versions")
        && !RUN_DATA.iter().any(|suffix| path.ends_with(suffix))
}

/// Authenticates the request, applies its rule, and hands the caller to the handlers; audits
/// every mutation and every refusal.
pub(super) async fn check(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned());
    let (response, actor) = match admit(&state, request).await {
        Ok(Admitted::Public(request)) => return next.run(request).await,
        Ok(Admitted::Caller(request, actor)) => (next.run(request).await, actor),
        // A person opening a page is sent to the sign-in form rather than a password prompt.
        Err((Error::Unauthenticated(_), _)) if is_page(&method, &path) => {
            let target = path_and_query.as_deref().unwrap_or("/");
            let next =
                percent_encoding::utf8_percent_encode(target, percent_encoding::NON_ALPHANUMERIC);
            return Redirect::to(&format!("/login?next={next}")).into_response();
        }
        Err((error, actor)) => (error.into_response(), actor),
    };
    let status = response.status().as_u16();
    if is_mutation(&method, &path) || matches!(status, 401 | 403) {
        state
            .audit
            .record(AuditEntry::new(actor, method.as_str(), &path, status));
    }
    response
}

enum Admitted {
    Public(Request),
    /// With the caller's actor name, for the audit log.
    Caller(Request, String),
}

async fn admit(state: &AppState, request: Request) -> Result<Admitted, (Error, String)> {
    let rule = rule(request.method(), request.uri().path());
    if rule == Rule::Public {
        return Ok(Admitted::Public(request));
    }
    let (mut parts, body) = request.into_parts();
    let principal = match authenticate(state, &parts).await {
        Ok(principal) => principal,
        Err(error) => return Err((error, claimed_actor(&parts))),
    };
    let actor = principal.actor();
    let checked = async {
        // Admins (and everyone with authentication off) may do anything a field could name, so
        // their bodies are left for the handler to read once.
        let (locators, body) = if needs_fields(&rule) && !principal.is_superuser() {
            read_locators(state, &parts, body).await?
        } else {
            (Locators::default(), body)
        };
        authorize(state, &principal, &rule, &locators).await?;
        Ok::<_, Error>(body)
    };
    match checked.await {
        Ok(body) => {
            parts.extensions.insert(Caller(principal));
            Ok(Admitted::Caller(Request::from_parts(parts, body), actor))
        }
        Err(error) => Err((error, actor)),
    }
}

/// Who a request that failed to authenticate claimed to be, marked as unverified.
fn claimed_actor(parts: &Parts) -> String {
    let claimed = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(crate::auth::Credentials::parse)
        .map(|credentials| match credentials {
            crate::auth::Credentials::Basic { username, .. } => username,
            crate::auth::Credentials::Bearer(_) => "a bearer token".to_owned(),
        });
    match claimed {
        Some(name) => format!("unauthenticated ({name})"),
        None => "unauthenticated".to_owned(),
    }
}

/// A web UI page, which a browser opens (not an API call or a static asset).
fn is_page(method: &Method, path: &str) -> bool {
    *method == Method::GET
        && !["/api/", "/ajax-api/", "/ui/assets/"]
            .iter()
            .any(|prefix| path.starts_with(prefix))
}

/// Whether a request may authenticate with the UI's session cookie: reads, and signing out.
/// Writes to the API never do, so a page elsewhere cannot make a signed-in browser change
/// anything (cross-site request forgery).
fn accepts_session(parts: &Parts) -> bool {
    matches!(parts.method, Method::GET | Method::HEAD)
        || (parts.method == Method::POST && parts.uri.path() == "/logout")
}

async fn authenticate(state: &AppState, parts: &Parts) -> Result<Principal> {
    if state.auth.enabled()
        && !parts.headers.contains_key(header::AUTHORIZATION)
        && accepts_session(parts)
        && let Some(secret) = crate::auth::session_cookie(&parts.headers)
        && let Some(principal) = state.auth.session(&secret).await
    {
        return Ok(principal);
    }
    let header_text = |name| {
        parts
            .headers
            .get(name)
            .and_then(|value: &header::HeaderValue| value.to_str().ok())
    };
    let client: Option<IpAddr> = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    state
        .auth
        .authenticate(
            header_text(header::AUTHORIZATION.as_str()),
            header_text("x-okla-actor"),
            client,
        )
        .await
        .map_err(|reason| {
            Error::Unauthenticated(match reason {
                Unauthenticated::Missing => "You are not authenticated: send a username and password (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD) or a token (MLFLOW_TRACKING_TOKEN or OKLA_TOKEN)".to_owned(),
                Unauthenticated::Invalid => "Invalid credentials: wrong username or password, or an unknown, expired or revoked token".to_owned(),
            })
        })
}

/// Reads the fields a rule names: the query string of a GET, else the JSON body (which is put
/// back for the handler).
async fn read_locators(state: &AppState, parts: &Parts, body: Body) -> Result<(Locators, Body)> {
    if parts.method == Method::GET || parts.method == Method::HEAD {
        let query = parts.uri.query().unwrap_or("");
        let mut locators = Locators::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match key.as_ref() {
                "experiment_id" => &mut locators.experiment_id,
                "experiment_name" => &mut locators.experiment_name,
                "run_id" => &mut locators.run_id,
                "run_uuid" => &mut locators.run_uuid,
                "name" => &mut locators.name,
                "path" => &mut locators.path,
                _ => continue,
            };
            slot.get_or_insert(Value::String(value.into_owned()));
        }
        return Ok((locators, body));
    }
    let bytes = axum::body::to_bytes(body, state.limits.max_request_bytes)
        .await
        .map_err(|_| {
            Error::invalid(format!(
                "The request body is larger than the limit of {} bytes (--max-request-bytes)",
                state.limits.max_request_bytes
            ))
        })?;
    // A body that is not JSON is left for the handler to refuse by name.
    let locators = parse_json::<Locators>(&bytes).unwrap_or_default();
    Ok((locators, Body::from(bytes)))
}

fn denied(principal: &Principal, access: Access, what: &str) -> Error {
    let needed = match access {
        Access::Read => "READ",
        Access::Edit => "EDIT",
        Access::Manage => "MANAGE",
    };
    Error::Forbidden(format!(
        "Permission denied: '{}' needs {needed} on {what}",
        principal.actor()
    ))
}

async fn authorize(
    state: &AppState,
    principal: &Principal,
    rule: &Rule,
    locators: &Locators,
) -> Result<()> {
    match rule {
        Rule::Public | Rule::Authenticated => Ok(()),
        _ if matches!(principal, Principal::Unauthenticated { .. }) => Ok(()),
        Rule::OwnNode(node_id) => match principal {
            Principal::Node { node_id: own } if own == node_id => Ok(()),
            _ => Err(Error::Forbidden(format!(
                "Permission denied: only the node credential of '{node_id}' may report as that node"
            ))),
        },
        _ if principal.is_superuser() => Ok(()),
        Rule::Node => match principal {
            Principal::Node { .. } => Ok(()),
            _ => Err(Error::Forbidden(
                "Permission denied: only serving nodes verify tokens".to_owned(),
            )),
        },
        Rule::Admin => Err(Error::Forbidden(
            "Permission denied: only an admin may call this".to_owned(),
        )),
        Rule::On(target, access) => {
            let (resource_type, id) = resolve(state, target, locators).await?.ok_or_else(|| {
                // A missing run or logged model is refused, not 404'd, for non-admins: the
                // answer must not tell which ids exist (MLflow does the same).
                denied(principal, *access, "a resource that does not exist")
            })?;
            let permission = state.auth.permission(principal, resource_type, &id).await?;
            if permission.allows(*access) {
                Ok(())
            } else {
                Err(denied(
                    principal,
                    *access,
                    &format!("{} '{id}' (has {permission})", resource_type.as_str()),
                ))
            }
        }
    }
}

fn locate(locate: &Locate, locators: &Locators) -> Option<String> {
    match locate {
        Locate::Field(fields) => locators.first(fields),
        Locate::Path(value) => Some(value.clone()),
    }
}

/// The resource a target names, `None` when it does not exist (or the request names none).
async fn resolve(
    state: &AppState,
    target: &Target,
    locators: &Locators,
) -> Result<Option<(ResourceType, String)>> {
    let experiment = |id: String| Some((ResourceType::Experiment, id));
    Ok(match target {
        Target::Experiment(how) => locate(how, locators).and_then(experiment),
        Target::ExperimentOrDefault => experiment(
            locators
                .get("experiment_id")
                .unwrap_or_else(|| "0".to_owned()),
        ),
        Target::ExperimentByName => match locators.get("experiment_name") {
            // An unknown name is answered by the handler (404): `mlflow.set_experiment` relies
            // on it to create the experiment; the default permission governs it.
            Some(name) => match state.store.get_experiment_by_name(&name).await {
                Ok(found) => experiment(found.experiment_id.to_string()),
                Err(Error::NotFound(_)) => experiment(String::new()),
                Err(error) => return Err(error),
            },
            None => experiment(String::new()),
        },
        Target::Run(how) => match locate(how, locators) {
            Some(run_id) => state
                .auth
                .run_experiment(&run_id)
                .await?
                .and_then(|id| experiment(id.to_string())),
            None => None,
        },
        Target::LoggedModel(how) => match locate(how, locators) {
            Some(model_id) => state
                .store
                .logged_model_experiment_id(&model_id)
                .await?
                .and_then(|id| experiment(id.to_string())),
            None => None,
        },
        Target::Model(how) => {
            locate(how, locators).map(|name| (ResourceType::RegisteredModel, name))
        }
        Target::Artifact(how) => locate(how, locators).and_then(|path| {
            let first = path.trim_start_matches('/').split('/').next()?.to_owned();
            first.parse::<i64>().ok().and_then(|_| experiment(first))
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_the_rule_of_mlflows_matrix() {
        use Access::*;
        let post = Method::POST;
        let get = Method::GET;
        let delete = Method::DELETE;
        let experiment = |access| Rule::On(Target::Experiment(EXPERIMENT), access);
        let run = |access| Rule::On(Target::Run(RUN), access);
        let model = |access| Rule::On(Target::Model(MODEL), access);
        let path_model =
            |name: &str, access| Rule::On(Target::Model(Locate::Path(name.to_owned())), access);
        let table = [
            (&get, "/health", Rule::Public),
            (&get, "/api/3.0/mlflow/server-info", Rule::Public),
            (&get, "/ui/assets/app.css", Rule::Public),
            (&get, "/experiments", Rule::Authenticated),
            (&get, "/api/2.0/mlflow/experiments/get", experiment(Read)),
            (
                &post,
                "/ajax-api/2.0/mlflow/experiments/update",
                experiment(Edit),
            ),
            (
                &post,
                "/api/2.0/mlflow/experiments/delete",
                experiment(Manage),
            ),
            (
                &post,
                "/api/2.0/mlflow/runs/create",
                Rule::On(Target::ExperimentOrDefault, Edit),
            ),
            (&post, "/api/2.0/mlflow/runs/log-batch", run(Edit)),
            (&post, "/api/2.0/mlflow/runs/restore", run(Manage)),
            (&get, "/api/2.0/mlflow/metrics/get-history", run(Read)),
            (&post, "/api/2.0/mlflow/runs/search", Rule::Authenticated),
            (
                &post,
                "/api/2.0/mlflow/registered-models/alias",
                model(Edit),
            ),
            (
                &delete,
                "/api/2.0/mlflow/registered-models/alias",
                model(Manage),
            ),
            (
                &delete,
                "/api/2.0/mlflow/model-versions/delete-tag",
                model(Manage),
            ),
            (
                &post,
                "/api/2.0/mlflow/model-versions/transition-stage",
                model(Edit),
            ),
            (&post, "/api/2.0/mlflow/users/create", Rule::Authenticated),
            (
                &post,
                "/api/3.0/mlflow/users/permissions/grant",
                Rule::Authenticated,
            ),
            (&post, "/api/2.0/mlflow/no-such-route", Rule::Admin),
            (
                &delete,
                "/api/2.0/mlflow/logged-models/m-1",
                Rule::On(Target::LoggedModel(Locate::Path("m-1".into())), Manage),
            ),
            (
                &Method::PUT,
                "/api/2.0/mlflow-artifacts/artifacts/3/abc/artifacts/a%20b.txt",
                Rule::On(
                    Target::Artifact(Locate::Path("3/abc/artifacts/a b.txt".into())),
                    Edit,
                ),
            ),
            (
                &post,
                "/api/2.0/mlflow-artifacts/mpu/create/3/abc/artifacts/big",
                Rule::On(
                    Target::Artifact(Locate::Path("3/abc/artifacts/big".into())),
                    Edit,
                ),
            ),
            (
                &Method::PUT,
                "/api/okla/v1/deployments/my%20model",
                path_model("my model", Manage),
            ),
            (
                &post,
                "/api/okla/v1/deployments/m/rollback",
                path_model("m", Manage),
            ),
            (
                &post,
                "/api/okla/v1/deployments/m/undeploy",
                path_model("m", Manage),
            ),
            (&get, "/api/okla/v1/deployments/m", path_model("m", Read)),
            (
                &Method::PUT,
                "/api/okla/v1/nodes/n-1",
                Rule::OwnNode("n-1".into()),
            ),
            (&delete, "/api/okla/v1/nodes/n-1", Rule::Admin),
            (&post, "/api/okla/v1/tokens/verify", Rule::Node),
            (&delete, "/api/okla/v1/tokens/tok_1", Rule::Authenticated),
            (
                &get,
                "/api/okla/v1/models/m/versions/3/files",
                path_model("m", Read),
            ),
        ];
        for (method, path, expected) in table {
            assert_eq!(rule(method, path), expected, "{method} {path}");
        }
    }
}
