//! The `edgestore` command-line tool: see [`cli`] for the command tree. Every error ends here
//! as one line on stderr (`edgestore: error: ...`, the prefix every edgestore command line
//! uses, its causes joined by `: `) and exit status 1.

#![forbid(unsafe_code)]

mod cli;

use clap::Parser;
use edgestore::command_line::ERROR_PREFIX;

fn main() -> std::process::ExitCode {
    // `edgestore bench` measures peak memory by re-running this binary as a child.
    if let Some(code) = edgestore_host::bench::memory::child_main_if_requested() {
        return std::process::ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    // Least privilege: what the store creates (database, spool, logs, sockets' directories)
    // is readable by this user only: files 0600, directories 0700.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let args = cli::Cli::parse();
    if let cli::Command::Bench(bench) = &args.command {
        // The measurements start and drop their own runtimes: run them outside ours.
        return exit_code(cli::bench::run(bench, args.output.json));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{ERROR_PREFIX}start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    exit_code(runtime.block_on(cli::run(args)))
}

/// Success, or the error on one line and status 1 (2 when the data directory is owned by
/// another process that takes no forwarded commands: nothing was touched).
fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{ERROR_PREFIX}{}", one_line(&e));
            let refused = e.chain().any(|c| {
                c.downcast_ref::<cli::Refused>().is_some()
                    || matches!(
                        c.downcast_ref::<edgestore_host::Error>(),
                        Some(edgestore_host::Error::Owned { .. })
                    )
            });
            if refused {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

/// The error and its causes on one line. A cause whose text already ends the line (the
/// core's I/O errors name their `io::Error` and keep it as the source) is not said twice.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::from_raw_os_error(28);
        let core = edgestore::Error::io("publish segment s.json.br", io);
        let e = anyhow::Error::new(core).context("all 3 rows are in the journal");
        let line = one_line(&e);
        assert_eq!(line.matches("os error 28").count(), 1, "{line}");
        assert!(
            line.starts_with("all 3 rows are in the journal: disk-full: publish segment"),
            "{line}"
        );
        let plain = anyhow::anyhow!("first").context("second");
        assert_eq!(one_line(&plain), "second: first");
    }
}
