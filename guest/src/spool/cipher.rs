//! Encryption of finished segments in the age v1 format (X25519 recipients), so that anyone
//! with the key reads a segment with standard tools: `age -d -i key.txt SEG | brotli -d | jq`.
//!
//! A segment is `age(Brotli(JSON array))`, named `<identifier>_<start>_<stop>.json.br.age`.
//! Writers need only recipients (public keys): a device can encrypt without holding any secret.
//! Readers need identities (secret keys, the text of an `age-keygen` file). The sidecar's
//! CRC covers the ciphertext, so verification and quarantine never need a key, and a wrong or
//! missing key is `KeyMissing`, never `Corrupt`: nothing is quarantined for want of a key.
//!
//! The recipients are remembered in the spool directory (`.recipients`, an age recipients
//! file): a process that opens the spool without keys of its own (a maintenance `flush`) still
//! encrypts to them, so turning encryption on is never undone by a forgotten flag. Turning it
//! off means removing that file as well as the configuration.

use std::fmt;
use std::io::{self, Read, Write};

use crate::dir::{Directory, ReadFile};
use crate::error::{Error, ErrorCode, Result};

/// The file in the spool directory naming the recipients new segments are encrypted to.
pub const RECIPIENTS_FILE: &str = ".recipients";

/// The first bytes of every age v1 file.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// The keys of a spool (`SpoolConfig::keys`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SpoolKeys {
    /// age X25519 recipients (`age1...`) new segments are encrypted to, every one of them able
    /// to decrypt alone. Empty: the spool's `.recipients` file decides, and without one
    /// segments are plain Brotli.
    pub recipients: Vec<String>,
    /// age X25519 identities that read encrypted segments: the text of an identity file as
    /// `age-keygen` writes it (`AGE-SECRET-KEY-1...` lines, `#` comments). Never printed.
    pub identities: String,
}

impl fmt::Debug for SpoolKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpoolKeys")
            .field("recipients", &self.recipients)
            .field(
                "identities",
                &if self.identities.trim().is_empty() {
                    "none"
                } else {
                    "<redacted>"
                },
            )
            .finish()
    }
}

impl SpoolKeys {
    /// Check every key without keeping it; the error names the bad one (never a secret).
    pub fn validate(&self) -> Result<()> {
        imp::Keys::parse(self, &[]).map(|_| ())
    }
}

/// The parsed keys a spool encrypts and decrypts with.
pub(crate) struct Cipher {
    keys: imp::Keys,
}

impl Cipher {
    /// Parse `keys`; `stored` are the recipients from the spool's `.recipients` file, used when
    /// `keys` names none.
    pub(crate) fn new(keys: &SpoolKeys, stored: &[String]) -> Result<Cipher> {
        Ok(Cipher {
            keys: imp::Keys::parse(keys, stored)?,
        })
    }

    /// True if new segments are encrypted.
    pub(crate) fn encrypts(&self) -> bool {
        !self.keys.recipients().is_empty()
    }

    /// The recipients new segments are encrypted to, as `age1...` strings.
    pub(crate) fn recipients(&self) -> Vec<String> {
        self.keys.recipients()
    }

    /// Wrap `out` so what is written to it is encrypted to the recipients (unchanged when
    /// not `encrypt`; an error when asked to encrypt without recipients).
    pub(crate) fn seal<W: Write>(&self, out: W, encrypt: bool) -> io::Result<Sealing<W>> {
        if !encrypt {
            return Ok(Sealing::Plain(out));
        }
        if !self.encrypts() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no age recipient to encrypt to",
            ));
        }
        self.keys.seal(out)
    }

    /// The Brotli stream of the encrypted segment `name` read from `file`. `recipients` are
    /// the ones its sidecar lists, named in the error when no identity matches.
    pub(crate) fn open(
        &self,
        name: &str,
        file: ReadFile,
        recipients: &[String],
    ) -> Result<ReadFile> {
        self.keys.open(name, file, recipients)
    }
}

/// What a segment's Brotli stream is written into: the file, or age's STREAM on top of it.
pub(crate) enum Sealing<W: Write> {
    Plain(W),
    #[cfg(feature = "encryption")]
    Age(age::stream::StreamWriter<W>),
}

impl<W: Write> Write for Sealing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sealing::Plain(w) => w.write(buf),
            #[cfg(feature = "encryption")]
            Sealing::Age(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sealing::Plain(w) => w.flush(),
            #[cfg(feature = "encryption")]
            Sealing::Age(w) => w.flush(),
        }
    }
}

impl<W: Write> Sealing<W> {
    /// End the stream (age's last chunk) and hand back the file.
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Sealing::Plain(w) => Ok(w),
            #[cfg(feature = "encryption")]
            Sealing::Age(w) => w.finish(),
        }
    }
}

/// A new age X25519 identity: the text of an identity file as `age-keygen` writes it
/// (`# created:` and `# public key:` comments, then the secret key) and its recipient.
#[cfg(feature = "encryption")]
pub fn generate_identity(created: &str) -> (String, String) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    let text = format!(
        "# created: {created}\n# public key: {public}\n{}\n",
        id.to_string().expose_secret()
    );
    (text, public)
}

/// The recipients (public keys) of the identities in an identity file's text, in order;
/// `InvalidInput` naming the first bad line (never its content).
#[cfg(feature = "encryption")]
pub fn identity_recipients(text: &str) -> Result<Vec<String>> {
    let keys = SpoolKeys {
        recipients: Vec::new(),
        identities: text.to_string(),
    };
    Ok(imp::Keys::parse(&keys, &[])?.identity_recipients())
}

/// Read the recipients stored in the spool directory (empty if there is no file).
pub(crate) fn stored_recipients(dir: &dyn Directory) -> Result<Vec<String>> {
    let mut f = match dir.open_read(RECIPIENTS_FILE) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("read {RECIPIENTS_FILE}"), e)),
    };
    let mut text = String::new();
    f.by_ref()
        .take(1 << 20)
        .read_to_string(&mut text)
        .map_err(|e| Error::io(format!("read {RECIPIENTS_FILE}"), e))?;
    Ok(key_lines(&text).map(|(_, l)| l.to_string()).collect())
}

/// Write `recipients` to the spool's `.recipients` file, atomically (temporary, fsync,
/// rename, directory fsync), unless it already holds exactly them.
pub(crate) fn store_recipients(dir: &dyn Directory, recipients: &[String]) -> Result<()> {
    if stored_recipients(dir)? == recipients {
        return Ok(());
    }
    let tmp = format!("{RECIPIENTS_FILE}.tmp");
    let write = || -> io::Result<()> {
        match dir.remove(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = dir.create_new(&tmp)?;
        let mut text = String::from(
            "# age recipients every new segment of this spool is encrypted to (`age -R`)\n",
        );
        for r in recipients {
            text.push_str(r);
            text.push('\n');
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        dir.rename(&tmp, RECIPIENTS_FILE)?;
        dir.sync_dir("")
    };
    write().map_err(|e| Error::io(format!("write {RECIPIENTS_FILE}"), e))
}

/// The non-empty, non-comment lines of a key or recipients file, with their 1-based numbers.
fn key_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

fn key_missing(message: String) -> Error {
    Error::new(ErrorCode::KeyMissing, message)
}

#[cfg(feature = "encryption")]
mod imp {
    use std::io::{self, BufReader, Write};
    use std::str::FromStr;

    use age::x25519::{Identity, Recipient};

    use super::{key_lines, key_missing, Sealing, SpoolKeys};
    use crate::dir::ReadFile;
    use crate::error::{Error, Result};

    /// A recipient shortened for messages (`age1` and 12 characters are plenty to tell keys
    /// apart).
    fn short(recipient: &str) -> String {
        match recipient.get(..16) {
            Some(head) if recipient.len() > 16 => format!("{head}..."),
            _ => recipient.to_string(),
        }
    }

    pub(super) struct Keys {
        recipients: Vec<Recipient>,
        identities: Vec<Identity>,
    }

    fn bad(what: &str, why: String) -> Error {
        Error::invalid_input(format!("spool config field `keys.{what}`: {why}"))
    }

    impl Keys {
        pub(super) fn parse(keys: &SpoolKeys, stored: &[String]) -> Result<Keys> {
            let from = if keys.recipients.is_empty() {
                stored
            } else {
                &keys.recipients
            };
            let recipients = from
                .iter()
                .map(|r| {
                    Recipient::from_str(r.trim()).map_err(|e| {
                        bad(
                            "recipients",
                            format!("{r:?} is not an age X25519 recipient (age1...): {e}"),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let identities = key_lines(&keys.identities)
                .map(|(n, line)| {
                    Identity::from_str(line).map_err(|_| {
                        // The line is a secret (or a typo of one): name only where it is.
                        bad(
                            "identities",
                            format!("line {n} is not an age X25519 identity (AGE-SECRET-KEY-1...)"),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Keys {
                recipients,
                identities,
            })
        }

        pub(super) fn recipients(&self) -> Vec<String> {
            self.recipients.iter().map(|r| r.to_string()).collect()
        }

        pub(super) fn identity_recipients(&self) -> Vec<String> {
            self.identities
                .iter()
                .map(|i| i.to_public().to_string())
                .collect()
        }

        pub(super) fn seal<W: Write>(&self, out: W) -> io::Result<Sealing<W>> {
            if self.recipients.is_empty() {
                return Ok(Sealing::Plain(out));
            }
            let encryptor = age::Encryptor::with_recipients(
                self.recipients.iter().map(|r| r as &dyn age::Recipient),
            )
            .map_err(|e| io::Error::other(format!("age: {e}")))?;
            Ok(Sealing::Age(encryptor.wrap_output(out)?))
        }

        pub(super) fn open(
            &self,
            name: &str,
            file: ReadFile,
            recipients: &[String],
        ) -> Result<ReadFile> {
            let encrypted_to = if recipients.is_empty() {
                String::new()
            } else {
                let names: Vec<String> = recipients.iter().map(|r| short(r)).collect();
                format!(" (encrypted to {})", names.join(", "))
            };
            if self.identities.is_empty() {
                return Err(key_missing(format!(
                    "segment {name}{encrypted_to}: no age identity is configured to read it"
                )));
            }
            let input = BufReader::with_capacity(16 << 10, file);
            let decrypted = age::Decryptor::new_buffered(input)
                .and_then(|d| d.decrypt(self.identities.iter().map(|i| i as &dyn age::Identity)));
            match decrypted {
                Ok(reader) => Ok(Box::new(reader)),
                Err(age::DecryptError::NoMatchingKeys) => {
                    let have: Vec<String> = self
                        .identities
                        .iter()
                        .map(|i| short(&i.to_public().to_string()))
                        .collect();
                    Err(key_missing(format!(
                        "segment {name}{encrypted_to}: none of the {} configured age \
                         identities ({}) opens it",
                        have.len(),
                        have.join(", ")
                    )))
                }
                Err(age::DecryptError::Io(e)) => Err(Error::io(format!("segment {name}"), e)),
                Err(e) => Err(Error::corrupt(format!("segment {name}: age: {e}"))),
            }
        }
    }
}

#[cfg(not(feature = "encryption"))]
mod imp {
    use std::io::{self, Write};

    use super::{key_missing, Sealing, SpoolKeys};
    use crate::dir::ReadFile;
    use crate::error::{Error, Result};

    /// This build cannot encrypt: keys are refused up front rather than ignored.
    pub(super) struct Keys;

    impl Keys {
        pub(super) fn parse(keys: &SpoolKeys, stored: &[String]) -> Result<Keys> {
            if !keys.recipients.is_empty() || !keys.identities.trim().is_empty() {
                return Err(Error::invalid_input(
                    "spool config field `keys`: this build of edgestore has no segment \
                     encryption (cargo feature `encryption`)",
                ));
            }
            if !stored.is_empty() {
                return Err(key_missing(format!(
                    "this spool encrypts its segments (see its {}) and this build of \
                     edgestore has no segment encryption (cargo feature `encryption`)",
                    super::RECIPIENTS_FILE
                )));
            }
            Ok(Keys)
        }

        pub(super) fn recipients(&self) -> Vec<String> {
            Vec::new()
        }

        pub(super) fn seal<W: Write>(&self, out: W) -> io::Result<Sealing<W>> {
            Ok(Sealing::Plain(out))
        }

        pub(super) fn open(&self, name: &str, _: ReadFile, _: &[String]) -> Result<ReadFile> {
            Err(key_missing(format!(
                "segment {name} is encrypted and this build of edgestore has no segment \
                 encryption (cargo feature `encryption`)"
            )))
        }
    }
}
