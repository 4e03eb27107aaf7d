//! The reference agent's metric record, field for field.
//!
//! Fields are declared in alphabetical order because that is the order the reference agent's
//! files have, and serde serialises in declaration order: `serde_json::to_string(&metric)`
//! produces exactly the reference bytes. Timestamps are millisecond strings and `value` is a
//! string, as in the reference format; `labels` is a `BTreeMap` so its keys are sorted too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One metric sample in the reference agent's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metric {
    /// Cloud account the cluster runs in.
    pub cloud_account_id: String,
    /// Cluster name.
    pub cluster_name: String,
    /// When the agent recorded the sample, UTC milliseconds as a decimal string.
    pub created_at: String,
    /// A UUID identifying the sample (lets uploaders de-duplicate).
    pub id: String,
    /// Prometheus-style labels.
    pub labels: BTreeMap<String, String>,
    /// Metric name, e.g. `container_cpu_usage_seconds_total`.
    pub metric_name: String,
    /// Node the sample was taken on.
    pub node_name: String,
    /// Sample time, UTC milliseconds as a decimal string.
    pub timestamp: String,
    /// The value as a decimal string.
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_in_the_reference_field_order() {
        let m = Metric {
            cloud_account_id: "acc".into(),
            cluster_name: "c".into(),
            created_at: "1700000000001".into(),
            id: "0b4bd2a6-5f40-4a39-9d0a-6d0f4ba1b3f1".into(),
            labels: BTreeMap::from([("pod".into(), "p".into()), ("namespace".into(), "n".into())]),
            metric_name: "m".into(),
            node_name: "node".into(),
            timestamp: "1700000000000".into(),
            value: "1.5".into(),
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"cloud_account_id":"acc","cluster_name":"c","created_at":"1700000000001","id":"0b4bd2a6-5f40-4a39-9d0a-6d0f4ba1b3f1","labels":{"namespace":"n","pod":"p"},"metric_name":"m","node_name":"node","timestamp":"1700000000000","value":"1.5"}"#
        );
    }
}
