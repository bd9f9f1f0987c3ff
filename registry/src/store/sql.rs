//! The SQL both backends share: placeholder lists, bound id lists, the statement a search runs,
//! reading typed columns from a row, and recognising a unique-constraint violation.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};

use super::search_sql::SqlValue;
use super::{Backend, Store};
use crate::domain::tracking::Metric;
use crate::error::Result;

pub(super) type AnyQuery<'q> = Query<'q, Any, AnyArguments>;

/// A statement built from a user's search filter, with its values bound first.
///
/// It is not kept as a prepared statement: PostgreSQL then plans it afresh with the values bound
/// (the unnamed statement). A cached generic plan is chosen without them; with the table
/// statistics of a freshly filled experiment it hash-joined every matching run before sorting,
/// where walking the ordering index stops after one page; searches took about 1.5 times as long.
pub(super) fn search_query(sql: String, values: &[SqlValue]) -> AnyQuery<'_> {
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
    for value in values {
        query = match value {
            SqlValue::Text(text) => query.bind(text.as_str()),
            SqlValue::Int(number) => query.bind(*number),
            SqlValue::Real(number) => query.bind(*number),
        };
    }
    query
}

/// `$first, $first+1, ...` for `count` values: the portable placeholder spelling.
pub(super) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|index| format!("${index}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// `column` matches any of the ids bound, as [`Store::id_list`] spells them, at `$index`:
    /// one parameter for any number of ids, so a statement's text and prepared plan stay the
    /// same whatever the count, and PostgreSQL plans one parameter rather than one per id (with
    /// a hundred ids, planning took longer than running the query).
    pub(super) fn in_id_list(&self, column: &str, index: usize) -> String {
        match self.backend {
            Backend::Postgres => format!("{column} = ANY(CAST(${index} AS text[]))"),
            Backend::Sqlite => format!("{column} IN (SELECT value FROM json_each(${index}))"),
        }
    }

    /// The bound value of [`Store::in_id_list`]: a PostgreSQL array literal (cheaper to read
    /// than expanding a JSON array, which a page load does once per table), or a
    /// JSON array for SQLite. Ids holding a NUL, which no stored id does and neither database
    /// takes in text, are left out.
    pub(super) fn id_list<Id: AsRef<str>>(&self, ids: &[Id]) -> String {
        let storable = ids
            .iter()
            .map(AsRef::as_ref)
            .filter(|id| !id.contains('\0'));
        match self.backend {
            Backend::Postgres => {
                let mut literal = String::from("{");
                for (position, id) in storable.enumerate() {
                    if position > 0 {
                        literal.push(',');
                    }
                    // Quoted, so commas, braces, blanks and the word NULL stay part of the id.
                    literal.push('"');
                    for character in id.chars() {
                        if matches!(character, '"' | '\\') {
                            literal.push('\\');
                        }
                        literal.push(character);
                    }
                    literal.push('"');
                }
                literal.push('}');
                literal
            }
            Backend::Sqlite => serde_json::Value::from(storable.collect::<Vec<_>>()).to_string(),
        }
    }
}

impl Store {
    /// [`Store::in_id_list`] for an integer `column`, bound as [`Store::number_list`] spells it.
    pub(super) fn in_number_list(&self, column: &str, index: usize) -> String {
        match self.backend {
            Backend::Postgres => format!("{column} = ANY(CAST(${index} AS bigint[]))"),
            Backend::Sqlite => format!("{column} IN (SELECT value FROM json_each(${index}))"),
        }
    }

    /// The bound value of [`Store::in_number_list`]: a PostgreSQL array literal or a JSON array.
    pub(super) fn number_list(&self, numbers: &[i64]) -> String {
        let joined = numbers
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        match self.backend {
            Backend::Postgres => format!("{{{joined}}}"),
            Backend::Sqlite => format!("[{joined}]"),
        }
    }
}

/// `($1, $2), ($3, $4), ...` for `rows` rows of `columns` values: the rows of a `VALUES` list.
pub(super) fn values_rows(rows: usize, columns: usize) -> String {
    values_rows_from(1, rows, columns)
}

/// [`values_rows`] numbered from `$first`, for a list that follows other parameters.
pub(super) fn values_rows_from(first: usize, rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| format!("({})", placeholders(first + row * columns, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn get_text(row: &AnyRow, column: &str) -> Result<String> {
    Ok(row.try_get::<String, _>(column)?)
}

pub(super) fn get_opt_text(row: &AnyRow, column: &str) -> Result<Option<String>> {
    Ok(row.try_get::<Option<String>, _>(column)?)
}

pub(super) fn get_i64(row: &AnyRow, column: &str) -> Result<i64> {
    Ok(row.try_get::<i64, _>(column)?)
}

pub(super) fn get_opt_i64(row: &AnyRow, column: &str) -> Result<Option<i64>> {
    Ok(row.try_get::<Option<i64>, _>(column)?)
}

pub(super) fn get_f64(row: &AnyRow, column: &str) -> Result<f64> {
    Ok(row.try_get::<f64, _>(column)?)
}

/// True when the error is a unique-constraint violation (SQLSTATE 23505 / SQLite 2067, 1555).
pub(super) fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(database_error) => {
            database_error.is_unique_violation()
                || matches!(
                    database_error.code().as_deref(),
                    Some("23505" | "2067" | "1555")
                )
        }
        _ => false,
    }
}

pub(super) fn metric_from_row(row: &AnyRow) -> Result<Metric> {
    let is_nan = get_i64(row, "is_nan")? != 0;
    Ok(Metric {
        key: get_text(row, "key")?,
        value: if is_nan {
            f64::NAN
        } else {
            get_f64(row, "value")?
        },
        timestamp: get_i64(row, "timestamp")?,
        step: get_i64(row, "step")?,
    })
}
