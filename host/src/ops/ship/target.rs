//! Where segments go: `ship.target` parsed, and the `object_store` client built for it —
//! `AmazonS3` for `s3://bucket/prefix` (custom endpoint, path-style or virtual-hosted, region,
//! credentials as the AWS tools find them, SHA-256 checksums the server verifies),
//! `LocalFileSystem` for `file:///dir` (a local disk or a mounted share).

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AwsCredential, Checksum, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, RetryConfig, StaticCredentialProvider,
};

use super::credentials::{self, Lookup};
use super::error::ShipError;
use super::key::{check_key_path, join_key};
use super::ShipConfig;

/// A parsed `ship.target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetUrl {
    /// `s3://bucket/optional/prefix`.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without leading or trailing `/` (empty for none).
        prefix: String,
    },
    /// `file:///absolute/dir`.
    File {
        /// The directory objects are written under.
        dir: PathBuf,
    },
}

impl TargetUrl {
    /// Parse a target URL; the error is the reason, for a message naming the key.
    pub fn parse(text: &str) -> Result<TargetUrl, String> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let ok = !bucket.is_empty()
                && bucket
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            if !ok {
                return Err(format!(
                    "{text:?}: the bucket must be letters, digits, `.`, `-`, `_`: s3://bucket/optional/prefix"
                ));
            }
            let prefix = prefix.trim_matches('/');
            if !prefix.is_empty() {
                check_key_path(prefix, "the key prefix")?;
            }
            return Ok(TargetUrl::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        if let Some(rest) = text.strip_prefix("file://") {
            let dir = Path::new(rest);
            if !dir.is_absolute() {
                return Err(format!(
                    "{text:?}: a file target is an absolute directory, file:///abs/dir"
                ));
            }
            if dir.components().any(|c| matches!(c, Component::ParentDir)) {
                return Err(format!("{text:?}: `..` is not allowed"));
            }
            return Ok(TargetUrl::File {
                dir: dir.to_path_buf(),
            });
        }
        Err(format!(
            "{text:?}: expected s3://bucket/optional/prefix or file:///abs/dir"
        ))
    }
}

impl std::fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            TargetUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            TargetUrl::File { dir } => write!(f, "file://{}", dir.display()),
        }
    }
}

/// How the client retries one request (5xx, 429, 503 SlowDown, timeouts, connection errors)
/// before the shipper sees a failure: a few quick retries with jittered backoff; the shipper's
/// own backoff between rounds and the circuit breaker handle longer outages.
pub fn client_retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(8),
            base: 2.0,
        },
        max_retries: 4,
        retry_timeout: Duration::from_secs(60),
    }
}

/// Time bound of one request: a minute, plus a part's transfer at 64 KiB/s, so a slow link
/// still completes a full part while a hung server is noticed.
fn request_timeout(part_size: u64) -> Duration {
    Duration::from_secs(60) + Duration::from_secs(part_size / (64 * 1024))
}

/// What the target is, beyond its client.
#[derive(Debug, Clone)]
enum Kind {
    /// User metadata (`x-amz-meta-sha256`) is stored and returned.
    S3,
    /// Objects are files under this directory: synced after writing.
    File(PathBuf),
    /// In memory (tests, embedding).
    Memory,
}

/// A target: its client, its URL and what it supports.
#[derive(Debug)]
pub struct Target {
    store: Arc<dyn ObjectStore>,
    url: TargetUrl,
    name: String,
    kind: Kind,
    /// Conditional create (`If-None-Match: *`) is used until the target says it does not
    /// support it.
    conditional: AtomicBool,
}

impl Target {
    /// The client for `config.target` with the process's environment.
    pub fn open(config: &ShipConfig) -> Result<Target, ShipError> {
        Target::open_with_env(config, &|name| std::env::var(name).ok())
    }

    /// The client for `config.target`, reading the AWS variables from `env`.
    pub fn open_with_env(
        config: &ShipConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Target, ShipError> {
        let text = config.target.as_deref().ok_or_else(|| ShipError::Setup {
            target: "(none)".into(),
            message: "no ship.target configured".into(),
        })?;
        let setup = |message: String| ShipError::Setup {
            target: text.to_owned(),
            message,
        };
        let url = TargetUrl::parse(text).map_err(setup)?;
        let name = url.to_string();
        let setup = |message: String| ShipError::Setup {
            target: name.clone(),
            message,
        };
        let (store, kind): (Arc<dyn ObjectStore>, Kind) = match &url {
            TargetUrl::S3 { bucket, .. } => {
                let aws = credentials::resolve(
                    &Lookup {
                        profile: config.profile.as_deref(),
                        region: config.region.as_deref(),
                        endpoint: config.endpoint.as_deref(),
                    },
                    env,
                )
                .map_err(|e| setup(e.to_string()))?;
                let credential = AwsCredential {
                    key_id: aws.credentials.access_key_id,
                    secret_key: aws.credentials.secret_access_key,
                    token: aws.credentials.session_token,
                };
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(&aws.region)
                    .with_credentials(Arc::new(StaticCredentialProvider::new(credential)))
                    // The server verifies each body against `x-amz-checksum-sha256`.
                    .with_checksum_algorithm(Checksum::SHA256)
                    .with_conditional_put(S3ConditionalPut::ETagMatch)
                    .with_retry(client_retry())
                    .with_client_options(
                        ClientOptions::new()
                            .with_allow_http(config.allow_http)
                            .with_connect_timeout(Duration::from_secs(10))
                            .with_timeout(request_timeout(config.part_size)),
                    );
                match &aws.endpoint {
                    Some(endpoint) => {
                        let endpoint = endpoint.trim_end_matches('/');
                        if endpoint.starts_with("http://") && !config.allow_http {
                            return Err(setup(format!(
                                "endpoint {endpoint} is plain HTTP: set ship.allowHttp: true to allow it"
                            )));
                        }
                        if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                            return Err(setup(format!(
                                "endpoint {endpoint:?} must be an http:// or https:// URL"
                            )));
                        }
                        builder = if config.path_style {
                            builder
                                .with_endpoint(endpoint)
                                .with_virtual_hosted_style_request(false)
                        } else {
                            // Virtual-hosted on a custom endpoint: the bucket is the first
                            // label of the host, as the AWS tools address it.
                            builder
                                .with_endpoint(bucket_host(endpoint, bucket))
                                .with_virtual_hosted_style_request(true)
                        };
                    }
                    None => {
                        builder = builder.with_virtual_hosted_style_request(!config.path_style);
                    }
                }
                let s3 = builder.build().map_err(|e| setup(e.to_string()))?;
                (Arc::new(s3), Kind::S3)
            }
            TargetUrl::File { dir } => {
                if !dir.is_dir() {
                    return Err(setup(format!(
                        "directory {} does not exist (create it, or mount the share)",
                        dir.display()
                    )));
                }
                let fs = LocalFileSystem::new_with_prefix(dir).map_err(|e| setup(e.to_string()))?;
                (Arc::new(fs), Kind::File(dir.clone()))
            }
        };
        Ok(Target {
            store,
            name,
            url,
            kind,
            conditional: AtomicBool::new(true),
        })
    }

    /// An in-memory target named `name` (an `s3://` URL, for keys and messages): tests, and
    /// embedders that bring their own store. `metadata` says whether it keeps user metadata.
    pub fn in_memory(name: &str) -> Result<(Target, Arc<InMemory>), String> {
        let store = Arc::new(InMemory::new());
        let target = Target::from_store(store.clone(), name)?;
        Ok((target, store))
    }

    /// A target over any object store, named by an `s3://` URL (its prefix is the key prefix).
    /// The store is expected to keep user metadata, as S3 does.
    pub fn from_store(store: Arc<dyn ObjectStore>, name: &str) -> Result<Target, String> {
        let url = TargetUrl::parse(name)?;
        Ok(Target {
            store,
            name: url.to_string(),
            url,
            kind: Kind::Memory,
            conditional: AtomicBool::new(true),
        })
    }

    /// The target's URL, as messages name it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parsed URL.
    pub fn url(&self) -> &TargetUrl {
        &self.url
    }

    /// The client.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The full key for `key` (rendered from the template): under the URL's prefix.
    pub fn key(&self, key: &str) -> String {
        match &self.url {
            TargetUrl::S3 { prefix, .. } => join_key(prefix, key),
            TargetUrl::File { .. } => key.to_owned(),
        }
    }

    /// Whether user metadata (the segment's SHA-256) is stored with an object and returned by
    /// a HEAD. `LocalFileSystem` keeps none: identity is then checked by reading the object.
    pub fn keeps_metadata(&self) -> bool {
        !matches!(self.kind, Kind::File(_))
    }

    /// Whether to ask for a conditional create.
    pub fn conditional(&self) -> bool {
        self.conditional.load(Ordering::Relaxed)
    }

    /// The target refused conditional creates: plain writes from now on (the HEAD before
    /// every upload still keeps different bytes from being overwritten).
    pub fn without_conditional(&self) {
        self.conditional.store(false, Ordering::Relaxed);
    }

    /// Make a written object durable where the client does not: a `file://` object and the
    /// directories up to the target's root are fsynced (`LocalFileSystem` renames into place
    /// without syncing). Nothing to do for S3, which answers only once it stored the object.
    pub async fn sync(&self, key: &str) -> std::io::Result<()> {
        let Kind::File(root) = &self.kind else {
            return Ok(());
        };
        let root = root.clone();
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || {
            let path = root.join(&key);
            std::fs::File::open(&path)?.sync_all()?;
            let mut dir = path.parent();
            while let Some(d) = dir {
                std::fs::File::open(d)?.sync_all()?;
                if d == root {
                    break;
                }
                dir = d.parent();
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// `scheme://bucket.host[:port]/...` from `scheme://host[:port]/...`.
fn bucket_host(endpoint: &str, bucket: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{bucket}.{rest}"),
        None => format!("{bucket}.{endpoint}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_print() {
        assert_eq!(
            TargetUrl::parse("s3://metrics-bucket/edge/site-1/").unwrap(),
            TargetUrl::S3 {
                bucket: "metrics-bucket".into(),
                prefix: "edge/site-1".into()
            }
        );
        let plain = TargetUrl::parse("s3://b").unwrap();
        assert_eq!(plain.to_string(), "s3://b");
        let file = TargetUrl::parse("file:///mnt/share/metrics").unwrap();
        assert_eq!(
            file,
            TargetUrl::File {
                dir: "/mnt/share/metrics".into()
            }
        );
        assert_eq!(file.to_string(), "file:///mnt/share/metrics");
        for (bad, why) in [
            ("http://bucket", "expected s3://"),
            ("s3://", "bucket"),
            ("s3://bu cket/x", "bucket"),
            ("s3://b/a//c", "empty"),
            ("s3://b/a b", "' '"),
            ("file://relative/dir", "absolute"),
            ("file:///a/../b", "`..`"),
        ] {
            let e = TargetUrl::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn keys_go_under_the_prefix() {
        let (t, _) = Target::in_memory("s3://b/edge/site-1").unwrap();
        assert_eq!(t.key("agent/x"), "edge/site-1/agent/x");
        let (t, _) = Target::in_memory("s3://b").unwrap();
        assert_eq!(t.key("agent/x"), "agent/x");
        assert!(t.keeps_metadata() && t.conditional());
        t.without_conditional();
        assert!(!t.conditional());
    }

    #[test]
    fn s3_targets_need_credentials_and_allow_http_for_http() {
        let config = ShipConfig {
            target: Some("s3://bucket/p".into()),
            endpoint: Some("http://127.0.0.1:9000".into()),
            path_style: true,
            ..ShipConfig::default()
        };
        let keys = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("a".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("b".to_owned()),
            _ => None,
        };
        let e = Target::open_with_env(&config, &keys)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ship.allowHttp") && e.contains("s3://bucket/p"),
            "{e}"
        );
        let allowed = ShipConfig {
            allow_http: true,
            ..config.clone()
        };
        let t = Target::open_with_env(&allowed, &keys).unwrap();
        assert_eq!(t.name(), "s3://bucket/p");
        assert_eq!(t.key("k"), "p/k");
        let virtual_hosted = ShipConfig {
            path_style: false,
            ..allowed.clone()
        };
        Target::open_with_env(&virtual_hosted, &keys).unwrap();
        assert_eq!(
            bucket_host("http://127.0.0.1:9000", "b"),
            "http://b.127.0.0.1:9000"
        );
        let e = Target::open_with_env(&allowed, &|name| match name {
            "HOME" => Some("/nonexistent-home".to_owned()),
            _ => None,
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("no S3 credentials") && e.contains("s3://bucket/p"),
            "{e}"
        );
    }

    #[test]
    fn file_targets_must_exist() {
        let tmp = tempfile::tempdir().unwrap();
        let config = ShipConfig {
            target: Some(format!("file://{}", tmp.path().display())),
            ..ShipConfig::default()
        };
        let t = Target::open(&config).unwrap();
        assert!(!t.keeps_metadata());
        assert_eq!(t.key("a/b"), "a/b");
        let missing = ShipConfig {
            target: Some(format!("file://{}/missing", tmp.path().display())),
            ..ShipConfig::default()
        };
        let e = Target::open(&missing).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
    }
}
