//! Changing a few keys of a project's pgbox.toml in place, for commands that move
//! the project forward (`pgbox upgrade` switching majors and data locations).
//!
//! The user's file keeps its comments, order and formatting: only the named keys
//! change (a `None` removes one). The result is parsed back through the schema
//! before it replaces the file, atomically, with the file's own permissions, so a
//! crash leaves either the old file or the new one and never a broken one.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use toml_edit::{value, DocumentMut, Item, Table};

use crate::error::Fail;

/// One change: `[table] key = value`, or the key removed.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Str(String),
    Remove,
}

/// Apply `changes` (table, key, value) to the pgbox.toml at `path`.
pub fn set(path: &Path, changes: &[(&str, &str, Value)]) -> Result<(), Fail> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Fail::new(format!("cannot read `{}`: {e}", path.display())))?;
    let new = apply(&text, changes).map_err(|e| {
        Fail::new(format!("cannot edit `{}`: {e}", path.display()))
            .hint("fix the file's syntax (pgbox reads it back after every change), then run the command again")
    })?;
    super::parse_file(path, &new)?;
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    crate::fsutil::write_atomic(path, new.as_bytes(), mode)
        .map_err(|e| Fail::new(format!("cannot write `{}`: {e}", path.display())))
}

/// The text with `changes` applied (see [`set`]).
pub fn apply(text: &str, changes: &[(&str, &str, Value)]) -> Result<String, String> {
    let mut doc: DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    for (table, key, v) in changes {
        let t = match doc.get_mut(table) {
            Some(Item::Table(t)) => t,
            Some(_) => return Err(format!("`{table}` is not a table")),
            None if *v == Value::Remove => continue,
            None => {
                doc.insert(table, Item::Table(Table::new()));
                doc[*table].as_table_mut().expect("just inserted")
            }
        };
        match v {
            Value::Remove => {
                t.remove(key);
            }
            Value::Int(i) => set_keeping_decor(t, key, value(*i)),
            Value::Str(s) => set_keeping_decor(t, key, value(s.as_str())),
        }
    }
    Ok(doc.to_string())
}

/// Replace a value and keep the comment after it on the same line.
fn set_keeping_decor(t: &mut Table, key: &str, mut new: Item) {
    if let (Some(old), Some(v)) = (t.get(key).and_then(Item::as_value), new.as_value_mut()) {
        *v.decor_mut() = old.decor().clone();
    }
    t.insert(key, new);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_only_the_named_keys_and_keeps_comments() {
        let text = "# my project\n[postgres]\nversion = 15 # the major\nbase_image = \"debian:bookworm-slim\"\n\n[storage]\nmode = \"auto\"\n";
        let out = apply(
            text,
            &[
                ("postgres", "version", Value::Int(17)),
                ("postgres", "base_image", Value::Remove),
                ("storage", "path", Value::Str(".pgbox/data-pg17".into())),
            ],
        )
        .unwrap();
        assert!(
            out.starts_with("# my project\n[postgres]\nversion = 17 # the major\n"),
            "{out}"
        );
        assert!(!out.contains("base_image"), "{out}");
        assert!(
            out.contains("mode = \"auto\"\npath = \".pgbox/data-pg17\""),
            "{out}"
        );
    }

    #[test]
    fn a_missing_table_is_created_and_a_removal_of_nothing_is_fine() {
        let out = apply(
            "[project]\nname = \"x\"\n",
            &[
                ("postgres", "version", Value::Int(18)),
                ("storage", "volume", Value::Remove),
            ],
        )
        .unwrap();
        assert!(out.contains("[postgres]\nversion = 18"), "{out}");
        assert!(!out.contains("[storage]"), "{out}");
    }
}
