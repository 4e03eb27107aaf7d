//! [`Schema`]: a model described as plain data.
//!
//! WIT has no generics, so a model crosses the component boundary as this value. Everything in
//! it is serializable data; generated columns are a small structured [`Expr`] that we render,
//! never SQL text from the caller. [`Schema::validate`] checks every name before any SQL is built.

use serde::{Deserialize, Serialize};

use super::naming::validate_ident;
use crate::error::{Error, Result};

/// The logical type of a column and how it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ColumnType {
    /// 64-bit integer.
    Integer,
    /// 64-bit float.
    Real,
    /// UTF-8 text.
    Text,
    /// Raw bytes.
    Blob,
    /// Stored as integer 0 / 1.
    Bool,
    /// Stored as integer UTC milliseconds; RFC3339 text is accepted on write.
    Timestamp,
    /// Stored as JSON text; validated on write.
    Json,
    /// Stored as canonical lowercase hyphenated text; validated on write.
    Uuid,
}

impl ColumnType {
    /// The declared SQL type. Each name carries the logical type for humans and migrations while
    /// its last word fixes SQLite's affinity (e.g. `JSON TEXT` has text affinity, so a JSON `5`
    /// stays the text `5` instead of becoming an integer).
    pub fn sql_type(self) -> &'static str {
        match self {
            ColumnType::Integer => "INTEGER",
            ColumnType::Real => "REAL",
            ColumnType::Text => "TEXT",
            ColumnType::Blob => "BLOB",
            ColumnType::Bool => "BOOLEAN INTEGER",
            ColumnType::Timestamp => "TIMESTAMP INTEGER",
            ColumnType::Json => "JSON TEXT",
            ColumnType::Uuid => "UUID TEXT",
        }
    }
}

/// A generated-column expression. Deliberately tiny: enough for derived sizes and defaults, and
/// rendered by us with quoted, validated names only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "op", content = "args")]
pub enum Expr {
    /// The value of another column.
    Column(String),
    /// An integer literal.
    Integer(i64),
    /// Length in bytes of the operand's text or blob (`NULL` stays `NULL`).
    ByteLength(Box<Expr>),
    /// Sum of the operands.
    Sum(Vec<Expr>),
    /// The first non-null operand.
    Coalesce(Vec<Expr>),
}

impl Expr {
    /// `column`.
    pub fn column(name: &str) -> Self {
        Expr::Column(name.to_owned())
    }

    /// Byte length of `column`, with NULL counting as 0.
    pub fn byte_length_or_zero(name: &str) -> Self {
        Expr::Coalesce(vec![
            Expr::ByteLength(Box::new(Expr::column(name))),
            Expr::Integer(0),
        ])
    }

    /// The columns this expression reads.
    pub fn columns(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_columns(&mut out);
        out
    }

    /// False when some `sum` or `coalesce` has no operands (nothing sensible to render).
    pub fn is_well_formed(&self) -> bool {
        match self {
            Expr::Column(_) | Expr::Integer(_) => true,
            Expr::ByteLength(e) => e.is_well_formed(),
            Expr::Sum(es) | Expr::Coalesce(es) => {
                !es.is_empty() && es.iter().all(Expr::is_well_formed)
            }
        }
    }

    fn collect_columns<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Column(c) => out.push(c),
            Expr::Integer(_) => {}
            Expr::ByteLength(e) => e.collect_columns(out),
            Expr::Sum(es) | Expr::Coalesce(es) => es.iter().for_each(|e| e.collect_columns(out)),
        }
    }
}

/// One column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// Column name (also the serde field name in the typed layer).
    pub name: String,
    /// Logical type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// May hold NULL.
    #[serde(default)]
    pub nullable: bool,
    /// Backed by a unique index.
    #[serde(default)]
    pub unique: bool,
    /// Backed by a plain index.
    #[serde(default)]
    pub indexed: bool,
    /// Set on insert only: updates and upserts leave it alone (ids, creation times).
    #[serde(default)]
    pub immutable: bool,
    /// A generated (virtual) column computed from this expression; never written.
    #[serde(default)]
    pub generated: Option<Expr>,
}

impl Column {
    /// A non-null column of type `ty`.
    pub fn new(name: &str, ty: ColumnType) -> Self {
        Column {
            name: name.to_owned(),
            ty,
            nullable: false,
            unique: false,
            indexed: false,
            immutable: false,
            generated: None,
        }
    }

    /// Allow NULL.
    pub fn nullable(mut self) -> Self {
        self.nullable = true;
        self
    }

    /// Add a unique index.
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// Add an index.
    pub fn indexed(mut self) -> Self {
        self.indexed = true;
        self
    }

    /// Never changed by update or upsert.
    pub fn immutable(mut self) -> Self {
        self.immutable = true;
        self
    }

    /// Make this a generated column.
    pub fn generated(mut self, expr: Expr) -> Self {
        self.generated = Some(expr);
        self
    }

    /// True when the column is written by callers (not generated).
    pub fn is_writable(&self) -> bool {
        self.generated.is_none()
    }
}

/// A secondary index over one or more columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Index name; must be unique in the database.
    pub name: String,
    /// Indexed columns, in order.
    pub columns: Vec<String>,
    /// A unique index.
    #[serde(default)]
    pub unique: bool,
}

/// What a foreign key does when the parent row is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnDelete {
    /// Refuse the delete (foreign-key error).
    #[default]
    Restrict,
    /// Delete the children too.
    Cascade,
    /// Set the child columns to NULL.
    SetNull,
}

/// A foreign key from `columns` to `ref_table(ref_columns)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// Columns in this table.
    pub columns: Vec<String>,
    /// Referenced table.
    pub ref_table: String,
    /// Referenced columns (the parent's key or a unique column).
    pub ref_columns: Vec<String>,
    /// Delete behaviour.
    #[serde(default)]
    pub on_delete: OnDelete,
}

/// What `create` does when a row with the same key exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CreateMode {
    /// Fail with `duplicate-key`.
    #[default]
    Insert,
    /// Keep the existing row and report that nothing was inserted.
    InsertOrIgnore,
}

/// A table described as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Table name.
    pub table: String,
    /// Columns, in row order.
    pub columns: Vec<Column>,
    /// Key columns, in key order (composite keys allowed; nullable key columns allowed).
    pub key: Vec<String>,
    /// Extra indexes.
    #[serde(default)]
    pub indexes: Vec<Index>,
    /// Foreign keys.
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKey>,
    /// Behaviour of `create` on an existing key.
    #[serde(default)]
    pub create_mode: CreateMode,
}

impl Schema {
    /// A schema with no columns yet.
    pub fn new(table: &str) -> Self {
        Schema {
            table: table.to_owned(),
            columns: Vec::new(),
            key: Vec::new(),
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
            create_mode: CreateMode::Insert,
        }
    }

    /// Add a column.
    pub fn column(mut self, column: Column) -> Self {
        self.columns.push(column);
        self
    }

    /// Set the key columns.
    pub fn key(mut self, columns: &[&str]) -> Self {
        self.key = columns.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// Add an index.
    pub fn index(mut self, name: &str, columns: &[&str], unique: bool) -> Self {
        self.indexes.push(Index {
            name: name.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            unique,
        });
        self
    }

    /// Add a foreign key.
    pub fn foreign_key(
        mut self,
        columns: &[&str],
        ref_table: &str,
        ref_columns: &[&str],
        on_delete: OnDelete,
    ) -> Self {
        self.foreign_keys.push(ForeignKey {
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            ref_table: ref_table.to_owned(),
            ref_columns: ref_columns.iter().map(|c| (*c).to_owned()).collect(),
            on_delete,
        });
        self
    }

    /// Set the create mode.
    pub fn create_mode(mut self, mode: CreateMode) -> Self {
        self.create_mode = mode;
        self
    }

    /// Position of a column by name.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// A column by name, or `invalid-input` naming it.
    pub fn column_named(&self, name: &str) -> Result<&Column> {
        self.columns.iter().find(|c| c.name == name).ok_or_else(|| {
            Error::invalid_input(format!("table {} has no column {name:?}", self.table))
        })
    }

    /// Positions of the key columns.
    pub fn key_positions(&self) -> Vec<usize> {
        self.key.iter().filter_map(|k| self.position(k)).collect()
    }

    /// Check names, references and shape. Called before any SQL is built from the schema.
    pub fn validate(&self) -> Result<()> {
        validate_ident(&self.table)?;
        if self.columns.is_empty() {
            return Err(Error::invalid_input(format!(
                "table {} has no columns",
                self.table
            )));
        }
        if self.key.is_empty() {
            return Err(Error::invalid_input(format!(
                "table {} has no key",
                self.table
            )));
        }
        for (i, c) in self.columns.iter().enumerate() {
            validate_ident(&c.name)?;
            if self.columns[..i].iter().any(|o| o.name == c.name) {
                return Err(Error::invalid_input(format!(
                    "duplicate column {:?}",
                    c.name
                )));
            }
            if let Some(expr) = &c.generated {
                for used in expr.columns() {
                    let target = self.column_named(used)?;
                    if target.generated.is_some() {
                        return Err(Error::invalid_input(format!(
                            "generated column {:?} may not read generated column {used:?}",
                            c.name
                        )));
                    }
                }
                if !expr.is_well_formed() {
                    return Err(Error::invalid_input(format!(
                        "empty expression in {:?}",
                        c.name
                    )));
                }
            }
        }
        for (i, k) in self.key.iter().enumerate() {
            let col = self.column_named(k)?;
            if col.generated.is_some() {
                return Err(Error::invalid_input(format!(
                    "key column {k:?} is generated"
                )));
            }
            if self.key[..i].contains(k) {
                return Err(Error::invalid_input(format!("key column {k:?} repeated")));
            }
        }
        for idx in &self.indexes {
            validate_ident(&idx.name)?;
            if idx.columns.is_empty() {
                return Err(Error::invalid_input(format!(
                    "index {} has no columns",
                    idx.name
                )));
            }
            for c in &idx.columns {
                self.column_named(c)?;
            }
        }
        for fk in &self.foreign_keys {
            validate_ident(&fk.ref_table)?;
            if fk.columns.is_empty() || fk.columns.len() != fk.ref_columns.len() {
                return Err(Error::invalid_input(format!(
                    "foreign key to {} needs matching, non-empty column lists",
                    fk.ref_table
                )));
            }
            for c in &fk.columns {
                self.column_named(c)?;
            }
            for c in &fk.ref_columns {
                validate_ident(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Schema {
        Schema::new("thing")
            .column(Column::new("id", ColumnType::Integer))
            .column(Column::new("name", ColumnType::Text).nullable())
            .column(
                Column::new("len", ColumnType::Integer)
                    .generated(Expr::byte_length_or_zero("name")),
            )
            .key(&["id"])
    }

    #[test]
    fn validates() {
        sample().validate().unwrap();
        assert!(sample().key(&["len"]).validate().is_err());
        assert!(sample().key(&["nope"]).validate().is_err());
        let bad = sample().column(Column::new("x;drop", ColumnType::Text));
        assert!(bad.validate().is_err());
        let dup = sample().column(Column::new("id", ColumnType::Text));
        assert!(dup.validate().is_err());
        let empty = Expr::Sum(vec![Expr::Integer(1), Expr::Coalesce(vec![])]);
        let bad_expr = sample().column(Column::new("g", ColumnType::Integer).generated(empty));
        assert!(bad_expr.validate().is_err());
    }

    #[test]
    fn round_trips_as_json() {
        let s = sample().index("thing_name", &["name"], false);
        let json = serde_json::to_string(&s).unwrap();
        let back: Schema = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
