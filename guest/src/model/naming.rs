//! Identifiers: validation, quoting and the table-naming rule.
//!
//! Table and column names end up inside SQL text (values never do: they are always bound
//! parameters). So every name is checked against a deliberately small alphabet before it is
//! used, and then double-quoted anyway. Anything else is refused with `invalid-input`.

use crate::error::{Error, Result};

/// The longest identifier accepted. SQLite has no practical limit; this one keeps error
/// messages and the schema table readable.
pub const MAX_IDENT_LEN: usize = 64;

/// Check that `name` is a plain identifier: ASCII letter or `_` first, then letters, digits or
/// `_`, at most [`MAX_IDENT_LEN`] bytes, and not in SQLite's reserved `sqlite_` namespace.
pub fn validate_ident(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok || !rest_ok || name.len() > MAX_IDENT_LEN {
        return Err(Error::invalid_input(format!(
            "invalid identifier {name:?}: use ASCII letters, digits and '_' (max {MAX_IDENT_LEN})"
        )));
    }
    if name.to_ascii_lowercase().starts_with("sqlite_") {
        return Err(Error::invalid_input(format!(
            "invalid identifier {name:?}: the sqlite_ prefix is reserved"
        )));
    }
    Ok(())
}

/// Quote an identifier that has passed [`validate_ident`]. Quoting is belt and braces: it also
/// lets names such as `type` or `order` be used as columns.
pub fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

/// The default table name of a model type: its Rust name in snake_case, not pluralised
/// (`ResourceTags` -> `resource_tags`, `Checkpoint` -> `checkpoint`). This is GORM's
/// `SingularTable` rule, which the reference agent uses, so both share a database file.
pub fn table_name(type_name: &str) -> String {
    // `std::any::type_name` gives a path; keep the last segment and drop generics.
    let base = type_name.split('<').next().unwrap_or(type_name);
    let base = base.rsplit("::").next().unwrap_or(base);
    let mut out = String::with_capacity(base.len() + 4);
    let chars: Vec<char> = base.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for ok in ["a", "_x", "resource_tags", "Col9"] {
            validate_ident(ok).unwrap();
        }
        for bad in [
            "",
            "9a",
            "a b",
            "a\"b",
            "a;drop table x",
            "sqlite_master",
            "é",
        ] {
            assert!(validate_ident(bad).is_err(), "{bad}");
        }
        assert!(validate_ident(&"a".repeat(65)).is_err());
        assert_eq!(quote("type"), "\"type\"");
    }

    #[test]
    fn table_names_are_singular_snake_case() {
        assert_eq!(table_name("ResourceTags"), "resource_tags");
        assert_eq!(table_name("edgestore::model::Checkpoint"), "checkpoint");
        assert_eq!(table_name("HTTPRoute"), "http_route");
        assert_eq!(table_name("Node2Pool"), "node2_pool");
    }
}
