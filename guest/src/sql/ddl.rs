//! DDL text from a validated [`Schema`]: tables, indexes, added columns, generated expressions.
//!
//! Every name has passed `Schema::validate` and is quoted again here; the only literals we emit
//! are integers we format ourselves. Callers must validate the schema first.
//!
//! Keys: the key is a UNIQUE index named `<table>__key` (not a PRIMARY KEY) so that nullable key
//! columns can take part: they are indexed as `ifnull(col, '')`, because SQLite treats NULLs as
//! distinct in unique indexes. Key lookups and upsert conflict targets use the same expression.

use crate::model::naming::quote;
use crate::model::{Column, Expr, ForeignKey, OnDelete, Schema};

/// Render a generated-column expression.
pub fn render_expr(expr: &Expr) -> String {
    match expr {
        Expr::Column(c) => quote(c),
        Expr::Integer(i) => i.to_string(),
        Expr::ByteLength(e) => format!("length(CAST({} AS BLOB))", render_expr(e)),
        Expr::Sum(es) => {
            let parts: Vec<_> = es.iter().map(render_expr).collect();
            format!("({})", parts.join(" + "))
        }
        Expr::Coalesce(es) if es.len() == 1 => es.iter().map(render_expr).collect(),
        Expr::Coalesce(es) => {
            let parts: Vec<_> = es.iter().map(render_expr).collect();
            format!("coalesce({})", parts.join(", "))
        }
    }
}

/// The key columns as indexed: nullable ones wrapped in `ifnull(col, '')`.
pub fn key_terms(schema: &Schema) -> Vec<String> {
    schema
        .key
        .iter()
        .map(|k| {
            let nullable = schema.columns.iter().any(|c| &c.name == k && c.nullable);
            if nullable {
                format!("ifnull({}, '')", quote(k))
            } else {
                quote(k)
            }
        })
        .collect()
}

fn on_delete(fk: &ForeignKey) -> &'static str {
    match fk.on_delete {
        OnDelete::Restrict => "RESTRICT",
        OnDelete::Cascade => "CASCADE",
        OnDelete::SetNull => "SET NULL",
    }
}

fn references(fk: &ForeignKey) -> String {
    let cols: Vec<_> = fk.ref_columns.iter().map(|c| quote(c)).collect();
    format!(
        "REFERENCES {}({}) ON DELETE {}",
        quote(&fk.ref_table),
        cols.join(", "),
        on_delete(fk)
    )
}

/// One column definition. Single-column foreign keys are column constraints so that a column
/// added later by migration can carry one (ALTER TABLE cannot add table constraints).
pub fn column_def(schema: &Schema, col: &Column) -> String {
    let mut def = format!("{} {}", quote(&col.name), col.ty.sql_type());
    if let Some(expr) = &col.generated {
        def.push_str(&format!(
            " GENERATED ALWAYS AS ({}) VIRTUAL",
            render_expr(expr)
        ));
        return def;
    }
    if !col.nullable {
        def.push_str(" NOT NULL");
    }
    for fk in &schema.foreign_keys {
        if fk.columns.len() == 1 && fk.columns[0] == col.name {
            def.push(' ');
            def.push_str(&references(fk));
        }
    }
    def
}

/// `CREATE TABLE IF NOT EXISTS ...`.
pub fn create_table(schema: &Schema) -> String {
    let mut parts: Vec<String> = schema
        .columns
        .iter()
        .map(|c| column_def(schema, c))
        .collect();
    for fk in schema.foreign_keys.iter().filter(|fk| fk.columns.len() > 1) {
        let cols: Vec<_> = fk.columns.iter().map(|c| quote(c)).collect();
        parts.push(format!(
            "FOREIGN KEY ({}) {}",
            cols.join(", "),
            references(fk)
        ));
    }
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({})",
        quote(&schema.table),
        parts.join(", ")
    )
}

/// `ALTER TABLE ... ADD COLUMN ...`.
pub fn add_column(schema: &Schema, col: &Column) -> String {
    format!(
        "ALTER TABLE {} ADD COLUMN {}",
        quote(&schema.table),
        column_def(schema, col)
    )
}

/// Every index of the schema (key, unique and indexed columns, named indexes), idempotent.
pub fn create_indexes(schema: &Schema) -> Vec<String> {
    indexes(schema).into_iter().map(|(_, sql)| sql).collect()
}

/// Every index of the schema as (name, idempotent `CREATE ... INDEX IF NOT EXISTS`): the names
/// let a migration check, without writing, whether they all exist already.
pub fn indexes(schema: &Schema) -> Vec<(String, String)> {
    let t = &schema.table;
    let index = |unique: bool, name: String, terms: String| {
        let sql = format!(
            "CREATE {}INDEX IF NOT EXISTS {} ON {} ({terms})",
            if unique { "UNIQUE " } else { "" },
            quote(&name),
            quote(t),
        );
        (name, sql)
    };
    let mut out = vec![index(
        true,
        format!("{t}__key"),
        key_terms(schema).join(", "),
    )];
    for c in &schema.columns {
        if c.unique {
            out.push(index(true, format!("{t}__u_{}", c.name), quote(&c.name)));
        } else if c.indexed {
            out.push(index(false, format!("{t}__i_{}", c.name), quote(&c.name)));
        }
    }
    for idx in &schema.indexes {
        let cols: Vec<_> = idx.columns.iter().map(|c| quote(c)).collect();
        out.push(index(idx.unique, idx.name.clone(), cols.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Model, ResourceTags};

    #[test]
    fn renders_resource_tags() {
        let s = ResourceTags::schema();
        let sql = create_table(&s);
        assert!(sql.contains("\"namespace\" TEXT,"), "{sql}");
        assert!(sql.contains("\"labels\" JSON TEXT NOT NULL"), "{sql}");
        assert!(
            sql.contains("GENERATED ALWAYS AS ((coalesce(length(CAST(\"name\" AS BLOB)), 0) + "),
            "{sql}"
        );
        let idx = create_indexes(&s);
        assert!(
            idx[0].ends_with("(\"type\", \"name\", ifnull(\"namespace\", ''))"),
            "{}",
            idx[0]
        );
        assert!(idx.iter().any(|i| i.contains("\"resource_tags__u_id\"")));
        let names: Vec<_> = indexes(&s).into_iter().map(|(name, _)| name).collect();
        assert_eq!(names[0], "resource_tags__key");
        assert!(
            names.iter().any(|n| n == "resource_tags__u_id"),
            "{names:?}"
        );
    }
}
