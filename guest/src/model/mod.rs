//! Models: schemas, values, rows, queries, and the serde mapping of Rust types onto them.
//!
//! | concept | file |
//! |---|---|
//! | one SQL value, rows and keys | `value.rs` |
//! | a table as plain data (columns, key, indexes, foreign keys, generated columns) | `schema.rs` |
//! | conditions, order, limit, offset | `query.rs` |
//! | generated-column expressions as postfix nodes (their WIT shape) | `postfix.rs` |
//! | UTC-millisecond timestamps | `timestamp.rs` |
//! | identifier validation and the table-naming rule | `naming.rs` |
//! | per-type normalization and JSON <-> value mapping | `convert.rs` |
//! | the `Model` trait, rows and ids of Rust types | `mapping.rs` |
//! | the direct (tree-free) serializer of a model struct into a row | `row_serializer.rs` |
//! | the direct (tree-free) deserializer of a row into a model | `row_deserializer.rs` |
//! | the reference model | `resource_tags.rs` |

mod convert;
mod mapping;
pub mod naming;
mod postfix;
mod query;
mod resource_tags;
mod row_deserializer;
mod row_serializer;
mod schema;
mod timestamp;
mod value;

pub use convert::{is_normal, json_to_value, normalize, normalize_json, value_to_json, JsonText};
pub use mapping::{
    from_optional_rows, from_row, to_key, to_keys, to_row, to_rows, Model, SerializedRows,
};
pub use postfix::ExprNode;
pub use query::{Condition, Order, Query};
pub use resource_tags::{Labels, ResourceTags, ResourceTagsKey};
pub use schema::{Column, ColumnType, CreateMode, Expr, ForeignKey, Index, OnDelete, Schema};
pub use timestamp::Timestamp;
pub use value::{key_text, Key, Row, Value};
