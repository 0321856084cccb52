//! How psql would read one statement or backslash command of a plain SQL file:
//! the tokens of a statement, what it does ([`Kind`]: plain, COPY, `\connect`, a
//! database statement that can be pointed at the scratch database, or something
//! that acts on the whole server), and the target of a `\connect`.

/// The largest statement kept whole for a rewrite (database statements are short).
pub(super) const KEEP: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DbVerb {
    Create,
    Drop,
    /// ALTER, COMMENT ON, SECURITY LABEL ON, GRANT/REVOKE ON DATABASE: rewritable.
    Property,
}

#[derive(Debug, Clone)]
pub(super) enum Kind {
    /// Ordinary statements acting inside the current database.
    Plain,
    Copy {
        table: String,
        rows: u64,
    },
    Connect(String),
    /// `\restrict` / `\unrestrict` (pg_dump's own guard; psql gets ours instead).
    Restrict,
    /// Any other backslash command.
    Meta(String),
    Database {
        verb: DbVerb,
        name: String,
        before: String,
        after: String,
        what: String,
    },
    /// Acts on the whole server (roles, tablespaces, ALTER SYSTEM).
    Cluster(String),
    /// Reaches outside PostgreSQL (COPY PROGRAM, COPY to or from a server file).
    Outside(String),
}

#[derive(Debug, Clone)]
pub(super) struct Item {
    pub(super) kind: Kind,
    pub(super) first: u64,
    pub(super) last: u64,
    /// The database a `\connect` switched to; `None` before the first one.
    pub(super) ctx: Option<String>,
}

/// A token of a statement: a word (keywords and identifiers, lowercased unless quoted),
/// a string constant, or a single character, with its byte span in the statement.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Word(String, bool),
    Str,
    Other(u8),
}

pub(super) fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}
pub(super) fn is_ident(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// The first `max` tokens of a statement, with spans.
pub(super) fn tokens(s: &[u8], max: usize) -> Vec<(Tok, usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() && out.len() < max {
        let b = s[i];
        if b.is_ascii_whitespace() {
            i += 1;
        } else if s[i..].starts_with(b"--") {
            while i < s.len() && s[i] != b'\n' {
                i += 1;
            }
        } else if s[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < s.len() {
                if s[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if s[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b == b'"' {
            let start = i;
            let mut v = Vec::new();
            i += 1;
            while i < s.len() {
                if s[i] == b'"' {
                    if s.get(i + 1) == Some(&b'"') {
                        v.push(b'"');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                v.push(s[i]);
                i += 1;
            }
            out.push((
                Tok::Word(String::from_utf8_lossy(&v).into_owned(), true),
                start,
                i,
            ));
        } else if b == b'\'' {
            let start = i;
            let escape = start > 0 && matches!(s[start - 1], b'E' | b'e');
            i += 1;
            while i < s.len() {
                if escape && s[i] == b'\\' {
                    i += 2;
                    continue;
                }
                if s[i] == b'\'' {
                    if s.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            out.push((Tok::Str, start, i));
        } else if is_ident_start(b) {
            let start = i;
            while i < s.len() && is_ident(s[i]) {
                i += 1;
            }
            // E'...' is one string constant.
            if i - start == 1 && matches!(b, b'E' | b'e') && s.get(i) == Some(&b'\'') {
                continue;
            }
            out.push((
                Tok::Word(String::from_utf8_lossy(&s[start..i]).to_lowercase(), false),
                start,
                i,
            ));
        } else {
            out.push((Tok::Other(b), i, i + 1));
            i += 1;
        }
    }
    out
}

pub(super) fn kw(t: &[(Tok, usize, usize)], i: usize) -> &str {
    match t.get(i) {
        Some((Tok::Word(w, false), _, _)) => w,
        _ => "",
    }
}

pub(super) fn name_at(t: &[(Tok, usize, usize)], i: usize) -> Option<(String, usize, usize)> {
    match t.get(i) {
        Some((Tok::Word(w, _), a, b)) => Some((w.clone(), *a, *b)),
        _ => None,
    }
}

/// `schema.table` of a COPY target, unquoted (as the row counts name tables).
pub(super) fn copy_table(t: &[(Tok, usize, usize)]) -> String {
    let mut parts = Vec::new();
    let mut i = 1;
    while let Some((Tok::Word(w, _), _, _)) = t.get(i) {
        parts.push(w.clone());
        if matches!(t.get(i + 1), Some((Tok::Other(b'.'), _, _))) {
            i += 2;
        } else {
            break;
        }
    }
    parts.join(".")
}

pub(super) fn classify(stmt: &[u8], complete: bool) -> Kind {
    let t = tokens(stmt, 48);
    let (k0, k1) = (kw(&t, 0), kw(&t, 1));
    let upper = |n: usize| {
        (0..n)
            .map(|i| kw(&t, i).to_uppercase())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let database = |verb: DbVerb, at: usize, what: String| match name_at(&t, at) {
        Some((name, a, b)) if complete => Kind::Database {
            verb,
            name,
            before: String::from_utf8_lossy(&stmt[..a]).trim_start().to_string(),
            after: String::from_utf8_lossy(&stmt[b..]).trim_end().to_string(),
            what,
        },
        _ => Kind::Cluster(what),
    };
    match (k0, k1) {
        ("create", "database") => database(DbVerb::Create, 2, "CREATE DATABASE".into()),
        ("drop", "database") => {
            let at = if kw(&t, 2) == "if" && kw(&t, 3) == "exists" {
                4
            } else {
                2
            };
            database(DbVerb::Drop, at, "DROP DATABASE".into())
        }
        ("alter", "database") => {
            if kw(&t, 3) == "rename" {
                Kind::Cluster("ALTER DATABASE ... RENAME".into())
            } else {
                database(DbVerb::Property, 2, "ALTER DATABASE".into())
            }
        }
        ("comment", "on") | ("security", "label") => {
            let on = (1..t.len()).find(|&i| kw(&t, i) == "on").unwrap_or(1);
            match kw(&t, on + 1) {
                "database" => database(DbVerb::Property, on + 2, upper(on + 2)),
                "role" | "tablespace" => Kind::Cluster(upper(on + 2)),
                _ => Kind::Plain,
            }
        }
        ("grant", _) | ("revoke", _) => {
            match (0..t.len()).find(|&i| kw(&t, i) == "on") {
                Some(on) if kw(&t, on + 1) == "database" => {
                    // One database per statement, as pg_dump writes them.
                    match t.get(on + 3) {
                        Some((Tok::Other(b','), _, _)) => {
                            Kind::Cluster(format!("{} ON DATABASE", k0.to_uppercase()))
                        }
                        _ => database(
                            DbVerb::Property,
                            on + 2,
                            format!("{} ON DATABASE", k0.to_uppercase()),
                        ),
                    }
                }
                Some(_) => Kind::Plain,
                // GRANT role TO role: membership is server-wide.
                None if t.len() > 1 => {
                    Kind::Cluster(format!("{} (role membership)", k0.to_uppercase()))
                }
                None => Kind::Plain,
            }
        }
        ("create" | "alter" | "drop", "role" | "group") => Kind::Cluster(upper(2)),
        ("create" | "alter" | "drop", "user") if kw(&t, 2) != "mapping" => Kind::Cluster(upper(2)),
        ("create" | "alter" | "drop", "tablespace") | ("alter", "system") => {
            Kind::Cluster(upper(2))
        }
        ("reassign" | "drop", "owned") => Kind::Cluster(upper(2)),
        ("copy", _) => {
            let dir = (1..t.len()).find(|&i| matches!(kw(&t, i), "from" | "to"));
            match dir {
                Some(d) => match (kw(&t, d), t.get(d + 1)) {
                    (_, Some((Tok::Str, _, _))) => {
                        Kind::Outside("COPY to or from a server file".into())
                    }
                    (_, _) if kw(&t, d + 1) == "program" => {
                        Kind::Outside("COPY ... PROGRAM".into())
                    }
                    ("from", _) if kw(&t, d + 1) == "stdin" => Kind::Copy {
                        table: copy_table(&t),
                        rows: 0,
                    },
                    _ => Kind::Plain,
                },
                None => Kind::Plain,
            }
        }
        _ => Kind::Plain,
    }
}

/// Read a quoted run starting at `b[i] == q` into `w` (a doubled quote stands for
/// itself); returns the index after the closing quote.
fn read_quoted(b: &[u8], mut i: usize, q: u8, w: &mut Vec<u8>) -> usize {
    i += 1;
    while i < b.len() {
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                w.push(q);
                i += 2;
                continue;
            }
            break;
        }
        w.push(b[i]);
        i += 1;
    }
    i + 1
}

/// psql's reading of `\connect` arguments as pg_dump writes them: a bare name, or
/// `-reuse-previous=on "dbname='na\'me'"` for names that need quoting.
pub(super) fn connect_target(args: &str) -> Option<String> {
    let mut words = Vec::new();
    let b = args.trim().as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let mut w = Vec::new();
        while i < b.len() && !b[i].is_ascii_whitespace() {
            match b[i] {
                q @ (b'"' | b'\'') => i = read_quoted(b, i, q, &mut w),
                c => {
                    w.push(c);
                    i += 1;
                }
            }
        }
        words.push(String::from_utf8_lossy(&w).into_owned());
    }
    let words: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| !w.starts_with("-reuse-previous"))
        .collect();
    let [one] = words.as_slice() else {
        return None;
    };
    let Some(v) = one.strip_prefix("dbname=") else {
        return Some(one.to_string());
    };
    // A connection-string value: 'quoted' with backslash escapes, or bare.
    let Some(q) = v.strip_prefix('\'') else {
        return (!v.contains(char::is_whitespace)).then(|| v.to_string());
    };
    let mut out = String::new();
    let mut chars = q.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '\'' => return chars.as_str().is_empty().then_some(out),
            c => out.push(c),
        }
    }
    None
}
