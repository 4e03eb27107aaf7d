//! The store's encryption keys: an age identity file (as `age-keygen` writes it) kept outside
//! the data directory, read when a store opens, never copied into it.
//!
//! The file's first identity is the *current* one: new segments are encrypted to its
//! recipient (plus `encryption.recipients`, e.g. an escrow key). Every identity in the file
//! reads segments, so after `keys rotate` (a new identity put first) old segments stay
//! readable for as long as the old identity stays in the file. `keys destroy` overwrites and
//! removes the file: whatever was encrypted to it is unreadable from then on.
//!
//! Instead of a file, the identities may come from the environment (`EDGESTORE_KEY`, the
//! file's text), for deployments whose secrets arrive that way.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use edgestore::spool::SpoolKeys;
use edgestore::sql::sqlite::DatabaseKey;
use edgestore::ErrorCode;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The environment variable that may hold the identity file's text instead of `keyFile`.
pub const KEY_ENV: &str = "EDGESTORE_KEY";

/// The `encryption` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct EncryptionConfig {
    /// The age identity file (outside the data directory, mode 0600). Its first identity
    /// encrypts new segments; all of them read.
    pub key_file: Option<PathBuf>,
    /// More age recipients (`age1...`) every new segment is also encrypted to (an escrow or
    /// backup key; or, without `keyFile`, the only ones: a device that holds no secret).
    pub recipients: Vec<String>,
    /// Encrypt the SQLite databases too (SQLCipher 4, under a key derived from the identity).
    /// Unset: yes whenever there is an identity. `true` without an identity is refused (a
    /// database key is secret; recipients alone cannot make one); `false` keeps them plain.
    pub database: Option<bool>,
}

/// The identities a store reads with and the recipients it encrypts to.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRing {
    /// The identity file's text.
    identities: String,
    /// The recipient of each identity, in file order (the first is current).
    identity_recipients: Vec<String>,
    /// `encryption.recipients`.
    extra: Vec<String>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("identity_recipients", &self.identity_recipients)
            .field("extra", &self.extra)
            .finish_non_exhaustive()
    }
}

fn key_error(code: ErrorCode, message: String) -> Error {
    Error::Store(edgestore::Error::new(code, message))
}

impl KeyRing {
    /// The keys `config` names: from `EDGESTORE_KEY`, else the key file; `None` when
    /// encryption is not configured. A key file inside `data_dir`, readable by other users,
    /// missing or malformed is an error naming it.
    pub fn load(config: &EncryptionConfig, data_dir: &Path) -> Result<Option<KeyRing>> {
        let text = match std::env::var(KEY_ENV) {
            Ok(text) if !text.trim().is_empty() => Some(text),
            _ => match &config.key_file {
                Some(path) => Some(read_key_file(path, data_dir)?),
                None => None,
            },
        };
        if text.is_none() && config.recipients.is_empty() {
            return Ok(None);
        }
        let identities = text.unwrap_or_default();
        let identity_recipients = edgestore::spool::identity_recipients(&identities)?;
        if identity_recipients.is_empty() && config.key_file.is_some() {
            return Err(key_error(
                ErrorCode::KeyMissing,
                format!(
                    "key file {} holds no age identity (create one with `edgestore keys \
                     generate`)",
                    config
                        .key_file
                        .as_deref()
                        .unwrap_or(Path::new(""))
                        .display()
                ),
            ));
        }
        Ok(Some(KeyRing {
            identities,
            identity_recipients,
            extra: config.recipients.clone(),
        }))
    }

    /// The recipient new data is encrypted to (the first identity's), if there is an identity.
    pub fn current_recipient(&self) -> Option<&str> {
        self.identity_recipients.first().map(String::as_str)
    }

    /// The recipients of every identity, current first.
    pub fn identity_recipients(&self) -> &[String] {
        &self.identity_recipients
    }

    /// The audit log's checkpoint keys, one per identity (current first): an HMAC of a fixed
    /// label under the identity's secret, so the log is signed with what the store already
    /// guards and needs no key of its own. Empty without identities.
    pub fn audit_mac_keys(&self) -> Vec<Vec<u8>> {
        self.secrets()
            .map(|secret| {
                crate::digest::hmac_sha256_hex(secret.as_bytes(), b"edgestore audit checkpoint v1")
                    .into_bytes()
            })
            .collect()
    }

    /// The database keys, one per identity (current first): HMAC-SHA256 of a fixed label under
    /// the identity's secret, so the database is encrypted with what the store already guards,
    /// a rotation gives a new key, and `keys destroy` takes the database with the segments.
    pub fn database_keys(&self) -> Vec<DatabaseKey> {
        self.secrets()
            .map(|secret| {
                DatabaseKey::from_bytes(crate::digest::hmac_sha256(
                    secret.as_bytes(),
                    b"edgestore database key v1",
                ))
            })
            .collect()
    }

    /// The identity file's secret keys, in file order.
    fn secrets(&self) -> impl Iterator<Item = &str> {
        self.identities
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("AGE-SECRET-KEY-1"))
    }

    /// The spool's keys: the current recipient and the extra ones; every identity.
    pub fn spool_keys(&self) -> SpoolKeys {
        let mut recipients: Vec<String> = self
            .current_recipient()
            .into_iter()
            .map(String::from)
            .collect();
        for r in &self.extra {
            if !recipients.contains(r) {
                recipients.push(r.clone());
            }
        }
        SpoolKeys {
            recipients,
            identities: self.identities.clone(),
        }
    }
}

/// Refuse a key file that other users can read or write (as ssh does), or one inside the data
/// directory (backups and shipping copy what is there; keys must never travel with the data).
fn check_key_path(path: &Path, data_dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let resolved = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if let Ok(data) = data_dir.canonicalize() {
        if resolved.starts_with(&data) {
            return Err(key_error(
                ErrorCode::InvalidInput,
                format!(
                    "key file {} is inside the data directory {}: keys are never stored with \
                     the data they protect (move it, e.g. to /etc/edgestore/key.txt)",
                    path.display(),
                    data_dir.display()
                ),
            ));
        }
    }
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            key_error(
                ErrorCode::KeyMissing,
                format!("key file {} does not exist", path.display()),
            )
        } else {
            Error::Store(edgestore::Error::io(
                format!("key file {}", path.display()),
                e,
            ))
        }
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(key_error(
            ErrorCode::PermissionDenied,
            format!(
                "key file {} is accessible by other users (mode {mode:04o}); refused (chmod \
                 600 {})",
                path.display(),
                path.display()
            ),
        ));
    }
    Ok(())
}

fn read_key_file(path: &Path, data_dir: &Path) -> Result<String> {
    check_key_path(path, data_dir)?;
    let bytes = std::fs::read(path).map_err(|e| {
        Error::Store(edgestore::Error::io(
            format!("read key file {}", path.display()),
            e,
        ))
    })?;
    String::from_utf8(bytes).map_err(|_| {
        key_error(
            ErrorCode::InvalidInput,
            format!(
                "key file {} is not text (an age identity file)",
                path.display()
            ),
        )
    })
}

fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(now))
        .to_string()
}

/// Write `text` to `path` atomically with mode 0600: a temporary beside it, fsync, rename
/// (over an existing file only when `replace`), directory fsync.
fn write_private(path: &Path, text: &str, replace: bool) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let io = |what: &str| {
        let what = format!("{what} {}", path.display());
        move |e: std::io::Error| Error::Store(edgestore::Error::io(what, e))
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".edgestore-key")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(&dir)
        .map_err(io("create a temporary for"))?;
    tmp.write_all(text.as_bytes()).map_err(io("write"))?;
    tmp.as_file().sync_all().map_err(io("sync"))?;
    if replace {
        tmp.persist(path).map_err(|e| io("replace")(e.error))?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                key_error(
                    ErrorCode::DuplicateKey,
                    format!(
                        "key file {} exists; refusing to overwrite a key (use `edgestore keys \
                         rotate` to add a new one)",
                        path.display()
                    ),
                )
            } else {
                io("create")(e.error)
            }
        })?;
    }
    if let Ok(d) = std::fs::File::open(&dir) {
        d.sync_all().map_err(io("sync the directory of"))?;
    }
    Ok(())
}

/// Create the key file `path` with one new identity; returns its recipient. An existing file
/// is never overwritten.
pub fn generate(path: &Path) -> Result<String> {
    let (text, recipient) = edgestore::spool::generate_identity(&now_rfc3339());
    write_private(path, &text, false)?;
    Ok(recipient)
}

/// Put a new identity first in the key file `path`, keeping every older one after it (so
/// what they encrypted stays readable). Returns the new recipient and the previous current
/// one.
pub fn rotate(path: &Path, data_dir: &Path) -> Result<(String, String)> {
    let old = read_key_file(path, data_dir)?;
    let previous = edgestore::spool::identity_recipients(&old)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            key_error(
                ErrorCode::KeyMissing,
                format!(
                    "key file {} holds no age identity to rotate",
                    path.display()
                ),
            )
        })?;
    let (text, recipient) = edgestore::spool::generate_identity(&now_rfc3339());
    write_private(path, &format!("{text}{old}"), true)?;
    Ok((recipient, previous))
}

/// Destroy the key file: overwrite its bytes with zeros, fsync, remove it, fsync its
/// directory. What was encrypted only to its identities can no longer be read by anyone.
/// (On copy-on-write or flash storage the old blocks may survive the overwrite physically;
/// they are unreachable through the filesystem either way.)
pub fn destroy(path: &Path) -> Result<()> {
    let io = |what: &str| {
        let what = format!("{what} {}", path.display());
        move |e: std::io::Error| Error::Store(edgestore::Error::io(what, e))
    };
    let len = std::fs::metadata(path)
        .map_err(io("destroy key file"))?
        .len();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io("open"))?;
    f.write_all(&vec![0u8; usize::try_from(len).unwrap_or(0)])
        .map_err(io("overwrite"))?;
    f.sync_all().map_err(io("sync"))?;
    drop(f);
    std::fs::remove_file(path).map_err(io("remove"))?;
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn generate_rotate_and_destroy_a_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let path = dir.path().join("key.txt");
        let first = generate(&path).unwrap();
        assert!(first.starts_with("age1"), "{first}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = generate(&path).unwrap_err();
        assert_eq!(again.code(), ErrorCode::DuplicateKey, "{again}");

        let config = EncryptionConfig {
            key_file: Some(path.clone()),
            recipients: vec![],
            ..EncryptionConfig::default()
        };
        let ring = KeyRing::load(&config, &data).unwrap().unwrap();
        assert_eq!(ring.current_recipient(), Some(first.as_str()));
        let first_db_key = ring.database_keys();
        assert_eq!(first_db_key.len(), 1);

        let (second, previous) = rotate(&path, &data).unwrap();
        assert_eq!(previous, first);
        let ring = KeyRing::load(&config, &data).unwrap().unwrap();
        assert_eq!(ring.identity_recipients(), [second.clone(), first.clone()]);
        // A new database key for the new identity; the old one still offered after it.
        let db_keys = ring.database_keys();
        assert_eq!(db_keys.len(), 2);
        assert_ne!(db_keys[0], first_db_key[0]);
        assert_eq!(db_keys[1], first_db_key[0]);
        assert_eq!(ring.spool_keys().recipients, [second]);
        assert!(!format!("{ring:?}").contains("AGE-SECRET"));

        destroy(&path).unwrap();
        assert!(!path.exists());
        let e = KeyRing::load(&config, &data).unwrap_err();
        assert_eq!(e.code(), ErrorCode::KeyMissing, "{e}");
    }

    #[test]
    fn a_key_file_others_can_read_or_inside_the_data_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.txt");
        generate(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let config = EncryptionConfig {
            key_file: Some(path.clone()),
            recipients: vec![],
            ..EncryptionConfig::default()
        };
        let elsewhere = dir.path().join("data");
        let e = KeyRing::load(&config, &elsewhere).unwrap_err();
        assert_eq!(e.code(), ErrorCode::PermissionDenied, "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = KeyRing::load(&config, dir.path()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput, "{e}");
        assert!(e.to_string().contains("inside the data directory"), "{e}");
        // Recipients alone: encrypt, never read.
        let only = EncryptionConfig {
            key_file: None,
            recipients: vec![KeyRing::load(&config, &elsewhere)
                .unwrap()
                .unwrap()
                .current_recipient()
                .unwrap()
                .to_string()],
            ..EncryptionConfig::default()
        };
        let ring = KeyRing::load(&only, &elsewhere).unwrap().unwrap();
        assert_eq!(ring.spool_keys().recipients.len(), 1);
        assert!(ring.spool_keys().identities.is_empty());
    }
}
