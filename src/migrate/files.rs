//! The migrations folder: file names, sections, markers and checksums, checked as a
//! whole before anything touches the database.
//!
//! A file is `<version>_<name>.sql` (`pgbox migrate new` writes a UTC timestamp,
//! `20261128014500`). Its text is the up section, optionally after a
//! `-- migrate:up` line (dbmate's format, so dbmate folders work unchanged), and an
//! optional down section after `-- migrate:down`. `-- pgbox:no-transaction` (or
//! dbmate's `transaction:false`) runs the file statement by statement outside a
//! transaction. Every problem of the folder is reported at once, each naming its file.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::sql;

/// One migration file, read and checked.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: i64,
    pub name: String,
    pub path: PathBuf,
    pub text: String,
    /// Byte ranges of the sections in `text`.
    pub up: Range<usize>,
    pub down: Option<Range<usize>>,
    pub no_transaction: bool,
    pub sha256: String,
}

impl Migration {
    /// `20261128014500_create_users.sql`
    pub fn file_name(&self) -> String {
        format!("{}_{}.sql", self.version, self.name)
    }
}

/// What is wrong with one file of the folder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("`{file}`: the name is not `<version>_<name>.sql` (version: digits, e.g. a UTC timestamp `20261128014500`; name: letters, digits, `_` or `-`)")]
    Malformed { file: String },
    #[error("`{file}` and `{other}` have the same version {version}")]
    Duplicate {
        file: String,
        other: String,
        version: i64,
    },
    #[error("`{file}` is empty: it holds no SQL")]
    Empty { file: String },
    #[error("`{file}` has a `-- migrate:down` section but no up section before it")]
    DownWithoutUp { file: String },
    #[error("`{file}` has `-- migrate:down` twice (line {line})")]
    TwoDowns { file: String, line: usize },
    #[error("`{file}:{line}`: `{statement}` ends or starts a transaction, but pgbox runs each file in one transaction of its own")]
    TransactionControl {
        file: String,
        line: usize,
        statement: String,
    },
    #[error("`{file}` cannot be read: {reason}")]
    Unreadable { file: String, reason: String },
}

/// The version of a file name, when it is well formed.
pub fn parse_name(file: &str) -> Option<(i64, String)> {
    let stem = file.strip_suffix(".sql")?;
    let (v, name) = stem.split_once('_')?;
    let ok_version = !v.is_empty() && v.len() <= 18 && v.bytes().all(|b| b.is_ascii_digit());
    let ok_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !(ok_version && ok_name) {
        return None;
    }
    Some((v.parse().ok()?, name.to_string()))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn marker(line: &str) -> Option<String> {
    let l = line.trim();
    let rest = l.strip_prefix("--")?.trim_start();
    (rest.starts_with("migrate:") || rest.starts_with("pgbox:")).then(|| rest.to_ascii_lowercase())
}

/// A file's up and down sections (byte ranges) and whether it runs without a
/// transaction.
pub type Sections = (Range<usize>, Option<Range<usize>>, bool);

/// Parse one file's text (its name already checked).
pub fn parse_text(file: &str, text: &str) -> Result<Sections, FileError> {
    let mut up_start = 0;
    let mut down: Option<(usize, usize)> = None; // (marker start, body start)
    let mut no_tx = false;
    let mut at = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if let Some(m) = marker(line) {
            if m.starts_with("migrate:up") {
                if down.is_none() {
                    up_start = at + line.len();
                }
                no_tx |= m.contains("transaction:false");
            } else if m.starts_with("migrate:down") {
                if down.is_some() {
                    return Err(FileError::TwoDowns {
                        file: file.into(),
                        line: n + 1,
                    });
                }
                down = Some((at, at + line.len()));
            } else if m.starts_with("pgbox:no-transaction") {
                no_tx = true;
            }
        }
        at += line.len();
    }
    let up = up_start..down.map_or(text.len(), |d| d.0);
    let down = down.map(|d| d.1..text.len());
    if !sql::has_code(&text[up.clone()]) {
        return Err(match &down {
            Some(d) if sql::has_code(&text[d.clone()]) => {
                FileError::DownWithoutUp { file: file.into() }
            }
            _ => FileError::Empty { file: file.into() },
        });
    }
    let down = down.filter(|d| sql::has_code(&text[d.clone()]));
    if !no_tx {
        for r in std::iter::once(&up).chain(down.as_ref()) {
            if let Some(st) = sql::split(&text[r.clone()], r.start)
                .iter()
                .find(|st| sql::controls_transaction(st.text))
            {
                return Err(FileError::TransactionControl {
                    file: file.into(),
                    line: sql::line_col(text, st.offset).0,
                    statement: st
                        .text
                        .split_whitespace()
                        .take(2)
                        .collect::<Vec<_>>()
                        .join(" ")
                        .trim_end_matches(';')
                        .to_string(),
                });
            }
        }
    }
    Ok((up, down, no_tx))
}

/// Read and check every `.sql` file of `dir`, in version order. Other files are
/// ignored; a missing folder is an empty history.
pub fn load(dir: &Path) -> Result<Vec<Migration>, Vec<FileError>> {
    let mut errors = Vec::new();
    let mut by_version: BTreeMap<i64, Migration> = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(vec![FileError::Unreadable {
                file: dir.display().to_string(),
                reason: e.to_string(),
            }])
        }
    };
    let mut names: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(n, _)| n.ends_with(".sql"))
        .collect();
    names.sort();
    for (file, path) in names {
        let Some((version, name)) = parse_name(&file) else {
            errors.push(FileError::Malformed { file });
            continue;
        };
        let text = match std::fs::read(&path).map(String::from_utf8) {
            Ok(Ok(t)) => t,
            Ok(Err(_)) => {
                errors.push(FileError::Unreadable {
                    file,
                    reason: "not UTF-8".into(),
                });
                continue;
            }
            Err(e) => {
                errors.push(FileError::Unreadable {
                    file,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let (up, down, no_transaction) = match parse_text(&file, &text) {
            Ok(x) => x,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if let Some(other) = by_version.get(&version) {
            errors.push(FileError::Duplicate {
                file,
                other: other.file_name(),
                version,
            });
            continue;
        }
        by_version.insert(
            version,
            Migration {
                version,
                name,
                sha256: sha256_hex(text.as_bytes()),
                path,
                text,
                up,
                down,
                no_transaction,
            },
        );
    }
    if errors.is_empty() {
        Ok(by_version.into_values().collect())
    } else {
        Err(errors)
    }
}

/// A file name for `migrate new`: lowercase, runs of other characters as `_`.
pub fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('_') {
            s.push('_');
        }
    }
    s.trim_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            parse_name("20261128014500_create_users.sql"),
            Some((20261128014500, "create_users".into()))
        );
        assert_eq!(parse_name("1_a-b.sql"), Some((1, "a-b".into())));
        for bad in [
            "create.sql",
            "_x.sql",
            "12_.sql",
            "12_x.up.sql",
            "12a_x.sql",
            "12_x y.sql",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
        assert_eq!(slug("Add users, again!"), "add_users_again");
    }

    #[test]
    fn sections_and_markers() {
        let t = "-- migrate:up\ncreate table a();\n-- migrate:down\ndrop table a;\n";
        let (up, down, nt) = parse_text("f", t).unwrap();
        assert_eq!(&t[up], "create table a();\n");
        assert_eq!(&t[down.unwrap()], "drop table a;\n");
        assert!(!nt);
        let (_, down, nt) = parse_text(
            "f",
            "-- pgbox:no-transaction\ncreate index concurrently i on a(x);",
        )
        .unwrap();
        assert!(nt && down.is_none());
        assert!(
            parse_text("f", "-- migrate:up transaction:false\nselect 1;")
                .unwrap()
                .2
        );
        assert_eq!(
            parse_text("f", "  \n-- nothing\n"),
            Err(FileError::Empty { file: "f".into() })
        );
        assert_eq!(
            parse_text("f", "-- migrate:up\n\n-- migrate:down\ndrop table a;"),
            Err(FileError::DownWithoutUp { file: "f".into() })
        );
        assert!(matches!(
            parse_text("f", "select 1;\ncommit;\nselect 2;"),
            Err(FileError::TransactionControl { line: 2, .. })
        ));
        assert!(parse_text("f", "-- pgbox:no-transaction\nselect 1;\ncommit;").is_ok());
        assert!(parse_text(
            "f",
            "create function f() returns int begin atomic select 1; end;"
        )
        .is_ok());
        assert!(matches!(
            parse_text("f", "select 1;\n-- migrate:down\n-- migrate:down\n"),
            Err(FileError::TwoDowns { line: 3, .. })
        ));
    }

    #[test]
    fn a_folder_reports_every_problem() {
        let d = tempfile::tempdir().unwrap();
        let w = |n: &str, t: &str| std::fs::write(d.path().join(n), t).unwrap();
        w("1_a.sql", "select 1;");
        w("01_b.sql", "select 1;");
        w("bad.sql", "select 1;");
        w("2_empty.sql", "\n");
        w("README.md", "not sql");
        let errs = load(d.path()).unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs
            .iter()
            .any(|e| matches!(e, FileError::Duplicate { version: 1, .. })));
        assert!(errs
            .iter()
            .any(|e| matches!(e, FileError::Malformed { .. })));
        assert!(errs.iter().any(|e| matches!(e, FileError::Empty { .. })));
    }
}
