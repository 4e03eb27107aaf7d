//! A backup target's objects: each written once and confirmed (the shipping path's
//! exactly-once upload: conditional create, SHA-256 the server checks, a HEAD that finds the
//! same bytes counts as done), listed by generation, read back, deleted by retention.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStoreExt as _;

use super::increment::{self, Manifest};
use super::{BackupError, BackupTargetConfig};
use crate::ops::ship::object::{self, Segment, SendOptions};
use crate::ops::ship::{Target, DEFAULT_PART_SIZE};

/// One backup target.
#[derive(Debug, Clone)]
pub struct BackupTarget {
    target: Arc<Target>,
}

impl BackupTarget {
    /// The client for `config`.
    pub fn open(config: &BackupTargetConfig) -> Result<BackupTarget, BackupError> {
        let target = Target::open(&config.client_config()).map_err(|e| BackupError::Target {
            target: config.url.clone(),
            message: e.to_string(),
        })?;
        Ok(BackupTarget {
            target: Arc::new(target),
        })
    }

    /// Over an already built shipping target (tests: in memory).
    pub fn from_target(target: Target) -> BackupTarget {
        BackupTarget {
            target: Arc::new(target),
        }
    }

    /// The target's URL.
    pub fn name(&self) -> &str {
        self.target.name()
    }

    fn key(&self, label: &str, generation: Option<&str>, name: Option<&str>) -> String {
        let mut key = label.to_owned();
        for part in [generation, name].into_iter().flatten() {
            key.push('/');
            key.push_str(part);
        }
        self.target.key(&key)
    }

    fn fail(&self, message: impl std::fmt::Display) -> BackupError {
        BackupError::Target {
            target: self.name().to_owned(),
            message: message.to_string(),
        }
    }

    /// Write `bytes` as `name` in `generation` of `label`, once, confirmed.
    pub async fn put(
        &self,
        label: &str,
        generation: &str,
        name: &str,
        bytes: Bytes,
    ) -> Result<(), BackupError> {
        let key = self.key(label, Some(generation), Some(name));
        let segment = Segment::new(name, bytes);
        let options = SendOptions {
            part_size: usize::try_from(DEFAULT_PART_SIZE).unwrap_or(usize::MAX),
            throttle: None,
        };
        object::ship(&self.target, &key, &segment, options)
            .await
            .map(|_| ())
            .map_err(|e| {
                let text = e.to_string();
                let prefix = format!("ship target {}: ", self.name());
                self.fail(text.strip_prefix(&prefix).unwrap_or(&text))
            })
    }

    /// The bytes of `name` in `generation`.
    pub async fn get(
        &self,
        label: &str,
        generation: &str,
        name: &str,
    ) -> Result<Bytes, BackupError> {
        let key = self.key(label, Some(generation), Some(name));
        let path = ObjectPath::parse(&key).map_err(|e| self.fail(e))?;
        let got = match self.target.store().get(&path).await {
            Ok(got) => got.bytes().await,
            Err(e) => Err(e),
        };
        got.map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                BackupError::NotFound(format!("backup target {}: no object {key}", self.name()))
            }
            e => self.fail(format!(
                "GET {key}: {}",
                crate::ops::ship::error::cause_text(&e)
            )),
        })
    }

    /// The names directly under `label` (generations) or under a generation (its objects).
    async fn names(
        &self,
        label: &str,
        generation: Option<&str>,
    ) -> Result<Vec<String>, BackupError> {
        let prefix = self.key(label, generation, None);
        self.list(&prefix, generation.is_none()).await
    }

    /// The names of the folders (`folders`) or of the objects directly under `prefix`.
    async fn list(&self, prefix: &str, folders: bool) -> Result<Vec<String>, BackupError> {
        let path = ObjectPath::parse(prefix).map_err(|e| self.fail(e))?;
        let listed = self
            .target
            .store()
            .list_with_delimiter(Some(&path))
            .await
            .map_err(|e| {
                self.fail(format!(
                    "LIST {prefix}: {}",
                    crate::ops::ship::error::cause_text(&e)
                ))
            })?;
        let mut names: Vec<String> = if folders {
            listed
                .common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_owned))
                .collect()
        } else {
            listed
                .objects
                .iter()
                .filter_map(|o| o.location.filename().map(str::to_owned))
                .collect()
        };
        names.sort();
        Ok(names)
    }

    /// The finished generations of `label` (with a manifest), oldest first.
    pub async fn generations(&self, label: &str) -> Result<Vec<Manifest>, BackupError> {
        let mut names: Vec<String> = self
            .names(label, None)
            .await?
            .into_iter()
            .filter(|n| increment::generation_time(n).is_some())
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let bytes = match self.get(label, &name, increment::MANIFEST).await {
                Ok(b) => b,
                // Unfinished: its snapshot never completed.
                Err(BackupError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let manifest: Manifest =
                serde_json::from_slice(&bytes).map_err(|e| BackupError::Damaged {
                    target: self.name().to_owned(),
                    key: self.key(label, Some(&name), Some(increment::MANIFEST)),
                    reason: e.to_string(),
                })?;
            out.push(manifest);
        }
        Ok(out)
    }

    /// The increments of a generation, by sequence number.
    pub async fn increments(&self, label: &str, generation: &str) -> Result<Vec<u64>, BackupError> {
        let mut seqs: Vec<u64> = self
            .names(label, Some(generation))
            .await?
            .iter()
            .filter_map(|n| increment::increment_seq(n))
            .collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// The spool segments copied into a generation (names, sidecars included), sorted.
    pub async fn spool_objects(
        &self,
        label: &str,
        generation: &str,
    ) -> Result<Vec<String>, BackupError> {
        let prefix = self.key(label, Some(generation), Some(increment::SPOOL_DIR));
        self.list(&prefix, false).await
    }

    /// The full key of an object, for messages.
    pub fn describe(&self, label: &str, generation: &str, name: &str) -> String {
        self.key(label, Some(generation), Some(name))
    }

    /// Delete a generation: its manifest first (so a partly deleted one reads as unfinished),
    /// then everything else.
    pub async fn delete_generation(
        &self,
        label: &str,
        generation: &str,
    ) -> Result<(), BackupError> {
        let manifest = self.key(label, Some(generation), Some(increment::MANIFEST));
        let manifest = ObjectPath::parse(&manifest).map_err(|e| self.fail(e))?;
        match self.target.store().delete(&manifest).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.fail(format!("DELETE {manifest}: {e}"))),
        }
        let prefix = self.key(label, Some(generation), None);
        let prefix = ObjectPath::parse(&prefix).map_err(|e| self.fail(e))?;
        let objects: Vec<_> = self
            .target
            .store()
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.fail(format!("LIST {prefix}: {e}")))?;
        for object in objects {
            match self.target.store().delete(&object.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.fail(format!("DELETE {}: {e}", object.location))),
            }
        }
        Ok(())
    }
}
