//! Deployments in the database: the explicit spec per model (`deployments`), the effective
//! deployment read together with what decides the default (Production versions, the `champion`
//! alias), and the changes (set, delete, rollback), each one transaction that also writes its
//! model-history entry and its outbox event.
//!
//! Every change first updates the model row, which serialises it with version deletion (that
//! takes the same row first) and with other deployment changes of the model, so the revision
//! check and the "versions exist" check hold until commit.

use std::collections::{BTreeSet, HashMap};

use okla_proto::events as proto;
use proto::model_event::Body;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Transaction};

use super::Store;
use super::nodes::live_nodes_serving;
use super::outbox::write_events;
use super::sql::{get_i64, get_opt_text, get_text, placeholders};
use super::transaction::{Change, append_history, model_not_found, touch_model};
use crate::domain::deployments::{
    CHAMPION_ALIAS, DeploymentSource, DeploymentSpec, EffectiveDeployment, Route,
    effective_deployment, validate_comment, validate_reason,
};
use crate::domain::model_registry::HistoryKind;
use crate::domain::now_millis;
use crate::error::{Error, Result};

/// A model's deployment as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentState {
    pub name: String,
    /// 0 until the first change; then the revision of the latest update, delete or rollback.
    pub revision: i64,
    /// When and by whom the latest deployment change was made (`None` before the first).
    pub updated_at: Option<i64>,
    pub updated_by: Option<String>,
    /// `None` when the model has no explicit deployment, no champion and no Production version,
    /// or was undeployed.
    pub effective: Option<EffectiveDeployment>,
    /// Explicitly taken out of the fleet and not deployed since: serving nodes drop it. A model
    /// with nothing to serve that was never undeployed is not: nodes keep what they serve.
    pub undeployed: bool,
}

/// The `deployments` row of a model.
struct StoredRow {
    spec: Option<DeploymentSpec>,
    revision: i64,
    updated_at: i64,
    updated_by: String,
}

impl Store {
    /// The effective deployment of one model; NotFound when the model does not exist.
    pub async fn get_deployment(&self, name: &str) -> Result<DeploymentState> {
        let mut connection = self.reader.acquire().await?;
        load_state(&mut connection, name).await
    }

    /// Every model that has an effective deployment (explicit or default), by name.
    pub async fn list_deployments(&self) -> Result<Vec<DeploymentState>> {
        let mut connection = self.reader.acquire().await?;
        let mut rows: HashMap<String, StoredRow> = HashMap::new();
        for row in
            sqlx::query("SELECT name, spec, revision, updated_at, updated_by FROM deployments")
                .fetch_all(&mut *connection)
                .await?
        {
            rows.insert(get_text(&row, "name")?, stored_row(&row)?);
        }
        let mut production: HashMap<String, Vec<i64>> = HashMap::new();
        for row in sqlx::query(
            "SELECT name, version FROM model_versions WHERE current_stage = 'Production' AND deleted = 0",
        )
        .fetch_all(&mut *connection)
        .await?
        {
            production
                .entry(get_text(&row, "name")?)
                .or_default()
                .push(get_i64(&row, "version")?);
        }
        let mut champions: HashMap<String, i64> = HashMap::new();
        for row in
            sqlx::query("SELECT name, version FROM registered_model_aliases WHERE alias = $1")
                .bind(CHAMPION_ALIAS)
                .fetch_all(&mut *connection)
                .await?
        {
            champions.insert(get_text(&row, "name")?, get_i64(&row, "version")?);
        }
        let undeployed: BTreeSet<String> = sqlx::query("SELECT name FROM undeployed_models")
            .fetch_all(&mut *connection)
            .await?
            .iter()
            .map(|row| get_text(row, "name"))
            .collect::<Result<_>>()?;
        // Byte order on every backend, whatever the database's collation.
        let names: BTreeSet<&String> = rows
            .keys()
            .chain(production.keys())
            .chain(champions.keys())
            .collect();
        let mut states = Vec::new();
        for name in names {
            let row = rows.get(name);
            let production = production.get(name).map(Vec::as_slice).unwrap_or_default();
            let state = state_of(
                name,
                row,
                undeployed.contains(name),
                champions.get(name).copied(),
                production,
            );
            if state.effective.is_some() {
                states.push(state);
            }
        }
        Ok(states)
    }

    /// Creates or replaces the explicit deployment of `name`. Refused (nothing written) when
    /// the spec breaks a rule, names a version that does not exist or was deleted, or
    /// `expected_revision` is not the current revision. Setting the spec already in place
    /// changes nothing, so a retried PUT does no harm.
    pub async fn set_deployment(
        &self,
        name: &str,
        spec: DeploymentSpec,
        expected_revision: Option<i64>,
        change: &Change<'_>,
    ) -> Result<DeploymentState> {
        let spec = spec.validated().map_err(Error::invalid)?;
        validate_comment(change.comment.unwrap_or_default(), "comment").map_err(Error::invalid)?;
        let (mut transaction, current, revision) =
            self.begin_change(name, expected_revision).await?;
        let previous = current.and_then(|row| row.spec);
        if previous.as_ref() == Some(&spec) {
            return load_state(&mut transaction, name).await;
        }
        check_versions_live(&mut transaction, name, &named_versions(&spec)).await?;
        let next_revision = revision + 1;
        upsert(&mut transaction, name, Some(&spec), next_revision, change).await?;
        clear_undeployed(&mut transaction, name).await?;
        append_history(
            &mut transaction,
            name,
            None,
            HistoryKind::Deployment.as_str(),
            previous.as_ref().map(DeploymentSpec::to_json).as_deref(),
            Some(&spec.to_json()),
            change,
        )
        .await?;
        let updated = Body::DeploymentUpdated(proto::DeploymentUpdated {
            revision: next_revision,
            routes: proto_routes(&spec.routes),
            sticky_routing_key_header: sticky_header(&spec),
            shadow_version: spec.shadow,
            canary_gate: spec.canary_gate.map(|gate| proto::CanaryGate {
                version: gate.version,
                max_error_rate_delta: gate.max_error_rate_delta,
                max_p99_ratio: gate.max_p99_ratio,
                min_requests: gate.min_requests,
            }),
            comment: change.comment.unwrap_or_default().to_owned(),
        });
        self.commit_change(transaction, name, change, updated).await
    }

    /// Removes the explicit deployment: the default (champion, else Production) applies again;
    /// with no default to fall back to, the model is undeployed. Without an explicit deployment
    /// this changes nothing (DELETE is idempotent).
    pub async fn delete_deployment(
        &self,
        name: &str,
        expected_revision: Option<i64>,
        change: &Change<'_>,
    ) -> Result<DeploymentState> {
        validate_comment(change.comment.unwrap_or_default(), "comment").map_err(Error::invalid)?;
        let (mut transaction, current, revision) =
            self.begin_change(name, expected_revision).await?;
        let Some(previous) = current.and_then(|row| row.spec) else {
            return load_state(&mut transaction, name).await;
        };
        let next_revision = revision + 1;
        upsert(&mut transaction, name, None, next_revision, change).await?;
        let undeployed = load_state(&mut transaction, name)
            .await?
            .effective
            .is_none();
        if undeployed {
            mark_undeployed(&mut transaction, name, change).await?;
        }
        append_history(
            &mut transaction,
            name,
            None,
            HistoryKind::DeploymentDelete.as_str(),
            Some(&previous.to_json()),
            None,
            change,
        )
        .await?;
        let deleted = Body::DeploymentDeleted(proto::DeploymentDeleted {
            revision: next_revision,
            comment: change.comment.unwrap_or_default().to_owned(),
            undeployed,
        });
        self.commit_change(transaction, name, change, deleted).await
    }

    /// Takes the model out of the fleet: its explicit deployment goes, and its `champion` alias
    /// and Production stage no longer deploy it, until a deployment, the alias or the stage is
    /// set again. The one way a served model stops being served; recorded in the history.
    /// Undeploying an undeployed model changes nothing.
    pub async fn undeploy(
        &self,
        name: &str,
        expected_revision: Option<i64>,
        change: &Change<'_>,
    ) -> Result<DeploymentState> {
        validate_comment(change.comment.unwrap_or_default(), "comment").map_err(Error::invalid)?;
        let (mut transaction, _, revision) = self.begin_change(name, expected_revision).await?;
        let before = load_state(&mut transaction, name).await?;
        if before.undeployed {
            return Ok(before);
        }
        let next_revision = revision + 1;
        upsert(&mut transaction, name, None, next_revision, change).await?;
        mark_undeployed(&mut transaction, name, change).await?;
        append_history(
            &mut transaction,
            name,
            None,
            HistoryKind::Undeploy.as_str(),
            before
                .effective
                .map(|served| served.spec.to_json())
                .as_deref(),
            None,
            change,
        )
        .await?;
        let undeployed = Body::DeploymentDeleted(proto::DeploymentDeleted {
            revision: next_revision,
            comment: change.comment.unwrap_or_default().to_owned(),
            undeployed: true,
        });
        self.commit_change(transaction, name, change, undeployed)
            .await
    }

    /// Replaces the routes with 100% to `to_version`, or, when `None`, to the version the
    /// canary gate protects (else the heaviest route). `change.comment` is the required reason.
    /// Refused (409) without an explicit deployment: the default has nothing to roll back.
    pub async fn rollback_deployment(
        &self,
        name: &str,
        to_version: Option<i64>,
        expected_revision: Option<i64>,
        change: &Change<'_>,
    ) -> Result<DeploymentState> {
        let reason = change.comment.unwrap_or_default();
        validate_reason(reason).map_err(Error::invalid)?;
        let (mut transaction, current, revision) =
            self.begin_change(name, expected_revision).await?;
        let Some(previous) = current.and_then(|row| row.spec) else {
            return Err(Error::Conflict(format!(
                "Registered model '{name}' has no explicit deployment to roll back; its default deployment follows the '{CHAMPION_ALIAS}' alias or the Production stage"
            )));
        };
        let to_version = match to_version {
            Some(version) => version,
            None => previous.rollback_target().map_err(Error::invalid)?,
        };
        let spec = previous
            .rolled_back_to(to_version)
            .map_err(Error::invalid)?;
        // The shadow kept from the previous spec is live: deleting a deployed version is refused.
        check_versions_live(
            &mut transaction,
            name,
            &[(to_version, "to_version".to_owned())],
        )
        .await?;
        let next_revision = revision + 1;
        upsert(&mut transaction, name, Some(&spec), next_revision, change).await?;
        append_history(
            &mut transaction,
            name,
            Some(to_version),
            HistoryKind::DeploymentRollback.as_str(),
            Some(&previous.to_json()),
            Some(&spec.to_json()),
            change,
        )
        .await?;
        let rolled_back = Body::DeploymentRolledBack(proto::DeploymentRolledBack {
            revision: next_revision,
            from_routes: proto_routes(&previous.routes),
            to_version,
            reason: reason.to_owned(),
            sticky_routing_key_header: sticky_header(&spec),
            shadow_version: spec.shadow,
        });
        self.commit_change(transaction, name, change, rolled_back)
            .await
    }

    /// Opens a deployment change of `name`: the model row first (see the module docs), then
    /// its `deployments` row and revision, checked against `expected_revision`.
    async fn begin_change(
        &self,
        name: &str,
        expected_revision: Option<i64>,
    ) -> Result<(Transaction<'_, Any>, Option<StoredRow>, i64)> {
        let mut transaction = self.writer.begin().await?;
        touch_model(&mut transaction, name).await?;
        let current = stored(&mut transaction, name).await?;
        let revision = check_revision(name, current.as_ref(), expected_revision)?;
        Ok((transaction, current, revision))
    }

    /// Writes the event last (it takes the outbox lock), reads the resulting state inside the
    /// transaction so the answer is exactly what committed, then commits.
    async fn commit_change(
        &self,
        mut transaction: Transaction<'_, Any>,
        name: &str,
        change: &Change<'_>,
        event: Body,
    ) -> Result<DeploymentState> {
        write_events(
            &mut transaction,
            self.backend,
            name,
            change.actor,
            vec![event],
        )
        .await?;
        let state = load_state(&mut transaction, name).await?;
        transaction.commit().await?;
        self.events_committed();
        Ok(state)
    }
}

/// Refuses deleting a version the explicit deployment of `name` routes to or shadows: serving
/// nodes would lose its files while traffic still goes to it.
pub(super) async fn refuse_if_deployed(
    transaction: &mut Transaction<'_, Any>,
    name: &str,
    version: i64,
) -> Result<()> {
    let Some(spec) = stored(transaction, name).await?.and_then(|row| row.spec) else {
        return Ok(());
    };
    match spec.field_referencing(version) {
        None => Ok(()),
        Some(field) => Err(Error::Conflict(format!(
            "Model Version (name={name}, version={version}) cannot be deleted: the deployment of '{name}' serves it ({field}). Change or roll back the deployment first (PUT /api/okla/v1/deployments/{name})"
        ))),
    }
}

/// What serves `name` now, for [`refuse_going_dark`]; `None` when nothing does or the model
/// does not exist.
pub(crate) async fn serving_now(
    connection: &mut AnyConnection,
    name: &str,
) -> Result<Option<EffectiveDeployment>> {
    match load_state(connection, name).await {
        Ok(state) => Ok(state.effective),
        Err(Error::NotFound(_)) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Refuses (409) a change, already made in `transaction`, that leaves `name` with nothing to
/// serve while `before` served it and a live serving node serves it: a model leaves the fleet
/// only when someone undeploys it. A model no node serves may lose its deployment freely (as in
/// MLflow); nodes that come back later keep serving it until it is undeployed.
/// `what` names the change for the error ("Deleting alias 'champion'").
pub(crate) async fn refuse_going_dark(
    connection: &mut AnyConnection,
    name: &str,
    before: Option<EffectiveDeployment>,
    what: &str,
) -> Result<()> {
    let Some(before) = before else {
        return Ok(());
    };
    if serving_now(connection, name).await?.is_some() {
        return Ok(());
    }
    let nodes = live_nodes_serving(connection, name).await?;
    if nodes.is_empty() {
        return Ok(());
    }
    let versions = before
        .spec
        .routes
        .iter()
        .map(|route| route.version.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let through = match before.source {
        DeploymentSource::Explicit => "its explicit deployment".to_owned(),
        DeploymentSource::Champion => format!("its '{CHAMPION_ALIAS}' alias"),
        DeploymentSource::Production => "its Production stage".to_owned(),
    };
    Err(Error::Conflict(format!(
        "{what} would leave registered model '{name}' with nothing to serve: serving nodes ({}) serve version {versions} through {through}. \
         Deploy what it should serve first, or take it out of the fleet explicitly: POST /api/okla/v1/deployments/{name}/undeploy (okla deploy {name} --undeploy)",
        nodes.join(", ")
    )))
}

/// Marks `name` undeployed (see the `undeployed_models` migration).
async fn mark_undeployed(
    connection: &mut AnyConnection,
    name: &str,
    change: &Change<'_>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO undeployed_models (name, undeployed_at, undeployed_by) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET undeployed_at = excluded.undeployed_at, undeployed_by = excluded.undeployed_by",
    )
    .bind(name)
    .bind(now_millis())
    .bind(change.actor)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Deploying `name` again (a deployment, the `champion` alias, a Production version) ends its
/// undeploy.
pub(crate) async fn clear_undeployed(connection: &mut AnyConnection, name: &str) -> Result<()> {
    sqlx::query("DELETE FROM undeployed_models WHERE name = $1")
        .bind(name)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

async fn is_undeployed(connection: &mut AnyConnection, name: &str) -> Result<bool> {
    Ok(
        sqlx::query("SELECT name FROM undeployed_models WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *connection)
            .await?
            .is_some(),
    )
}

async fn stored(connection: &mut AnyConnection, name: &str) -> Result<Option<StoredRow>> {
    sqlx::query("SELECT spec, revision, updated_at, updated_by FROM deployments WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *connection)
        .await?
        .map(|row| stored_row(&row))
        .transpose()
}

fn stored_row(row: &AnyRow) -> Result<StoredRow> {
    let spec = get_opt_text(row, "spec")?
        .map(|text| DeploymentSpec::from_json(&text))
        .transpose()
        .map_err(|message| Error::Internal(anyhow::anyhow!(message)))?;
    Ok(StoredRow {
        spec,
        revision: get_i64(row, "revision")?,
        updated_at: get_i64(row, "updated_at")?,
        updated_by: get_text(row, "updated_by")?,
    })
}

/// The current revision, after checking it against what the caller expects.
fn check_revision(
    name: &str,
    current: Option<&StoredRow>,
    expected_revision: Option<i64>,
) -> Result<i64> {
    let revision = current.map_or(0, |row| row.revision);
    match expected_revision {
        Some(expected) if expected != revision => Err(Error::Conflict(format!(
            "The deployment of '{name}' is at revision {revision}, not the expected_revision {expected}: it changed since it was read; read it again and retry"
        ))),
        _ => Ok(revision),
    }
}

/// Each `(version, field)` must name a version that exists and is not deleted; the error
/// names the field.
async fn check_versions_live(
    transaction: &mut Transaction<'_, Any>,
    name: &str,
    versions: &[(i64, String)],
) -> Result<()> {
    let sql = format!(
        "SELECT version FROM model_versions WHERE name = $1 AND deleted = 0 AND version IN ({})",
        placeholders(2, versions.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(name);
    for (version, _) in versions {
        query = query.bind(*version);
    }
    let live: BTreeSet<i64> = query
        .fetch_all(&mut **transaction)
        .await?
        .iter()
        .map(|row| get_i64(row, "version"))
        .collect::<Result<_>>()?;
    match versions.iter().find(|(version, _)| !live.contains(version)) {
        None => Ok(()),
        Some((version, field)) => Err(Error::NotFound(format!(
            "Model Version (name={name}, version={version}) not found or deleted: the deployment's '{field}' must name a live version"
        ))),
    }
}

/// The versions a spec names, each with the field that names it.
fn named_versions(spec: &DeploymentSpec) -> Vec<(i64, String)> {
    spec.versions()
        .into_iter()
        .map(|version| {
            let field = match spec.field_referencing(version) {
                Some(shadow) if shadow == "shadow" => shadow,
                Some(route) => format!("{route}.version"),
                None => String::new(),
            };
            (version, field)
        })
        .collect()
}

async fn upsert(
    transaction: &mut Transaction<'_, Any>,
    name: &str,
    spec: Option<&DeploymentSpec>,
    revision: i64,
    change: &Change<'_>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO deployments (name, spec, revision, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, revision = excluded.revision, \
         updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )
    .bind(name)
    .bind(spec.map(DeploymentSpec::to_json))
    .bind(revision)
    .bind(now_millis())
    .bind(change.actor)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

/// Reads everything that decides a model's effective deployment; NotFound for an unknown model.
async fn load_state(connection: &mut AnyConnection, name: &str) -> Result<DeploymentState> {
    let exists = sqlx::query("SELECT name FROM registered_models WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *connection)
        .await?;
    let undeployed = is_undeployed(connection, name).await?;
    if exists.is_none() {
        // An undeployed model that was deleted since still answers, so nodes that missed the
        // undeploy learn of it.
        if undeployed {
            return Ok(state_of(name, None, true, None, &[]));
        }
        return Err(model_not_found(name));
    }
    let row = stored(connection, name).await?;
    let production = sqlx::query(
        "SELECT version FROM model_versions WHERE name = $1 AND current_stage = 'Production' AND deleted = 0",
    )
    .bind(name)
    .fetch_all(&mut *connection)
    .await?
    .iter()
    .map(|row| get_i64(row, "version"))
    .collect::<Result<Vec<_>>>()?;
    let champion =
        sqlx::query("SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2")
            .bind(name)
            .bind(CHAMPION_ALIAS)
            .fetch_optional(&mut *connection)
            .await?
            .map(|row| get_i64(&row, "version"))
            .transpose()?;
    Ok(state_of(
        name,
        row.as_ref(),
        undeployed,
        champion,
        &production,
    ))
}

fn state_of(
    name: &str,
    row: Option<&StoredRow>,
    undeployed: bool,
    champion: Option<i64>,
    production: &[i64],
) -> DeploymentState {
    let explicit = row.and_then(|row| row.spec.as_ref());
    let effective = effective_deployment(explicit, undeployed, champion, production);
    DeploymentState {
        name: name.to_owned(),
        revision: row.map_or(0, |row| row.revision),
        updated_at: row.map(|row| row.updated_at),
        updated_by: row.map(|row| row.updated_by.clone()),
        undeployed: undeployed && effective.is_none(),
        effective,
    }
}

fn proto_routes(routes: &[Route]) -> Vec<proto::DeploymentRoute> {
    routes
        .iter()
        .map(|route| proto::DeploymentRoute {
            version: route.version,
            // Validated to 1..=100 before any spec is stored.
            weight: u32::try_from(route.weight).unwrap_or_default(),
        })
        .collect()
}

fn sticky_header(spec: &DeploymentSpec) -> String {
    spec.sticky
        .as_ref()
        .map(|sticky| sticky.routing_key_header.clone())
        .unwrap_or_default()
}
