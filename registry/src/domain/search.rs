//! The MLflow search grammar: filter strings, `order_by` clauses and page tokens, parsed into
//! typed values for runs, experiments, registered models, model versions and logged models.
//!
//! The grammar follows MLflow's `SearchUtils` family (`mlflow/utils/search_utils.py`):
//! comparisons such as `metrics.accuracy >= 0.9` or ``tags.`mlflow.user` = 'ada'`` joined by
//! `AND`. We also accept `OR` and parentheses, which MLflow lacks; `AND` binds tighter than `OR`.
//!
//! This module is pure. It never touches storage; turning a parsed search into SQL is the job of
//! `store::search_sql`. Filters arrive straight from HTTP requests, so every malformed input is a
//! `SearchError` and never a panic.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64_STANDARD;

/// Parentheses nested deeper than this are refused, so that a hostile filter cannot exhaust the
/// stack of the recursive-descent parser.
pub const MAX_NESTING_DEPTH: usize = 64;

/// The kind of object a search runs over. Each has its own keys, comparators and orderings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    Runs,
    Experiments,
    RegisteredModels,
    ModelVersions,
    LoggedModels,
}

impl fmt::Display for Entity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Entity::Runs => "runs",
            Entity::Experiments => "experiments",
            Entity::RegisteredModels => "registered models",
            Entity::ModelVersions => "model versions",
            Entity::LoggedModels => "logged models",
        })
    }
}

/// How many results a page holds when a request leaves `max_results` out (`default`), and the
/// most a request may ask for (`maximum`); MLflow's limits for each kind of listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    pub default: u64,
    pub maximum: u64,
}

impl PageLimits {
    /// `metrics/get-history`: a page of one metric's points.
    pub const METRIC_HISTORY: PageLimits = PageLimits {
        default: 25_000,
        maximum: 1_000_000,
    };
}

impl Entity {
    /// The page limits of this entity's search.
    pub fn page_limits(self) -> PageLimits {
        let (default, maximum) = match self {
            Entity::Runs | Entity::Experiments => (1000, 50_000),
            Entity::RegisteredModels => (100, 1000),
            Entity::ModelVersions => (10_000, 200_000),
            Entity::LoggedModels => (100, 10_000),
        };
        PageLimits { default, maximum }
    }
}

/// A built-in column of the searched entity, named after its canonical MLflow key.
///
/// Which attributes exist for which entity is decided by the grammar tables below; the parser
/// never produces an attribute the entity lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attribute {
    /// `run_id`: the id of a run, or the source run of a model version.
    RunId,
    /// `run_name` of a run (aliases `run name`, `Run name`, `Run Name`).
    RunName,
    /// `status` of a run or a logged model.
    Status,
    /// `user_id` of a run.
    UserId,
    /// `artifact_uri` of a run.
    ArtifactUri,
    /// `lifecycle_stage` of a run (`active` or `deleted`).
    LifecycleStage,
    /// `start_time` of a run in epoch milliseconds (aliases `created`, `Created`).
    StartTime,
    /// `end_time` of a run in epoch milliseconds; missing while the run is unfinished.
    EndTime,
    /// `experiment_id` of an experiment (order_by only).
    ExperimentId,
    /// `name` of an experiment, registered model, model version or logged model.
    Name,
    /// `creation_time` of an experiment.
    CreationTime,
    /// `last_update_time` of an experiment.
    LastUpdateTime,
    /// `creation_timestamp` of a registered model, model version or logged model.
    CreationTimestamp,
    /// `last_updated_timestamp` of a registered model, model version or logged model.
    LastUpdatedTimestamp,
    /// `version_number` of a model version.
    VersionNumber,
    /// `source_path` of a model version: its `source` URI.
    SourcePath,
    /// `current_stage` of a model version.
    CurrentStage,
    /// `model_id` of a logged model.
    ModelId,
    /// `model_type` of a logged model.
    ModelType,
    /// `source_run_id` of a logged model.
    SourceRunId,
}

impl Attribute {
    /// The canonical MLflow key, as written in filters and shown in error messages.
    pub fn key(self) -> &'static str {
        match self {
            Attribute::RunId => "run_id",
            Attribute::RunName => "run_name",
            Attribute::Status => "status",
            Attribute::UserId => "user_id",
            Attribute::ArtifactUri => "artifact_uri",
            Attribute::LifecycleStage => "lifecycle_stage",
            Attribute::StartTime => "start_time",
            Attribute::EndTime => "end_time",
            Attribute::ExperimentId => "experiment_id",
            Attribute::Name => "name",
            Attribute::CreationTime => "creation_time",
            Attribute::LastUpdateTime => "last_update_time",
            Attribute::CreationTimestamp => "creation_timestamp",
            Attribute::LastUpdatedTimestamp => "last_updated_timestamp",
            Attribute::VersionNumber => "version_number",
            Attribute::SourcePath => "source_path",
            Attribute::CurrentStage => "current_stage",
            Attribute::ModelId => "model_id",
            Attribute::ModelType => "model_type",
            Attribute::SourceRunId => "source_run_id",
        }
    }

    /// Whether the attribute holds a number (compared with `<`, `>=`, ...) rather than a string.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Attribute::StartTime
                | Attribute::EndTime
                | Attribute::ExperimentId
                | Attribute::CreationTime
                | Attribute::LastUpdateTime
                | Attribute::CreationTimestamp
                | Attribute::LastUpdatedTimestamp
                | Attribute::VersionNumber
        )
    }
}

/// A property of the datasets a run consumed (`datasets.name`, `datasets.digest`,
/// `datasets.context`). A run matches when any of its dataset inputs matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetAttribute {
    Name,
    Digest,
    Context,
}

impl DatasetAttribute {
    /// The key as written after `datasets.`.
    pub fn key(self) -> &'static str {
        match self {
            DatasetAttribute::Name => "name",
            DatasetAttribute::Digest => "digest",
            DatasetAttribute::Context => "context",
        }
    }
}

/// The left-hand side of a comparison in a filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    /// `metrics.<key>`: the latest value of a metric (runs) or any value of it (logged models).
    Metric(String),
    /// `params.<key>`.
    Param(String),
    /// `tags.<key>`.
    Tag(String),
    /// A built-in column such as `run_name` or `creation_timestamp`.
    Attribute(Attribute),
    /// `datasets.<key>` (runs only).
    Dataset(DatasetAttribute),
}

impl fmt::Display for Field {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Metric(key) => write!(formatter, "metric '{key}'"),
            Field::Param(key) => write!(formatter, "parameter '{key}'"),
            Field::Tag(key) => write!(formatter, "tag '{key}'"),
            Field::Attribute(attribute) => write!(formatter, "attribute '{}'", attribute.key()),
            Field::Dataset(attribute) => {
                write!(formatter, "dataset attribute '{}'", attribute.key())
            }
        }
    }
}

/// What an `order_by` clause sorts by. Datasets cannot be ordered by, so they are absent here.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OrderField {
    Metric(String),
    Param(String),
    Tag(String),
    Attribute(Attribute),
}

impl fmt::Display for OrderField {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderField::Metric(key) => write!(formatter, "metric '{key}'"),
            OrderField::Param(key) => write!(formatter, "parameter '{key}'"),
            OrderField::Tag(key) => write!(formatter, "tag '{key}'"),
            OrderField::Attribute(attribute) => {
                write!(formatter, "attribute '{}'", attribute.key())
            }
        }
    }
}

/// A comparator between a number-valued field and a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumberComparator {
    Equal,
    NotEqual,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

impl NumberComparator {
    /// The comparator as written in a filter, which is also its SQL spelling.
    pub fn symbol(self) -> &'static str {
        match self {
            NumberComparator::Equal => "=",
            NumberComparator::NotEqual => "!=",
            NumberComparator::Greater => ">",
            NumberComparator::GreaterOrEqual => ">=",
            NumberComparator::Less => "<",
            NumberComparator::LessOrEqual => "<=",
        }
    }
}

/// A comparator between a string-valued field and a string. `Like` is case-sensitive with `%`
/// and `_` wildcards; `ILike` is its case-insensitive twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextComparator {
    Equal,
    NotEqual,
    Like,
    ILike,
}

/// A number written in a filter. Literals with an integral value that fits an `i64` (`5`,
/// `1e3`, `2.0`) are `Integer`, so that timestamps and version numbers compare exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NumericValue {
    Integer(i64),
    Float(f64),
}

impl NumericValue {
    /// The value as a double, for comparisons with metric values.
    pub fn as_f64(self) -> f64 {
        match self {
            // Precision loss above 2^53 is acceptable: metrics are doubles anyway.
            NumericValue::Integer(integer) => integer as f64,
            NumericValue::Float(float) => float,
        }
    }
}

/// What a comparison checks about its field. The parser only builds predicates that suit the
/// field: numbers for numeric fields, strings for string fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// `metrics.accuracy >= 0.9`, `start_time < 1700000000000`.
    Number {
        comparator: NumberComparator,
        value: NumericValue,
    },
    /// `tags.team = 'vision'`, `name LIKE 'resnet%'`.
    Text {
        comparator: TextComparator,
        value: String,
    },
    /// `run_id IN ('a', 'b')` or, when `negated`, `NOT IN`. The list is never empty.
    List { negated: bool, values: Vec<String> },
    /// `tags.x IS NULL` or, when `negated`, `IS NOT NULL`.
    Null { negated: bool },
}

/// One `<field> <comparator> <value>` clause of a filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub field: Field,
    pub predicate: Predicate,
}

/// A parsed filter. `And` and `Or` always hold at least two operands, and an `And` never
/// directly holds another `And` (nor an `Or` another `Or`): the parser flattens them.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterExpression {
    Comparison(Comparison),
    And(Vec<FilterExpression>),
    Or(Vec<FilterExpression>),
}

/// One parsed `order_by` clause.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderByTerm {
    pub field: OrderField,
    pub ascending: bool,
}

/// Everything that can be wrong with a filter, an `order_by` clause or a page token.
///
/// The messages are shown to MLflow clients (as `INVALID_PARAMETER_VALUE`), so they follow
/// MLflow's wording where MLflow has one and always quote the offending piece of input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    #[error("Invalid entity type '{prefix}'. Valid values are [{valid}]")]
    InvalidEntityType { prefix: String, valid: String },
    #[error("Invalid attribute key '{key}' specified. Valid keys are [{valid}]")]
    InvalidAttributeKey { key: String, valid: String },
    #[error("Invalid order_by attribute key '{key}' specified. Valid keys are [{valid}]")]
    InvalidOrderByKey { key: String, valid: String },
    #[error("Invalid dataset key '{key}' specified. Valid keys are ['name', 'digest', 'context']")]
    InvalidDatasetKey { key: String },
    #[error(
        "Invalid identifier '{identifier}': the key after the '.' is empty. Quote keys with \
         special characters, e.g. tags.`my key`"
    )]
    EmptyKey { identifier: String },
    #[error(
        "Invalid comparison clause: expected an identifier such as 'metrics.accuracy' or \
         'attributes.run_name' but found '{found}'"
    )]
    ExpectedIdentifier { found: String },
    #[error("Invalid comparator '{comparator}' for {subject}. Valid comparators are [{valid}]")]
    InvalidComparator {
        comparator: String,
        subject: String,
        valid: String,
    },
    #[error(
        "Parameter value is either not quoted or unidentified quote types used for string \
         value {value}. Use either single or double quotes."
    )]
    UnquotedStringValue { value: String },
    #[error("Expected a quoted string value for {subject} (e.g. 'my-value'). Got value {value}")]
    ExpectedQuotedString { subject: String, value: String },
    #[error("Expected numeric value type for {subject}. Found {value}")]
    ExpectedNumber { subject: String, value: String },
    #[error("Invalid numeric value '{value}'. Use a finite number such as 5, -2, 0.5 or 1e-3")]
    InvalidNumber { value: String },
    #[error("Expected a parenthesised list of quoted strings after {comparator}. Found {found}")]
    ExpectedList { comparator: String, found: String },
    #[error(
        "While parsing a list in the query, expected a non-empty list of string values, but \
         got empty list"
    )]
    EmptyList,
    #[error(
        "While parsing a list in the query, expected string value, punctuation, or \
         whitespace, but got different type in list: {found}"
    )]
    InvalidListElement { found: String },
    #[error("Unterminated quoted string {fragment} starting at character {position}")]
    UnterminatedQuote { fragment: String, position: usize },
    #[error("Unbalanced parentheses: the '(' at character {position} is never closed")]
    UnclosedParenthesis { position: usize },
    #[error("Unbalanced parentheses: the ')' at character {position} has no matching '('")]
    UnmatchedParenthesis { position: usize },
    #[error("Invalid clause(s) in filter string: '{found}'. Join comparisons with AND or OR")]
    UnexpectedInput { found: String },
    #[error("Invalid filter: it ends where {expected} was expected")]
    UnexpectedEnd { expected: String },
    #[error("Invalid filter: parentheses are nested deeper than {limit} levels")]
    NestingTooDeep { limit: usize },
    #[error("Invalid order_by clause '{clause}'. Could not be parsed.")]
    InvalidOrderByClause { clause: String },
    #[error("Invalid ordering key '{direction}' in order_by clause '{clause}'. Use ASC or DESC")]
    InvalidOrderDirection { clause: String, direction: String },
    #[error("`order_by` contains duplicate fields: {field} is ordered by more than once")]
    DuplicateOrderBy { field: String },
    #[error("Invalid page token '{token}': {reason}")]
    InvalidPageToken { token: String, reason: String },
    #[error("Searching by {subject} is not supported for {entity}")]
    Unsupported { subject: String, entity: Entity },
}

/// Parses a filter string for `entity`. An empty or whitespace-only filter means "no filter"
/// and yields `None`.
pub fn parse_filter(entity: Entity, filter: &str) -> Result<Option<FilterExpression>, SearchError> {
    if filter.trim().is_empty() {
        return Ok(None);
    }
    let tokens = tokenize(filter)?;
    let mut parser = Parser {
        entity,
        input: filter,
        tokens,
        next_index: 0,
    };
    let expression = parser.parse_disjunction(0)?;
    if let Some(token) = parser.peek() {
        return Err(match token.kind {
            TokenKind::CloseParenthesis => SearchError::UnmatchedParenthesis {
                position: character_position(filter, token.start),
            },
            _ => SearchError::UnexpectedInput {
                found: parser.rest_from(token).to_owned(),
            },
        });
    }
    Ok(Some(expression))
}

/// Parses `order_by` clauses (`<identifier> [ASC|DESC]`, ascending by default) for `entity`.
/// Ordering by the same field twice is an error, as in MLflow.
pub fn parse_order_by(entity: Entity, clauses: &[String]) -> Result<Vec<OrderByTerm>, SearchError> {
    let mut terms: Vec<OrderByTerm> = Vec::with_capacity(clauses.len());
    for clause in clauses {
        let term = parse_order_by_clause(entity, clause)?;
        if terms.iter().any(|existing| existing.field == term.field) {
            return Err(SearchError::DuplicateOrderBy {
                field: term.field.to_string(),
            });
        }
        terms.push(term);
    }
    Ok(terms)
}

/// Encodes a result offset the way MLflow does: standard base64 (with padding) of the JSON
/// `{"offset": N}`.
pub fn encode_page_token(offset: u64) -> String {
    BASE64_STANDARD.encode(format!("{{\"offset\": {offset}}}"))
}

/// Decodes a page token made by `encode_page_token` (or by MLflow itself). An empty token means
/// the first page and yields 0. The offset may be a JSON number or a string of digits, since
/// MLflow accepts both.
pub fn decode_page_token(token: &str) -> Result<u64, SearchError> {
    if token.is_empty() {
        return Ok(0);
    }
    let invalid = |reason: &str| SearchError::InvalidPageToken {
        token: abbreviate(token),
        reason: reason.to_owned(),
    };
    let decoded = BASE64_STANDARD
        .decode(token)
        .map_err(|_| invalid("could not base64-decode"))?;
    let parsed: serde_json::Value =
        serde_json::from_slice(&decoded).map_err(|_| invalid("the decoded value is not JSON"))?;
    let offset = match parsed.get("offset") {
        Some(serde_json::Value::Number(number)) => number.as_u64(),
        Some(serde_json::Value::String(text)) => text.parse::<u64>().ok(),
        _ => None,
    };
    offset.ok_or_else(|| invalid("it holds no non-negative integer 'offset'"))
}

// ---------------------------------------------------------------------------------------------
// Grammar tables: which keys, comparators and orderings each entity accepts.
// ---------------------------------------------------------------------------------------------

/// Every comparator the lexer can recognise, before checking that it suits the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparator {
    Equal,
    NotEqual,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    Like,
    ILike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

impl Comparator {
    fn symbol(self) -> &'static str {
        match self {
            Comparator::Equal => "=",
            Comparator::NotEqual => "!=",
            Comparator::Greater => ">",
            Comparator::GreaterOrEqual => ">=",
            Comparator::Less => "<",
            Comparator::LessOrEqual => "<=",
            Comparator::Like => "LIKE",
            Comparator::ILike => "ILIKE",
            Comparator::In => "IN",
            Comparator::NotIn => "NOT IN",
            Comparator::IsNull => "IS NULL",
            Comparator::IsNotNull => "IS NOT NULL",
        }
    }

    fn as_number_comparator(self) -> Option<NumberComparator> {
        match self {
            Comparator::Equal => Some(NumberComparator::Equal),
            Comparator::NotEqual => Some(NumberComparator::NotEqual),
            Comparator::Greater => Some(NumberComparator::Greater),
            Comparator::GreaterOrEqual => Some(NumberComparator::GreaterOrEqual),
            Comparator::Less => Some(NumberComparator::Less),
            Comparator::LessOrEqual => Some(NumberComparator::LessOrEqual),
            _ => None,
        }
    }

    fn as_text_comparator(self) -> Option<TextComparator> {
        match self {
            Comparator::Equal => Some(TextComparator::Equal),
            Comparator::NotEqual => Some(TextComparator::NotEqual),
            Comparator::Like => Some(TextComparator::Like),
            Comparator::ILike => Some(TextComparator::ILike),
            _ => None,
        }
    }
}

const NUMERIC_COMPARATORS: &[Comparator] = &[
    Comparator::Equal,
    Comparator::NotEqual,
    Comparator::Greater,
    Comparator::GreaterOrEqual,
    Comparator::Less,
    Comparator::LessOrEqual,
];
/// Params and tags: strings, plus a check for the key's presence.
const KEY_VALUE_COMPARATORS: &[Comparator] = &[
    Comparator::Equal,
    Comparator::NotEqual,
    Comparator::Like,
    Comparator::ILike,
    Comparator::IsNull,
    Comparator::IsNotNull,
];
const STRING_COMPARATORS: &[Comparator] = &[
    Comparator::Equal,
    Comparator::NotEqual,
    Comparator::Like,
    Comparator::ILike,
];
const STRING_AND_IN_COMPARATORS: &[Comparator] = &[
    Comparator::Equal,
    Comparator::NotEqual,
    Comparator::Like,
    Comparator::ILike,
    Comparator::In,
];
const STRING_AND_LIST_COMPARATORS: &[Comparator] = &[
    Comparator::Equal,
    Comparator::NotEqual,
    Comparator::Like,
    Comparator::ILike,
    Comparator::In,
    Comparator::NotIn,
];
/// Ids compare exactly; a `LIKE` on an id is almost certainly a mistake.
const IDENTITY_COMPARATORS: &[Comparator] =
    &[Comparator::Equal, Comparator::NotEqual, Comparator::In];
/// Attributes that can be ordered by but not filtered on.
const NOT_FILTERABLE: &[Comparator] = &[];

/// The part of an identifier before the first `.`, resolved to what it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Namespace {
    Metric,
    Param,
    Tag,
    Attribute,
    Dataset,
}

impl Namespace {
    /// MLflow's canonical spelling, used when listing the valid prefixes in errors.
    fn canonical_name(self) -> &'static str {
        match self {
            Namespace::Metric => "metric",
            Namespace::Param => "parameter",
            Namespace::Tag => "tag",
            Namespace::Attribute => "attribute",
            Namespace::Dataset => "dataset",
        }
    }

    fn from_prefix(prefix: &str) -> Option<Namespace> {
        match prefix.to_ascii_lowercase().as_str() {
            "metric" | "metrics" => Some(Namespace::Metric),
            "param" | "params" | "parameter" | "parameters" => Some(Namespace::Param),
            "tag" | "tags" => Some(Namespace::Tag),
            "attribute" | "attributes" | "attr" | "run" => Some(Namespace::Attribute),
            "dataset" | "datasets" => Some(Namespace::Dataset),
            _ => None,
        }
    }
}

struct AttributeSpec {
    key: &'static str,
    attribute: Attribute,
    /// Comparators allowed in filters; empty when the attribute cannot be filtered on.
    comparators: &'static [Comparator],
    orderable: bool,
}

const fn spec(
    key: &'static str,
    attribute: Attribute,
    comparators: &'static [Comparator],
    orderable: bool,
) -> AttributeSpec {
    AttributeSpec {
        key,
        attribute,
        comparators,
        orderable,
    }
}

struct EntityGrammar {
    attributes: &'static [AttributeSpec],
    /// Alternative spellings of attribute keys, mapped to the canonical key.
    aliases: &'static [(&'static str, &'static str)],
    filter_namespaces: &'static [Namespace],
    order_namespaces: &'static [Namespace],
}

// The tables below are kept one attribute per line, which rustfmt would explode.

#[rustfmt::skip]
static RUN_GRAMMAR: EntityGrammar = EntityGrammar {
    attributes: &[
        spec("run_id", Attribute::RunId, STRING_AND_LIST_COMPARATORS, true),
        spec("run_name", Attribute::RunName, STRING_AND_LIST_COMPARATORS, true),
        spec("status", Attribute::Status, STRING_AND_LIST_COMPARATORS, true),
        spec("user_id", Attribute::UserId, STRING_AND_LIST_COMPARATORS, true),
        spec("artifact_uri", Attribute::ArtifactUri, STRING_AND_LIST_COMPARATORS, true),
        spec("lifecycle_stage", Attribute::LifecycleStage, STRING_AND_LIST_COMPARATORS, true),
        spec("start_time", Attribute::StartTime, NUMERIC_COMPARATORS, true),
        spec("end_time", Attribute::EndTime, NUMERIC_COMPARATORS, true),
    ],
    aliases: &[
        ("created", "start_time"),
        ("Created", "start_time"),
        ("run name", "run_name"),
        ("Run name", "run_name"),
        ("Run Name", "run_name"),
    ],
    filter_namespaces: &[
        Namespace::Metric,
        Namespace::Param,
        Namespace::Tag,
        Namespace::Attribute,
        Namespace::Dataset,
    ],
    order_namespaces: &[Namespace::Metric, Namespace::Param, Namespace::Tag, Namespace::Attribute],
};

#[rustfmt::skip]
static EXPERIMENT_GRAMMAR: EntityGrammar = EntityGrammar {
    attributes: &[
        spec("name", Attribute::Name, STRING_COMPARATORS, true),
        spec("experiment_id", Attribute::ExperimentId, NOT_FILTERABLE, true),
        spec("creation_time", Attribute::CreationTime, NUMERIC_COMPARATORS, true),
        spec("last_update_time", Attribute::LastUpdateTime, NUMERIC_COMPARATORS, true),
    ],
    aliases: &[],
    filter_namespaces: &[Namespace::Attribute, Namespace::Tag],
    order_namespaces: &[Namespace::Attribute],
};

#[rustfmt::skip]
static REGISTERED_MODEL_GRAMMAR: EntityGrammar = EntityGrammar {
    attributes: &[
        spec("name", Attribute::Name, STRING_COMPARATORS, true),
        spec("creation_timestamp", Attribute::CreationTimestamp, NUMERIC_COMPARATORS, true),
        spec("last_updated_timestamp", Attribute::LastUpdatedTimestamp, NUMERIC_COMPARATORS, true),
    ],
    aliases: &[],
    filter_namespaces: &[Namespace::Attribute, Namespace::Tag],
    order_namespaces: &[Namespace::Attribute],
};

#[rustfmt::skip]
static MODEL_VERSION_GRAMMAR: EntityGrammar = EntityGrammar {
    attributes: &[
        spec("name", Attribute::Name, STRING_AND_IN_COMPARATORS, true),
        spec("run_id", Attribute::RunId, IDENTITY_COMPARATORS, false),
        spec("source_path", Attribute::SourcePath, STRING_AND_IN_COMPARATORS, false),
        spec("version_number", Attribute::VersionNumber, NUMERIC_COMPARATORS, true),
        spec("current_stage", Attribute::CurrentStage, STRING_AND_IN_COMPARATORS, false),
        spec("creation_timestamp", Attribute::CreationTimestamp, NUMERIC_COMPARATORS, true),
        spec("last_updated_timestamp", Attribute::LastUpdatedTimestamp, NUMERIC_COMPARATORS, true),
    ],
    aliases: &[],
    filter_namespaces: &[Namespace::Attribute, Namespace::Tag],
    order_namespaces: &[Namespace::Attribute],
};

#[rustfmt::skip]
static LOGGED_MODEL_GRAMMAR: EntityGrammar = EntityGrammar {
    attributes: &[
        spec("name", Attribute::Name, STRING_AND_LIST_COMPARATORS, true),
        spec("model_id", Attribute::ModelId, STRING_AND_LIST_COMPARATORS, true),
        spec("model_type", Attribute::ModelType, STRING_AND_LIST_COMPARATORS, false),
        spec("status", Attribute::Status, STRING_AND_LIST_COMPARATORS, false),
        spec("source_run_id", Attribute::SourceRunId, STRING_AND_LIST_COMPARATORS, false),
        spec("creation_timestamp", Attribute::CreationTimestamp, NUMERIC_COMPARATORS, true),
        spec("last_updated_timestamp", Attribute::LastUpdatedTimestamp, NUMERIC_COMPARATORS, true),
    ],
    aliases: &[("creation_time", "creation_timestamp")],
    filter_namespaces: &[Namespace::Attribute, Namespace::Metric, Namespace::Param, Namespace::Tag],
    order_namespaces: &[Namespace::Attribute, Namespace::Metric],
};

fn grammar_of(entity: Entity) -> &'static EntityGrammar {
    match entity {
        Entity::Runs => &RUN_GRAMMAR,
        Entity::Experiments => &EXPERIMENT_GRAMMAR,
        Entity::RegisteredModels => &REGISTERED_MODEL_GRAMMAR,
        Entity::ModelVersions => &MODEL_VERSION_GRAMMAR,
        Entity::LoggedModels => &LOGGED_MODEL_GRAMMAR,
    }
}

/// Filters and `order_by` accept different keys, so resolution needs to know which it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Filter,
    OrderBy,
}

/// An identifier as written: an optional prefix (`metrics`) and a key with quotes removed.
#[derive(Debug, Clone)]
struct Identifier {
    prefix: Option<String>,
    key: String,
    /// The identifier exactly as it appears in the input, for error messages.
    source: String,
}

fn quoted_list<'item>(items: impl Iterator<Item = &'item str>) -> String {
    items
        .map(|item| format!("'{item}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn resolve_namespace(
    entity: Entity,
    identifier: &Identifier,
    purpose: Purpose,
) -> Result<Namespace, SearchError> {
    let grammar = grammar_of(entity);
    let allowed = match purpose {
        Purpose::Filter => grammar.filter_namespaces,
        Purpose::OrderBy => grammar.order_namespaces,
    };
    let Some(prefix) = &identifier.prefix else {
        return Ok(Namespace::Attribute);
    };
    match Namespace::from_prefix(prefix) {
        Some(namespace) if allowed.contains(&namespace) => Ok(namespace),
        _ => Err(SearchError::InvalidEntityType {
            prefix: prefix.clone(),
            valid: quoted_list(allowed.iter().map(|namespace| namespace.canonical_name())),
        }),
    }
}

fn resolve_attribute(
    entity: Entity,
    key: &str,
    purpose: Purpose,
) -> Result<&'static AttributeSpec, SearchError> {
    let grammar = grammar_of(entity);
    let canonical_key = grammar
        .aliases
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key, |(_, canonical)| *canonical);
    let usable = |spec: &AttributeSpec| match purpose {
        Purpose::Filter => !spec.comparators.is_empty(),
        Purpose::OrderBy => spec.orderable,
    };
    if let Some(found) = grammar
        .attributes
        .iter()
        .find(|spec| spec.key == canonical_key && usable(spec))
    {
        return Ok(found);
    }
    let valid = quoted_list(
        grammar
            .attributes
            .iter()
            .filter(|spec| usable(spec))
            .map(|spec| spec.key),
    );
    Err(match purpose {
        Purpose::Filter => SearchError::InvalidAttributeKey {
            key: key.to_owned(),
            valid,
        },
        Purpose::OrderBy => SearchError::InvalidOrderByKey {
            key: key.to_owned(),
            valid,
        },
    })
}

fn resolve_dataset_attribute(key: &str) -> Result<DatasetAttribute, SearchError> {
    match key {
        "name" => Ok(DatasetAttribute::Name),
        "digest" => Ok(DatasetAttribute::Digest),
        "context" => Ok(DatasetAttribute::Context),
        _ => Err(SearchError::InvalidDatasetKey {
            key: key.to_owned(),
        }),
    }
}

/// Resolves a filter identifier to its field and the comparators that field accepts.
fn resolve_filter_field(
    entity: Entity,
    identifier: &Identifier,
) -> Result<(Field, &'static [Comparator]), SearchError> {
    let key = identifier.key.clone();
    Ok(
        match resolve_namespace(entity, identifier, Purpose::Filter)? {
            Namespace::Metric => (Field::Metric(key), NUMERIC_COMPARATORS),
            Namespace::Param => (Field::Param(key), KEY_VALUE_COMPARATORS),
            Namespace::Tag => (Field::Tag(key), KEY_VALUE_COMPARATORS),
            Namespace::Dataset => (
                Field::Dataset(resolve_dataset_attribute(&key)?),
                STRING_AND_LIST_COMPARATORS,
            ),
            Namespace::Attribute => {
                let found = resolve_attribute(entity, &key, Purpose::Filter)?;
                (Field::Attribute(found.attribute), found.comparators)
            }
        },
    )
}

fn resolve_order_field(entity: Entity, identifier: &Identifier) -> Result<OrderField, SearchError> {
    let key = identifier.key.clone();
    match resolve_namespace(entity, identifier, Purpose::OrderBy)? {
        Namespace::Metric => Ok(OrderField::Metric(key)),
        Namespace::Param => Ok(OrderField::Param(key)),
        Namespace::Tag => Ok(OrderField::Tag(key)),
        Namespace::Attribute => Ok(OrderField::Attribute(
            resolve_attribute(entity, &key, Purpose::OrderBy)?.attribute,
        )),
        // No grammar lists datasets among its order_by namespaces; refuse rather than assume.
        Namespace::Dataset => Err(SearchError::InvalidEntityType {
            prefix: identifier.prefix.clone().unwrap_or_default(),
            valid: quoted_list(
                grammar_of(entity)
                    .order_namespaces
                    .iter()
                    .map(|namespace| namespace.canonical_name()),
            ),
        }),
    }
}

fn is_numeric_field(field: &Field) -> bool {
    match field {
        Field::Metric(_) => true,
        Field::Attribute(attribute) => attribute.is_numeric(),
        Field::Param(_) | Field::Tag(_) | Field::Dataset(_) => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    /// An unquoted run of characters: an identifier such as `metrics.acc`, or a keyword.
    Word,
    /// Something that starts like a number (`5`, `-2`, `.5`, `1e-3`); validated when used.
    Number,
    /// A quoted string or key, with the quotes removed and escapes resolved.
    Quoted {
        quote: char,
        content: String,
    },
    /// A run of `=`, `!`, `<`, `>`, kept whole so that `<<<` is reported as one comparator.
    Operator,
    OpenParenthesis,
    CloseParenthesis,
    Comma,
}

/// A token and its byte range in the input, which always lies on character boundaries.
#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    start: usize,
    end: usize,
}

fn is_operator_character(character: char) -> bool {
    matches!(character, '=' | '!' | '<' | '>')
}

/// Characters that end an unquoted word or number.
fn is_delimiter(character: char) -> bool {
    character.is_whitespace()
        || is_operator_character(character)
        || matches!(character, '(' | ')' | ',' | '\'' | '"' | '`')
}

fn starts_number(text: &str) -> bool {
    let mut characters = text.chars();
    let first = characters.next();
    let second = characters.next();
    let third = characters.next();
    match (first, second, third) {
        (Some(digit), _, _) if digit.is_ascii_digit() => true,
        (Some('.'), Some(digit), _) if digit.is_ascii_digit() => true,
        (Some('-' | '+'), Some(digit), _) if digit.is_ascii_digit() => true,
        (Some('-' | '+'), Some('.'), Some(digit)) if digit.is_ascii_digit() => true,
        _ => false,
    }
}

/// Slices without ever panicking; the lexer only produces boundary offsets, so the fallback is
/// never taken in practice.
fn slice(input: &str, start: usize, end: usize) -> &str {
    input.get(start..end).unwrap_or_default()
}

/// The 1-based character (not byte) position of a byte offset, for error messages.
fn character_position(input: &str, byte_offset: usize) -> usize {
    input
        .get(..byte_offset)
        .map_or(0, |before| before.chars().count())
        + 1
}

/// Shortens long user input quoted in error messages.
fn abbreviate(text: &str) -> String {
    const LIMIT: usize = 60;
    if text.chars().count() <= LIMIT {
        text.to_owned()
    } else {
        let kept: String = text.chars().take(LIMIT).collect();
        format!("{kept}...")
    }
}

struct Lexer<'input> {
    input: &'input str,
    position: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.input.get(self.position..)?.chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let character = self.peek()?;
        self.position += character.len_utf8();
        Some(character)
    }

    /// Reads a quoted string whose opening quote is at the current position. A doubled quote
    /// (`'it''s'`) or a backslash before the quote or another backslash stands for that
    /// character; any other backslash is kept as written, so LIKE patterns pass through.
    fn quoted(&mut self, quote: char) -> Result<String, SearchError> {
        let start = self.position;
        self.bump();
        let mut content = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(SearchError::UnterminatedQuote {
                        fragment: abbreviate(slice(self.input, start, self.input.len())),
                        position: character_position(self.input, start),
                    });
                }
                Some('\\') if self.peek() == Some(quote) || self.peek() == Some('\\') => {
                    if let Some(escaped) = self.bump() {
                        content.push(escaped);
                    }
                }
                Some(character) if character == quote => {
                    if self.peek() == Some(quote) {
                        self.bump();
                        content.push(quote);
                    } else {
                        return Ok(content);
                    }
                }
                Some(character) => content.push(character),
            }
        }
    }
}

fn tokenize(input: &str) -> Result<Vec<Token>, SearchError> {
    let mut lexer = Lexer { input, position: 0 };
    let mut tokens = Vec::new();
    while let Some(character) = lexer.peek() {
        let start = lexer.position;
        if character.is_whitespace() {
            lexer.bump();
            continue;
        }
        let kind = match character {
            '(' => {
                lexer.bump();
                TokenKind::OpenParenthesis
            }
            ')' => {
                lexer.bump();
                TokenKind::CloseParenthesis
            }
            ',' => {
                lexer.bump();
                TokenKind::Comma
            }
            '\'' | '"' | '`' => TokenKind::Quoted {
                quote: character,
                content: lexer.quoted(character)?,
            },
            _ if is_operator_character(character) => {
                while lexer.peek().is_some_and(is_operator_character) {
                    lexer.bump();
                }
                TokenKind::Operator
            }
            _ => {
                let numeric = starts_number(slice(input, start, input.len()));
                while lexer.peek().is_some_and(|next| !is_delimiter(next)) {
                    lexer.bump();
                }
                if numeric {
                    TokenKind::Number
                } else {
                    TokenKind::Word
                }
            }
        };
        tokens.push(Token {
            kind,
            start,
            end: lexer.position,
        });
    }
    Ok(tokens)
}

fn parse_numeric_literal(text: &str) -> Result<NumericValue, SearchError> {
    if let Ok(integer) = text.parse::<i64>() {
        return Ok(NumericValue::Integer(integer));
    }
    let invalid = || SearchError::InvalidNumber {
        value: abbreviate(text),
    };
    let float: f64 = text.parse().map_err(|_| invalid())?;
    if !float.is_finite() {
        return Err(invalid());
    }
    // 2^63 is exactly representable, so these bounds keep the cast below lossless.
    const TWO_TO_THE_63: f64 = 9_223_372_036_854_775_808.0;
    if float.fract() == 0.0 && (-TWO_TO_THE_63..TWO_TO_THE_63).contains(&float) {
        Ok(NumericValue::Integer(float as i64))
    } else {
        Ok(NumericValue::Float(float))
    }
}

// ---------------------------------------------------------------------------------------------
// Parser.
// ---------------------------------------------------------------------------------------------

const KEYWORDS: &[&str] = &["AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE"];

struct Parser<'input> {
    entity: Entity,
    input: &'input str,
    tokens: Vec<Token>,
    next_index: usize,
}

impl<'input> Parser<'input> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next_index)
    }

    fn advance(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.next_index).cloned();
        if token.is_some() {
            self.next_index += 1;
        }
        token
    }

    fn source(&self, token: &Token) -> &'input str {
        slice(self.input, token.start, token.end)
    }

    fn rest_from(&self, token: &Token) -> &'input str {
        slice(self.input, token.start, self.input.len()).trim_end()
    }

    fn is_keyword(&self, token: &Token, keyword: &str) -> bool {
        token.kind == TokenKind::Word && self.source(token).eq_ignore_ascii_case(keyword)
    }

    fn next_is_keyword(&self, keyword: &str) -> bool {
        self.peek()
            .is_some_and(|token| self.is_keyword(token, keyword))
    }

    /// The text of a value token for error messages; for `(`, the whole parenthesised group.
    fn value_source(&self, token: &Token) -> String {
        if token.kind != TokenKind::OpenParenthesis {
            return self.source(token).to_owned();
        }
        let mut depth = 0usize;
        let mut end = self.input.len();
        for candidate in self
            .tokens
            .iter()
            .filter(|candidate| candidate.start >= token.start)
        {
            match candidate.kind {
                TokenKind::OpenParenthesis => depth += 1,
                TokenKind::CloseParenthesis => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = candidate.end;
                        break;
                    }
                }
                _ => {}
            }
        }
        abbreviate(slice(self.input, token.start, end))
    }

    /// `disjunction := conjunction (OR conjunction)*`
    fn parse_disjunction(&mut self, depth: usize) -> Result<FilterExpression, SearchError> {
        let mut operands = vec![self.parse_conjunction(depth)?];
        while self.next_is_keyword("OR") {
            self.advance();
            operands.push(self.parse_conjunction(depth)?);
        }
        Ok(combine(
            operands,
            FilterExpression::Or,
            |expression| match expression {
                FilterExpression::Or(inner) => Ok(inner),
                other => Err(other),
            },
        ))
    }

    /// `conjunction := primary (AND primary)*`
    fn parse_conjunction(&mut self, depth: usize) -> Result<FilterExpression, SearchError> {
        let mut operands = vec![self.parse_primary(depth)?];
        while self.next_is_keyword("AND") {
            self.advance();
            operands.push(self.parse_primary(depth)?);
        }
        Ok(combine(
            operands,
            FilterExpression::And,
            |expression| match expression {
                FilterExpression::And(inner) => Ok(inner),
                other => Err(other),
            },
        ))
    }

    /// `primary := '(' disjunction ')' | comparison`
    fn parse_primary(&mut self, depth: usize) -> Result<FilterExpression, SearchError> {
        let Some(open) = self
            .peek()
            .filter(|token| token.kind == TokenKind::OpenParenthesis)
        else {
            return self.parse_comparison().map(FilterExpression::Comparison);
        };
        let open_position = character_position(self.input, open.start);
        if depth >= MAX_NESTING_DEPTH {
            return Err(SearchError::NestingTooDeep {
                limit: MAX_NESTING_DEPTH,
            });
        }
        self.advance();
        let inner = self.parse_disjunction(depth + 1)?;
        match self.advance() {
            Some(token) if token.kind == TokenKind::CloseParenthesis => Ok(inner),
            Some(token) => Err(SearchError::UnexpectedInput {
                found: self.rest_from(&token).to_owned(),
            }),
            None => Err(SearchError::UnclosedParenthesis {
                position: open_position,
            }),
        }
    }

    /// Reads `prefix.key`, a bare `key`, ``prefix.`quoted key` `` or a quoted bare key.
    fn parse_identifier(&mut self) -> Result<Identifier, SearchError> {
        let Some(token) = self.advance() else {
            return Err(SearchError::UnexpectedEnd {
                expected: "an identifier such as 'metrics.accuracy'".to_owned(),
            });
        };
        let source = self.source(&token);
        match &token.kind {
            // A double-quoted or backticked string on the left is a key, as in `"Run name"`.
            TokenKind::Quoted {
                quote: '"' | '`',
                content,
            } => Ok(Identifier {
                prefix: None,
                key: content.clone(),
                source: source.to_owned(),
            }),
            TokenKind::Word
                if !KEYWORDS
                    .iter()
                    .any(|keyword| source.eq_ignore_ascii_case(keyword)) =>
            {
                let Some((prefix, key)) = source.split_once('.') else {
                    return Ok(Identifier {
                        prefix: None,
                        key: source.to_owned(),
                        source: source.to_owned(),
                    });
                };
                if !key.is_empty() {
                    return Ok(Identifier {
                        prefix: Some(prefix.to_owned()),
                        key: key.to_owned(),
                        source: source.to_owned(),
                    });
                }
                // `tags.` must be followed, with no space, by a quoted key.
                let quoted_key = match self.peek() {
                    Some(Token {
                        kind: TokenKind::Quoted { content, .. },
                        start,
                        end,
                    }) if *start == token.end => Some((content.clone(), *end)),
                    _ => None,
                };
                match quoted_key {
                    Some((key, end)) if !key.is_empty() => {
                        self.advance();
                        Ok(Identifier {
                            prefix: Some(prefix.to_owned()),
                            key,
                            source: slice(self.input, token.start, end).to_owned(),
                        })
                    }
                    Some((_, end)) => Err(SearchError::EmptyKey {
                        identifier: slice(self.input, token.start, end).to_owned(),
                    }),
                    None => Err(SearchError::EmptyKey {
                        identifier: source.to_owned(),
                    }),
                }
            }
            _ => Err(SearchError::ExpectedIdentifier {
                found: self.value_source(&token),
            }),
        }
    }

    fn parse_comparison(&mut self) -> Result<Comparison, SearchError> {
        let identifier = self.parse_identifier()?;
        let (field, allowed) = resolve_filter_field(self.entity, &identifier)?;
        let subject = field.to_string();
        let comparator = self.parse_comparator(&identifier, &subject, allowed)?;
        let predicate = match comparator {
            Comparator::IsNull => Predicate::Null { negated: false },
            Comparator::IsNotNull => Predicate::Null { negated: true },
            Comparator::In | Comparator::NotIn => Predicate::List {
                negated: comparator == Comparator::NotIn,
                values: self.parse_list(comparator)?,
            },
            _ => {
                let invalid = || SearchError::InvalidComparator {
                    comparator: comparator.symbol().to_owned(),
                    subject: subject.clone(),
                    valid: quoted_list(allowed.iter().map(|allowed| allowed.symbol())),
                };
                if is_numeric_field(&field) {
                    Predicate::Number {
                        comparator: comparator.as_number_comparator().ok_or_else(invalid)?,
                        value: self.parse_number(&subject)?,
                    }
                } else {
                    Predicate::Text {
                        comparator: comparator.as_text_comparator().ok_or_else(invalid)?,
                        value: self.parse_string(&subject)?,
                    }
                }
            }
        };
        Ok(Comparison { field, predicate })
    }

    fn parse_comparator(
        &mut self,
        identifier: &Identifier,
        subject: &str,
        allowed: &[Comparator],
    ) -> Result<Comparator, SearchError> {
        let invalid = |comparator: &str| SearchError::InvalidComparator {
            comparator: abbreviate(comparator),
            subject: subject.to_owned(),
            valid: quoted_list(allowed.iter().map(|allowed| allowed.symbol())),
        };
        let Some(token) = self.advance() else {
            return Err(SearchError::UnexpectedEnd {
                expected: format!("a comparator after '{}'", identifier.source),
            });
        };
        let source = self.source(&token);
        let comparator = match token.kind {
            TokenKind::Operator => match source {
                "=" => Comparator::Equal,
                "!=" => Comparator::NotEqual,
                ">" => Comparator::Greater,
                ">=" => Comparator::GreaterOrEqual,
                "<" => Comparator::Less,
                "<=" => Comparator::LessOrEqual,
                other => return Err(invalid(other)),
            },
            TokenKind::Word => match source.to_ascii_uppercase().as_str() {
                "LIKE" => Comparator::Like,
                "ILIKE" => Comparator::ILike,
                "IN" => Comparator::In,
                "NOT" => match self.advance() {
                    Some(next) if self.is_keyword(&next, "IN") => Comparator::NotIn,
                    Some(next) => return Err(invalid(&format!("{source} {}", self.source(&next)))),
                    None => return Err(invalid(source)),
                },
                "IS" => match self.advance() {
                    Some(next) if self.is_keyword(&next, "NULL") => Comparator::IsNull,
                    Some(next) if self.is_keyword(&next, "NOT") => match self.advance() {
                        Some(last) if self.is_keyword(&last, "NULL") => Comparator::IsNotNull,
                        Some(last) => {
                            return Err(invalid(&format!("{source} NOT {}", self.source(&last))));
                        }
                        None => return Err(invalid(&format!("{source} NOT"))),
                    },
                    Some(next) => return Err(invalid(&format!("{source} {}", self.source(&next)))),
                    None => return Err(invalid(source)),
                },
                _ => return Err(invalid(source)),
            },
            _ => return Err(invalid(&self.value_source(&token))),
        };
        if allowed.contains(&comparator) {
            Ok(comparator)
        } else {
            Err(invalid(comparator.symbol()))
        }
    }

    fn parse_number(&mut self, subject: &str) -> Result<NumericValue, SearchError> {
        match self.advance() {
            Some(token) if token.kind == TokenKind::Number => {
                parse_numeric_literal(self.source(&token))
            }
            Some(token) => Err(SearchError::ExpectedNumber {
                subject: subject.to_owned(),
                value: self.value_source(&token),
            }),
            None => Err(SearchError::UnexpectedEnd {
                expected: format!("a numeric value for {subject}"),
            }),
        }
    }

    fn parse_string(&mut self, subject: &str) -> Result<String, SearchError> {
        match self.advance() {
            Some(Token {
                kind:
                    TokenKind::Quoted {
                        quote: '\'' | '"',
                        content,
                    },
                ..
            }) => Ok(content),
            Some(
                token @ Token {
                    kind: TokenKind::Word | TokenKind::Number | TokenKind::Quoted { .. },
                    ..
                },
            ) => Err(SearchError::UnquotedStringValue {
                value: abbreviate(self.source(&token)),
            }),
            Some(token) => Err(SearchError::ExpectedQuotedString {
                subject: subject.to_owned(),
                value: self.value_source(&token),
            }),
            None => Err(SearchError::UnexpectedEnd {
                expected: format!("a quoted string value for {subject}"),
            }),
        }
    }

    /// Reads `('a', "b", ...)`: a non-empty, parenthesised, comma-separated list of strings.
    fn parse_list(&mut self, comparator: Comparator) -> Result<Vec<String>, SearchError> {
        let open = match self.advance() {
            Some(token) if token.kind == TokenKind::OpenParenthesis => token,
            Some(token) => {
                return Err(SearchError::ExpectedList {
                    comparator: comparator.symbol().to_owned(),
                    found: self.value_source(&token),
                });
            }
            None => {
                return Err(SearchError::UnexpectedEnd {
                    expected: format!(
                        "a parenthesised list of quoted strings after {}",
                        comparator.symbol()
                    ),
                });
            }
        };
        let unclosed = SearchError::UnclosedParenthesis {
            position: character_position(self.input, open.start),
        };
        if self
            .peek()
            .is_some_and(|token| token.kind == TokenKind::CloseParenthesis)
        {
            return Err(SearchError::EmptyList);
        }
        let mut values = Vec::new();
        loop {
            match self.advance() {
                Some(Token {
                    kind:
                        TokenKind::Quoted {
                            quote: '\'' | '"',
                            content,
                        },
                    ..
                }) => values.push(content),
                Some(token) => {
                    return Err(SearchError::InvalidListElement {
                        found: self.value_source(&token),
                    });
                }
                None => return Err(unclosed),
            }
            match self.advance() {
                Some(token) if token.kind == TokenKind::Comma => {}
                Some(token) if token.kind == TokenKind::CloseParenthesis => return Ok(values),
                Some(token) => {
                    return Err(SearchError::InvalidListElement {
                        found: self.value_source(&token),
                    });
                }
                None => return Err(unclosed),
            }
        }
    }
}

/// Joins operands with `AND` or `OR`, flattening operands that are themselves the same kind of
/// junction, and returning a lone operand unchanged.
fn combine(
    operands: Vec<FilterExpression>,
    junction: fn(Vec<FilterExpression>) -> FilterExpression,
    same_junction: fn(FilterExpression) -> Result<Vec<FilterExpression>, FilterExpression>,
) -> FilterExpression {
    if operands.len() == 1 {
        if let Some(only) = operands.into_iter().next() {
            return only;
        }
        return junction(Vec::new());
    }
    let mut flattened = Vec::with_capacity(operands.len());
    for operand in operands {
        match same_junction(operand) {
            Ok(inner) => flattened.extend(inner),
            Err(other) => flattened.push(other),
        }
    }
    junction(flattened)
}

fn parse_order_by_clause(entity: Entity, clause: &str) -> Result<OrderByTerm, SearchError> {
    let invalid = || SearchError::InvalidOrderByClause {
        clause: abbreviate(clause),
    };
    if clause.trim().is_empty() {
        return Err(invalid());
    }
    let tokens = tokenize(clause)?;
    let mut parser = Parser {
        entity,
        input: clause,
        tokens,
        next_index: 0,
    };
    let identifier = match parser.parse_identifier() {
        Ok(identifier) => identifier,
        Err(SearchError::ExpectedIdentifier { .. } | SearchError::UnexpectedEnd { .. }) => {
            return Err(invalid());
        }
        Err(other) => return Err(other),
    };
    let field = resolve_order_field(entity, &identifier)?;
    let ascending = match parser.advance() {
        None => true,
        Some(token) if token.kind == TokenKind::Word => {
            let direction = parser.source(&token);
            if direction.eq_ignore_ascii_case("ASC") {
                true
            } else if direction.eq_ignore_ascii_case("DESC") {
                false
            } else {
                return Err(SearchError::InvalidOrderDirection {
                    clause: abbreviate(clause),
                    direction: abbreviate(direction),
                });
            }
        }
        Some(_) => return Err(invalid()),
    };
    if parser.peek().is_some() {
        return Err(invalid());
    }
    Ok(OrderByTerm { field, ascending })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders a parsed filter compactly, so expectations stay readable one per line.
    fn render(expression: &FilterExpression) -> String {
        match expression {
            FilterExpression::Comparison(comparison) => render_comparison(comparison),
            FilterExpression::And(operands) => format!(
                "(and {})",
                operands.iter().map(render).collect::<Vec<_>>().join(" ")
            ),
            FilterExpression::Or(operands) => format!(
                "(or {})",
                operands.iter().map(render).collect::<Vec<_>>().join(" ")
            ),
        }
    }

    fn render_field(field: &Field) -> String {
        match field {
            Field::Metric(key) => format!("metric:{key}"),
            Field::Param(key) => format!("param:{key}"),
            Field::Tag(key) => format!("tag:{key}"),
            Field::Attribute(attribute) => format!("attr:{}", attribute.key()),
            Field::Dataset(attribute) => format!("dataset:{}", attribute.key()),
        }
    }

    fn render_comparison(comparison: &Comparison) -> String {
        let field = render_field(&comparison.field);
        match &comparison.predicate {
            Predicate::Number { comparator, value } => {
                let value = match value {
                    NumericValue::Integer(integer) => format!("{integer}"),
                    NumericValue::Float(float) => format!("{float:?}f"),
                };
                format!("{field} {} {value}", comparator.symbol())
            }
            Predicate::Text { comparator, value } => {
                let symbol = match comparator {
                    TextComparator::Equal => "=",
                    TextComparator::NotEqual => "!=",
                    TextComparator::Like => "LIKE",
                    TextComparator::ILike => "ILIKE",
                };
                format!("{field} {symbol} '{value}'")
            }
            Predicate::List { negated, values } => format!(
                "{field} {}IN [{}]",
                if *negated { "NOT " } else { "" },
                values.join("|")
            ),
            Predicate::Null { negated } => {
                format!("{field} IS {}NULL", if *negated { "NOT " } else { "" })
            }
        }
    }

    fn check_filters(entity: Entity, cases: &[(&str, &str)]) {
        for (filter, expected) in cases {
            let rendered = match parse_filter(entity, filter) {
                Ok(Some(expression)) => render(&expression),
                Ok(None) => "none".to_owned(),
                Err(error) => format!("error: {error}"),
            };
            assert_eq!(&rendered, expected, "{entity} filter {filter:?}");
        }
    }

    /// Each case is a filter and a fragment its error message must contain.
    fn check_filter_errors(entity: Entity, cases: &[(&str, &str)]) {
        for (filter, expected_fragment) in cases {
            match parse_filter(entity, filter) {
                Ok(parsed) => panic!("{entity} filter {filter:?} parsed as {parsed:?}"),
                Err(error) => {
                    let message = error.to_string();
                    assert!(
                        message.contains(expected_fragment),
                        "{entity} filter {filter:?}: message {message:?} lacks {expected_fragment:?}"
                    );
                }
            }
        }
    }

    fn check_order_by(entity: Entity, clauses: &[&str], expected: &str) {
        let owned: Vec<String> = clauses.iter().map(|clause| (*clause).to_owned()).collect();
        let rendered = match parse_order_by(entity, &owned) {
            Ok(terms) => terms
                .iter()
                .map(|term| {
                    let field = match &term.field {
                        OrderField::Metric(key) => format!("metric:{key}"),
                        OrderField::Param(key) => format!("param:{key}"),
                        OrderField::Tag(key) => format!("tag:{key}"),
                        OrderField::Attribute(attribute) => format!("attr:{}", attribute.key()),
                    };
                    format!("{field} {}", if term.ascending { "asc" } else { "desc" })
                })
                .collect::<Vec<_>>()
                .join(", "),
            Err(error) => format!("error: {error}"),
        };
        assert_eq!(rendered, expected, "{entity} order_by {clauses:?}");
    }

    #[test]
    fn parses_run_identifiers_of_every_kind() {
        check_filters(
            Entity::Runs,
            &[
                ("", "none"),
                ("   \t\n", "none"),
                ("metrics.acc > 0.9", "metric:acc > 0.9f"),
                ("metric.acc >= 1", "metric:acc >= 1"),
                ("METRICS.acc < -2", "metric:acc < -2"),
                ("metrics.loss <= 1e-3", "metric:loss <= 0.001f"),
                ("metrics.loss = 1e3", "metric:loss = 1000"),
                ("metrics.loss != .5", "metric:loss != 0.5f"),
                ("metrics.loss=-0.5", "metric:loss = -0.5f"),
                ("params.alpha = '0.5'", "param:alpha = '0.5'"),
                ("param.alpha != \"x\"", "param:alpha != 'x'"),
                ("parameters.alpha LIKE 'a%'", "param:alpha LIKE 'a%'"),
                ("parameter.alpha ilike 'A%'", "param:alpha ILIKE 'A%'"),
                ("params.alpha IS NULL", "param:alpha IS NULL"),
                ("params.alpha is not null", "param:alpha IS NOT NULL"),
                ("tags.team = 'vision'", "tag:team = 'vision'"),
                ("tag.mlflow.user = 'ada'", "tag:mlflow.user = 'ada'"),
                ("tags.`mlflow.user` = 'ada'", "tag:mlflow.user = 'ada'"),
                ("tags.\"my tag\" = 'x'", "tag:my tag = 'x'"),
                ("metrics.`my metric` > 1", "metric:my metric > 1"),
                ("metrics.\"my metric\" > 1", "metric:my metric > 1"),
                ("metrics.my-metric > 1", "metric:my-metric > 1"),
                ("run_name = 'train'", "attr:run_name = 'train'"),
                ("attributes.run_name = 'train'", "attr:run_name = 'train'"),
                ("attribute.status != 'FAILED'", "attr:status != 'FAILED'"),
                ("attr.user_id LIKE 'ada%'", "attr:user_id LIKE 'ada%'"),
                (
                    "run.artifact_uri ILIKE '%S3%'",
                    "attr:artifact_uri ILIKE '%S3%'",
                ),
                (
                    "lifecycle_stage = 'active'",
                    "attr:lifecycle_stage = 'active'",
                ),
                ("\"Run name\" = 'x'", "attr:run_name = 'x'"),
                ("`run name` = 'x'", "attr:run_name = 'x'"),
                ("`Run Name` = 'x'", "attr:run_name = 'x'"),
                ("attributes.run_id IN ('a', 'b')", "attr:run_id IN [a|b]"),
                ("run_id NOT IN ('a')", "attr:run_id NOT IN [a]"),
                ("run_id not in (\"a\",'b')", "attr:run_id NOT IN [a|b]"),
                (
                    "start_time > 1700000000000",
                    "attr:start_time > 1700000000000",
                ),
                ("attributes.end_time <= 5", "attr:end_time <= 5"),
                ("created >= 1", "attr:start_time >= 1"),
                ("Created < 2.5", "attr:start_time < 2.5f"),
                ("datasets.name = 'train'", "dataset:name = 'train'"),
                (
                    "dataset.digest IN ('d1', 'd2')",
                    "dataset:digest IN [d1|d2]",
                ),
                (
                    "datasets.context NOT IN ('eval')",
                    "dataset:context NOT IN [eval]",
                ),
                ("datasets.context LIKE 'tr%'", "dataset:context LIKE 'tr%'"),
            ],
        );
    }

    #[test]
    fn parses_quoting_and_escapes() {
        check_filters(
            Entity::Runs,
            &[
                ("tags.x = 'it''s'", "tag:x = 'it's'"),
                ("tags.x = 'it\\'s'", "tag:x = 'it's'"),
                ("tags.x = \"say \"\"hi\"\"\"", "tag:x = 'say \"hi\"'"),
                ("tags.x = 'a\\_b'", "tag:x = 'a\\_b'"),
                ("tags.x = 'C:\\\\dir'", "tag:x = 'C:\\dir'"),
                ("tags.x = ''", "tag:x = ''"),
                ("tags.x = 'ünïcødé ✓'", "tag:x = 'ünïcødé ✓'"),
                ("tags.`a``b` = 'x'", "tag:a`b = 'x'"),
                ("tags.`a b`='x'", "tag:a b = 'x'"),
                ("tags.x='a(b)c AND d'", "tag:x = 'a(b)c AND d'"),
            ],
        );
    }

    #[test]
    fn and_binds_tighter_than_or_and_parentheses_group() {
        check_filters(
            Entity::Runs,
            &[
                (
                    "metrics.a > 1 AND metrics.b > 2",
                    "(and metric:a > 1 metric:b > 2)",
                ),
                (
                    "metrics.a > 1 and metrics.b > 2 AND metrics.c > 3",
                    "(and metric:a > 1 metric:b > 2 metric:c > 3)",
                ),
                (
                    "metrics.a > 1 OR metrics.b > 2 AND metrics.c > 3",
                    "(or metric:a > 1 (and metric:b > 2 metric:c > 3))",
                ),
                (
                    "metrics.a > 1 AND metrics.b > 2 or metrics.c > 3",
                    "(or (and metric:a > 1 metric:b > 2) metric:c > 3)",
                ),
                (
                    "(metrics.a > 1 OR metrics.b > 2) AND metrics.c > 3",
                    "(and (or metric:a > 1 metric:b > 2) metric:c > 3)",
                ),
                ("((metrics.a > 1))", "metric:a > 1"),
                (
                    "(metrics.a > 1 AND metrics.b > 2) AND (metrics.c > 3 AND metrics.d > 4)",
                    "(and metric:a > 1 metric:b > 2 metric:c > 3 metric:d > 4)",
                ),
                (
                    "metrics.a > 1 OR (metrics.b > 2 OR metrics.c > 3)",
                    "(or metric:a > 1 metric:b > 2 metric:c > 3)",
                ),
                (
                    "tags.a = 'x' AND (tags.b = 'y' OR NOT_A_KEYWORD.c > 1)",
                    "error: Invalid entity type 'NOT_A_KEYWORD'. Valid values are ['metric', \
                     'parameter', 'tag', 'attribute', 'dataset']",
                ),
            ],
        );
    }

    #[test]
    fn parses_registry_experiment_and_logged_model_filters() {
        check_filters(
            Entity::RegisteredModels,
            &[
                ("name = 'resnet'", "attr:name = 'resnet'"),
                ("name ILIKE '%Net%'", "attr:name ILIKE '%Net%'"),
                (
                    "name LIKE 'r%' AND tag.`mlflow.prompt.is_prompt` != 'true'",
                    "(and attr:name LIKE 'r%' tag:mlflow.prompt.is_prompt != 'true')",
                ),
                ("tags.stage IS NOT NULL", "tag:stage IS NOT NULL"),
                ("creation_timestamp > 10", "attr:creation_timestamp > 10"),
                (
                    "last_updated_timestamp <= 10",
                    "attr:last_updated_timestamp <= 10",
                ),
            ],
        );
        check_filters(
            Entity::ModelVersions,
            &[
                ("name = 'm'", "attr:name = 'm'"),
                ("name IN ('a', 'b')", "attr:name IN [a|b]"),
                ("run_id = 'abc'", "attr:run_id = 'abc'"),
                ("run_id IN ('abc')", "attr:run_id IN [abc]"),
                (
                    "source_path LIKE 'models:/%'",
                    "attr:source_path LIKE 'models:/%'",
                ),
                ("version_number >= 2", "attr:version_number >= 2"),
                (
                    "current_stage = 'Production'",
                    "attr:current_stage = 'Production'",
                ),
                ("tags.validated = 'yes'", "tag:validated = 'yes'"),
            ],
        );
        check_filters(
            Entity::Experiments,
            &[
                ("name = 'Default'", "attr:name = 'Default'"),
                ("attribute.name LIKE 'exp%'", "attr:name LIKE 'exp%'"),
                ("creation_time > 5", "attr:creation_time > 5"),
                ("last_update_time < 5", "attr:last_update_time < 5"),
                ("tags.owner = 'ada'", "tag:owner = 'ada'"),
            ],
        );
        check_filters(
            Entity::LoggedModels,
            &[
                ("name = 'm'", "attr:name = 'm'"),
                ("model_id IN ('m-1')", "attr:model_id IN [m-1]"),
                ("model_type = 'agent'", "attr:model_type = 'agent'"),
                ("status != 'FAILED'", "attr:status != 'FAILED'"),
                ("source_run_id = 'r'", "attr:source_run_id = 'r'"),
                ("creation_time > 3", "attr:creation_timestamp > 3"),
                (
                    "last_updated_timestamp > 3",
                    "attr:last_updated_timestamp > 3",
                ),
                ("metrics.acc >= 0.5", "metric:acc >= 0.5f"),
                ("params.lr = '0.1'", "param:lr = '0.1'"),
                ("tags.t IS NULL", "tag:t IS NULL"),
            ],
        );
    }

    #[test]
    fn run_filter_errors_name_the_offending_piece() {
        check_filter_errors(
            Entity::Runs,
            &[
                (
                    "metrics.acc <<< 1",
                    "Invalid comparator '<<<' for metric 'acc'",
                ),
                (
                    "metrics.acc LIKE 1",
                    "Invalid comparator 'LIKE' for metric 'acc'",
                ),
                ("metrics.acc <> 1", "Invalid comparator '<>'"),
                ("metrics.acc == 1", "Invalid comparator '=='"),
                (
                    "metrics.acc IS NULL",
                    "Invalid comparator 'IS NULL' for metric 'acc'",
                ),
                (
                    "params.alpha > '1'",
                    "Invalid comparator '>' for parameter 'alpha'",
                ),
                (
                    "params.alpha IN ('1')",
                    "Invalid comparator 'IN' for parameter 'alpha'",
                ),
                (
                    "tags.x NOT LIKE 'a'",
                    "Invalid comparator 'NOT LIKE' for tag 'x'",
                ),
                ("tags.x IS 'a'", "Invalid comparator 'IS 'a''"),
                ("tags.x IS NOT 'a'", "Invalid comparator 'IS NOT 'a''"),
                ("tags.x foo 'a'", "Invalid comparator 'foo' for tag 'x'"),
                (
                    "start_time LIKE '1'",
                    "Invalid comparator 'LIKE' for attribute 'start_time'",
                ),
                (
                    "run_name > 'a'",
                    "Invalid comparator '>' for attribute 'run_name'",
                ),
                (
                    "run_name IS NULL",
                    "Invalid comparator 'IS NULL' for attribute 'run_name'",
                ),
                (
                    "datasets.name > 'a'",
                    "Invalid comparator '>' for dataset attribute 'name'",
                ),
                (
                    "params.alpha = 0.5",
                    "Parameter value is either not quoted or unidentified quote types used for \
                     string value 0.5. Use either single or double quotes.",
                ),
                ("tags.x = abc", "string value abc."),
                ("tags.x = `abc`", "string value `abc`."),
                ("run_name = 5", "string value 5."),
                (
                    "tags.x = ('a')",
                    "Expected a quoted string value for tag 'x' (e.g. 'my-value'). Got value ('a')",
                ),
                ("tags.x = ,", "Got value ,"),
                (
                    "metrics.acc > 'high'",
                    "Expected numeric value type for metric 'acc'. Found 'high'",
                ),
                (
                    "start_time > 'yesterday'",
                    "for attribute 'start_time'. Found 'yesterday'",
                ),
                (
                    "start_time > 2024-01-01",
                    "Invalid numeric value '2024-01-01'",
                ),
                ("metrics.acc > 1.2.3", "Invalid numeric value '1.2.3'"),
                ("metrics.acc > 1e999", "Invalid numeric value '1e999'"),
                ("metrics.acc > 5abc", "Invalid numeric value '5abc'"),
                (
                    "foo = 'x'",
                    "Invalid attribute key 'foo' specified. Valid keys are ['run_id'",
                ),
                ("attributes.name = 'x'", "Invalid attribute key 'name'"),
                ("datasets.size = 'x'", "Invalid dataset key 'size'"),
                ("metricz.acc > 1", "Invalid entity type 'metricz'"),
                (
                    "tags. = 'x'",
                    "Invalid identifier 'tags.': the key after the '.' is empty",
                ),
                ("tags.`` = 'x'", "Invalid identifier 'tags.``'"),
                ("tags. `x` = 'x'", "Invalid identifier 'tags.'"),
                (
                    "'run_name' = 'x'",
                    "expected an identifier such as 'metrics.accuracy' or 'attributes.run_name' but found ''run_name''",
                ),
                ("AND metrics.a > 1", "but found 'AND'"),
                ("5 > metrics.a", "but found '5'"),
                ("= 'x'", "but found '='"),
                ("()", "but found ')'"),
                (
                    "run_id IN ()",
                    "expected a non-empty list of string values, but got empty list",
                ),
                ("run_id IN ('a', 5)", "got different type in list: 5"),
                ("run_id IN ('a' 'b')", "got different type in list: 'b'"),
                ("run_id IN ('a',)", "got different type in list: )"),
                (
                    "run_id IN ('a', ('b'))",
                    "got different type in list: ('b')",
                ),
                (
                    "run_id IN 'a'",
                    "Expected a parenthesised list of quoted strings after IN. Found 'a'",
                ),
                ("run_id NOT IN 'a'", "after NOT IN. Found 'a'"),
                (
                    "run_id IN ('a'",
                    "Unbalanced parentheses: the '(' at character 11 is never closed",
                ),
                ("run_id IN ('a',", "the '(' at character 11 is never closed"),
                (
                    "tags.x = 'abc",
                    "Unterminated quoted string 'abc starting at character 10",
                ),
                (
                    "tags.`abc = 'x'",
                    "Unterminated quoted string `abc = 'x' starting at character 6",
                ),
                ("tags.x = 'it\\'", "Unterminated quoted string"),
                ("(metrics.a > 1", "the '(' at character 1 is never closed"),
                ("((metrics.a > 1)", "the '(' at character 1 is never closed"),
                (
                    "metrics.a > 1)",
                    "the ')' at character 14 has no matching '('",
                ),
                (
                    "(metrics.a > 1))",
                    "the ')' at character 16 has no matching '('",
                ),
                (
                    "metrics.a > 1 metrics.b > 2",
                    "Invalid clause(s) in filter string: 'metrics.b > 2'",
                ),
                (
                    "metrics.a > 1 ; DROP TABLE runs",
                    "Invalid clause(s) in filter string: '; DROP TABLE runs'",
                ),
                (
                    "(metrics.a > 1 metrics.b > 2)",
                    "Invalid clause(s) in filter string: 'metrics.b > 2)'",
                ),
                (
                    "metrics.a > 1 AND",
                    "it ends where an identifier such as 'metrics.accuracy' was expected",
                ),
                ("metrics.a > 1 OR", "it ends where an identifier"),
                (
                    "metrics.a",
                    "it ends where a comparator after 'metrics.a' was expected",
                ),
                (
                    "metrics.a >",
                    "it ends where a numeric value for metric 'a' was expected",
                ),
                (
                    "tags.a =",
                    "it ends where a quoted string value for tag 'a' was expected",
                ),
                (
                    "run_id IN",
                    "a parenthesised list of quoted strings after IN",
                ),
                ("tags.a IS", "Invalid comparator 'IS'"),
                ("tags.a IS NOT", "Invalid comparator 'IS NOT'"),
                ("run_id NOT", "Invalid comparator 'NOT'"),
            ],
        );
    }

    #[test]
    fn entity_specific_filter_errors() {
        check_filter_errors(
            Entity::RegisteredModels,
            &[
                (
                    "metrics.acc > 1",
                    "Invalid entity type 'metrics'. Valid values are ['attribute', 'tag']",
                ),
                (
                    "name IN ('a')",
                    "Invalid comparator 'IN' for attribute 'name'",
                ),
                (
                    "run_id = 'a'",
                    "Invalid attribute key 'run_id' specified. Valid keys are ['name', 'creation_timestamp', 'last_updated_timestamp']",
                ),
                ("name = 5", "string value 5."),
            ],
        );
        check_filter_errors(
            Entity::ModelVersions,
            &[
                (
                    "run_id LIKE 'a%'",
                    "Invalid comparator 'LIKE' for attribute 'run_id'. Valid comparators are ['=', '!=', 'IN']",
                ),
                (
                    "name NOT IN ('a')",
                    "Invalid comparator 'NOT IN' for attribute 'name'",
                ),
                (
                    "version_number = '1'",
                    "Expected numeric value type for attribute 'version_number'",
                ),
                ("params.x = 'a'", "Invalid entity type 'params'"),
            ],
        );
        check_filter_errors(
            Entity::Experiments,
            &[
                (
                    "experiment_id = 1",
                    "Invalid attribute key 'experiment_id' specified. Valid keys are ['name', 'creation_time', 'last_update_time']",
                ),
                ("datasets.name = 'a'", "Invalid entity type 'datasets'"),
            ],
        );
        check_filter_errors(
            Entity::LoggedModels,
            &[
                (
                    "datasets.name = 'a'",
                    "Invalid entity type 'datasets'. Valid values are ['attribute', 'metric', 'parameter', 'tag']",
                ),
                ("run_id = 'a'", "Invalid attribute key 'run_id'"),
            ],
        );
    }

    #[test]
    fn refuses_nesting_beyond_the_limit() {
        let within = format!(
            "{}metrics.a > 1{}",
            "(".repeat(MAX_NESTING_DEPTH),
            ")".repeat(MAX_NESTING_DEPTH)
        );
        check_filters(Entity::Runs, &[(within.as_str(), "metric:a > 1")]);
        let beyond = format!(
            "{}metrics.a > 1{}",
            "(".repeat(MAX_NESTING_DEPTH + 1),
            ")".repeat(MAX_NESTING_DEPTH + 1)
        );
        let hostile = "(".repeat(100_000);
        check_filter_errors(
            Entity::Runs,
            &[
                (beyond.as_str(), "nested deeper than 64 levels"),
                (hostile.as_str(), "nested deeper than 64 levels"),
            ],
        );
    }

    #[test]
    fn parses_order_by_clauses() {
        let cases: &[(Entity, &[&str], &str)] = &[
            (Entity::Runs, &[], ""),
            (Entity::Runs, &["metrics.acc"], "metric:acc asc"),
            (Entity::Runs, &["metrics.acc DESC"], "metric:acc desc"),
            (
                Entity::Runs,
                &["metric.`my metric` desc"],
                "metric:my metric desc",
            ),
            (
                Entity::Runs,
                &["metrics.\"my metric\"   Asc"],
                "metric:my metric asc",
            ),
            (
                Entity::Runs,
                &[
                    "params.lr",
                    "tags.team DESC",
                    "start_time DESC",
                    "attributes.run_name",
                ],
                "param:lr asc, tag:team desc, attr:start_time desc, attr:run_name asc",
            ),
            (Entity::Runs, &["created"], "attr:start_time asc"),
            (Entity::Runs, &["`Run name` DESC"], "attr:run_name desc"),
            (
                Entity::Runs,
                &["end_time", "run_id"],
                "attr:end_time asc, attr:run_id asc",
            ),
            (
                Entity::Experiments,
                &[
                    "name",
                    "experiment_id DESC",
                    "creation_time",
                    "last_update_time",
                ],
                "attr:name asc, attr:experiment_id desc, attr:creation_time asc, attr:last_update_time asc",
            ),
            (
                Entity::RegisteredModels,
                &[
                    "name DESC",
                    "creation_timestamp",
                    "last_updated_timestamp desc",
                ],
                "attr:name desc, attr:creation_timestamp asc, attr:last_updated_timestamp desc",
            ),
            (
                Entity::ModelVersions,
                &[
                    "version_number DESC",
                    "name",
                    "creation_timestamp",
                    "last_updated_timestamp",
                ],
                "attr:version_number desc, attr:name asc, attr:creation_timestamp asc, attr:last_updated_timestamp asc",
            ),
            (
                Entity::LoggedModels,
                &["metrics.acc DESC", "creation_time", "model_id", "name"],
                "metric:acc desc, attr:creation_timestamp asc, attr:model_id asc, attr:name asc",
            ),
        ];
        for (entity, clauses, expected) in cases {
            check_order_by(*entity, clauses, expected);
        }
    }

    #[test]
    fn order_by_errors_name_the_offending_piece() {
        let cases: &[(Entity, &[&str], &str)] = &[
            (
                Entity::Runs,
                &["metrics.acc", "metric.acc DESC"],
                "error: `order_by` contains duplicate fields: metric 'acc' is ordered by more than once",
            ),
            (
                Entity::Runs,
                &["start_time", "created DESC"],
                "error: `order_by` contains duplicate fields: attribute 'start_time' is ordered by more than once",
            ),
            (
                Entity::Runs,
                &["metrics.acc SIDEWAYS"],
                "error: Invalid ordering key 'SIDEWAYS' in order_by clause 'metrics.acc SIDEWAYS'. Use ASC or DESC",
            ),
            (
                Entity::Runs,
                &["metrics.acc DESC LIMIT"],
                "error: Invalid order_by clause 'metrics.acc DESC LIMIT'. Could not be parsed.",
            ),
            (
                Entity::Runs,
                &[""],
                "error: Invalid order_by clause ''. Could not be parsed.",
            ),
            (
                Entity::Runs,
                &["DESC"],
                "error: Invalid order_by attribute key 'DESC' specified. Valid keys are ['run_id', 'run_name', 'status', 'user_id', 'artifact_uri', 'lifecycle_stage', 'start_time', 'end_time']",
            ),
            (
                Entity::Runs,
                &["(metrics.acc)"],
                "error: Invalid order_by clause '(metrics.acc)'. Could not be parsed.",
            ),
            (
                Entity::Runs,
                &["metrics.acc = 1"],
                "error: Invalid order_by clause 'metrics.acc = 1'. Could not be parsed.",
            ),
            (
                Entity::Runs,
                &["datasets.name"],
                "error: Invalid entity type 'datasets'. Valid values are ['metric', 'parameter', 'tag', 'attribute']",
            ),
            (
                Entity::Runs,
                &["tags.`x"],
                "error: Unterminated quoted string `x starting at character 6",
            ),
            (
                Entity::Runs,
                &["metrics."],
                "error: Invalid identifier 'metrics.': the key after the '.' is empty. Quote keys with special characters, e.g. tags.`my key`",
            ),
            (
                Entity::RegisteredModels,
                &["timestamp"],
                "error: Invalid order_by attribute key 'timestamp' specified. Valid keys are ['name', 'creation_timestamp', 'last_updated_timestamp']",
            ),
            (
                Entity::RegisteredModels,
                &["tags.x"],
                "error: Invalid entity type 'tags'. Valid values are ['attribute']",
            ),
            (
                Entity::ModelVersions,
                &["run_id"],
                "error: Invalid order_by attribute key 'run_id' specified. Valid keys are ['name', 'version_number', 'creation_timestamp', 'last_updated_timestamp']",
            ),
            (
                Entity::Experiments,
                &["tags.x DESC"],
                "error: Invalid entity type 'tags'. Valid values are ['attribute']",
            ),
            (
                Entity::LoggedModels,
                &["params.lr"],
                "error: Invalid entity type 'params'. Valid values are ['attribute', 'metric']",
            ),
            (
                Entity::LoggedModels,
                &["status"],
                "error: Invalid order_by attribute key 'status' specified. Valid keys are ['name', 'model_id', 'creation_timestamp', 'last_updated_timestamp']",
            ),
        ];
        for (entity, clauses, expected) in cases {
            check_order_by(*entity, clauses, expected);
        }
    }

    fn check_page_token(token: &str, expected: Result<u64, &str>) {
        let decoded = decode_page_token(token).map_err(|error| error.to_string());
        assert_eq!(
            decoded,
            expected.map_err(str::to_owned),
            "page token {token:?}"
        );
    }

    #[test]
    fn page_tokens_round_trip_in_mlflow_format() {
        // `base64.b64encode(json.dumps({"offset": 1000}).encode())` in Python.
        assert_eq!(encode_page_token(1000), "eyJvZmZzZXQiOiAxMDAwfQ==");
        for offset in [0, 1, 7, 100, 1000, 50_000, u64::MAX] {
            check_page_token(&encode_page_token(offset), Ok(offset));
        }
        check_page_token("", Ok(0));
        // `{"offset": "25"}`: MLflow tolerates a string offset, and so do we.
        check_page_token("eyJvZmZzZXQiOiAiMjUifQ==", Ok(25));
    }

    #[test]
    fn bad_page_tokens_are_errors_naming_the_token() {
        check_page_token(
            "not base64!",
            Err("Invalid page token 'not base64!': could not base64-decode"),
        );
        // "hello" in base64.
        check_page_token(
            "aGVsbG8=",
            Err("Invalid page token 'aGVsbG8=': the decoded value is not JSON"),
        );
        // `{"offset": -5}`.
        check_page_token(
            "eyJvZmZzZXQiOiAtNX0=",
            Err(
                "Invalid page token 'eyJvZmZzZXQiOiAtNX0=': it holds no non-negative integer 'offset'",
            ),
        );
        // `{"page": 2}`.
        check_page_token(
            "eyJwYWdlIjogMn0=",
            Err("Invalid page token 'eyJwYWdlIjogMn0=': it holds no non-negative integer 'offset'"),
        );
        // `[1]`.
        check_page_token(
            "WzFd",
            Err("Invalid page token 'WzFd': it holds no non-negative integer 'offset'"),
        );
    }

    /// A small deterministic generator, so the no-panic test needs no extra dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, bound: usize) -> usize {
            (self.next() % bound.max(1) as u64) as usize
        }
    }

    const FUZZ_SEEDS: &[&str] = &[
        "metrics.acc > 0.9 AND params.lr = '0.1'",
        "tags.`mlflow.user` = 'ada' OR (run_name LIKE 'a%' AND start_time >= 1e3)",
        "attributes.run_id IN ('a', \"b\") AND datasets.context NOT IN ('eval')",
        "name ILIKE '%net%' AND tag.`mlflow.prompt.is_prompt` != 'true'",
        "version_number >= 2 AND run_id IN ('x') AND tags.t IS NOT NULL",
        "((metrics.\"my metric\" <= -1.5e-3) OR tags.x IS NULL)",
        "creation_time > 5 AND tags.owner = 'it''s ✓'",
    ];

    fn mutations_of(seed: &str, random: &mut XorShift) -> Vec<String> {
        const INSERTIONS: &[&str] = &[
            "(", ")", "'", "\"", "`", ",", ".", "=", "!", "<", ">", " AND ", " OR ", " NOT ", "IN",
            "\\", "-", "1e", "é", "\u{0}",
        ];
        let boundaries: Vec<usize> = seed
            .char_indices()
            .map(|(index, _)| index)
            .chain(std::iter::once(seed.len()))
            .collect();
        let mut mutations = Vec::new();
        for (position, &boundary) in boundaries.iter().enumerate() {
            mutations.push(seed[..boundary].to_owned());
            mutations.push(seed[boundary..].to_owned());
            if let Some(&next) = boundaries.get(position + 1) {
                mutations.push(format!("{}{}", &seed[..boundary], &seed[next..]));
            }
            let insertion = INSERTIONS[random.below(INSERTIONS.len())];
            mutations.push(format!(
                "{}{insertion}{}",
                &seed[..boundary],
                &seed[boundary..]
            ));
        }
        for _ in 0..200 {
            let length = random.below(40);
            let bytes: Vec<u8> = (0..length).map(|_| random.next() as u8).collect();
            mutations.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        mutations
    }

    #[test]
    fn malformed_input_never_panics() {
        let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
        let entities = [
            Entity::Runs,
            Entity::Experiments,
            Entity::RegisteredModels,
            Entity::ModelVersions,
            Entity::LoggedModels,
        ];
        for seed in FUZZ_SEEDS {
            for mutation in mutations_of(seed, &mut random) {
                for entity in entities {
                    let _ = parse_filter(entity, &mutation);
                    let _ = parse_order_by(entity, std::slice::from_ref(&mutation));
                }
                let _ = decode_page_token(&mutation);
            }
        }
    }
}
