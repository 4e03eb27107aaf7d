//! [`Query`]: conditions, order, limit and offset as plain data.
//!
//! Plain data so the same query crosses the WIT boundary unchanged. Column names are validated
//! against the schema when SQL is built; values are always bound parameters.

use serde::{Deserialize, Serialize};

use super::Value;

/// One condition on a column. A query's conditions are combined with AND.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "op")]
pub enum Condition {
    /// `column = value`.
    Eq {
        /// Column name.
        column: String,
        /// Compared value.
        value: Value,
    },
    /// `column <> value` (SQL semantics: NULL rows do not match).
    Ne {
        /// Column name.
        column: String,
        /// Compared value.
        value: Value,
    },
    /// `column < value`.
    Lt {
        /// Column name.
        column: String,
        /// Compared value.
        value: Value,
    },
    /// `column <= value`.
    Le {
        /// Column name.
        column: String,
        /// Compared value.
        value: Value,
    },
    /// `column > value`.
    Gt {
        /// Column name.
        column: String,
        /// Compared value.
        value: Value,
    },
    /// `column >= value`.
    Ge {
        /// Column name.
        column: String,
        /// Compared value.
        value: Value,
    },
    /// `column IS NULL`, or `IS NOT NULL` when `negated`.
    IsNull {
        /// Column name.
        column: String,
        /// True for IS NOT NULL.
        #[serde(default)]
        negated: bool,
    },
    /// `column IN (values...)`; an empty list matches nothing.
    In {
        /// Column name.
        column: String,
        /// Candidate values.
        values: Vec<Value>,
    },
    /// `column LIKE pattern ESCAPE '\'` (`%` and `_` wildcards, ASCII case-insensitive).
    Like {
        /// Column name.
        column: String,
        /// The pattern.
        pattern: String,
    },
}

macro_rules! cmp_ctor {
    ($(#[$doc:meta] $fn:ident => $variant:ident),*) => {
        $(
            #[$doc]
            pub fn $fn(column: &str, value: impl Into<Value>) -> Self {
                Condition::$variant { column: column.to_owned(), value: value.into() }
            }
        )*
    };
}

impl Condition {
    cmp_ctor!(
        /// `column = value`.
        eq => Eq,
        /// `column <> value`.
        ne => Ne,
        /// `column < value`.
        lt => Lt,
        /// `column <= value`.
        le => Le,
        /// `column > value`.
        gt => Gt,
        /// `column >= value`.
        ge => Ge
    );

    /// `column IS NULL`.
    pub fn is_null(column: &str) -> Self {
        Condition::IsNull {
            column: column.to_owned(),
            negated: false,
        }
    }

    /// `column IS NOT NULL`.
    pub fn is_not_null(column: &str) -> Self {
        Condition::IsNull {
            column: column.to_owned(),
            negated: true,
        }
    }

    /// `column IN (values)`.
    pub fn is_in(column: &str, values: impl IntoIterator<Item = impl Into<Value>>) -> Self {
        Condition::In {
            column: column.to_owned(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// `column LIKE pattern`.
    pub fn like(column: &str, pattern: &str) -> Self {
        Condition::Like {
            column: column.to_owned(),
            pattern: pattern.to_owned(),
        }
    }

    /// The column the condition reads.
    pub fn column(&self) -> &str {
        match self {
            Condition::Eq { column, .. }
            | Condition::Ne { column, .. }
            | Condition::Lt { column, .. }
            | Condition::Le { column, .. }
            | Condition::Gt { column, .. }
            | Condition::Ge { column, .. }
            | Condition::IsNull { column, .. }
            | Condition::In { column, .. }
            | Condition::Like { column, .. } => column,
        }
    }
}

/// One ordering term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Column name.
    pub column: String,
    /// Descending instead of ascending.
    #[serde(default)]
    pub descending: bool,
}

/// Conditions (AND), order, limit and offset.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Query {
    /// All must hold.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Sort terms; without any, results follow the key order.
    #[serde(default)]
    pub order: Vec<Order>,
    /// At most this many rows.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Skip this many rows first.
    #[serde(default)]
    pub offset: Option<u64>,
}

impl Query {
    /// Every row.
    pub fn all() -> Self {
        Query::default()
    }

    /// Add a condition.
    pub fn filter(mut self, condition: Condition) -> Self {
        self.conditions.push(condition);
        self
    }

    /// Sort ascending by `column`.
    pub fn order_by(mut self, column: &str) -> Self {
        self.order.push(Order {
            column: column.to_owned(),
            descending: false,
        });
        self
    }

    /// Sort descending by `column`.
    pub fn order_by_desc(mut self, column: &str) -> Self {
        self.order.push(Order {
            column: column.to_owned(),
            descending: true,
        });
        self
    }

    /// Limit the number of rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Skip rows.
    pub fn offset(mut self, n: u64) -> Self {
        self.offset = Some(n);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_serializes() {
        let q = Query::all()
            .filter(Condition::eq("type", "pod"))
            .filter(Condition::is_in("name", ["a", "b"]))
            .order_by_desc("name")
            .limit(5)
            .offset(1);
        let json = serde_json::to_string(&q).unwrap();
        let back: Query = serde_json::from_str(&json).unwrap();
        assert_eq!(back, q);
        assert_eq!(q.conditions[1].column(), "name");
    }
}
