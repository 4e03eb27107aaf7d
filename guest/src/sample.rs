//! Realistic, deterministic metric samples for tests, demos and benchmarks.
//!
//! A seeded generator produces what a Kubernetes cost agent scrapes: a cluster of a few dozen
//! nodes, namespaces with deployments, pods and containers, and the usual cAdvisor and
//! kube-state-metrics series. The same seed always gives the same rows, so compression ratios
//! and throughput numbers are comparable between runs.

use std::collections::BTreeMap;

use crate::spool::Metric;

/// SplitMix64: tiny, fast, good enough for synthetic data (not for anything secret).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const NAMESPACES: &[&str] = &[
    "default",
    "kube-system",
    "monitoring",
    "ingress-nginx",
    "payments",
    "checkout",
    "search",
    "catalog",
    "auth",
    "data-pipeline",
    "ml-serving",
    "logging",
];
const APPS: &[&str] = &[
    "api",
    "worker",
    "frontend",
    "redis",
    "postgres",
    "kafka",
    "envoy",
    "scheduler",
    "indexer",
    "gateway",
    "consumer",
    "exporter",
];
const METRICS: &[(&str, Kind)] = &[
    ("container_cpu_usage_seconds_total", Kind::Counter),
    ("container_memory_working_set_bytes", Kind::Bytes),
    ("container_memory_rss", Kind::Bytes),
    ("container_network_receive_bytes_total", Kind::Counter),
    ("container_network_transmit_bytes_total", Kind::Counter),
    ("container_fs_usage_bytes", Kind::Bytes),
    ("kube_pod_container_resource_requests", Kind::Request),
    ("kube_pod_container_resource_limits", Kind::Request),
    ("kube_pod_status_phase", Kind::Flag),
    ("node_cpu_seconds_total", Kind::Counter),
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Bytes,
    Request,
    Flag,
}

#[derive(Debug, Clone)]
struct Container {
    namespace: &'static str,
    pod: String,
    container: &'static str,
    node: usize,
}

/// Generates [`Metric`]s deterministically from a seed.
#[derive(Debug, Clone)]
pub struct MetricGenerator {
    rng: Rng,
    cluster: String,
    account: String,
    nodes: Vec<String>,
    containers: Vec<Container>,
    now_ms: i64,
    emitted: u64,
}

impl MetricGenerator {
    /// A cluster of 40 nodes and ~600 containers, with samples starting at `start_ms`.
    pub fn new(seed: u64, start_ms: i64) -> Self {
        let mut rng = Rng(seed);
        let nodes: Vec<String> = (0..40)
            .map(|i| format!("ip-10-0-{}-{}.ec2.internal", i / 8, 10 + rng.below(240)))
            .collect();
        let mut containers = Vec::new();
        for (ni, ns) in NAMESPACES.iter().enumerate() {
            for app in APPS.iter().take(3 + ni % 6) {
                let hash = format!("{:08x}", rng.next_u64() as u32);
                for replica in 0..(2 + rng.below(8)) {
                    let pod = format!(
                        "{app}-{}-{:05x}",
                        &hash[..6],
                        rng.next_u64() as u32 & 0xfffff
                    );
                    let _ = replica;
                    for c in [*app, "istio-proxy"].iter().take(1 + rng.below(2)) {
                        containers.push(Container {
                            namespace: ns,
                            pod: pod.clone(),
                            container: c,
                            node: rng.below(nodes.len()),
                        });
                    }
                }
            }
        }
        MetricGenerator {
            rng,
            cluster: "prod-eu-west-1".into(),
            account: "123456789012".into(),
            nodes,
            containers,
            now_ms: start_ms,
            emitted: 0,
        }
    }

    /// The next sample. Time advances by 15 s (one scrape interval) every full sweep.
    pub fn next_metric(&mut self) -> Metric {
        let c = self.containers[self.rng.below(self.containers.len())].clone();
        let (name, kind) = METRICS[self.rng.below(METRICS.len())];
        self.emitted += 1;
        if self
            .emitted
            .is_multiple_of(self.containers.len() as u64 * 4)
        {
            self.now_ms += 15_000;
        }
        let jitter = self.rng.below(1000) as i64;
        let ts = self.now_ms + jitter;
        let mut labels = BTreeMap::new();
        labels.insert("namespace".to_string(), c.namespace.to_string());
        labels.insert("pod".to_string(), c.pod.clone());
        labels.insert("container".to_string(), c.container.to_string());
        labels.insert("node".to_string(), self.nodes[c.node].clone());
        labels.insert("job".to_string(), "kubernetes-cadvisor".to_string());
        let value = match kind {
            Kind::Counter => format!("{:.6}", self.rng.unit() * 86_400.0),
            Kind::Bytes => format!("{}", (self.rng.unit() * 4e9) as u64),
            Kind::Request => {
                let cpu = self.rng.below(2) == 0;
                labels.insert("resource".into(), if cpu { "cpu" } else { "memory" }.into());
                labels.insert("unit".into(), if cpu { "core" } else { "byte" }.into());
                if cpu {
                    format!("{}", [0.1, 0.25, 0.5, 1.0, 2.0][self.rng.below(5)])
                } else {
                    format!(
                        "{}",
                        [134_217_728u64, 268_435_456, 536_870_912, 1_073_741_824]
                            [self.rng.below(4)]
                    )
                }
            }
            Kind::Flag => {
                labels.insert("phase".into(), "Running".into());
                "1".to_string()
            }
        };
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        id[8..].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        Metric {
            cloud_account_id: self.account.clone(),
            cluster_name: self.cluster.clone(),
            created_at: (ts + 20 + self.rng.below(200) as i64).to_string(),
            id: uuid::Builder::from_random_bytes(id).into_uuid().to_string(),
            labels,
            metric_name: name.to_string(),
            node_name: self.nodes[c.node].clone(),
            timestamp: ts.to_string(),
            value,
        }
    }

    /// `n` samples.
    pub fn batch(&mut self, n: usize) -> Vec<Metric> {
        (0..n).map(|_| self.next_metric()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_rows() {
        let a = MetricGenerator::new(7, 1_700_000_000_000).batch(50);
        let b = MetricGenerator::new(7, 1_700_000_000_000).batch(50);
        assert_eq!(a, b);
        assert_ne!(a, MetricGenerator::new(8, 1_700_000_000_000).batch(50));
        assert!(a.iter().all(|m| uuid::Uuid::parse_str(&m.id).is_ok()));
    }
}
