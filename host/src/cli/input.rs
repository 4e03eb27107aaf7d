//! JSON lines from stdin, in batches, with line numbers: shared by `spool put` and `db put`.
//!
//! The contract for bad input: the batch reader stops at the first bad line and hands back the
//! good lines before it together with the error, so the caller stores those (durably) before
//! failing; nothing after the bad line is read.

use std::io::BufRead;

use serde::Serialize;

/// One batch of input.
pub struct Batch {
    /// `(line number, text)` of each non-blank line, 1-based.
    pub lines: Vec<(u64, String)>,
    /// The line that could not be used, if any (processing stops there).
    pub error: Option<LineError>,
    /// The input is exhausted.
    pub done: bool,
}

/// A bad input line.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LineError {
    /// 1-based line number.
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// Reads non-blank lines in batches.
pub struct Lines<R> {
    inner: R,
    line: u64,
}

impl<R: BufRead> Lines<R> {
    /// Read from `inner`.
    pub fn new(inner: R) -> Self {
        Lines { inner, line: 0 }
    }

    /// Up to `max` lines, each checked by `check` (e.g. "is valid JSON"); stops at the first
    /// line `check` refuses, or at an I/O error, reporting its number.
    pub fn next_batch(
        &mut self,
        max: usize,
        mut check: impl FnMut(&str) -> Result<(), String>,
    ) -> Batch {
        let mut lines = Vec::new();
        while lines.len() < max {
            let mut text = String::new();
            self.line += 1;
            match self.inner.read_line(&mut text) {
                Ok(0) => {
                    return Batch {
                        lines,
                        error: None,
                        done: true,
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    return Batch {
                        lines,
                        error: Some(LineError {
                            line: self.line,
                            reason: format!("cannot read input: {e}"),
                        }),
                        done: true,
                    }
                }
            }
            let trimmed = text.strip_suffix('\n').unwrap_or(&text);
            let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
            if trimmed.trim().is_empty() {
                continue;
            }
            if let Err(reason) = check(trimmed) {
                return Batch {
                    lines,
                    error: Some(LineError {
                        line: self.line,
                        reason,
                    }),
                    done: true,
                };
            }
            lines.push((self.line, trimmed.to_owned()));
        }
        Batch {
            lines,
            error: None,
            done: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> Result<(), String> {
        serde_json::from_str::<serde::de::IgnoredAny>(s)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn batches_number_lines_and_stop_at_the_bad_one() {
        let input = "{\"a\":1}\n\n[2]\r\n{bad\n{\"z\":0}\n";
        let mut lines = Lines::new(input.as_bytes());
        let b = lines.next_batch(1, json);
        assert_eq!(b.lines, vec![(1, "{\"a\":1}".to_string())]);
        assert!(!b.done);
        let b = lines.next_batch(10, json);
        assert_eq!(b.lines, vec![(3, "[2]".to_string())]);
        let e = b.error.unwrap();
        assert_eq!(e.line, 4);
        assert!(e.to_string().starts_with("line 4: "), "{e}");
        assert!(b.done);
    }
}

#[derive(Serialize)]
struct WrittenView<'a> {
    what: &'a str,
    rows: u64,
    durable: &'a str,
}

/// `spool put`, `db put`: how many rows were taken and how durable they are now
/// (`segment`: in finished segments; `journal`: synced, finished on the next open or flush;
/// `committed`: in the database).
pub fn written(what: &str, rows: u64, durable: &str, json: bool) -> String {
    if json {
        return edgestore::present::to_json(&WrittenView {
            what,
            rows,
            durable,
        });
    }
    format!("{what}: {rows} rows written ({durable})\n")
}
