//! Translation of parsed searches (`crate::domain::search`) into SQL fragments and bind values,
//! for the runs, experiments, registered-model, model-version and logged-model tables.
//!
//! The same text runs on PostgreSQL and SQLite: placeholders are `$1, $2, ...`, and SQLite
//! connections use `PRAGMA case_sensitive_like = ON` so that `LIKE` is case-sensitive on both.
//! User input never reaches the SQL text: values and keys alike travel as binds. This module
//! builds strings only; running them is the caller's business.

use crate::domain::search::{
    self, Attribute, Comparison, DatasetAttribute, Entity, Field, FilterExpression,
    NumberComparator, NumericValue, OrderByTerm, OrderField, Predicate, SearchError,
    TextComparator,
};

/// One bind value. Bind `k` (1-based) fills placeholder `$k`.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Text(String),
    Int(i64),
    Real(f64),
}

/// The pieces of a search query for the caller to splice into its own statement:
///
/// ```text
/// SELECT runs.* FROM runs {joins} WHERE <caller's conditions> AND ({where_sql})
/// ORDER BY {order_sql} LIMIT .. OFFSET ..
/// ```
///
/// `binds[k - 1]` fills `$k`; the caller numbers its own binds from `binds.len() + 1`.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSql {
    /// `LEFT JOIN`s needed by `order_sql`, separated by spaces; empty when none are needed.
    pub joins: String,
    /// The filter condition, or `None` when the filter was empty.
    pub where_sql: Option<String>,
    /// A complete ordering, always ending in a unique tie-break so that paging is stable.
    pub order_sql: String,
    pub binds: Vec<SqlValue>,
}

/// Parses `filter` and `order_by` for `entity` and translates them into SQL.
pub fn build_search(
    entity: Entity,
    filter: &str,
    order_by: &[String],
) -> Result<SearchSql, SearchError> {
    let filter_expression = search::parse_filter(entity, filter)?;
    let order_terms = search::parse_order_by(entity, order_by)?;
    let mut builder = SqlBuilder {
        entity,
        tables: tables_of(entity),
        binds: Vec::new(),
        alias_count: 0,
    };
    let (filter_expression, ordered_metric_filters) =
        split_ordered_metric_filters(filter_expression, &order_terms, builder.tables);
    // The joins come first in the statement, so they take the first bind numbers.
    let (joins, order_sql) = builder.order_sql(&order_terms, &ordered_metric_filters)?;
    let where_sql = match &filter_expression {
        Some(expression) => Some(builder.expression_sql(expression)?),
        None => None,
    };
    Ok(SearchSql {
        joins,
        where_sql,
        order_sql,
        binds: builder.binds,
    })
}

/// Takes out of the filter the top-level `AND` conditions on a metric that the results are also
/// ordered by (`metrics.rmse < 0.5 ... ORDER BY metrics.rmse`). Such a condition guarantees the
/// metric is present and not NaN, so one inner join can both filter and order: the database then
/// walks the metric's (key, value) index in order and stops after one page, instead of testing
/// every run with a subquery and sorting them all.
fn split_ordered_metric_filters(
    filter_expression: Option<FilterExpression>,
    order_terms: &[OrderByTerm],
    tables: &EntityTables,
) -> (Option<FilterExpression>, Vec<Comparison>) {
    let single_latest_row = tables
        .metrics
        .as_ref()
        .is_some_and(|metrics| metrics.one_row_per_key);
    let is_promotable = |expression: &FilterExpression| match expression {
        FilterExpression::Comparison(Comparison {
            field: Field::Metric(key),
            predicate: Predicate::Number { comparator, .. },
        }) => {
            *comparator != NumberComparator::NotEqual
                && order_terms.iter().any(
                    |term| matches!(&term.field, OrderField::Metric(ordered) if ordered == key),
                )
        }
        _ => false,
    };
    let conjuncts = match filter_expression {
        _ if !single_latest_row => return (filter_expression, Vec::new()),
        None => return (None, Vec::new()),
        Some(FilterExpression::And(operands)) => operands,
        Some(other) => vec![other],
    };
    let (promoted, remaining): (Vec<_>, Vec<_>) = conjuncts.into_iter().partition(is_promotable);
    let promoted = promoted
        .into_iter()
        .filter_map(|expression| match expression {
            FilterExpression::Comparison(comparison) => Some(comparison),
            _ => None,
        })
        .collect();
    let remaining = match remaining.len() {
        0 => None,
        1 => remaining.into_iter().next(),
        _ => Some(FilterExpression::And(remaining)),
    };
    (remaining, promoted)
}

/// A key/value side table (metrics, params or tags) hanging off an entity table.
struct ChildTable {
    table: &'static str,
    /// The child's columns that equal the parent's `key_columns`, in the same order.
    link_columns: &'static [&'static str],
    /// Whether the table holds at most one row per (parent, key). `latest_metrics` does;
    /// `logged_model_metrics` keeps every logged value, so ordering must pick one.
    one_row_per_key: bool,
}

struct EntityTables {
    table: &'static str,
    key_columns: &'static [&'static str],
    metrics: Option<ChildTable>,
    params: Option<ChildTable>,
    tags: Option<ChildTable>,
    /// Whether `tags.k != 'v'` also matches rows without tag `k`. The registry needs this: the
    /// mlflow client appends ``tag.`mlflow.prompt.is_prompt` != 'true'`` to every registered
    /// model search and expects untagged models back. Runs keep MLflow's inner-join semantics.
    tag_not_equal_matches_missing: bool,
    /// Ordering used only when the caller gives no `order_by`.
    default_order: &'static [(Attribute, bool)],
    /// Ordering appended after every other term unless that attribute is already ordered by;
    /// the last one is unique per row, so pages never overlap.
    tie_breakers: &'static [(Attribute, bool)],
}

const ASCENDING: bool = true;
const DESCENDING: bool = false;

static RUN_TABLES: EntityTables = EntityTables {
    table: "runs",
    key_columns: &["run_uuid"],
    metrics: Some(ChildTable {
        table: "latest_metrics",
        link_columns: &["run_uuid"],
        one_row_per_key: true,
    }),
    params: Some(ChildTable {
        table: "params",
        link_columns: &["run_uuid"],
        one_row_per_key: true,
    }),
    tags: Some(ChildTable {
        table: "tags",
        link_columns: &["run_uuid"],
        one_row_per_key: true,
    }),
    tag_not_equal_matches_missing: false,
    default_order: &[],
    tie_breakers: &[
        (Attribute::StartTime, DESCENDING),
        (Attribute::RunId, ASCENDING),
    ],
};

static EXPERIMENT_TABLES: EntityTables = EntityTables {
    table: "experiments",
    key_columns: &["experiment_id"],
    metrics: None,
    params: None,
    tags: Some(ChildTable {
        table: "experiment_tags",
        link_columns: &["experiment_id"],
        one_row_per_key: true,
    }),
    tag_not_equal_matches_missing: true,
    default_order: &[(Attribute::CreationTime, DESCENDING)],
    tie_breakers: &[(Attribute::ExperimentId, ASCENDING)],
};

static REGISTERED_MODEL_TABLES: EntityTables = EntityTables {
    table: "registered_models",
    key_columns: &["name"],
    metrics: None,
    params: None,
    tags: Some(ChildTable {
        table: "registered_model_tags",
        link_columns: &["name"],
        one_row_per_key: true,
    }),
    tag_not_equal_matches_missing: true,
    default_order: &[],
    tie_breakers: &[(Attribute::Name, ASCENDING)],
};

static MODEL_VERSION_TABLES: EntityTables = EntityTables {
    table: "model_versions",
    key_columns: &["name", "version"],
    metrics: None,
    params: None,
    tags: Some(ChildTable {
        table: "model_version_tags",
        link_columns: &["name", "version"],
        one_row_per_key: true,
    }),
    tag_not_equal_matches_missing: true,
    default_order: &[(Attribute::LastUpdatedTimestamp, DESCENDING)],
    tie_breakers: &[
        (Attribute::Name, ASCENDING),
        (Attribute::VersionNumber, DESCENDING),
    ],
};

static LOGGED_MODEL_TABLES: EntityTables = EntityTables {
    table: "logged_models",
    key_columns: &["model_id"],
    metrics: Some(ChildTable {
        table: "logged_model_metrics",
        link_columns: &["model_id"],
        one_row_per_key: false,
    }),
    params: Some(ChildTable {
        table: "logged_model_params",
        link_columns: &["model_id"],
        one_row_per_key: true,
    }),
    tags: Some(ChildTable {
        table: "logged_model_tags",
        link_columns: &["model_id"],
        one_row_per_key: true,
    }),
    tag_not_equal_matches_missing: false,
    default_order: &[(Attribute::CreationTimestamp, DESCENDING)],
    tie_breakers: &[(Attribute::ModelId, ASCENDING)],
};

fn tables_of(entity: Entity) -> &'static EntityTables {
    match entity {
        Entity::Runs => &RUN_TABLES,
        Entity::Experiments => &EXPERIMENT_TABLES,
        Entity::RegisteredModels => &REGISTERED_MODEL_TABLES,
        Entity::ModelVersions => &MODEL_VERSION_TABLES,
        Entity::LoggedModels => &LOGGED_MODEL_TABLES,
    }
}

/// The column holding `attribute` for `entity`, or `None` when the entity has no such column.
fn attribute_column(entity: Entity, attribute: Attribute) -> Option<&'static str> {
    use Attribute as A;
    use Entity as E;
    match (entity, attribute) {
        (E::Runs, A::RunId) => Some("run_uuid"),
        (E::Runs, A::RunName) => Some("name"),
        (E::Runs, A::Status) => Some("status"),
        (E::Runs, A::UserId) => Some("user_id"),
        (E::Runs, A::ArtifactUri) => Some("artifact_uri"),
        (E::Runs, A::LifecycleStage) => Some("lifecycle_stage"),
        (E::Runs, A::StartTime) => Some("start_time"),
        (E::Runs, A::EndTime) => Some("end_time"),
        (E::Experiments, A::ExperimentId) => Some("experiment_id"),
        (E::Experiments, A::Name) => Some("name"),
        (E::Experiments, A::CreationTime) => Some("creation_time"),
        (E::Experiments, A::LastUpdateTime) => Some("last_update_time"),
        (E::Experiments, A::LifecycleStage) => Some("lifecycle_stage"),
        (E::RegisteredModels, A::Name) => Some("name"),
        (E::RegisteredModels, A::CreationTimestamp) => Some("creation_timestamp"),
        (E::RegisteredModels, A::LastUpdatedTimestamp) => Some("last_updated_timestamp"),
        (E::ModelVersions, A::Name) => Some("name"),
        (E::ModelVersions, A::RunId) => Some("run_id"),
        (E::ModelVersions, A::SourcePath) => Some("source"),
        (E::ModelVersions, A::VersionNumber) => Some("version"),
        (E::ModelVersions, A::CurrentStage) => Some("current_stage"),
        (E::ModelVersions, A::UserId) => Some("user_id"),
        (E::ModelVersions, A::Status) => Some("status"),
        (E::ModelVersions, A::ModelId) => Some("model_id"),
        (E::ModelVersions, A::CreationTimestamp) => Some("creation_timestamp"),
        (E::ModelVersions, A::LastUpdatedTimestamp) => Some("last_updated_timestamp"),
        (E::LoggedModels, A::Name) => Some("name"),
        (E::LoggedModels, A::ModelId) => Some("model_id"),
        (E::LoggedModels, A::ModelType) => Some("model_type"),
        (E::LoggedModels, A::Status) => Some("status"),
        (E::LoggedModels, A::SourceRunId) => Some("source_run_id"),
        (E::LoggedModels, A::ExperimentId) => Some("experiment_id"),
        (E::LoggedModels, A::LifecycleStage) => Some("lifecycle_stage"),
        (E::LoggedModels, A::CreationTimestamp) => Some("creation_timestamp"),
        (E::LoggedModels, A::LastUpdatedTimestamp) => Some("last_updated_timestamp"),
        _ => None,
    }
}

/// Whether the column may hold NULL, in which case ordering by it needs an explicit
/// "missing sorts last" term (PostgreSQL and SQLite disagree on where NULLs go).
fn is_nullable_column(entity: Entity, attribute: Attribute) -> bool {
    matches!(
        (entity, attribute),
        (Entity::Runs, Attribute::EndTime)
            | (
                Entity::ModelVersions,
                Attribute::RunId | Attribute::UserId | Attribute::ModelId
            )
            | (
                Entity::LoggedModels,
                Attribute::ModelType | Attribute::SourceRunId
            )
    )
}

/// Which side table a comparison reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChildKind {
    Metric,
    Param,
    Tag,
}

impl ChildKind {
    fn alias_prefix(self) -> &'static str {
        match self {
            ChildKind::Metric => "m",
            ChildKind::Param => "p",
            ChildKind::Tag => "t",
        }
    }
}

/// How a number is bound: attributes are exact integers when the literal is integral, while
/// metric values are doubles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumberBinding {
    IntegerWhenIntegral,
    AlwaysReal,
}

struct SqlBuilder {
    entity: Entity,
    tables: &'static EntityTables,
    binds: Vec<SqlValue>,
    /// Counts table aliases, so that every subquery and join gets its own (`m1`, `t2`, `o3`).
    alias_count: usize,
}

impl SqlBuilder {
    fn bind(&mut self, value: SqlValue) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    fn bind_text(&mut self, text: &str) -> String {
        self.bind(SqlValue::Text(text.to_owned()))
    }

    fn next_alias_number(&mut self) -> usize {
        self.alias_count += 1;
        self.alias_count
    }

    fn unsupported(&self, subject: String) -> SearchError {
        SearchError::Unsupported {
            subject,
            entity: self.entity,
        }
    }

    fn qualified_attribute(&self, attribute: Attribute) -> Result<String, SearchError> {
        let column = attribute_column(self.entity, attribute)
            .ok_or_else(|| self.unsupported(format!("attribute '{}'", attribute.key())))?;
        Ok(format!("{}.{column}", self.tables.table))
    }

    fn child_table(&self, kind: ChildKind, key: &str) -> Result<&'static ChildTable, SearchError> {
        let child = match kind {
            ChildKind::Metric => &self.tables.metrics,
            ChildKind::Param => &self.tables.params,
            ChildKind::Tag => &self.tables.tags,
        };
        child.as_ref().ok_or_else(|| {
            let subject = match kind {
                ChildKind::Metric => format!("metric '{key}'"),
                ChildKind::Param => format!("parameter '{key}'"),
                ChildKind::Tag => format!("tag '{key}'"),
            };
            self.unsupported(subject)
        })
    }

    /// `alias.link = parent.key AND ...`: ties a side-table row to the outer entity row.
    fn correlation(&self, child: &ChildTable, alias: &str) -> String {
        child
            .link_columns
            .iter()
            .zip(self.tables.key_columns)
            .map(|(child_column, parent_column)| {
                format!(
                    "{alias}.{child_column} = {}.{parent_column}",
                    self.tables.table
                )
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    fn expression_sql(&mut self, expression: &FilterExpression) -> Result<String, SearchError> {
        match expression {
            FilterExpression::Comparison(comparison) => self.comparison_sql(comparison),
            FilterExpression::And(operands) => {
                if operands.is_empty() {
                    return Ok("1 = 1".to_owned());
                }
                let mut parts = Vec::with_capacity(operands.len());
                for operand in operands {
                    let sql = self.expression_sql(operand)?;
                    // AND binds tighter than OR, so an OR inside an AND needs parentheses.
                    parts.push(match operand {
                        FilterExpression::Or(_) => format!("({sql})"),
                        _ => sql,
                    });
                }
                Ok(parts.join(" AND "))
            }
            FilterExpression::Or(operands) => {
                if operands.is_empty() {
                    return Ok("1 = 0".to_owned());
                }
                let mut parts = Vec::with_capacity(operands.len());
                for operand in operands {
                    parts.push(self.expression_sql(operand)?);
                }
                Ok(parts.join(" OR "))
            }
        }
    }

    fn comparison_sql(&mut self, comparison: &Comparison) -> Result<String, SearchError> {
        match &comparison.field {
            Field::Attribute(attribute) => {
                let column = self.qualified_attribute(*attribute)?;
                self.predicate_sql(
                    &column,
                    &comparison.predicate,
                    NumberBinding::IntegerWhenIntegral,
                )
            }
            Field::Metric(key) => self.child_sql(ChildKind::Metric, key, &comparison.predicate),
            Field::Param(key) => self.child_sql(ChildKind::Param, key, &comparison.predicate),
            Field::Tag(key) => self.child_sql(ChildKind::Tag, key, &comparison.predicate),
            Field::Dataset(attribute) => self.dataset_sql(*attribute, &comparison.predicate),
        }
    }

    /// Applies a predicate to a column: `column = $n`, `LOWER(column) LIKE LOWER($n)`, ...
    fn predicate_sql(
        &mut self,
        column: &str,
        predicate: &Predicate,
        number_binding: NumberBinding,
    ) -> Result<String, SearchError> {
        Ok(match predicate {
            Predicate::Number { comparator, value } => {
                let bound = self.bind(number_value(*value, number_binding));
                format!("{column} {} {bound}", comparator.symbol())
            }
            Predicate::Text { comparator, value } => {
                let bound = self.bind_text(value);
                match comparator {
                    TextComparator::Equal => format!("{column} = {bound}"),
                    TextComparator::NotEqual => format!("{column} != {bound}"),
                    TextComparator::Like => format!("{column} LIKE {bound}"),
                    TextComparator::ILike => format!("LOWER({column}) LIKE LOWER({bound})"),
                }
            }
            Predicate::List { negated, values } => {
                if values.is_empty() {
                    return Err(SearchError::EmptyList);
                }
                let placeholders = values
                    .iter()
                    .map(|value| self.bind_text(value))
                    .collect::<Vec<_>>()
                    .join(", ");
                let operator = if *negated { "NOT IN" } else { "IN" };
                format!("{column} {operator} ({placeholders})")
            }
            Predicate::Null { negated: false } => format!("{column} IS NULL"),
            Predicate::Null { negated: true } => format!("{column} IS NOT NULL"),
        })
    }

    /// A metric, param or tag comparison as a correlated subquery on the side table, so that
    /// an entity without the key does not match (except for `IS NULL`, and for `!=` on
    /// registry tags, see `tag_not_equal_matches_missing`).
    fn child_sql(
        &mut self,
        kind: ChildKind,
        key: &str,
        predicate: &Predicate,
    ) -> Result<String, SearchError> {
        let child = self.child_table(kind, key)?;
        let alias = format!("{}{}", kind.alias_prefix(), self.next_alias_number());
        let correlation = self.correlation(child, &alias);
        let key_bind = self.bind_text(key);
        let scope = format!(
            "SELECT 1 FROM {} {alias} WHERE {correlation} AND {alias}.key = {key_bind}",
            child.table
        );
        let condition = match predicate {
            Predicate::Null { negated: false } => return Ok(format!("NOT EXISTS ({scope})")),
            Predicate::Null { negated: true } => return Ok(format!("EXISTS ({scope})")),
            Predicate::Text {
                comparator: TextComparator::NotEqual,
                value,
            } if kind == ChildKind::Tag && self.tables.tag_not_equal_matches_missing => {
                let value_bind = self.bind_text(value);
                return Ok(format!(
                    "NOT EXISTS ({scope} AND {alias}.value = {value_bind})"
                ));
            }
            Predicate::Number { comparator, value } if kind == ChildKind::Metric => {
                let value_bind = self.bind(SqlValue::Real(value.as_f64()));
                // NaN is stored as a flag. Like IEEE NaN it is unequal to everything and
                // fails every other comparison.
                match comparator {
                    NumberComparator::NotEqual => {
                        format!("({alias}.is_nan = 1 OR {alias}.value != {value_bind})")
                    }
                    _ => format!(
                        "{alias}.is_nan = 0 AND {alias}.value {} {value_bind}",
                        comparator.symbol()
                    ),
                }
            }
            other => {
                self.predicate_sql(&format!("{alias}.value"), other, NumberBinding::AlwaysReal)?
            }
        };
        Ok(format!("EXISTS ({scope} AND {condition})"))
    }

    /// A dataset comparison: the run matches when any of its dataset inputs matches.
    fn dataset_sql(
        &mut self,
        attribute: DatasetAttribute,
        predicate: &Predicate,
    ) -> Result<String, SearchError> {
        if self.entity != Entity::Runs {
            return Err(self.unsupported(format!("dataset attribute '{}'", attribute.key())));
        }
        let number = self.next_alias_number();
        let inputs = format!("di{number}");
        let datasets = format!("d{number}");
        Ok(match attribute {
            DatasetAttribute::Context => {
                let condition = self.predicate_sql(
                    &format!("{inputs}.context"),
                    predicate,
                    NumberBinding::IntegerWhenIntegral,
                )?;
                format!(
                    "EXISTS (SELECT 1 FROM run_dataset_inputs {inputs} WHERE \
                     {inputs}.run_uuid = runs.run_uuid AND {condition})"
                )
            }
            DatasetAttribute::Name | DatasetAttribute::Digest => {
                let condition = self.predicate_sql(
                    &format!("{datasets}.{}", attribute.key()),
                    predicate,
                    NumberBinding::IntegerWhenIntegral,
                )?;
                format!(
                    "EXISTS (SELECT 1 FROM run_dataset_inputs {inputs} JOIN datasets {datasets} \
                     ON {datasets}.dataset_uuid = {inputs}.dataset_uuid WHERE \
                     {inputs}.run_uuid = runs.run_uuid AND {condition})"
                )
            }
        })
    }

    /// Builds the `LEFT JOIN`s and the full `ORDER BY` list, tie-breaks included.
    fn order_sql(
        &mut self,
        terms: &[OrderByTerm],
        ordered_metric_filters: &[Comparison],
    ) -> Result<(String, String), SearchError> {
        let mut joins: Vec<String> = Vec::new();
        let mut order_terms: Vec<String> = Vec::new();
        let mut ordered_attributes: Vec<Attribute> = Vec::new();
        for term in terms {
            let direction = if term.ascending { "ASC" } else { "DESC" };
            match &term.field {
                OrderField::Attribute(attribute) => {
                    self.push_attribute_order(*attribute, term.ascending, &mut order_terms)?;
                    ordered_attributes.push(*attribute);
                }
                OrderField::Metric(key)
                    if ordered_metric_filters
                        .iter()
                        .any(|comparison| matches!(&comparison.field, Field::Metric(filtered) if filtered == key)) =>
                {
                    let (join, alias) = self.filtering_order_join(key, ordered_metric_filters)?;
                    joins.push(join);
                    // The join's conditions exclude missing and NaN values.
                    order_terms.push(format!("{alias}.value {direction}"));
                }
                OrderField::Metric(key) => {
                    let (join, alias, presence_column) = self.order_join(ChildKind::Metric, key)?;
                    joins.push(join);
                    // Real values first, then NaN, then runs without the metric, whichever
                    // the direction.
                    order_terms.push(format!("({alias}.{presence_column} IS NULL) ASC"));
                    order_terms.push(format!("{alias}.is_nan ASC"));
                    order_terms.push(format!("{alias}.value {direction}"));
                }
                OrderField::Param(key) | OrderField::Tag(key) => {
                    let kind = match &term.field {
                        OrderField::Param(_) => ChildKind::Param,
                        _ => ChildKind::Tag,
                    };
                    let (join, alias, presence_column) = self.order_join(kind, key)?;
                    joins.push(join);
                    order_terms.push(format!("({alias}.{presence_column} IS NULL) ASC"));
                    order_terms.push(format!("{alias}.value {direction}"));
                }
            }
        }
        if terms.is_empty() {
            for (attribute, ascending) in self.tables.default_order {
                self.push_attribute_order(*attribute, *ascending, &mut order_terms)?;
                ordered_attributes.push(*attribute);
            }
        }
        for (attribute, ascending) in self.tables.tie_breakers {
            if !ordered_attributes.contains(attribute) {
                self.push_attribute_order(*attribute, *ascending, &mut order_terms)?;
                ordered_attributes.push(*attribute);
            }
        }
        Ok((joins.join(" "), order_terms.join(", ")))
    }

    fn push_attribute_order(
        &self,
        attribute: Attribute,
        ascending: bool,
        order_terms: &mut Vec<String>,
    ) -> Result<(), SearchError> {
        let column = self.qualified_attribute(attribute)?;
        if is_nullable_column(self.entity, attribute) {
            order_terms.push(format!("({column} IS NULL) ASC"));
        }
        order_terms.push(format!(
            "{column} {}",
            if ascending { "ASC" } else { "DESC" }
        ));
        Ok(())
    }

    /// An inner join on the latest value of metric `key` that carries every filter condition on
    /// that metric (see `split_ordered_metric_filters`).
    fn filtering_order_join(
        &mut self,
        key: &str,
        filters: &[Comparison],
    ) -> Result<(String, String), SearchError> {
        let child = self.child_table(ChildKind::Metric, key)?;
        let alias = format!("o{}", self.next_alias_number());
        let correlation = self.correlation(child, &alias);
        let key_bind = self.bind_text(key);
        let mut conditions = vec![format!("{alias}.is_nan = 0")];
        for comparison in filters {
            if let (Field::Metric(filtered), Predicate::Number { comparator, value }) =
                (&comparison.field, &comparison.predicate)
                && filtered == key
            {
                let value_bind = self.bind(SqlValue::Real(value.as_f64()));
                conditions.push(format!(
                    "{alias}.value {} {value_bind}",
                    comparator.symbol()
                ));
            }
        }
        let join = format!(
            "JOIN {} {alias} ON {correlation} AND {alias}.key = {key_bind} AND {}",
            child.table,
            conditions.join(" AND ")
        );
        Ok((join, alias))
    }

    /// A `LEFT JOIN` bringing one side-table row per entity row for `key`. Returns the join,
    /// its alias, and a column that is NULL exactly when the entity lacks the key.
    fn order_join(
        &mut self,
        kind: ChildKind,
        key: &str,
    ) -> Result<(String, String, &'static str), SearchError> {
        let child = self.child_table(kind, key)?;
        let alias = format!("o{}", self.next_alias_number());
        let correlation = self.correlation(child, &alias);
        let key_bind = self.bind_text(key);
        let presence_column = child.link_columns.first().copied().unwrap_or("key");
        let join = if child.one_row_per_key {
            format!(
                "LEFT JOIN {} {alias} ON {correlation} AND {alias}.key = {key_bind}",
                child.table
            )
        } else {
            // Several rows per key: keep the latest (by timestamp, then step) for each entity.
            let row = format!("{alias}_row");
            let links = child
                .link_columns
                .iter()
                .map(|column| format!("{row}.{column}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "LEFT JOIN (SELECT {links}, {row}.value, {row}.is_nan, ROW_NUMBER() OVER \
                 (PARTITION BY {links} ORDER BY {row}.timestamp DESC, {row}.step DESC) AS \
                 latest_rank FROM {} {row} WHERE {row}.key = {key_bind}) {alias} ON \
                 {correlation} AND {alias}.latest_rank = 1",
                child.table
            )
        };
        Ok((join, alias, presence_column))
    }
}

fn number_value(value: NumericValue, binding: NumberBinding) -> SqlValue {
    match (value, binding) {
        (NumericValue::Integer(integer), NumberBinding::IntegerWhenIntegral) => {
            SqlValue::Int(integer)
        }
        (NumericValue::Float(float), NumberBinding::IntegerWhenIntegral) => SqlValue::Real(float),
        (_, NumberBinding::AlwaysReal) => SqlValue::Real(value.as_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> SqlValue {
        SqlValue::Text(value.to_owned())
    }

    struct Expected<'case> {
        joins: &'case str,
        where_sql: Option<&'case str>,
        order_sql: &'case str,
        binds: Vec<SqlValue>,
    }

    fn check_sql(entity: Entity, filter: &str, order_by: &[&str], expected: Expected<'_>) {
        let order_by: Vec<String> = order_by.iter().map(|clause| (*clause).to_owned()).collect();
        let built = match build_search(entity, filter, &order_by) {
            Ok(built) => built,
            Err(error) => panic!("{entity} filter {filter:?} failed: {error}"),
        };
        assert_eq!(built.joins, expected.joins, "joins for {filter:?}");
        assert_eq!(
            built.where_sql.as_deref(),
            expected.where_sql,
            "where_sql for {filter:?}"
        );
        assert_eq!(
            built.order_sql, expected.order_sql,
            "order_sql for {filter:?}"
        );
        assert_eq!(built.binds, expected.binds, "binds for {filter:?}");
        check_placeholders_match_binds(&built);
    }

    /// Every `$k` in the text must have a bind, and every bind must be used.
    fn check_placeholders_match_binds(built: &SearchSql) {
        let all_text = format!(
            "{} {} {}",
            built.joins,
            built.where_sql.as_deref().unwrap_or_default(),
            built.order_sql
        );
        let mut used = vec![false; built.binds.len()];
        let mut rest = all_text.as_str();
        while let Some(dollar) = rest.find('$') {
            let digits: String = rest[dollar + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let number: usize = digits
                .parse()
                .expect("a placeholder number follows every $");
            assert!(
                (1..=built.binds.len()).contains(&number),
                "placeholder ${number} has no bind in {all_text}"
            );
            used[number - 1] = true;
            rest = &rest[dollar + 1 + digits.len()..];
        }
        assert!(
            used.iter().all(|was_used| *was_used),
            "unused bind in {all_text}"
        );
    }

    const RUN_DEFAULT_ORDER: &str = "runs.start_time DESC, runs.run_uuid ASC";

    #[test]
    fn run_metric_param_and_tag_filters_use_correlated_subqueries() {
        check_sql(
            Entity::Runs,
            "metrics.acc > 0.9 AND params.lr = '0.1' AND tags.team != 'vision'",
            &[],
            Expected {
                joins: "",
                where_sql: Some(
                    "EXISTS (SELECT 1 FROM latest_metrics m1 WHERE m1.run_uuid = runs.run_uuid \
                     AND m1.key = $1 AND m1.is_nan = 0 AND m1.value > $2) \
                     AND EXISTS (SELECT 1 FROM params p2 WHERE p2.run_uuid = runs.run_uuid \
                     AND p2.key = $3 AND p2.value = $4) \
                     AND EXISTS (SELECT 1 FROM tags t3 WHERE t3.run_uuid = runs.run_uuid \
                     AND t3.key = $5 AND t3.value != $6)",
                ),
                order_sql: RUN_DEFAULT_ORDER,
                binds: vec![
                    text("acc"),
                    SqlValue::Real(0.9),
                    text("lr"),
                    text("0.1"),
                    text("team"),
                    text("vision"),
                ],
            },
        );
        check_sql(
            Entity::Runs,
            "metrics.loss != 1 AND tags.`mlflow.user` ILIKE 'ADA%' AND params.x IS NULL \
             AND tags.y IS NOT NULL",
            &[],
            Expected {
                joins: "",
                where_sql: Some(
                    "EXISTS (SELECT 1 FROM latest_metrics m1 WHERE m1.run_uuid = runs.run_uuid \
                     AND m1.key = $1 AND (m1.is_nan = 1 OR m1.value != $2)) \
                     AND EXISTS (SELECT 1 FROM tags t2 WHERE t2.run_uuid = runs.run_uuid \
                     AND t2.key = $3 AND LOWER(t2.value) LIKE LOWER($4)) \
                     AND NOT EXISTS (SELECT 1 FROM params p3 WHERE p3.run_uuid = runs.run_uuid \
                     AND p3.key = $5) \
                     AND EXISTS (SELECT 1 FROM tags t4 WHERE t4.run_uuid = runs.run_uuid \
                     AND t4.key = $6)",
                ),
                order_sql: RUN_DEFAULT_ORDER,
                binds: vec![
                    text("loss"),
                    SqlValue::Real(1.0),
                    text("mlflow.user"),
                    text("ADA%"),
                    text("x"),
                    text("y"),
                ],
            },
        );
    }

    #[test]
    fn run_attribute_and_dataset_filters() {
        check_sql(
            Entity::Runs,
            "attributes.run_id IN ('a', 'b') AND run_name LIKE 'train%' AND start_time >= 1e3 \
             AND end_time < 2.5 AND status NOT IN ('FAILED')",
            &[],
            Expected {
                joins: "",
                where_sql: Some(
                    "runs.run_uuid IN ($1, $2) AND runs.name LIKE $3 AND runs.start_time >= $4 \
                     AND runs.end_time < $5 AND runs.status NOT IN ($6)",
                ),
                order_sql: RUN_DEFAULT_ORDER,
                binds: vec![
                    text("a"),
                    text("b"),
                    text("train%"),
                    SqlValue::Int(1000),
                    SqlValue::Real(2.5),
                    text("FAILED"),
                ],
            },
        );
        check_sql(
            Entity::Runs,
            "datasets.name = 'train' AND datasets.context IN ('eval', 'test')",
            &[],
            Expected {
                joins: "",
                where_sql: Some(
                    "EXISTS (SELECT 1 FROM run_dataset_inputs di1 JOIN datasets d1 ON \
                     d1.dataset_uuid = di1.dataset_uuid WHERE di1.run_uuid = runs.run_uuid AND \
                     d1.name = $1) AND EXISTS (SELECT 1 FROM run_dataset_inputs di2 WHERE \
                     di2.run_uuid = runs.run_uuid AND di2.context IN ($2, $3))",
                ),
                order_sql: RUN_DEFAULT_ORDER,
                binds: vec![text("train"), text("eval"), text("test")],
            },
        );
    }

    #[test]
    fn or_inside_and_is_parenthesised() {
        check_sql(
            Entity::Runs,
            "(metrics.a > 1 OR tags.b = 'x') AND run_name = 'r' OR user_id = 'u'",
            &[],
            Expected {
                joins: "",
                where_sql: Some(
                    "(EXISTS (SELECT 1 FROM latest_metrics m1 WHERE m1.run_uuid = runs.run_uuid \
                     AND m1.key = $1 AND m1.is_nan = 0 AND m1.value > $2) OR EXISTS (SELECT 1 \
                     FROM tags t2 WHERE t2.run_uuid = runs.run_uuid AND t2.key = $3 AND \
                     t2.value = $4)) AND runs.name = $5 OR runs.user_id = $6",
                ),
                order_sql: RUN_DEFAULT_ORDER,
                binds: vec![
                    text("a"),
                    SqlValue::Real(1.0),
                    text("b"),
                    text("x"),
                    text("r"),
                    text("u"),
                ],
            },
        );
    }

    #[test]
    fn run_ordering_sorts_missing_keys_last_and_breaks_ties() {
        check_sql(
            Entity::Runs,
            "metrics.acc > 0",
            &[
                "metrics.`val acc` DESC",
                "params.lr",
                "tags.team DESC",
                "end_time",
            ],
            Expected {
                joins: "LEFT JOIN latest_metrics o1 ON o1.run_uuid = runs.run_uuid AND \
                        o1.key = $1 LEFT JOIN params o2 ON o2.run_uuid = runs.run_uuid AND \
                        o2.key = $2 LEFT JOIN tags o3 ON o3.run_uuid = runs.run_uuid AND \
                        o3.key = $3",
                where_sql: Some(
                    "EXISTS (SELECT 1 FROM latest_metrics m4 WHERE m4.run_uuid = runs.run_uuid \
                     AND m4.key = $4 AND m4.is_nan = 0 AND m4.value > $5)",
                ),
                order_sql: "(o1.run_uuid IS NULL) ASC, o1.is_nan ASC, o1.value DESC, \
                            (o2.run_uuid IS NULL) ASC, o2.value ASC, \
                            (o3.run_uuid IS NULL) ASC, o3.value DESC, \
                            (runs.end_time IS NULL) ASC, runs.end_time ASC, \
                            runs.start_time DESC, runs.run_uuid ASC",
                binds: vec![
                    text("val acc"),
                    text("lr"),
                    text("team"),
                    text("acc"),
                    SqlValue::Real(0.0),
                ],
            },
        );
        check_sql(
            Entity::Runs,
            "",
            &["created ASC", "run_name DESC"],
            Expected {
                joins: "",
                where_sql: None,
                order_sql: "runs.start_time ASC, runs.name DESC, runs.run_uuid ASC",
                binds: vec![],
            },
        );
        check_sql(
            Entity::Runs,
            "  ",
            &["run_id DESC"],
            Expected {
                joins: "",
                where_sql: None,
                order_sql: "runs.run_uuid DESC, runs.start_time DESC",
                binds: vec![],
            },
        );
    }

    #[test]
    fn a_metric_both_filtered_and_ordered_is_one_inner_join() {
        check_sql(
            Entity::Runs,
            "metrics.rmse < 0.5 and params.alpha = '0.1' and metrics.rmse >= 0.1",
            &["metrics.rmse DESC"],
            Expected {
                joins: "JOIN latest_metrics o1 ON o1.run_uuid = runs.run_uuid AND o1.key = $1 \
                        AND o1.is_nan = 0 AND o1.value < $2 AND o1.value >= $3",
                where_sql: Some(
                    "EXISTS (SELECT 1 FROM params p2 WHERE p2.run_uuid = runs.run_uuid \
                     AND p2.key = $4 AND p2.value = $5)",
                ),
                order_sql: "o1.value DESC, runs.start_time DESC, runs.run_uuid ASC",
                binds: vec![
                    text("rmse"),
                    SqlValue::Real(0.5),
                    SqlValue::Real(0.1),
                    text("alpha"),
                    text("0.1"),
                ],
            },
        );
        // Under OR, or with `!=`, a run may lack the metric: the general form stays.
        for filter in [
            "metrics.rmse < 0.5 OR params.alpha = '0.1'",
            "metrics.rmse != 0.5",
        ] {
            let built = build_search(Entity::Runs, filter, &["metrics.rmse".to_owned()])
                .expect("valid search");
            assert!(
                built.joins.starts_with("LEFT JOIN"),
                "{filter}: {}",
                built.joins
            );
            assert!(
                built.order_sql.contains("IS NULL"),
                "{filter}: {}",
                built.order_sql
            );
        }
    }

    #[test]
    fn registry_tag_not_equal_keeps_untagged_models() {
        check_sql(
            Entity::RegisteredModels,
            "name LIKE 'res%' AND tag.`mlflow.prompt.is_prompt` != 'true'",
            &[],
            Expected {
                joins: "",
                where_sql: Some(
                    "registered_models.name LIKE $1 AND NOT EXISTS (SELECT 1 FROM \
                     registered_model_tags t1 WHERE t1.name = registered_models.name AND \
                     t1.key = $2 AND t1.value = $3)",
                ),
                order_sql: "registered_models.name ASC",
                binds: vec![text("res%"), text("mlflow.prompt.is_prompt"), text("true")],
            },
        );
        check_sql(
            Entity::RegisteredModels,
            "tags.owner = 'ada' AND creation_timestamp > 5 AND name ILIKE '%Net'",
            &["last_updated_timestamp DESC"],
            Expected {
                joins: "",
                where_sql: Some(
                    "EXISTS (SELECT 1 FROM registered_model_tags t1 WHERE t1.name = \
                     registered_models.name AND t1.key = $1 AND t1.value = $2) AND \
                     registered_models.creation_timestamp > $3 AND \
                     LOWER(registered_models.name) LIKE LOWER($4)",
                ),
                order_sql: "registered_models.last_updated_timestamp DESC, \
                            registered_models.name ASC",
                binds: vec![text("owner"), text("ada"), SqlValue::Int(5), text("%Net")],
            },
        );
    }

    #[test]
    fn model_version_filters_and_orders() {
        check_sql(
            Entity::ModelVersions,
            "name = 'm' AND version_number >= 2 AND source_path LIKE 'models:/%' AND \
             run_id IN ('r1') AND tags.validated != 'no' AND current_stage = 'Production'",
            &[],
            Expected {
                joins: "",
                where_sql: Some(
                    "model_versions.name = $1 AND model_versions.version >= $2 AND \
                     model_versions.source LIKE $3 AND model_versions.run_id IN ($4) AND \
                     NOT EXISTS (SELECT 1 FROM model_version_tags t1 WHERE t1.name = \
                     model_versions.name AND t1.version = model_versions.version AND \
                     t1.key = $5 AND t1.value = $6) AND model_versions.current_stage = $7",
                ),
                order_sql: "model_versions.last_updated_timestamp DESC, \
                            model_versions.name ASC, model_versions.version DESC",
                binds: vec![
                    text("m"),
                    SqlValue::Int(2),
                    text("models:/%"),
                    text("r1"),
                    text("validated"),
                    text("no"),
                    text("Production"),
                ],
            },
        );
        check_sql(
            Entity::ModelVersions,
            "",
            &["version_number ASC"],
            Expected {
                joins: "",
                where_sql: None,
                order_sql: "model_versions.version ASC, model_versions.name ASC",
                binds: vec![],
            },
        );
    }

    #[test]
    fn experiment_filters_and_orders() {
        check_sql(
            Entity::Experiments,
            "name != 'Default' AND creation_time > 10 AND tags.owner != 'ada'",
            &[],
            Expected {
                joins: "",
                where_sql: Some(
                    "experiments.name != $1 AND experiments.creation_time > $2 AND NOT EXISTS \
                     (SELECT 1 FROM experiment_tags t1 WHERE t1.experiment_id = \
                     experiments.experiment_id AND t1.key = $3 AND t1.value = $4)",
                ),
                order_sql: "experiments.creation_time DESC, experiments.experiment_id ASC",
                binds: vec![
                    text("Default"),
                    SqlValue::Int(10),
                    text("owner"),
                    text("ada"),
                ],
            },
        );
        check_sql(
            Entity::Experiments,
            "",
            &["name", "last_update_time DESC"],
            Expected {
                joins: "",
                where_sql: None,
                order_sql: "experiments.name ASC, experiments.last_update_time DESC, \
                            experiments.experiment_id ASC",
                binds: vec![],
            },
        );
    }

    #[test]
    fn logged_model_filters_and_orders() {
        check_sql(
            Entity::LoggedModels,
            "metrics.acc >= 0.5 AND params.lr = '0.1' AND tags.t != 'x' AND \
             source_run_id = 'r' AND creation_time > 3",
            &["metrics.acc DESC"],
            Expected {
                joins: "LEFT JOIN (SELECT o1_row.model_id, o1_row.value, o1_row.is_nan, \
                        ROW_NUMBER() OVER (PARTITION BY o1_row.model_id ORDER BY \
                        o1_row.timestamp DESC, o1_row.step DESC) AS latest_rank FROM \
                        logged_model_metrics o1_row WHERE o1_row.key = $1) o1 ON \
                        o1.model_id = logged_models.model_id AND o1.latest_rank = 1",
                where_sql: Some(
                    "EXISTS (SELECT 1 FROM logged_model_metrics m2 WHERE m2.model_id = \
                     logged_models.model_id AND m2.key = $2 AND m2.is_nan = 0 AND \
                     m2.value >= $3) AND EXISTS (SELECT 1 FROM logged_model_params p3 WHERE \
                     p3.model_id = logged_models.model_id AND p3.key = $4 AND p3.value = $5) \
                     AND EXISTS (SELECT 1 FROM logged_model_tags t4 WHERE t4.model_id = \
                     logged_models.model_id AND t4.key = $6 AND t4.value != $7) AND \
                     logged_models.source_run_id = $8 AND logged_models.creation_timestamp > $9",
                ),
                order_sql: "(o1.model_id IS NULL) ASC, o1.is_nan ASC, o1.value DESC, \
                            logged_models.model_id ASC",
                binds: vec![
                    text("acc"),
                    text("acc"),
                    SqlValue::Real(0.5),
                    text("lr"),
                    text("0.1"),
                    text("t"),
                    text("x"),
                    text("r"),
                    SqlValue::Int(3),
                ],
            },
        );
        check_sql(
            Entity::LoggedModels,
            "",
            &[],
            Expected {
                joins: "",
                where_sql: None,
                order_sql: "logged_models.creation_timestamp DESC, logged_models.model_id ASC",
                binds: vec![],
            },
        );
    }

    #[test]
    fn user_text_never_reaches_the_sql() {
        let hostile = "x'; DROP TABLE runs; --";
        let filter = format!(
            "tags.`{hostile}` = \"{hostile}\" AND run_name IN ('{}')",
            hostile.replace('\'', "''")
        );
        let order_by = [format!("params.`{hostile}` DESC")];
        let built = match build_search(Entity::Runs, &filter, &order_by) {
            Ok(built) => built,
            Err(error) => panic!("hostile filter failed: {error}"),
        };
        let all_text = format!(
            "{} {} {}",
            built.joins,
            built.where_sql.as_deref().unwrap_or_default(),
            built.order_sql
        );
        assert!(!all_text.contains("DROP"), "{all_text}");
        assert_eq!(
            built
                .binds
                .iter()
                .filter(|bind| **bind == text(hostile))
                .count(),
            4
        );
        check_placeholders_match_binds(&built);
    }

    #[test]
    fn parse_errors_pass_through() {
        let cases: &[(Entity, &str, &[&str], &str)] = &[
            (
                Entity::Runs,
                "metrics.acc <<< 1",
                &[],
                "Invalid comparator '<<<'",
            ),
            (
                Entity::Runs,
                "",
                &["metrics.a", "metrics.a"],
                "duplicate fields",
            ),
            (
                Entity::RegisteredModels,
                "run_id = 'x'",
                &[],
                "Invalid attribute key 'run_id'",
            ),
        ];
        for (entity, filter, order_by, fragment) in cases {
            let order_by: Vec<String> =
                order_by.iter().map(|clause| (*clause).to_owned()).collect();
            match build_search(*entity, filter, &order_by) {
                Ok(built) => panic!("{filter:?} built {built:?}"),
                Err(error) => assert!(error.to_string().contains(fragment), "{error}"),
            }
        }
    }

    #[test]
    fn hand_built_expressions_outside_the_schema_are_errors() {
        let mut builder = SqlBuilder {
            entity: Entity::RegisteredModels,
            tables: tables_of(Entity::RegisteredModels),
            binds: Vec::new(),
            alias_count: 0,
        };
        let metric = FilterExpression::Comparison(Comparison {
            field: Field::Metric("acc".to_owned()),
            predicate: Predicate::Null { negated: false },
        });
        let empty_list = FilterExpression::Comparison(Comparison {
            field: Field::Attribute(Attribute::Name),
            predicate: Predicate::List {
                negated: false,
                values: Vec::new(),
            },
        });
        let dataset = FilterExpression::Comparison(Comparison {
            field: Field::Dataset(DatasetAttribute::Name),
            predicate: Predicate::Null { negated: false },
        });
        let messages: Vec<String> = [metric, empty_list, dataset]
            .iter()
            .map(|expression| match builder.expression_sql(expression) {
                Ok(sql) => sql,
                Err(error) => error.to_string(),
            })
            .collect();
        assert_eq!(
            messages,
            [
                "Searching by metric 'acc' is not supported for registered models",
                "While parsing a list in the query, expected a non-empty list of string \
                 values, but got empty list",
                "Searching by dataset attribute 'name' is not supported for registered models",
            ]
        );
    }

    #[test]
    fn truncated_filters_never_panic_in_translation() {
        let seeds = [
            "metrics.acc > 0.9 AND (params.lr = '0.1' OR tags.`a b` IS NULL)",
            "attributes.run_id NOT IN ('a', \"b\") AND datasets.digest LIKE 'd%'",
            "name ILIKE '%x' AND tag.`mlflow.prompt.is_prompt` != 'true'",
        ];
        let entities = [
            Entity::Runs,
            Entity::Experiments,
            Entity::RegisteredModels,
            Entity::ModelVersions,
            Entity::LoggedModels,
        ];
        for seed in seeds {
            for (boundary, _) in seed.char_indices() {
                for entity in entities {
                    for piece in [&seed[..boundary], &seed[boundary..]] {
                        if let Ok(built) = build_search(entity, piece, &[piece.to_owned()]) {
                            check_placeholders_match_binds(&built);
                        }
                    }
                }
            }
        }
    }
}
