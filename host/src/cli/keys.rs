//! `edgestore keys generate|show-recipient|rotate|destroy`: the age identity file named by
//! `encryption.keyFile` (see [`edgestore_host::keys`]). Rotation and destruction change what
//! a store reads and writes with, so they run only while no store owns the data directory
//! (they hold its lock meanwhile) and are written to its audit log.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use edgestore_host::audit::{AuditEvent, AuditLog, DEFAULT_MAX_BYTES};
use edgestore_host::keys;
use edgestore_host::owner::{self, DirLock, Ownership};

use super::Ctx;

/// `keys` commands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a new age identity file (mode 0600; as `age-keygen` writes it) and print its
    /// recipient (public key). Never overwrites a file.
    Generate(KeyFileArgs),
    /// Print the recipient new data is encrypted to (the key file's first identity; with
    /// --all every identity's, then encryption.recipients).
    ShowRecipient(ShowArgs),
    /// Put a new identity first in the key file, keeping the old ones so what they encrypted
    /// stays readable; new segments are encrypted to the new recipient and the database is
    /// re-keyed to the new identity's key. Only while no store owns the data directory.
    Rotate(KeyFileArgs),
    /// Crypto-erase: overwrite and remove the key file. Every segment, database and backup
    /// encrypted to its identities becomes unreadable, for good. Only while no store owns the
    /// data directory; asks for --yes.
    Destroy(DestroyArgs),
    /// Print the database key (a secret) as SQLCipher's raw-key literal, for a standard
    /// SQLCipher 4 reader: `PRAGMA key = "x'...'";` (with --all, every identity's, current
    /// first: older ones open backups taken before a rotation).
    DatabaseKey(ShowArgs),
}

/// The key file a command works on.
#[derive(Debug, Args)]
pub struct KeyFileArgs {
    /// The key file (default: encryption.keyFile).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

/// `keys show-recipient`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub file: KeyFileArgs,
    /// Every recipient: each identity's (current first), then encryption.recipients.
    #[arg(long)]
    pub all: bool,
}

/// `keys destroy`.
#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub file: KeyFileArgs,
    /// Confirm that everything encrypted only to this key is to become unreadable.
    #[arg(long)]
    pub yes: bool,
}

/// Run a `keys` command.
pub async fn run(ctx: &Ctx, cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Generate(args) => {
            let path = key_file(ctx, &args)?;
            let recipient = keys::generate(&path)?;
            print(ctx, &recipient, &path, "created")
        }
        KeysCommand::ShowRecipient(args) => show(ctx, &args),
        KeysCommand::DatabaseKey(args) => database_key(ctx, &args),
        KeysCommand::Rotate(args) => {
            let path = key_file(ctx, &args)?;
            let data_dir = ctx.config.host.data_dir.clone();
            let (new, old, rekeyed) = changing_keys(ctx, "keys.rotate", &path, || {
                let (new, old) = keys::rotate(&path, &data_dir)?;
                let rekeyed = rekey_database(ctx, &path)?;
                Ok((new, old, rekeyed))
            })?;
            if !ctx.json {
                eprintln!("previous recipient {old} stays in the key file for reading");
                if let Some(db) = rekeyed {
                    eprintln!("database {} re-keyed to the new identity", db.display());
                }
            }
            print(ctx, &new, &path, "rotated")
        }
        KeysCommand::Destroy(args) => {
            let path = key_file(ctx, &args.file)?;
            if !args.yes {
                bail!(
                    "keys destroy makes everything encrypted only to {} unreadable for good; \
                     run it again with --yes",
                    path.display()
                );
            }
            changing_keys(ctx, "keys.destroy", &path, || {
                keys::destroy(&path).map_err(Into::into)
            })?;
            if ctx.json {
                println!("{}", serde_json::json!({"destroyed": path}));
            } else {
                println!("destroyed {}", path.display());
            }
            Ok(())
        }
    }
}

fn key_file(ctx: &Ctx, args: &KeyFileArgs) -> anyhow::Result<PathBuf> {
    args.key_file
        .clone()
        .or_else(|| ctx.config.encryption.key_file.clone())
        .context("no key file: pass --key-file FILE or set encryption.keyFile")
}

fn print(ctx: &Ctx, recipient: &str, path: &Path, what: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if ctx.json {
        let value = serde_json::json!({ "recipient": recipient, "keyFile": path, what: true });
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "{recipient}")?;
    }
    Ok(out.flush()?)
}

fn show(ctx: &Ctx, args: &ShowArgs) -> anyhow::Result<()> {
    let mut config = ctx.config.encryption.clone();
    if let Some(path) = &args.file.key_file {
        config.key_file = Some(path.clone());
    }
    let ring = keys::KeyRing::load(&config, &ctx.config.host.data_dir)?
        .context("encryption is not configured: set encryption.keyFile (or --key-file)")?;
    let list: Vec<String> = if args.all {
        let mut all = ring.identity_recipients().to_vec();
        all.extend(config.recipients.iter().cloned());
        all
    } else {
        ring.spool_keys().recipients.into_iter().take(1).collect()
    };
    print_list(ctx, "recipients", &list)
}

/// `list` one per line, or `{"<name>": [...]}` with --json.
fn print_list(ctx: &Ctx, name: &str, list: &[String]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if ctx.json {
        writeln!(out, "{}", serde_json::json!({ name: list }))?;
    } else {
        for item in list {
            writeln!(out, "{item}")?;
        }
    }
    Ok(out.flush()?)
}

/// After a rotation: the database (if it exists and is encrypted) under the new identity's
/// key. The old key stays derivable from the old identity, so a crash before this is finished
/// at the next open. Returns the database re-keyed.
fn rekey_database(ctx: &Ctx, key_file: &Path) -> anyhow::Result<Option<PathBuf>> {
    let mut config = ctx.config.clone();
    config.encryption.key_file = Some(key_file.to_path_buf());
    let keys = config.database_keys()?;
    let edgestore_host::grants::DbTarget::File(name) = config.database_target()? else {
        return Ok(None);
    };
    let path = config.host.data_dir.join(name);
    if keys.is_empty() || !path.is_file() {
        return Ok(None);
    }
    let done = edgestore::sql::sqlite::cipher::prepare_file(&path, &keys)
        .with_context(|| format!("re-key database {}", path.display()))?;
    Ok((done != edgestore::sql::sqlite::cipher::Prepared::Unchanged).then_some(path))
}

fn database_key(ctx: &Ctx, args: &ShowArgs) -> anyhow::Result<()> {
    let mut config = ctx.config.clone();
    if let Some(path) = &args.file.key_file {
        config.encryption.key_file = Some(path.clone());
    }
    let keys = config.database_keys()?;
    if keys.is_empty() {
        bail!("the database is not encrypted: set encryption.keyFile (or --key-file)");
    }
    let take = if args.all { keys.len() } else { 1 };
    let list: Vec<String> = keys.iter().take(take).map(|k| k.sql_literal()).collect();
    print_list(ctx, "keys", &list)
}

/// Run `change` while no store owns the data directory (holding its lock, so none starts
/// meanwhile), then append `op` to the directory's audit log.
fn changing_keys<T>(
    ctx: &Ctx,
    op: &str,
    path: &Path,
    change: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let data_dir = &ctx.config.host.data_dir;
    if !data_dir.is_dir() {
        return change();
    }
    let command = format!("edgestore {}", op.replace('.', " "));
    if let Ownership::Owned(record) = owner::probe(data_dir)? {
        let who = record.map_or_else(|| "another process".to_owned(), |r| r.describe());
        bail!(
            "{op}: data directory {} is owned by {who}, which holds the keys in memory; stop \
             it first, then run this again",
            data_dir.display()
        );
    }
    let dir = cap_std::fs::Dir::open_ambient_dir(data_dir, cap_std::ambient_authority())
        .with_context(|| format!("open {}", data_dir.display()))?;
    let _lock = DirLock::acquire(&dir, data_dir, &command)?;
    let result = change();
    let log = AuditLog::open(data_dir, DEFAULT_MAX_BYTES, "host", &command)
        .with_context(|| format!("open the audit log of {}", data_dir.display()))?;
    log.append(&AuditEvent {
        op: op.to_owned(),
        target: path.display().to_string(),
        error: result.as_ref().err().map(|e| {
            let code = e
                .downcast_ref::<edgestore_host::Error>()
                .map_or("io", |e| e.code().as_str());
            (code.to_owned(), format!("{e:#}"))
        }),
        ..AuditEvent::default()
    })
    .context("append to the audit log")?;
    result
}
