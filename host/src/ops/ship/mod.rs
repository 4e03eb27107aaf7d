//! Shipping: finished spool segments uploaded to object storage exactly once, verified, then
//! acknowledged (`mark_uploaded`), then removed by the spool's retention purge.
//!
//! The host ships, not the component (which has no network): it reads finished segments from
//! the data directory it granted, and acknowledges through the spool API, on either engine.
//! `serve` ships continuously when `ship.target` is set; `edgestore spool ship [--once]` ships
//! from the command line (forwarded to a running owner through its admin socket).
//!
//! The guarantee: a segment is acknowledged only after the target confirmed an object under its
//! key holding exactly its bytes (size and SHA-256). A crash at any point leaves it pending (it
//! is shipped again, and an identical object already there counts as shipped) or acknowledged
//! with its object present; an object with other bytes under its key is never overwritten.
//!
//! | concept | module |
//! |---|---|
//! | object keys from `ship.keyTemplate` | [`key`] |
//! | credentials, region and endpoint as the AWS tools find them | [`credentials`] |
//! | `ship.target` and its `object_store` client (S3, directory) | [`target`] |
//! | the one-object-per-segment decision: compare, upload, confirm | [`object`] |
//! | the bandwidth cap | [`throttle`] |
//! | failure kinds: retried, permanent, local | [`error`] |
//! | the last failure, lag and health | [`status`] |
//! | the loop: rounds, concurrency, breaker, backoff, acknowledging, purging | [`shipper`] |

pub mod credentials;
pub mod error;
pub mod key;
pub mod object;
pub mod shipper;
pub mod status;
pub mod target;
pub mod throttle;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use error::{FailureKind, ShipError};
pub use key::{KeyTemplate, DEFAULT_KEY_TEMPLATE};
pub use shipper::{RoundReport, Shipper, ShipperOptions};
pub use target::{Target, TargetUrl};

/// Default `ship.partSize`: 8 MiB, the AWS CLI's multipart chunk size.
pub const DEFAULT_PART_SIZE: u64 = 8 << 20;
/// The smallest part S3 accepts (every part but the last).
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// The largest part S3 accepts.
pub const MAX_PART_SIZE: u64 = 5 << 30;
/// Most uploads at once.
pub const MAX_CONCURRENCY: usize = 64;

/// The `ship` section: where finished segments go and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ShipConfig {
    /// `s3://bucket/optional/prefix` or `file:///abs/dir`; none: shipping is off.
    pub target: Option<String>,
    /// A custom S3 endpoint (`http://127.0.0.1:9000`); none: `AWS_ENDPOINT_URL_S3`,
    /// `AWS_ENDPOINT_URL`, else AWS.
    pub endpoint: Option<String>,
    /// The region; none: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's, else `us-east-1`.
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), as most self-hosted servers need; off:
    /// virtual-hosted (`bucket.endpoint/key`), as AWS prefers.
    pub path_style: bool,
    /// Allow a plain-HTTP endpoint.
    pub allow_http: bool,
    /// The shared-credentials profile (over `AWS_PROFILE`, and over the environment's keys).
    pub profile: Option<String>,
    /// The object key of a segment under the target's prefix (see [`key`]).
    pub key_template: String,
    /// Segments uploaded at once.
    pub concurrency: usize,
    /// Segments larger than this go as multipart uploads in parts of this size (bytes).
    pub part_size: u64,
    /// How often `serve` looks for finished segments.
    #[serde(with = "crate::duration")]
    pub interval: Duration,
    /// After acknowledging, run the spool's retention purge (`retention.maxAge`,
    /// `retention.maxBytes`), which removes uploaded segments; off: they stay in `uploaded/`
    /// until `spool purge`.
    pub delete_after: bool,
    /// Cap on upload bandwidth, bytes per second; none: no cap.
    pub max_bytes_per_second: Option<u64>,
}

impl Default for ShipConfig {
    /// Off; `{identifier}/{date}/{segment}`, 4 at once, 8 MiB parts, every 10 s, purge after.
    fn default() -> Self {
        ShipConfig {
            target: None,
            endpoint: None,
            region: None,
            path_style: false,
            allow_http: false,
            profile: None,
            key_template: DEFAULT_KEY_TEMPLATE.to_owned(),
            concurrency: 4,
            part_size: DEFAULT_PART_SIZE,
            interval: Duration::from_secs(10),
            delete_after: true,
            max_bytes_per_second: None,
        }
    }
}

/// A setting of the `ship` section that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config key `{key}`: bad value {value}: {reason}")]
pub struct InvalidSetting {
    /// Dotted key.
    pub key: &'static str,
    /// The value.
    pub value: String,
    /// The rule it breaks.
    pub reason: String,
}

impl ShipConfig {
    /// Whether shipping is on.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// The parsed target, when one is set.
    pub fn target_url(&self) -> Result<Option<TargetUrl>, InvalidSetting> {
        self.target
            .as_deref()
            .map(|t| {
                TargetUrl::parse(t).map_err(|reason| InvalidSetting {
                    key: "ship.target",
                    value: format!("{t:?}"),
                    reason,
                })
            })
            .transpose()
    }

    /// The parsed key template.
    pub fn template(&self) -> Result<KeyTemplate, InvalidSetting> {
        KeyTemplate::parse(&self.key_template).map_err(|reason| InvalidSetting {
            key: "ship.keyTemplate",
            value: format!("{:?}", self.key_template),
            reason,
        })
    }

    /// Check the values a typo could make unusable; the error names the key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let bad = |key, value: &dyn std::fmt::Display, reason: &str| {
            Err(InvalidSetting {
                key,
                value: value.to_string(),
                reason: reason.to_owned(),
            })
        };
        self.target_url()?;
        self.template()?;
        if let Some(endpoint) = &self.endpoint {
            if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                return bad(
                    "ship.endpoint",
                    &format!("{endpoint:?}"),
                    "must be an http:// or https:// URL",
                );
            }
            if endpoint.starts_with("http://") && !self.allow_http {
                return bad(
                    "ship.endpoint",
                    &format!("{endpoint:?}"),
                    "is plain HTTP: set ship.allowHttp: true to allow it",
                );
            }
        }
        for (key, value) in [
            ("ship.region", &self.region),
            ("ship.profile", &self.profile),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return bad(key, &"\"\"", "must not be empty when set");
            }
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return bad("ship.concurrency", &self.concurrency, "must be in 1..=64");
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return bad(
                "ship.partSize",
                &self.part_size,
                "must be in 5242880..=5368709120 (5 MiB to 5 GiB, S3's part limits)",
            );
        }
        if self.interval.is_zero() {
            return bad("ship.interval", &"0s", "must be positive");
        }
        if self.max_bytes_per_second == Some(0) {
            return bad("ship.maxBytesPerSecond", &0, "must be positive when set");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_off_and_valid() {
        let c = ShipConfig::default();
        assert!(!c.enabled());
        c.validate().unwrap();
        assert_eq!(c.template().unwrap(), KeyTemplate::default());
        assert_eq!((c.concurrency, c.part_size), (4, 8 << 20));
        assert_eq!(c.interval, Duration::from_secs(10));
        assert!(c.delete_after && !c.path_style && !c.allow_http);
    }

    #[test]
    fn bad_values_name_their_key() {
        let base = ShipConfig {
            target: Some("s3://bucket".into()),
            ..ShipConfig::default()
        };
        base.validate().unwrap();
        for (config, key) in [
            (
                ShipConfig {
                    target: Some("ftp://x".into()),
                    ..base.clone()
                },
                "ship.target",
            ),
            (
                ShipConfig {
                    key_template: "{identifier}".into(),
                    ..base.clone()
                },
                "ship.keyTemplate",
            ),
            (
                ShipConfig {
                    endpoint: Some("http://127.0.0.1:9000".into()),
                    ..base.clone()
                },
                "ship.endpoint",
            ),
            (
                ShipConfig {
                    endpoint: Some("127.0.0.1:9000".into()),
                    allow_http: true,
                    ..base.clone()
                },
                "ship.endpoint",
            ),
            (
                ShipConfig {
                    concurrency: 0,
                    ..base.clone()
                },
                "ship.concurrency",
            ),
            (
                ShipConfig {
                    part_size: 1 << 20,
                    ..base.clone()
                },
                "ship.partSize",
            ),
            (
                ShipConfig {
                    interval: Duration::ZERO,
                    ..base.clone()
                },
                "ship.interval",
            ),
            (
                ShipConfig {
                    max_bytes_per_second: Some(0),
                    ..base.clone()
                },
                "ship.maxBytesPerSecond",
            ),
            (
                ShipConfig {
                    profile: Some(" ".into()),
                    ..base.clone()
                },
                "ship.profile",
            ),
        ] {
            let e = config.validate().unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.to_string().contains(&format!("`{key}`")), "{e}");
        }
        ShipConfig {
            endpoint: Some("http://127.0.0.1:9000".into()),
            allow_http: true,
            path_style: true,
            ..base
        }
        .validate()
        .unwrap();
    }
}
