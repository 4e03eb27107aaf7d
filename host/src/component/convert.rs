//! Conversions between the core's types and the WIT's generated host types. Plain data, no
//! logic: a schema's generated-column expression becomes the WIT's postfix `expr-node` list,
//! metrics' label maps become lists of pairs, errors keep their code and class.

use edgestore::model::{Condition, Query};
use edgestore::model::{CreateMode, Expr, ForeignKey, Index, OnDelete};
use edgestore::spool::{Counts, PurgeReport, SegmentInfo, SegmentState, Usage, VerifyReport};
use edgestore::{
    Column, ColumnType, ErrorCode, Metric, Schema, SyncPolicy, TimeRange, TxMode, Value,
};

use crate::component::bindings::{wit_repo as r, wit_spool as s, wit_types as t};

/// Core value -> WIT value.
pub fn value_to_wit(v: Value) -> t::Value {
    match v {
        Value::Null => t::Value::Null,
        Value::Integer(i) => t::Value::Integer(i),
        Value::Real(f) => t::Value::Real(f),
        Value::Text(s) => t::Value::Text(s),
        Value::Blob(b) => t::Value::Blob(b),
    }
}

/// WIT value -> core value.
pub fn value_from_wit(v: t::Value) -> Value {
    match v {
        t::Value::Null => Value::Null,
        t::Value::Integer(i) => Value::Integer(i),
        t::Value::Real(f) => Value::Real(f),
        t::Value::Text(s) => Value::Text(s),
        t::Value::Blob(b) => Value::Blob(b),
    }
}

/// Core row -> WIT row.
pub fn row_to_wit(row: Vec<Value>) -> Vec<t::Value> {
    row.into_iter().map(value_to_wit).collect()
}

/// WIT row -> core row.
pub fn row_from_wit(row: Vec<t::Value>) -> Vec<Value> {
    row.into_iter().map(value_from_wit).collect()
}

/// Core error code -> WIT error code.
pub fn code_to_wit(code: ErrorCode) -> t::ErrorCode {
    use t::ErrorCode as W;
    match code {
        ErrorCode::NotFound => W::NotFound,
        ErrorCode::DuplicateKey => W::DuplicateKey,
        ErrorCode::ForeignKey => W::ForeignKey,
        ErrorCode::Constraint => W::Constraint,
        ErrorCode::TableMissing => W::TableMissing,
        ErrorCode::Busy => W::Busy,
        ErrorCode::DiskFull => W::DiskFull,
        ErrorCode::PermissionDenied => W::PermissionDenied,
        ErrorCode::InvalidInput => W::InvalidInput,
        ErrorCode::Corrupt => W::Corrupt,
        ErrorCode::Closed => W::Closed,
        ErrorCode::Io => W::Io,
        ErrorCode::NoSuchDatabase => W::NoSuchDatabase,
        ErrorCode::AccessDenied => W::AccessDenied,
        ErrorCode::KeyMissing => W::KeyMissing,
        _ => W::Internal,
    }
}

/// WIT error code -> core error code.
pub fn code_from_wit(code: t::ErrorCode) -> ErrorCode {
    use t::ErrorCode as W;
    match code {
        W::NotFound => ErrorCode::NotFound,
        W::NoSuchDatabase => ErrorCode::NoSuchDatabase,
        W::AccessDenied => ErrorCode::AccessDenied,
        W::DuplicateKey => ErrorCode::DuplicateKey,
        W::ForeignKey => ErrorCode::ForeignKey,
        W::Constraint => ErrorCode::Constraint,
        W::TableMissing => ErrorCode::TableMissing,
        W::Busy => ErrorCode::Busy,
        W::DiskFull => ErrorCode::DiskFull,
        W::PermissionDenied => ErrorCode::PermissionDenied,
        W::InvalidInput => ErrorCode::InvalidInput,
        W::Corrupt => ErrorCode::Corrupt,
        W::Closed => ErrorCode::Closed,
        W::Io => ErrorCode::Io,
        W::Internal => ErrorCode::Internal,
        W::KeyMissing => ErrorCode::KeyMissing,
    }
}

/// Core error -> WIT error (for the `sqlite` import).
pub fn error_to_wit(e: &edgestore::Error) -> t::Error {
    t::Error {
        code: code_to_wit(e.code()),
        class: class_to_wit(e.class()),
        message: e.message().to_owned(),
    }
}

/// A WIT error built from its parts.
pub fn wit_error(code: t::ErrorCode, message: String) -> t::Error {
    let class = match code {
        t::ErrorCode::Busy => t::ErrorClass::Transient,
        t::ErrorCode::DiskFull => t::ErrorClass::Resource,
        t::ErrorCode::DuplicateKey
        | t::ErrorCode::ForeignKey
        | t::ErrorCode::Constraint
        | t::ErrorCode::Corrupt => t::ErrorClass::Consistency,
        _ => t::ErrorClass::Permanent,
    };
    t::Error {
        code,
        class,
        message,
    }
}

fn class_to_wit(c: edgestore::ErrorClass) -> t::ErrorClass {
    match c {
        edgestore::ErrorClass::Transient => t::ErrorClass::Transient,
        edgestore::ErrorClass::Resource => t::ErrorClass::Resource,
        edgestore::ErrorClass::Consistency => t::ErrorClass::Consistency,
        _ => t::ErrorClass::Permanent,
    }
}

/// WIT error (from a guest export) -> core error, code kept.
pub fn error_from_wit(e: t::Error) -> edgestore::Error {
    edgestore::Error::new(code_from_wit(e.code), e.message)
}

fn column_type(ty: ColumnType) -> r::ColumnType {
    match ty {
        ColumnType::Integer => r::ColumnType::Integer,
        ColumnType::Real => r::ColumnType::Real,
        ColumnType::Text => r::ColumnType::Text,
        ColumnType::Blob => r::ColumnType::Blob,
        ColumnType::Bool => r::ColumnType::Bool,
        ColumnType::Timestamp => r::ColumnType::Timestamp,
        ColumnType::Json => r::ColumnType::Json,
        ColumnType::Uuid => r::ColumnType::Uuid,
    }
}

/// A generated-column expression in postfix order.
pub fn expr_to_postfix(e: &Expr, out: &mut Vec<r::ExprNode>) {
    match e {
        Expr::Column(c) => out.push(r::ExprNode::Column(c.clone())),
        Expr::Integer(i) => out.push(r::ExprNode::Integer(*i)),
        Expr::ByteLength(inner) => {
            expr_to_postfix(inner, out);
            out.push(r::ExprNode::ByteLength);
        }
        Expr::Sum(items) | Expr::Coalesce(items) => {
            for item in items {
                expr_to_postfix(item, out);
            }
            let n = u32::try_from(items.len()).unwrap_or(u32::MAX);
            out.push(match e {
                Expr::Sum(_) => r::ExprNode::Sum(n),
                _ => r::ExprNode::Coalesce(n),
            });
        }
    }
}

fn column(c: &Column) -> r::Column {
    let mut generated = Vec::new();
    if let Some(e) = &c.generated {
        expr_to_postfix(e, &mut generated);
    }
    r::Column {
        name: c.name.clone(),
        type_: column_type(c.ty),
        nullable: c.nullable,
        unique: c.unique,
        indexed: c.indexed,
        immutable: c.immutable,
        generated,
    }
}

fn index(i: &Index) -> r::Index {
    r::Index {
        name: i.name.clone(),
        columns: i.columns.clone(),
        unique: i.unique,
    }
}

fn foreign_key(f: &ForeignKey) -> r::ForeignKey {
    r::ForeignKey {
        columns: f.columns.clone(),
        ref_table: f.ref_table.clone(),
        ref_columns: f.ref_columns.clone(),
        on_delete: match f.on_delete {
            OnDelete::Restrict => r::OnDelete::Restrict,
            OnDelete::Cascade => r::OnDelete::Cascade,
            OnDelete::SetNull => r::OnDelete::SetNull,
        },
    }
}

/// Core schema -> WIT schema.
pub fn schema_to_wit(s: &Schema) -> r::Schema {
    r::Schema {
        table: s.table.clone(),
        columns: s.columns.iter().map(column).collect(),
        key: s.key.clone(),
        indexes: s.indexes.iter().map(index).collect(),
        foreign_keys: s.foreign_keys.iter().map(foreign_key).collect(),
        create_mode: match s.create_mode {
            CreateMode::Insert => r::CreateMode::Insert,
            CreateMode::InsertOrIgnore => r::CreateMode::InsertOrIgnore,
        },
    }
}

fn condition(c: &Condition) -> r::Condition {
    let cmp = |column: &str, op, value: &Value| {
        r::Condition::Compare((column.to_owned(), op, value_to_wit(value.clone())))
    };
    match c {
        Condition::Eq { column, value } => cmp(column, r::Comparison::Eq, value),
        Condition::Ne { column, value } => cmp(column, r::Comparison::Ne, value),
        Condition::Lt { column, value } => cmp(column, r::Comparison::Lt, value),
        Condition::Le { column, value } => cmp(column, r::Comparison::Le, value),
        Condition::Gt { column, value } => cmp(column, r::Comparison::Gt, value),
        Condition::Ge { column, value } => cmp(column, r::Comparison::Ge, value),
        Condition::Like { column, pattern } => {
            cmp(column, r::Comparison::Like, &Value::Text(pattern.clone()))
        }
        Condition::IsNull { column, negated } => {
            if *negated {
                r::Condition::IsNotNull(column.clone())
            } else {
                r::Condition::IsNull(column.clone())
            }
        }
        Condition::In { column, values } => r::Condition::InList((
            column.clone(),
            values.iter().cloned().map(value_to_wit).collect(),
        )),
    }
}

/// Core query -> WIT query.
pub fn query_to_wit(q: &Query) -> r::Query {
    r::Query {
        conditions: q.conditions.iter().map(condition).collect(),
        order: q
            .order
            .iter()
            .map(|o| r::Order {
                column: o.column.clone(),
                descending: o.descending,
            })
            .collect(),
        limit: q.limit,
        offset: q.offset,
    }
}

/// Core transaction mode -> WIT.
pub fn tx_mode_to_wit(m: TxMode) -> r::TxMode {
    match m {
        TxMode::Deferred => r::TxMode::Deferred,
        TxMode::Immediate => r::TxMode::Immediate,
        TxMode::Exclusive => r::TxMode::Exclusive,
    }
}

/// WIT metric -> core metric.
pub fn metric_from_wit(m: s::Metric) -> Metric {
    Metric {
        cloud_account_id: m.cloud_account_id,
        cluster_name: m.cluster_name,
        created_at: m.created_at,
        id: m.id,
        labels: m.labels.into_iter().collect(),
        metric_name: m.metric_name,
        node_name: m.node_name,
        timestamp: m.timestamp,
        value: m.value,
    }
}

/// Spool configuration for the guest, at `path` relative to the data directory.
pub fn spool_config_to_wit(path: &str, c: &edgestore::SpoolConfig) -> s::Config {
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    s::Config {
        path: path.to_owned(),
        identifier: c.identifier.clone(),
        compression_level: c.compression_level,
        max_records: c.max_records,
        max_interval_ms: ms(c.max_interval),
        sync_policy: match c.sync_policy {
            SyncPolicy::OnFlush => s::SyncPolicy::OnFlush,
            SyncPolicy::EveryRows(n) => s::SyncPolicy::EveryRows(n),
            SyncPolicy::EveryMillis(n) => s::SyncPolicy::EveryMillis(n),
        },
        retention_ms: ms(c.retention),
        max_bytes: c.max_bytes,
        drop_pending_over_cap: c.drop_pending_over_cap,
        recipients: c.keys.recipients.clone(),
        identities: c.keys.identities.clone(),
    }
}

/// Core time range -> WIT.
pub fn range_to_wit(r: TimeRange) -> s::TimeRange {
    s::TimeRange {
        from_ms: r.from_ms,
        to_ms: r.to_ms,
    }
}

/// WIT segment info -> core.
pub fn segment_from_wit(i: s::SegmentInfo) -> SegmentInfo {
    SegmentInfo {
        name: i.name,
        identifier: i.identifier,
        start_ms: i.start_ms,
        stop_ms: i.stop_ms,
        rows: i.rows,
        bytes: i.bytes,
        state: match i.state {
            s::SegmentState::Pending => SegmentState::Pending,
            s::SegmentState::Uploaded => SegmentState::Uploaded,
        },
    }
}

fn counts(c: s::Counts) -> Counts {
    Counts {
        files: c.files,
        bytes: c.bytes,
    }
}

/// WIT usage -> core.
pub fn usage_from_wit(u: s::Usage) -> Usage {
    Usage {
        pending: counts(u.pending),
        uploaded: counts(u.uploaded),
        quarantined: counts(u.quarantined),
        journals: counts(u.journals),
        capacity: u.capacity.map(|c| edgestore::dir::Capacity {
            total: c.total_bytes,
            available: c.available_bytes,
        }),
    }
}

/// WIT purge report -> core.
pub fn purge_from_wit(p: s::PurgeReport) -> PurgeReport {
    PurgeReport {
        expired: p.expired,
        dropped_uploaded: p.dropped_uploaded,
        dropped_pending: p.dropped_pending,
        bytes_freed: p.bytes_freed,
    }
}

/// WIT verify report -> core.
pub fn verify_from_wit(v: s::VerifyReport) -> VerifyReport {
    VerifyReport {
        checked: v.checked,
        quarantined: v.quarantined,
        left_in_place: v.left_in_place,
    }
}
