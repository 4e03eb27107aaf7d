//! Object keys: `ship.keyTemplate` rendered for one segment, under the target's prefix.
//!
//! The default `{identifier}/{date}/{segment}` keeps the segment's file name (so an object is
//! recognisable as the segment it came from) and groups by spool identifier and UTC day of the
//! segment's first row, the layout object-store lifecycle rules and query engines partition by.
//! A template must contain `{segment}`: two segments never share a key, so "one object per
//! segment" cannot turn into "one segment overwrites another".

use edgestore::spool::SegmentName;
use time::OffsetDateTime;

/// The default `ship.keyTemplate`.
pub const DEFAULT_KEY_TEMPLATE: &str = "{identifier}/{date}/{segment}";

/// The placeholders a template may use, for messages.
const PLACEHOLDERS: &str =
    "{identifier}, {date} (YYYY-MM-DD), {year}, {month}, {day}, {hour}, {segment}";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Identifier,
    Date,
    Year,
    Month,
    Day,
    Hour,
    Segment,
}

/// A parsed `ship.keyTemplate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    parts: Vec<Part>,
}

/// Characters a key may hold outside placeholders: S3's "safe" set, which needs no encoding
/// anywhere (URLs, signatures, file names).
fn safe_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '_' | '.' | '=' | '/' | '!' | '*' | '\'' | '(' | ')'
        )
}

/// Check a `/`-separated key prefix or literal: safe characters, no empty, `.` or `..`
/// component. `what` names it in the reason.
pub fn check_key_path(text: &str, what: &str) -> Result<(), String> {
    if let Some(c) = text.chars().find(|c| !safe_char(*c)) {
        return Err(format!(
            "{what} may only hold letters, digits and - _ . = / ! * ' ( ), not {c:?}"
        ));
    }
    if text
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(format!(
            "{what} has an empty, `.` or `..` path component (no leading, trailing or double `/`)"
        ));
    }
    Ok(())
}

impl KeyTemplate {
    /// Parse and check a template; the error is the reason, for a message naming the key.
    pub fn parse(text: &str) -> Result<KeyTemplate, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(format!("unmatched `}}` in {text:?}"));
            }
            literal.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in {text:?}"))?;
            let part = match &after[..close] {
                "identifier" => Part::Identifier,
                "date" => Part::Date,
                "year" => Part::Year,
                "month" => Part::Month,
                "day" => Part::Day,
                "hour" => Part::Hour,
                "segment" => Part::Segment,
                other => {
                    return Err(format!(
                        "unknown placeholder {{{other}}}; use {PLACEHOLDERS}"
                    ))
                }
            };
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(part);
            rest = &after[close + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        if !parts.contains(&Part::Segment) {
            return Err(
                "must contain {segment}, so that every segment gets a key of its own".to_owned(),
            );
        }
        // Placeholders never render empty or with `/`, so checking the template with each
        // placeholder as one safe character checks every key it can render.
        let shape: String = parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.as_str(),
                _ => "x",
            })
            .collect();
        check_key_path(&shape, "the template")?;
        Ok(KeyTemplate { parts })
    }

    /// The key of segment `name` (a finished segment's file name), before the target's prefix.
    /// `None` when the name is not a segment name.
    pub fn render(&self, name: &str) -> Option<String> {
        let segment = SegmentName::parse(name)?;
        let at =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(segment.start_ms) * 1_000_000)
                .ok()?;
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Identifier => out.push_str(&segment.identifier),
                Part::Date => out.push_str(&format!(
                    "{:04}-{:02}-{:02}",
                    at.year(),
                    u8::from(at.month()),
                    at.day()
                )),
                Part::Year => out.push_str(&format!("{:04}", at.year())),
                Part::Month => out.push_str(&format!("{:02}", u8::from(at.month()))),
                Part::Day => out.push_str(&format!("{:02}", at.day())),
                Part::Hour => out.push_str(&format!("{:02}", at.hour())),
                Part::Segment => out.push_str(name),
            }
        }
        Some(out)
    }
}

impl Default for KeyTemplate {
    fn default() -> Self {
        KeyTemplate {
            parts: vec![
                Part::Identifier,
                Part::Text("/".into()),
                Part::Date,
                Part::Text("/".into()),
                Part::Segment,
            ],
        }
    }
}

/// `prefix/key`, or `key` alone under an empty prefix.
pub fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}/{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2024-03-09T23:59:59.500Z and the next day.
    const NAME: &str = "agent_1710028799500_1710028805000.json.br";

    #[test]
    fn the_default_groups_by_identifier_and_utc_day() {
        let t = KeyTemplate::parse(DEFAULT_KEY_TEMPLATE).unwrap();
        assert_eq!(t, KeyTemplate::default());
        assert_eq!(t.render(NAME).unwrap(), format!("agent/2024-03-09/{NAME}"));
        let dotted = "edge.node-1_0_1.json.br";
        assert_eq!(
            t.render(dotted).unwrap(),
            format!("edge.node-1/1970-01-01/{dotted}")
        );
    }

    #[test]
    fn every_placeholder_renders() {
        let t = KeyTemplate::parse(
            "metrics/id={identifier}/year={year}/month={month}/day={day}/hour={hour}/{segment}",
        )
        .unwrap();
        assert_eq!(
            t.render(NAME).unwrap(),
            format!("metrics/id=agent/year=2024/month=03/day=09/hour=23/{NAME}")
        );
        assert_eq!(
            KeyTemplate::parse("{segment}")
                .unwrap()
                .render(NAME)
                .unwrap(),
            NAME
        );
        assert!(t.render("not-a-segment.txt").is_none());
    }

    #[test]
    fn bad_templates_say_why() {
        for (text, why) in [
            ("{identifier}/{date}", "must contain {segment}"),
            ("{identifier}/{dat}/{segment}", "unknown placeholder {dat}"),
            ("{identifier/{segment}", "unknown placeholder"),
            ("{segment", "unclosed"),
            ("a}/{segment}", "unmatched"),
            ("/{segment}", "empty"),
            ("a//{segment}", "empty"),
            ("{segment}/", "empty"),
            ("../{segment}", "`..`"),
            ("a b/{segment}", "' '"),
            ("a?/{segment}", "'?'"),
        ] {
            let e = KeyTemplate::parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn prefixes_join_with_one_slash() {
        assert_eq!(join_key("", "a/b"), "a/b");
        assert_eq!(join_key("p/q", "a/b"), "p/q/a/b");
        assert!(check_key_path("edge/site=1", "the prefix").is_ok());
        assert!(check_key_path("edge//x", "the prefix").is_err());
    }
}
