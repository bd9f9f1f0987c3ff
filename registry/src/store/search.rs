//! The one search pipeline behind every search method: parse the filter, order and page token,
//! build the statement, run it and cut the page. Each search names only what differs: the
//! columns it selects, the conditions every row must meet besides the user's filter, and how
//! a row becomes a value.

use sqlx::any::AnyRow;

use super::search_sql::{SearchSql, SqlValue, build_search};
use super::sql::{placeholders, search_query};
use super::{Page, Paging, Store};
use crate::domain::search::Entity;
use crate::error::{Error, Result};

/// Most values one search may bind: under SQLite's 32,766 and PostgreSQL's 65,535 variables per
/// statement, so a search naming more is refused as a bad request, not failed as a server error
/// (which clients would retry).
const MAX_BOUND_VALUES: usize = 30_000;

/// A search as a request spells it, before parsing.
pub(super) struct SearchRequest<'a> {
    pub(super) entity: Entity,
    pub(super) filter: &'a str,
    pub(super) order_by: &'a [String],
    pub(super) max_results: Option<i64>,
    pub(super) page_token: Option<&'a str>,
}

/// A condition every row of a search meets besides the user's filter.
pub(super) enum Scope<'a> {
    /// `column IN ($k, ...)`: one placeholder per value, so the statement of a small list reads
    /// as PostgreSQL plans it best.
    AnyOf(&'a str, Vec<SqlValue>),
    /// Fixed SQL with no parameters.
    Sql(&'a str),
}

/// A parsed search: its paging and the SQL pieces of its filter and order.
pub(super) struct ParsedSearch {
    paging: Paging,
    sql: SearchSql,
}

impl ParsedSearch {
    /// Checks paging first, then the filter and order, so errors come in MLflow's order.
    pub(super) fn parse(request: SearchRequest<'_>) -> Result<ParsedSearch> {
        let paging = Paging::new(
            request.max_results,
            request.entity.page_limits(),
            request.page_token,
        )?;
        let sql = build_search(request.entity, request.filter, request.order_by)?;
        Ok(ParsedSearch { paging, sql })
    }

    /// The statement `select ... WHERE scope AND (filter) ORDER BY ... LIMIT ... OFFSET ...`
    /// and its values: the filter's binds first, then the scope's.
    fn statement(&self, select: &str, scope: &[Scope<'_>]) -> (String, Vec<SqlValue>) {
        let mut binds = self.sql.binds.clone();
        let conditions: Vec<String> = scope
            .iter()
            .map(|condition| match condition {
                Scope::AnyOf(column, values) => {
                    let list = placeholders(binds.len() + 1, values.len());
                    binds.extend(values.iter().cloned());
                    format!("{column} IN ({list})")
                }
                Scope::Sql(sql) => (*sql).to_owned(),
            })
            .collect();
        let where_clause = match (conditions.is_empty(), self.sql.where_sql.as_deref()) {
            (true, None) => String::new(),
            (true, Some(filter)) => format!("WHERE {filter}"),
            (false, None) => format!("WHERE {}", conditions.join(" AND ")),
            (false, Some(filter)) => format!("WHERE {} AND ({filter})", conditions.join(" AND ")),
        };
        let sql = format!(
            "{select} {} {where_clause} ORDER BY {} {}",
            self.sql.joins,
            self.sql.order_sql,
            self.paging.sql()
        );
        (sql, binds)
    }
}

impl Store {
    /// Runs `search` on the reader: `select` names the columns and table, `scope` the
    /// conditions besides the user's filter, and `from_row` reads one row.
    pub(super) async fn search<T>(
        &self,
        search: ParsedSearch,
        select: &str,
        scope: &[Scope<'_>],
        from_row: impl Fn(&AnyRow) -> Result<T>,
    ) -> Result<Page<T>> {
        let (sql, binds) = search.statement(select, scope);
        if binds.len() > MAX_BOUND_VALUES {
            return Err(Error::invalid(format!(
                "The search names {} values (experiment ids and filter values together); at most {MAX_BOUND_VALUES} are allowed. Search in smaller groups.",
                binds.len()
            )));
        }
        let rows = search_query(sql, &binds).fetch_all(&self.reader).await?;
        let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        Ok(search.paging.finish(items))
    }
}

/// `texts` as bind values, for a [`Scope::AnyOf`] over a text column.
pub(super) fn text_values(texts: &[&str]) -> Vec<SqlValue> {
    texts
        .iter()
        .map(|text| SqlValue::Text((*text).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::search::encode_page_token;

    fn parsed(entity: Entity, filter: &str, order_by: &[&str]) -> ParsedSearch {
        let order_by: Vec<String> = order_by.iter().map(|clause| clause.to_string()).collect();
        let page_token = encode_page_token(10);
        ParsedSearch::parse(SearchRequest {
            entity,
            filter,
            order_by: &order_by,
            max_results: Some(5),
            page_token: Some(&page_token),
        })
        .expect("a valid search")
    }

    /// The `AND (filter)` suffix each search spliced after its own conditions.
    fn and_filter(search: &SearchSql) -> String {
        search
            .where_sql
            .as_deref()
            .map(|sql| format!(" AND ({sql})"))
            .unwrap_or_default()
    }

    /// Each search's statement, as each search method used to write it out, for the pipeline's
    /// statement to match byte for byte: the text decides PostgreSQL's plan, so a change here
    /// is a change in performance.
    #[test]
    fn statements_match_the_searches_they_replace() {
        let ints = |ids: &[i64]| ids.iter().map(|id| SqlValue::Int(*id)).collect::<Vec<_>>();
        for filter in ["", "name = 'a' OR name LIKE 'b%'"] {
            let search = parsed(Entity::Experiments, filter, &["name DESC"]);
            let (sql, binds) = search.statement(
                "SELECT c FROM experiments",
                &[Scope::AnyOf(
                    "experiments.lifecycle_stage",
                    text_values(&["active", "deleted"]),
                )],
            );
            let s = &search.sql;
            let first = s.binds.len() + 1;
            assert_eq!(
                sql,
                format!(
                    "SELECT c FROM experiments {} WHERE experiments.lifecycle_stage IN ({}){} ORDER BY {} {}",
                    s.joins,
                    placeholders(first, 2),
                    and_filter(s),
                    s.order_sql,
                    "LIMIT 6 OFFSET 10"
                )
            );
            let mut expected = s.binds.clone();
            expected.extend(text_values(&["active", "deleted"]));
            assert_eq!(binds, expected);
        }

        for filter in ["", "metrics.acc > 0.5 AND params.lr = '0.1'"] {
            let search = parsed(Entity::Runs, filter, &["metrics.acc DESC"]);
            let (sql, binds) = search.statement(
                "SELECT runs.run_uuid FROM runs",
                &[
                    Scope::AnyOf("runs.experiment_id", ints(&[3, 4, 5])),
                    Scope::AnyOf("runs.lifecycle_stage", text_values(&["active"])),
                ],
            );
            let s = &search.sql;
            let first = s.binds.len() + 1;
            assert_eq!(
                sql,
                format!(
                    "SELECT runs.run_uuid FROM runs {} WHERE runs.experiment_id IN ({}) AND runs.lifecycle_stage IN ({}){} \
                     ORDER BY {} {}",
                    s.joins,
                    placeholders(first, 3),
                    placeholders(first + 3, 1),
                    and_filter(s),
                    s.order_sql,
                    "LIMIT 6 OFFSET 10"
                )
            );
            assert!(!s.joins.is_empty(), "ordering on a metric joins it");
            let mut expected = s.binds.clone();
            expected.extend(ints(&[3, 4, 5]));
            expected.extend(text_values(&["active"]));
            assert_eq!(binds, expected);
        }

        for filter in ["", "name LIKE 'a%'"] {
            let search = parsed(Entity::RegisteredModels, filter, &[]);
            let (sql, binds) = search.statement("SELECT c FROM registered_models", &[]);
            let s = &search.sql;
            let where_filter = s
                .where_sql
                .as_deref()
                .map(|sql| format!("WHERE {sql}"))
                .unwrap_or_default();
            assert_eq!(
                sql,
                format!(
                    "SELECT c FROM registered_models {} {where_filter} ORDER BY {} {}",
                    s.joins, s.order_sql, "LIMIT 6 OFFSET 10"
                )
            );
            assert_eq!(binds, s.binds);
        }
        assert_eq!(
            parsed(Entity::RegisteredModels, "", &[])
                .statement("SELECT c FROM registered_models", &[])
                .0,
            "SELECT c FROM registered_models   ORDER BY registered_models.name ASC LIMIT 6 OFFSET 10"
        );

        for filter in ["", "name = 'a'"] {
            let search = parsed(Entity::ModelVersions, filter, &[]);
            let (sql, binds) = search.statement(
                "SELECT c FROM model_versions",
                &[Scope::Sql("model_versions.deleted = 0")],
            );
            let s = &search.sql;
            assert_eq!(
                sql,
                format!(
                    "SELECT c FROM model_versions {} WHERE model_versions.deleted = 0{} ORDER BY {} {}",
                    s.joins,
                    and_filter(s),
                    s.order_sql,
                    "LIMIT 6 OFFSET 10"
                )
            );
            assert_eq!(binds, s.binds);
        }

        for filter in ["", "metrics.acc > 0.5"] {
            let search = parsed(Entity::LoggedModels, filter, &["metrics.acc DESC"]);
            let (sql, binds) = search.statement(
                "SELECT logged_models.model_id FROM logged_models",
                &[
                    Scope::AnyOf("logged_models.experiment_id", ints(&[7, 8])),
                    Scope::Sql("logged_models.lifecycle_stage = 'active'"),
                ],
            );
            let s = &search.sql;
            let first = s.binds.len() + 1;
            assert_eq!(
                sql,
                format!(
                    "SELECT logged_models.model_id FROM logged_models {} WHERE logged_models.experiment_id IN ({}) \
                     AND logged_models.lifecycle_stage = 'active'{} ORDER BY {} {}",
                    s.joins,
                    placeholders(first, 2),
                    and_filter(s),
                    s.order_sql,
                    "LIMIT 6 OFFSET 10"
                )
            );
            let mut expected = s.binds.clone();
            expected.extend(ints(&[7, 8]));
            assert_eq!(binds, expected);
        }
    }

    #[test]
    fn each_search_takes_its_own_page_limits() {
        let too_many = |entity: Entity| {
            let maximum = entity.page_limits().maximum as i64;
            let request = |max_results| SearchRequest {
                entity,
                filter: "",
                order_by: &[],
                max_results: Some(max_results),
                page_token: None,
            };
            assert!(ParsedSearch::parse(request(maximum)).is_ok());
            ParsedSearch::parse(request(maximum + 1)).is_err()
        };
        for entity in [
            Entity::Runs,
            Entity::Experiments,
            Entity::RegisteredModels,
            Entity::ModelVersions,
            Entity::LoggedModels,
        ] {
            assert!(
                too_many(entity),
                "{entity}: a page above the maximum is refused"
            );
        }
    }
}
