//! Conversions between WIT values and core values. Every fallible one fails with the core's
//! `invalid-input`; errors cross both ways with their code (the class follows the code on both
//! sides, so it survives too).

use super::edgestore::storage::types as wit;
use super::exports::edgestore::storage::repository as r;
use crate::error::{Error, ErrorClass, ErrorCode, Result};
use crate::model::{
    Column, ColumnType, Condition, CreateMode, Expr, ExprNode, ForeignKey, Index, Key, OnDelete,
    Order, Query, Row, Schema, Value,
};
use crate::repository::{Migration, TxMode};

/// A core error as the WIT error: same code, same class, the message as detail.
pub fn error_to_wit(e: &Error) -> wit::Error {
    let code = match e.code() {
        ErrorCode::NotFound => wit::ErrorCode::NotFound,
        ErrorCode::DuplicateKey => wit::ErrorCode::DuplicateKey,
        ErrorCode::ForeignKey => wit::ErrorCode::ForeignKey,
        ErrorCode::Constraint => wit::ErrorCode::Constraint,
        ErrorCode::TableMissing => wit::ErrorCode::TableMissing,
        ErrorCode::Busy => wit::ErrorCode::Busy,
        ErrorCode::DiskFull => wit::ErrorCode::DiskFull,
        ErrorCode::PermissionDenied => wit::ErrorCode::PermissionDenied,
        ErrorCode::InvalidInput => wit::ErrorCode::InvalidInput,
        ErrorCode::Corrupt => wit::ErrorCode::Corrupt,
        ErrorCode::Closed => wit::ErrorCode::Closed,
        ErrorCode::Io => wit::ErrorCode::Io,
        ErrorCode::Internal => wit::ErrorCode::Internal,
        ErrorCode::NoSuchDatabase => wit::ErrorCode::NoSuchDatabase,
        ErrorCode::AccessDenied => wit::ErrorCode::AccessDenied,
        ErrorCode::KeyMissing => wit::ErrorCode::KeyMissing,
        // Raised by the host only; a guest never holds one.
        ErrorCode::TimeLimit => wit::ErrorCode::Internal,
    };
    let class = match e.class() {
        ErrorClass::Transient => wit::ErrorClass::Transient,
        ErrorClass::Permanent => wit::ErrorClass::Permanent,
        ErrorClass::Resource => wit::ErrorClass::Resource,
        ErrorClass::Consistency => wit::ErrorClass::Consistency,
    };
    wit::Error {
        code,
        class,
        message: e.message().to_owned(),
    }
}

/// A WIT error (from the host's `sqlite` import) as a core error with the same code.
#[cfg(not(feature = "standalone"))] // only the plugin world's driver takes errors from the host
pub fn error_from_wit(e: wit::Error) -> Error {
    let code = match e.code {
        wit::ErrorCode::NotFound => ErrorCode::NotFound,
        wit::ErrorCode::DuplicateKey => ErrorCode::DuplicateKey,
        wit::ErrorCode::ForeignKey => ErrorCode::ForeignKey,
        wit::ErrorCode::Constraint => ErrorCode::Constraint,
        wit::ErrorCode::TableMissing => ErrorCode::TableMissing,
        wit::ErrorCode::Busy => ErrorCode::Busy,
        wit::ErrorCode::DiskFull => ErrorCode::DiskFull,
        wit::ErrorCode::PermissionDenied => ErrorCode::PermissionDenied,
        wit::ErrorCode::InvalidInput => ErrorCode::InvalidInput,
        wit::ErrorCode::Corrupt => ErrorCode::Corrupt,
        wit::ErrorCode::Closed => ErrorCode::Closed,
        wit::ErrorCode::Io => ErrorCode::Io,
        wit::ErrorCode::Internal => ErrorCode::Internal,
        wit::ErrorCode::NoSuchDatabase => ErrorCode::NoSuchDatabase,
        wit::ErrorCode::AccessDenied => ErrorCode::AccessDenied,
        wit::ErrorCode::KeyMissing => ErrorCode::KeyMissing,
    };
    Error::new(code, e.message)
}

pub fn value_to_wit(v: &Value) -> wit::Value {
    match v {
        Value::Null => wit::Value::Null,
        Value::Integer(i) => wit::Value::Integer(*i),
        Value::Real(f) => wit::Value::Real(*f),
        Value::Text(s) => wit::Value::Text(s.clone()),
        Value::Blob(b) => wit::Value::Blob(b.clone()),
    }
}

pub fn value_from_wit(v: wit::Value) -> Value {
    match v {
        wit::Value::Null => Value::Null,
        wit::Value::Integer(i) => Value::Integer(i),
        wit::Value::Real(f) => Value::Real(f),
        wit::Value::Text(s) => Value::Text(s),
        wit::Value::Blob(b) => Value::Blob(b),
    }
}

/// A core row (or key, or parameter list) as WIT values.
#[cfg(not(feature = "standalone"))] // only the plugin world's driver sends rows to the host
pub fn row_to_wit(row: &[Value]) -> wit::Row {
    row.iter().map(value_to_wit).collect()
}

/// Owned core row as WIT values, moving strings and blobs.
pub fn row_into_wit(row: Row) -> wit::Row {
    row.into_iter()
        .map(|v| match v {
            Value::Text(s) => wit::Value::Text(s),
            Value::Blob(b) => wit::Value::Blob(b),
            other => value_to_wit(&other),
        })
        .collect()
}

/// A WIT row (or key) as a core row.
pub fn row_from_wit(row: wit::Row) -> Row {
    row.into_iter().map(value_from_wit).collect()
}

/// A WIT key as a core key.
pub fn key_from_wit(key: wit::Key) -> Key {
    row_from_wit(key)
}

pub fn tx_mode(mode: r::TxMode) -> TxMode {
    match mode {
        r::TxMode::Deferred => TxMode::Deferred,
        r::TxMode::Immediate => TxMode::Immediate,
        r::TxMode::Exclusive => TxMode::Exclusive,
    }
}

fn column_type(t: r::ColumnType) -> ColumnType {
    match t {
        r::ColumnType::Integer => ColumnType::Integer,
        r::ColumnType::Real => ColumnType::Real,
        r::ColumnType::Text => ColumnType::Text,
        r::ColumnType::Blob => ColumnType::Blob,
        r::ColumnType::Bool => ColumnType::Bool,
        r::ColumnType::Timestamp => ColumnType::Timestamp,
        r::ColumnType::Json => ColumnType::Json,
        r::ColumnType::Uuid => ColumnType::Uuid,
    }
}

fn expr_node(n: r::ExprNode) -> ExprNode {
    match n {
        r::ExprNode::Column(c) => ExprNode::Column(c),
        r::ExprNode::Integer(i) => ExprNode::Integer(i),
        r::ExprNode::ByteLength => ExprNode::ByteLength,
        r::ExprNode::Sum(k) => ExprNode::Sum(k),
        r::ExprNode::Coalesce(k) => ExprNode::Coalesce(k),
    }
}

fn column(c: r::Column) -> Result<Column> {
    let generated = if c.generated.is_empty() {
        None
    } else {
        let nodes: Vec<ExprNode> = c.generated.into_iter().map(expr_node).collect();
        Some(
            Expr::from_postfix(&nodes)
                .map_err(|e| Error::invalid_input(format!("column {}: {}", c.name, e.message())))?,
        )
    };
    Ok(Column {
        name: c.name,
        ty: column_type(c.type_),
        nullable: c.nullable,
        unique: c.unique,
        indexed: c.indexed,
        immutable: c.immutable,
        generated,
    })
}

/// A WIT schema as a core schema (validated later by the repository).
pub fn schema_from_wit(s: r::Schema) -> Result<Schema> {
    Ok(Schema {
        table: s.table,
        columns: s.columns.into_iter().map(column).collect::<Result<_>>()?,
        key: s.key,
        indexes: s
            .indexes
            .into_iter()
            .map(|i| Index {
                name: i.name,
                columns: i.columns,
                unique: i.unique,
            })
            .collect(),
        foreign_keys: s
            .foreign_keys
            .into_iter()
            .map(|f| ForeignKey {
                columns: f.columns,
                ref_table: f.ref_table,
                ref_columns: f.ref_columns,
                on_delete: match f.on_delete {
                    r::OnDelete::Restrict => OnDelete::Restrict,
                    r::OnDelete::Cascade => OnDelete::Cascade,
                    r::OnDelete::SetNull => OnDelete::SetNull,
                },
            })
            .collect(),
        create_mode: match s.create_mode {
            r::CreateMode::Insert => CreateMode::Insert,
            r::CreateMode::InsertOrIgnore => CreateMode::InsertOrIgnore,
        },
    })
}

pub fn migration_to_wit(m: Migration) -> r::Migration {
    r::Migration {
        version: m.version,
        created: m.created,
        added_columns: m.added_columns,
    }
}

fn condition(c: r::Condition) -> Result<Condition> {
    Ok(match c {
        r::Condition::Compare((column, op, value)) => {
            let value = value_from_wit(value);
            match op {
                r::Comparison::Eq => Condition::Eq { column, value },
                r::Comparison::Ne => Condition::Ne { column, value },
                r::Comparison::Lt => Condition::Lt { column, value },
                r::Comparison::Le => Condition::Le { column, value },
                r::Comparison::Gt => Condition::Gt { column, value },
                r::Comparison::Ge => Condition::Ge { column, value },
                r::Comparison::Like => match value {
                    Value::Text(pattern) => Condition::Like { column, pattern },
                    _ => {
                        return Err(Error::invalid_input(format!(
                            "like on {column} needs a text pattern"
                        )))
                    }
                },
            }
        }
        r::Condition::IsNull(column) => Condition::IsNull {
            column,
            negated: false,
        },
        r::Condition::IsNotNull(column) => Condition::IsNull {
            column,
            negated: true,
        },
        r::Condition::InList((column, values)) => Condition::In {
            column,
            values: row_from_wit(values),
        },
    })
}

/// A WIT query as a core query (column names are validated when SQL is built).
pub fn query_from_wit(q: r::Query) -> Result<Query> {
    Ok(Query {
        conditions: q
            .conditions
            .into_iter()
            .map(condition)
            .collect::<Result<_>>()?,
        order: q
            .order
            .into_iter()
            .map(|o| Order {
                column: o.column,
                descending: o.descending,
            })
            .collect(),
        limit: q.limit,
        offset: q.offset,
    })
}
