//! [`ResourceTags`]: the reference model, field for field the reference agent's resource tags.
//!
//! Key: `(type, name, namespace)`, where `namespace` is NULL for cluster-scoped resources.
//! SQLite treats NULLs as distinct in UNIQUE indexes, so the key index is built over
//! `ifnull(namespace, '')` (see `sql::ddl`): two cluster-scoped tags with the same type and name
//! collide as they should. The price: namespace `''` and NULL are the same key, which Kubernetes
//! never produces. `create` is insert-or-ignore on that key, as in the agent.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Column, ColumnType, CreateMode, Expr, Model, Schema, Timestamp};
use crate::error::{Error, Result};

/// Labels and annotations as the agent keeps them.
pub type Labels = BTreeMap<String, String>;

/// Tags of one Kubernetes resource, waiting to be sent upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceTags {
    /// Unique row id (uuid v4), set by [`ResourceTags::new`]; never changed by update/upsert.
    pub id: uuid::Uuid,
    /// Resource kind (`pod`, `node`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Resource name.
    pub name: String,
    /// Namespace; `None` for cluster-scoped resources.
    pub namespace: Option<String>,
    /// Labels attached to emitted metrics.
    #[serde(default)]
    pub metric_labels: Labels,
    /// The resource's labels.
    #[serde(default)]
    pub labels: Labels,
    /// The resource's annotations.
    #[serde(default)]
    pub annotations: Labels,
    /// When the row was first created; never changed by update/upsert.
    pub record_created: Timestamp,
    /// When the row was last changed.
    pub record_updated: Timestamp,
    /// When the tags were last shipped; `None` until then.
    pub sent_at: Option<Timestamp>,
    /// Generated: byte lengths of name, namespace, labels and annotations (as stored JSON).
    /// Ignored on write.
    #[serde(default)]
    pub size: i64,
}

impl ResourceTags {
    /// New tags with a fresh uuid v4 and both record times set to `now`. The constructor, not
    /// the repository, fills these so a caller can see (and keep) the id it is about to store.
    pub fn new(kind: &str, name: &str, namespace: Option<&str>, now: Timestamp) -> Self {
        ResourceTags {
            id: uuid::Uuid::new_v4(),
            kind: kind.to_owned(),
            name: name.to_owned(),
            namespace: namespace.map(str::to_owned),
            metric_labels: Labels::new(),
            labels: Labels::new(),
            annotations: Labels::new(),
            record_created: now,
            record_updated: now,
            sent_at: None,
            size: 0,
        }
    }

    /// The key of these tags, as `Storage<ResourceTags, ResourceTagsKey>` expects it.
    pub fn key(&self) -> ResourceTagsKey {
        (self.kind.clone(), self.name.clone(), self.namespace.clone())
    }

    /// The table (and the name command lines use).
    pub const TABLE: &'static str = "resource_tags";

    /// The textual key syntax of command lines ([`ResourceTags::parse_key`]).
    pub const KEY_SYNTAX: &'static str = "TYPE/NAMESPACE/NAME | TYPE/NAME";

    /// Parse a key as command lines write it: `TYPE/NAMESPACE/NAME` (`pod/prod/web-0`) or
    /// `TYPE/NAME` for a cluster-scoped resource (`node/worker-1`); no part may be empty.
    /// `invalid-input` otherwise.
    pub fn parse_key(text: &str) -> Result<ResourceTagsKey> {
        let parts: Vec<&str> = text.split('/').collect();
        let ok = |s: &&str| !s.is_empty();
        match parts.as_slice() {
            [kind, name] if ok(kind) && ok(name) => {
                Ok(((*kind).to_owned(), (*name).to_owned(), None))
            }
            [kind, ns, name] if ok(kind) && ok(ns) && ok(name) => Ok((
                (*kind).to_owned(),
                (*name).to_owned(),
                Some((*ns).to_owned()),
            )),
            _ => Err(Error::invalid_input(format!(
                "bad {} key {text:?}: expected {}",
                Self::TABLE,
                Self::KEY_SYNTAX
            ))),
        }
    }
}

/// `(type, name, namespace)`.
pub type ResourceTagsKey = (String, String, Option<String>);

impl Model for ResourceTags {
    fn schema() -> Schema {
        Schema::new(Self::TABLE)
            .column(Column::new("id", ColumnType::Uuid).unique().immutable())
            .column(Column::new("type", ColumnType::Text))
            .column(Column::new("name", ColumnType::Text))
            .column(Column::new("namespace", ColumnType::Text).nullable())
            .column(Column::new("metric_labels", ColumnType::Json))
            .column(Column::new("labels", ColumnType::Json))
            .column(Column::new("annotations", ColumnType::Json))
            .column(Column::new("record_created", ColumnType::Timestamp).immutable())
            .column(Column::new("record_updated", ColumnType::Timestamp))
            .column(
                Column::new("sent_at", ColumnType::Timestamp)
                    .nullable()
                    .indexed(),
            )
            .column(
                Column::new("size", ColumnType::Integer).generated(Expr::Sum(vec![
                    Expr::byte_length_or_zero("name"),
                    Expr::byte_length_or_zero("namespace"),
                    Expr::byte_length_or_zero("labels"),
                    Expr::byte_length_or_zero("annotations"),
                ])),
            )
            .key(&["type", "name", "namespace"])
            .create_mode(CreateMode::InsertOrIgnore)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{from_row, to_key, to_row};

    #[test]
    fn schema_is_valid_and_maps() {
        let s = ResourceTags::schema();
        s.validate().unwrap();
        let mut t = ResourceTags::new("pod", "web", Some("prod"), Timestamp(5));
        t.labels.insert("app".into(), "web".into());
        let row = to_row(&s, &t).unwrap();
        let back: ResourceTags = from_row(&s, row).unwrap();
        assert_eq!(back, t);
        assert_eq!(to_key(&s, &t.key()).unwrap().len(), 3);
    }

    #[test]
    fn keys_parse_from_text() {
        assert_eq!(
            ResourceTags::parse_key("pod/prod/web-0").unwrap(),
            ("pod".into(), "web-0".into(), Some("prod".into()))
        );
        assert_eq!(
            ResourceTags::parse_key("node/worker-1").unwrap(),
            ("node".into(), "worker-1".into(), None)
        );
        for bad in ["pod", "pod//x", "a/b/c/d", "/x", "x/", ""] {
            let e = ResourceTags::parse_key(bad).unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::InvalidInput, "{bad}");
            assert!(e.message().contains("TYPE/NAMESPACE/NAME"), "{bad}: {e}");
        }
    }
}
