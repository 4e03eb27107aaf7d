//! DML text from a validated [`Schema`]: the per-table statements prepared once, and queries
//! built from [`Query`] data. Values are never spliced: every value is a `?N` parameter.

use super::ddl::key_terms;
use crate::error::Result;
use crate::model::naming::quote;
use crate::model::{normalize, Condition, Query, Schema, Value};

/// The fixed statements of one table, built once when a repository opens.
#[derive(Debug, Clone)]
pub struct Statements {
    /// Plain insert of the writable columns.
    pub insert: String,
    /// Insert that does nothing when the key exists.
    pub insert_or_ignore: String,
    /// Insert that updates the mutable columns when the key exists.
    pub upsert: String,
    /// Update of the mutable columns by key (`None` when there are none).
    pub update: Option<String>,
    /// Delete by key.
    pub delete: String,
    /// Select by key.
    pub get: String,
    /// Existence check by key.
    pub exists: String,
    /// `count(*)`.
    pub count: String,
    /// Delete every row.
    pub delete_all: String,
    /// Positions (in the row) of the writable columns, in `insert` parameter order.
    pub writable: Vec<usize>,
    /// Positions of the mutable (updatable) columns, in `update` parameter order.
    pub mutable: Vec<usize>,
}

fn select_list(schema: &Schema) -> String {
    schema
        .columns
        .iter()
        .map(|c| quote(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `WHERE` predicate on the key with parameters starting at `?first`. Nullable key columns
/// compare through `ifnull(.., '')`, matching the key index (and using it).
fn key_predicate(schema: &Schema, first: usize) -> String {
    key_terms(schema)
        .iter()
        .enumerate()
        .map(|(i, term)| {
            let n = first + i;
            if term.starts_with("ifnull(") {
                format!("{term} = ifnull(?{n}, '')")
            } else {
                format!("{term} = ?{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

impl Statements {
    /// Build the statements of a validated schema.
    pub fn new(schema: &Schema) -> Self {
        let t = quote(&schema.table);
        let writable: Vec<usize> = (0..schema.columns.len())
            .filter(|&i| schema.columns[i].is_writable())
            .collect();
        let mutable: Vec<usize> = writable
            .iter()
            .copied()
            .filter(|&i| {
                let c = &schema.columns[i];
                !c.immutable && !schema.key.contains(&c.name)
            })
            .collect();
        let cols: Vec<_> = writable
            .iter()
            .map(|&i| quote(&schema.columns[i].name))
            .collect();
        let params: Vec<_> = (1..=writable.len()).map(|n| format!("?{n}")).collect();
        let insert = format!(
            "INSERT INTO {t} ({}) VALUES ({})",
            cols.join(", "),
            params.join(", ")
        );
        let target = key_terms(schema).join(", ");
        let insert_or_ignore = format!("{insert} ON CONFLICT ({target}) DO NOTHING");
        let upsert = if mutable.is_empty() {
            insert_or_ignore.clone()
        } else {
            let sets: Vec<_> = mutable
                .iter()
                .map(|&i| {
                    let c = quote(&schema.columns[i].name);
                    format!("{c} = excluded.{c}")
                })
                .collect();
            format!(
                "{insert} ON CONFLICT ({target}) DO UPDATE SET {}",
                sets.join(", ")
            )
        };
        let update = (!mutable.is_empty()).then(|| {
            let sets: Vec<_> = mutable
                .iter()
                .enumerate()
                .map(|(n, &i)| format!("{} = ?{}", quote(&schema.columns[i].name), n + 1))
                .collect();
            format!(
                "UPDATE {t} SET {} WHERE {}",
                sets.join(", "),
                key_predicate(schema, mutable.len() + 1)
            )
        });
        let key1 = key_predicate(schema, 1);
        Statements {
            insert,
            insert_or_ignore,
            upsert,
            update,
            delete: format!("DELETE FROM {t} WHERE {key1}"),
            get: format!("SELECT {} FROM {t} WHERE {key1}", select_list(schema)),
            exists: format!("SELECT 1 FROM {t} WHERE {key1}"),
            count: format!("SELECT count(*) FROM {t}"),
            delete_all: format!("DELETE FROM {t}"),
            writable,
            mutable,
        }
    }
}

/// A `SELECT` for a query, with its parameters. Column names are checked against the schema and
/// condition values normalized by column type (an RFC3339 string compares as a timestamp).
pub fn select(schema: &Schema, query: &Query) -> Result<(String, Vec<Value>)> {
    let mut params = Vec::new();
    let mut sql = format!(
        "SELECT {} FROM {}",
        select_list(schema),
        quote(&schema.table)
    );
    let where_sql = where_clause(schema, &query.conditions, &mut params)?;
    sql.push_str(&where_sql);
    let mut order = Vec::new();
    for o in &query.order {
        schema.column_named(&o.column)?;
        order.push(format!(
            "{}{}",
            quote(&o.column),
            if o.descending { " DESC" } else { "" }
        ));
    }
    if order.is_empty() {
        // Deterministic results by default: key order.
        order = key_terms(schema);
    }
    sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
    if query.limit.is_some() || query.offset.is_some() {
        let limit = query
            .limit
            .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let offset = query
            .offset
            .map_or(0, |o| i64::try_from(o).unwrap_or(i64::MAX));
        params.push(Value::Integer(limit));
        params.push(Value::Integer(offset));
        sql.push_str(&format!(
            " LIMIT ?{} OFFSET ?{}",
            params.len() - 1,
            params.len()
        ));
    }
    Ok((sql, params))
}

/// ` WHERE ...` (or nothing) for AND-ed conditions, appending to `params`.
pub fn where_clause(
    schema: &Schema,
    conditions: &[Condition],
    params: &mut Vec<Value>,
) -> Result<String> {
    let mut terms = Vec::with_capacity(conditions.len());
    for cond in conditions {
        let col = schema.column_named(cond.column())?;
        let c = quote(&col.name);
        let mut bind = |v: &Value| -> Result<String> {
            params.push(normalize(col, v.clone())?);
            Ok(format!("?{}", params.len()))
        };
        terms.push(match cond {
            Condition::Eq { value, .. } => format!("{c} = {}", bind(value)?),
            Condition::Ne { value, .. } => format!("{c} <> {}", bind(value)?),
            Condition::Lt { value, .. } => format!("{c} < {}", bind(value)?),
            Condition::Le { value, .. } => format!("{c} <= {}", bind(value)?),
            Condition::Gt { value, .. } => format!("{c} > {}", bind(value)?),
            Condition::Ge { value, .. } => format!("{c} >= {}", bind(value)?),
            Condition::IsNull { negated: false, .. } => format!("{c} IS NULL"),
            Condition::IsNull { negated: true, .. } => format!("{c} IS NOT NULL"),
            Condition::In { values, .. } if values.is_empty() => "0".to_owned(),
            Condition::In { values, .. } => {
                let ps = values.iter().map(&mut bind).collect::<Result<Vec<_>>>()?;
                format!("{c} IN ({})", ps.join(", "))
            }
            Condition::Like { pattern, .. } => {
                params.push(Value::Text(pattern.clone()));
                format!("{c} LIKE ?{} ESCAPE '\\'", params.len())
            }
        });
    }
    Ok(if terms.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", terms.join(" AND "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Model, ResourceTags};

    #[test]
    fn statements_bind_everything() {
        let s = ResourceTags::schema();
        let st = Statements::new(&s);
        assert!(st.get.ends_with("WHERE \"type\" = ?1 AND \"name\" = ?2 AND ifnull(\"namespace\", '') = ifnull(?3, '')"), "{}", st.get);
        assert!(!st.insert.contains("\"size\""));
        assert!(st.upsert.contains("ON CONFLICT (\"type\", \"name\", ifnull(\"namespace\", '')) DO UPDATE SET \"metric_labels\""), "{}", st.upsert);
        assert!(!st.upsert.contains("\"id\" = excluded"));
        let q = Query::all()
            .filter(Condition::eq("name", "x'; DROP TABLE resource_tags; --"))
            .filter(Condition::is_in("type", ["a", "b"]))
            .filter(Condition::gt("record_created", "1970-01-01T00:00:01Z"))
            .order_by_desc("size")
            .limit(3);
        let (sql, params) = select(&s, &q).unwrap();
        assert!(!sql.contains("DROP"));
        assert_eq!(params.len(), 6);
        assert_eq!(params[3], Value::Integer(1000));
        assert!(
            sql.ends_with("ORDER BY \"size\" DESC LIMIT ?5 OFFSET ?6"),
            "{sql}"
        );
        assert!(select(&s, &Query::all().filter(Condition::eq("nope", 1))).is_err());
    }
}
