//! `edgestore audit verify`: walk the data directory's hash-chained audit log
//! ([`edgestore_host::audit`]) and name the first line that breaks it. Only reads: safe beside
//! a running owner (a line being written meanwhile is at most a torn tail).

use std::io::Write as _;

use anyhow::bail;
use clap::Subcommand;

use super::Ctx;

/// `audit` commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's chain (sequence numbers, each line's hash of the one before, the
    /// recorded head): exit 0 when it holds, 1 naming the first altered, removed, reordered
    /// line or a log cut short.
    Verify,
}

/// Run an `audit` command.
pub async fn run(ctx: &Ctx, cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Verify => verify(ctx),
    }
}

fn verify(ctx: &Ctx) -> anyhow::Result<()> {
    let dir = &ctx.config.host.data_dir;
    // With the store's keys, every checkpoint's HMAC is checked too.
    let keys = ctx
        .config
        .keys()?
        .map(|ring| ring.audit_mac_keys())
        .unwrap_or_default();
    let report = edgestore_host::audit::verify(dir, &keys)?;
    let mut out = std::io::stdout().lock();
    if ctx.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else if report.ok() {
        writeln!(
            out,
            "audit log of {}: {} lines in {} files, chain intact{}",
            dir.display(),
            report.lines,
            report.files,
            if report.torn_tail {
                " (a torn last line from a crash, not part of it)"
            } else {
                ""
            }
        )?;
        if report.checkpoints_verified > 0 {
            writeln!(
                out,
                "{} checkpoints signed with the store's key, covering lines 1-{}",
                report.checkpoints_verified, report.covered_to_seq
            )?;
        } else if report.checkpoints_unchecked > 0 {
            writeln!(
                out,
                "{} checkpoints not checked: no key (set encryption.keyFile)",
                report.checkpoints_unchecked
            )?;
        }
    }
    out.flush()?;
    match report.first_bad {
        Some(bad) => bail!("audit log broken: {bad}"),
        None => Ok(()),
    }
}
