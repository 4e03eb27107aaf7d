//! JSON documents as spool records: [`Document`] is a validated JSON value kept as its text
//! (`Box<serde_json::value::RawValue>`), so a spool of documents never builds a tree for a row
//! it only stores. Metrics become documents with exactly [`Metric`]'s bytes (the reference
//! agent's field order), and documents become metrics again when read.
//!
//! Journal lines end at `\n`, so a document whose text has newlines between tokens (legal JSON
//! whitespace, e.g. pretty-printed input) is compacted first; string contents never change.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::Metric;
use crate::error::{Error, Result};

/// One JSON value, validated, stored and read back as text.
pub type Document = Box<RawValue>;

/// Validate one document; compacts it when it spans lines.
pub fn document(json: String) -> Result<Document> {
    let json = if json.contains('\n') || json.contains('\r') {
        compact(&json)
    } else {
        json
    };
    RawValue::from_string(json).map_err(Error::from)
}

/// Validate a batch: the first malformed document fails the whole batch (`invalid-input`
/// naming its position), so nothing of it is written.
pub fn documents(batch: Vec<String>) -> Result<Vec<Document>> {
    batch
        .into_iter()
        .enumerate()
        .map(|(i, json)| {
            document(json).map_err(|e| {
                Error::invalid_input(format!("document {i} is not valid JSON: {}", e.message()))
            })
        })
        .collect()
}

/// Validate a batch given as one buffer of documents, one per line (`\n`-separated; a last
/// `\n` is optional): what crosses into the component in one piece instead of a list of
/// strings. The first malformed line (or an empty one) fails the whole batch, as in
/// [`documents`]. Each document is what [`document`] keeps of its line (whitespace around it
/// dropped, compacted if it holds a `\r`), borrowed from `lines` unless it had to be compacted.
pub fn document_lines(lines: &[u8]) -> Result<Vec<Cow<'_, str>>> {
    let lines = lines.strip_suffix(b"\n").unwrap_or(lines);
    if lines.is_empty() {
        return Ok(Vec::new());
    }
    // UTF-8 is checked once over the whole buffer rather than line by line (a line is a few
    // hundred bytes; per-line calls cost more than the scan): a `\n` never sits inside a
    // multi-byte character, so the buffer is UTF-8 exactly when every line is.
    match std::str::from_utf8(lines) {
        Ok(text) => text_lines(text),
        Err(e) => {
            // The lines before the first that is not UTF-8 are checked first: the error is
            // the first bad line's, in order.
            let bad = e.valid_up_to();
            let start = lines[..bad]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            let index = lines[..start].iter().filter(|&&b| b == b'\n').count();
            let end = lines[bad..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(lines.len(), |p| bad + p);
            let not_utf8 = |detail: String| {
                Error::invalid_input(format!("document {index} is not UTF-8{detail}"))
            };
            if start > 0 {
                let before = std::str::from_utf8(&lines[..start - 1])
                    .map_err(|e| not_utf8(format!(": {e}")))?;
                text_lines(before)?;
            }
            Err(match std::str::from_utf8(&lines[start..end]) {
                Err(e) => not_utf8(format!(": {e}")),
                Ok(_) => not_utf8(String::new()),
            })
        }
    }
}

/// The documents of `text`'s lines (as [`document_lines`]).
fn text_lines(text: &str) -> Result<Vec<Cow<'_, str>>> {
    let invalid = |i, e: Error| {
        Error::invalid_input(format!("document {i} is not valid JSON: {}", e.message()))
    };
    // Most batches hold no `\r` at all: one scan for it instead of one per line.
    let any_cr = text.contains('\r');
    text.split('\n')
        .enumerate()
        .map(|(i, line)| {
            if any_cr && line.contains('\r') {
                let doc = document(line.to_owned()).map_err(|e| invalid(i, e))?;
                return Ok(Cow::Owned(doc.get().to_owned()));
            }
            // What `RawValue::from_string` validates and keeps, without copying the line.
            let doc: &RawValue =
                serde_json::from_str(line).map_err(|e| invalid(i, Error::from(e)))?;
            Ok(Cow::Borrowed(doc.get()))
        })
        .collect()
}

/// Rows as the buffer [`document_lines`] reads (and `put-lines` takes): each row's JSON, byte
/// for byte what `serde_json::to_writer` writes, then `\n`, appended to `out`.
pub fn json_lines<T: serde::Serialize>(rows: &[T], out: &mut Vec<u8>) -> Result<()> {
    for row in rows {
        super::json_line::write_row(out, row)
            .map_err(|e| Error::invalid_input(format!("row does not serialize: {e}")))?;
        out.push(b'\n');
    }
    Ok(())
}

/// A metric as a document, byte for byte what `serde_json::to_string(&metric)` writes.
pub fn metric_document(metric: &Metric) -> Result<Document> {
    serde_json::value::to_raw_value(metric).map_err(Error::from)
}

/// A document read back as a metric; `invalid-input` when it is not one.
pub fn document_metric(doc: &RawValue) -> Result<Metric> {
    serde_json::from_str(doc.get())
        .map_err(|e| Error::invalid_input(format!("row is not a metric: {e}")))
}

/// Drop JSON whitespace outside strings. Only called on text that is then validated, so an
/// unterminated string simply fails validation afterwards.
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for ch in json.chars() {
        if in_string {
            out.push(ch);
            match (escaped, ch) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !matches!(ch, ' ' | '\t' | '\n' | '\r') {
            in_string = ch == '"';
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    #[test]
    fn lines_are_documents_and_one_bad_line_refuses_the_batch() {
        let docs = super::document_lines(b"{\"a\":1}\n[1, 2]\n\"x\"\r\n").unwrap();
        let text: Vec<&str> = docs.iter().map(|d| d.as_ref()).collect();
        assert_eq!(text, vec![r#"{"a":1}"#, "[1, 2]", r#""x""#]);
        assert_eq!(super::document_lines(b"{}").unwrap().len(), 1);
        assert!(super::document_lines(b"").unwrap().is_empty());
        assert!(super::document_lines(b"\n").unwrap().is_empty());
        for bad in [&b"{}\n{\n"[..], b"{}\n\n{}", b"1\n\xff", b"{} {}"] {
            let e = super::document_lines(bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidInput, "{bad:?}");
            assert!(
                e.message().starts_with("document 1 ") || bad == b"{} {}",
                "{e}"
            );
        }
    }

    /// `document_lines` as it was written first, line by line: the reference the faster one
    /// must match, results and error messages alike.
    fn document_lines_by_line(lines: &[u8]) -> Result<Vec<String>> {
        let lines = lines.strip_suffix(b"\n").unwrap_or(lines);
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let invalid = |i, e: Error| {
            Error::invalid_input(format!("document {i} is not valid JSON: {}", e.message()))
        };
        lines
            .split(|&b| b == b'\n')
            .enumerate()
            .map(|(i, line)| {
                let text = std::str::from_utf8(line)
                    .map_err(|e| Error::invalid_input(format!("document {i} is not UTF-8: {e}")))?;
                if text.contains('\r') {
                    let doc = document(text.to_owned()).map_err(|e| invalid(i, e))?;
                    return Ok(doc.get().to_owned());
                }
                let doc: &RawValue =
                    serde_json::from_str(text).map_err(|e| invalid(i, Error::from(e)))?;
                Ok(doc.get().to_owned())
            })
            .collect()
    }

    proptest::proptest! {
        /// Buffers of JSON-ish bytes (brackets, strings, escapes, `\r`, `\n`, bytes that are
        /// not UTF-8, a multi-byte character): the same documents or the same error as checking
        /// each line on its own.
        #[test]
        fn whole_buffer_checks_match_checking_each_line(
            bytes in proptest::collection::vec(proptest::sample::select(
                b"{}[]\":,1a \r\n\n\n\\\xff\xc3\xa9\xe2\x82".to_vec()), 0..48),
            docs in proptest::collection::vec(proptest::sample::select(vec![
                "{}", "[1, 2]", "\"x\"", "{\"a\":\r 1}", " 7 ", "\"\\u00e9\\n\"", "\"\u{e9}\""]), 0..6),
        ) {
            let mut buffer: Vec<u8> = docs.join("\n").into_bytes();
            if !docs.is_empty() {
                buffer.push(b'\n');
            }
            buffer.extend_from_slice(&bytes);
            for input in [&buffer[..], &bytes[..]] {
                let fast = document_lines(input)
                    .map(|d| d.into_iter().map(String::from).collect::<Vec<_>>());
                match (fast, document_lines_by_line(input)) {
                    (Ok(a), Ok(b)) => proptest::prop_assert_eq!(a, b),
                    (Err(a), Err(b)) => {
                        proptest::prop_assert_eq!(a.code(), b.code());
                        proptest::prop_assert_eq!(a.message(), b.message());
                    }
                    (a, b) => proptest::prop_assert!(false, "{:?} against {:?}", a, b),
                }
            }
        }
    }

    use super::*;
    use crate::dir::MemDir;
    use crate::error::ErrorCode;
    use crate::sample::MetricGenerator;
    use crate::{ManualClock, Spool, SpoolConfig, TimeRange};

    #[test]
    fn metrics_keep_the_reference_bytes_and_round_trip() {
        let m = MetricGenerator::new(1, 0).batch(1).remove(0);
        let doc = metric_document(&m).unwrap();
        assert_eq!(doc.get(), serde_json::to_string(&m).unwrap());
        assert_eq!(document_metric(&doc).unwrap(), m);
        let not_metric = document("{\"a\":1}".into()).unwrap();
        assert_eq!(
            document_metric(&not_metric).unwrap_err().code(),
            ErrorCode::InvalidInput
        );
    }

    #[test]
    fn a_bad_document_fails_the_batch() {
        let err = documents(vec!["{}".into(), "{nope".into()]).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidInput);
        assert!(err.message().contains("document 1"));
        assert_eq!(
            documents(vec!["1".into(), "[true]".into()]).unwrap().len(),
            2
        );
    }

    #[test]
    fn multi_line_documents_are_compacted_not_changed() {
        let doc = document("{\n  \"a b\": \"x\\\" \\n y\",\r\n  \"c\": [1, 2]\n}".into()).unwrap();
        assert_eq!(doc.get(), r#"{"a b":"x\" \n y","c":[1,2]}"#);
    }

    #[test]
    fn a_spool_of_documents_stores_them_verbatim() {
        let spool: Spool<Document> = Spool::open(
            Arc::new(MemDir::new()),
            SpoolConfig::new("docs"),
            Arc::new(ManualClock::new(0)),
        )
        .unwrap();
        let m = MetricGenerator::new(2, 0).batch(1).remove(0);
        let mut batch =
            documents(vec!["{\"k\": [1, {\"z\": null}]}".into(), "\"s\"".into()]).unwrap();
        batch.push(metric_document(&m).unwrap());
        spool.put(&batch).unwrap();
        spool.flush().unwrap();
        let mut reader = spool.read_range(TimeRange::all()).unwrap();
        let rows = reader.next(10).unwrap();
        let texts: Vec<&str> = rows.iter().map(|d| d.get()).collect();
        assert_eq!(texts[..2], ["{\"k\": [1, {\"z\": null}]}", "\"s\""]);
        assert_eq!(document_metric(&rows[2]).unwrap(), m);
    }

    /// Every finished segment's bytes in a spool directory, sorted (names carry unique ids).
    fn segment_bytes(dir: &MemDir) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = dir
            .names()
            .iter()
            .filter(|n| n.ends_with(".json.br"))
            .filter_map(|n| dir.read_bytes(n))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn put_lines_writes_what_put_of_the_same_documents_writes() {
        let lines: &[u8] = b"{\"k\": [1, {\"z\": null}]}\n  \"s\"  \n{\"a\":\r 1}\r\n[]\n\"\xc3\xa9\\u00e9\\n\"\n7\n";
        let text = std::str::from_utf8(lines).unwrap();
        let docs = documents(text.split_terminator('\n').map(String::from).collect()).unwrap();
        let mut config = SpoolConfig::new("docs");
        config.max_records = 4;
        let (a, b) = (Arc::new(MemDir::new()), Arc::new(MemDir::new()));
        for (dir, by_lines) in [(&a, true), (&b, false)] {
            let spool: Spool<Document> =
                Spool::open(dir.clone(), config.clone(), Arc::new(ManualClock::new(0))).unwrap();
            for _ in 0..3 {
                if by_lines {
                    spool.put_lines(lines).unwrap();
                } else {
                    spool.put(&docs).unwrap();
                }
            }
            spool.flush().unwrap();
            let mut reader = spool.read_range(TimeRange::all()).unwrap();
            let rows = reader.next(100).unwrap();
            assert_eq!(rows.len(), 18);
            assert_eq!(rows[1].get(), "\"s\"");
            assert_eq!(rows[2].get(), "{\"a\":1}");
        }
        let segments = segment_bytes(&a);
        assert_eq!(segments.len(), 5, "split at max_records");
        assert_eq!(segments, segment_bytes(&b));
    }

    #[test]
    fn serialized_rows_and_their_lines_are_what_their_documents_are() {
        let metrics = MetricGenerator::new(5, 0).batch(30);
        let docs: Vec<Document> = metrics
            .iter()
            .map(|m| metric_document(m).unwrap())
            .collect();
        let mut lines = Vec::new();
        json_lines(&metrics, &mut lines).unwrap();
        let want: Vec<u8> = docs
            .iter()
            .flat_map(|d| format!("{}\n", d.get()).into_bytes())
            .collect();
        assert_eq!(lines, want);
        let mut config = SpoolConfig::new("docs");
        config.max_records = 7;
        let dirs = [(); 3].map(|_| Arc::new(MemDir::new()));
        for (k, dir) in dirs.iter().enumerate() {
            let spool: Spool<Document> =
                Spool::open(dir.clone(), config.clone(), Arc::new(ManualClock::new(0))).unwrap();
            match k {
                0 => spool.put(&docs).unwrap(),
                1 => spool.put_serialized(&metrics).unwrap(),
                _ => spool.put_lines(&lines).unwrap(),
            }
            spool.flush().unwrap();
        }
        let want = segment_bytes(&dirs[0]);
        assert_eq!(want.len(), 5, "split at max_records");
        assert_eq!(segment_bytes(&dirs[1]), want);
        assert_eq!(segment_bytes(&dirs[2]), want);
    }

    #[test]
    fn put_lines_with_a_bad_line_writes_nothing() {
        let dir = Arc::new(MemDir::new());
        let spool: Spool<Document> = Spool::open(
            dir.clone(),
            SpoolConfig::new("docs"),
            Arc::new(ManualClock::new(0)),
        )
        .unwrap();
        spool.put_lines(b"1\n").unwrap();
        for bad in [&b"{}\n{\n"[..], b"2\n\n3", b"4\n\xff", b"{} {}"] {
            let e = spool.put_lines(bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidInput, "{bad:?}");
        }
        spool.flush().unwrap();
        let rows = spool
            .read_range(TimeRange::all())
            .unwrap()
            .next(10)
            .unwrap();
        let texts: Vec<&str> = rows.iter().map(|d| d.get()).collect();
        assert_eq!(texts, ["1"]);
    }
}
