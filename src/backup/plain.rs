//! Plain SQL restores that cannot act outside the scratch database.
//!
//! A plain dump is a psql script: besides the objects of one database it may hold
//! `DROP DATABASE`, `CREATE DATABASE`, `\connect` (a `pg_dump -C -c` file), roles and
//! every database of a cluster (`pg_dumpall`), or shell escapes. Run as is against a
//! scratch database, such a file reaches the live database. So the file is read once
//! on the host, decompressed and split the way psql splits it (comments, quotes,
//! dollar quotes, parentheses, COPY data, backslash commands), and turned into a
//! [`Plan`]: which lines psql may see, and which of the file's own statements about
//! its database are pointed at the scratch database instead.
//!
//! - `\connect` is removed; only the one database section chosen (the single one of a
//!   `pg_dump -C` file, or `--db NAME` of a `pg_dumpall` file) is kept.
//! - `CREATE DATABASE`/`DROP DATABASE` of that database are removed; its `ALTER
//!   DATABASE`, `COMMENT ON DATABASE` and `GRANT ... ON DATABASE` are rewritten to
//!   name the scratch database, so its owner, settings and privileges come along.
//! - Roles, tablespaces and other databases of a cluster dump are left out.
//! - Anything else that acts on the whole server (roles, `ALTER SYSTEM`, tablespaces,
//!   another database, `COPY ... PROGRAM` or server files) or any other backslash
//!   command refuses the file, naming the line, before anything is touched.
//!
//! psql then runs the result in its restricted mode (`\restrict`), where any backslash
//! command the scan did not see is an error, so a difference between this scanner and
//! psql's own cannot turn into an escape. The rows in the kept COPY blocks are counted
//! on the way, for the check after the restore.

use std::collections::BTreeMap;
use std::io::Read;

use crate::error::Fail;

/// One edit of the file, by 1-based line numbers (inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    Delete {
        first: u64,
        last: u64,
    },
    /// Replace the lines with `before` + the scratch database's name + `after`.
    Rename {
        first: u64,
        last: u64,
        before: String,
        after: String,
    },
}

/// What to feed psql, and what the result must hold.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The database sections of the file (`\connect` targets), in order.
    pub sections: Vec<String>,
    /// The section restored, if the file has any.
    pub section: Option<String>,
    /// A whole-cluster dump (pg_dumpall).
    pub cluster: bool,
    pub edits: Vec<Edit>,
    /// Rows per table (`schema.table`) in the COPY blocks that are restored.
    pub tables: BTreeMap<String, u64>,
}

impl Plan {
    /// A sed script applying the edits, with `first` inserted before line 1.
    pub fn sed_script(&self, scratch_ident: &str, first: Option<&str>) -> String {
        fn text(t: &str) -> String {
            // sed `i\`/`c\` text: backslashes doubled, line breaks escaped.
            t.replace('\\', "\\\\").replace('\n', "\\\n")
        }
        let mut s = String::new();
        if let Some(f) = first {
            s.push_str(&format!("1i\\\n{}\n", text(f)));
        }
        for e in &self.edits {
            match e {
                Edit::Delete { first, last } => s.push_str(&format!("{first},{last}d\n")),
                Edit::Rename {
                    first,
                    last,
                    before,
                    after,
                } => s.push_str(&format!(
                    "{first},{last}c\\\n{}\n",
                    text(&format!("{before}{scratch_ident}{after}"))
                )),
            }
        }
        s
    }
}

/// The largest statement kept whole for a rewrite (database statements are short).
const KEEP: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbVerb {
    Create,
    Drop,
    /// ALTER, COMMENT ON, SECURITY LABEL ON, GRANT/REVOKE ON DATABASE: rewritable.
    Property,
}

#[derive(Debug, Clone)]
enum Kind {
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
struct Item {
    kind: Kind,
    first: u64,
    last: u64,
    /// The database a `\connect` switched to; `None` before the first one.
    ctx: Option<String>,
}

/// A token of a statement: a word (keywords and identifiers, lowercased unless quoted),
/// a string constant, or a single character, with its byte span in the statement.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String, bool),
    Str,
    Other(u8),
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}
fn is_ident(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// The first `max` tokens of a statement, with spans.
fn tokens(s: &[u8], max: usize) -> Vec<(Tok, usize, usize)> {
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

fn kw(t: &[(Tok, usize, usize)], i: usize) -> &str {
    match t.get(i) {
        Some((Tok::Word(w, false), _, _)) => w,
        _ => "",
    }
}

fn name_at(t: &[(Tok, usize, usize)], i: usize) -> Option<(String, usize, usize)> {
    match t.get(i) {
        Some((Tok::Word(w, _), a, b)) => Some((w.clone(), *a, *b)),
        _ => None,
    }
}

/// `schema.table` of a COPY target, unquoted (as the row counts name tables).
fn copy_table(t: &[(Tok, usize, usize)]) -> String {
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

fn classify(stmt: &[u8], complete: bool) -> Kind {
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

/// psql's reading of `\connect` arguments as pg_dump writes them: a bare name, or
/// `-reuse-previous=on "dbname='na\'me'"` for names that need quoting.
fn connect_target(args: &str) -> Option<String> {
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
                b'"' => {
                    i += 1;
                    while i < b.len() {
                        if b[i] == b'"' {
                            if b.get(i + 1) == Some(&b'"') {
                                w.push(b'"');
                                i += 2;
                                continue;
                            }
                            break;
                        }
                        w.push(b[i]);
                        i += 1;
                    }
                    i += 1;
                }
                b'\'' => {
                    i += 1;
                    while i < b.len() {
                        if b[i] == b'\'' {
                            if b.get(i + 1) == Some(&b'\'') {
                                w.push(b'\'');
                                i += 2;
                                continue;
                            }
                            break;
                        }
                        w.push(b[i]);
                        i += 1;
                    }
                    i += 1;
                }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Normal,
    LineComment,
    Block(u32),
    Squote { escape: bool },
    SquoteEnd { escape: bool },
    Dquote,
    DollarTag,
    Dollar,
    Meta,
    Copy,
}

/// Splits a psql script into items the way psql reads it.
struct Scanner {
    st: St,
    line: u64,
    ctx: Option<String>,
    items: Vec<Item>,
    /// The statement being read: its first line, bytes (up to KEEP), paren depth.
    stmt: Vec<u8>,
    stmt_len: usize,
    stmt_first: u64,
    parens: i32,
    prev: u8,
    prev2: u8,
    tag: Vec<u8>,
    close: usize,
    meta: Vec<u8>,
    meta_line: u64,
    meta_in_stmt: bool,
    copy_pending: bool,
    copy_line: Vec<u8>,
    copy_rows: u64,
    esc_next: bool,
}

impl Scanner {
    fn new() -> Scanner {
        Scanner {
            st: St::Normal,
            line: 1,
            ctx: None,
            items: Vec::new(),
            stmt: Vec::new(),
            stmt_len: 0,
            stmt_first: 0,
            parens: 0,
            prev: b'\n',
            prev2: b'\n',
            tag: Vec::new(),
            close: 0,
            meta: Vec::new(),
            meta_line: 0,
            meta_in_stmt: false,
            copy_pending: false,
            copy_line: Vec::new(),
            copy_rows: 0,
            esc_next: false,
        }
    }

    fn push(&mut self, kind: Kind, first: u64, last: u64) {
        // Runs of ordinary statements in one database are one item.
        if let (Kind::Plain, Some(prev)) = (&kind, self.items.last_mut()) {
            if matches!(prev.kind, Kind::Plain) && prev.ctx == self.ctx {
                prev.last = last;
                return;
            }
        }
        self.items.push(Item {
            kind,
            first,
            last,
            ctx: self.ctx.clone(),
        });
    }

    /// Keep a byte of the current statement.
    fn keep(&mut self, b: u8) {
        if self.stmt_len == 0 && b.is_ascii_whitespace() {
            return;
        }
        if self.stmt_len == 0 {
            self.stmt_first = self.line;
        }
        if self.stmt.len() < KEEP {
            self.stmt.push(b);
        }
        self.stmt_len += 1;
    }

    /// Take back the byte that turned out to open a comment; a space keeps the
    /// words on either side of the comment apart.
    fn unkeep(&mut self) {
        if self.stmt_len > 0 {
            self.stmt.pop();
            self.stmt_len -= 1;
        }
        if self.stmt_len > 0 {
            self.keep(b' ');
        }
    }

    fn end_statement(&mut self) {
        if self.stmt_len == 0 {
            return;
        }
        let complete = self.stmt_len <= KEEP;
        let kind = classify(&self.stmt, complete);
        if matches!(kind, Kind::Copy { .. }) {
            self.copy_pending = true;
        }
        let first = self.stmt_first;
        self.push(kind, first, self.line);
        self.stmt.clear();
        self.stmt_len = 0;
        self.parens = 0;
    }

    fn end_meta(&mut self) {
        let text = String::from_utf8_lossy(&self.meta).trim().to_string();
        self.meta.clear();
        let (cmd, args) = text.split_once(char::is_whitespace).unwrap_or((&text, ""));
        let kind = if self.meta_in_stmt {
            Kind::Meta(format!("\\{text} (inside a statement)"))
        } else {
            match cmd {
                "connect" | "c" => match connect_target(args) {
                    Some(db) => Kind::Connect(db),
                    None => Kind::Meta(format!("\\{text}")),
                },
                "restrict" | "unrestrict" => Kind::Restrict,
                _ => Kind::Meta(format!("\\{text}")),
            }
        };
        let line = self.meta_line;
        self.push(kind.clone(), line, line);
        if let Kind::Connect(db) = kind {
            self.ctx = Some(db);
        }
    }

    fn newline(&mut self) {
        self.line += 1;
        if self.copy_pending {
            self.copy_pending = false;
            self.copy_rows = 0;
            self.copy_line.clear();
            self.st = St::Copy;
        }
    }

    fn feed(&mut self, b: u8) {
        loop {
            match self.st {
                St::Normal => {
                    if b == b'\n' {
                        self.keep(b);
                        self.newline();
                    } else if b == b'-' && self.prev == b'-' {
                        self.unkeep();
                        self.st = St::LineComment;
                    } else if b == b'*' && self.prev == b'/' {
                        self.unkeep();
                        self.st = St::Block(1);
                    } else if b == b'\'' {
                        let escape = matches!(self.prev, b'E' | b'e') && !is_ident(self.prev2);
                        self.keep(b);
                        self.esc_next = false;
                        self.st = St::Squote { escape };
                    } else if b == b'"' {
                        self.keep(b);
                        self.st = St::Dquote;
                    } else if b == b'$' && !is_ident(self.prev) {
                        self.keep(b);
                        self.tag.clear();
                        self.st = St::DollarTag;
                    } else if b == b'\\' {
                        self.meta_in_stmt = self.stmt_len > 0;
                        self.meta_line = self.line;
                        self.meta.clear();
                        self.st = St::Meta;
                    } else if b == b'(' {
                        self.keep(b);
                        self.parens += 1;
                    } else if b == b')' {
                        self.keep(b);
                        self.parens -= 1;
                    } else if b == b';' && self.parens <= 0 {
                        self.keep(b);
                        self.end_statement();
                    } else {
                        self.keep(b);
                    }
                }
                St::LineComment => {
                    if b == b'\n' {
                        self.keep(b);
                        self.newline();
                        self.st = St::Normal;
                    }
                }
                St::Block(d) => {
                    if b == b'\n' {
                        self.newline();
                    } else if b == b'*' && self.prev == b'/' {
                        self.st = St::Block(d + 1);
                    } else if b == b'/' && self.prev == b'*' {
                        self.st = if d == 1 { St::Normal } else { St::Block(d - 1) };
                        // "*/*" must not open another comment.
                        self.prev2 = self.prev;
                        self.prev = b' ';
                        return;
                    }
                }
                St::Squote { escape } => {
                    self.keep(b);
                    if b == b'\n' {
                        self.newline();
                    }
                    if escape && self.esc_next {
                        self.esc_next = false;
                    } else if escape && b == b'\\' {
                        self.esc_next = true;
                    } else if b == b'\'' {
                        self.st = St::SquoteEnd { escape };
                    }
                }
                St::SquoteEnd { escape } => {
                    if b == b'\'' {
                        self.keep(b);
                        self.st = St::Squote { escape };
                        self.prev2 = self.prev;
                        self.prev = b' ';
                        return;
                    }
                    self.st = St::Normal;
                    continue;
                }
                St::Dquote => {
                    self.keep(b);
                    if b == b'\n' {
                        self.newline();
                    } else if b == b'"' {
                        self.st = St::Normal;
                    }
                }
                St::DollarTag => {
                    if b == b'$' {
                        self.keep(b);
                        self.close = 0;
                        self.st = St::Dollar;
                    } else if (self.tag.is_empty() && is_ident_start(b))
                        || (!self.tag.is_empty() && is_ident(b) && b != b'$')
                    {
                        self.keep(b);
                        self.tag.push(b);
                    } else {
                        // Not a dollar quote ($1, or a lone $).
                        self.st = St::Normal;
                        continue;
                    }
                }
                St::Dollar => {
                    self.keep(b);
                    if b == b'\n' {
                        self.newline();
                    }
                    // Match the closing "$tag$".
                    let want = |k: usize, tag: &[u8]| -> u8 {
                        if k == 0 || k == tag.len() + 1 {
                            b'$'
                        } else {
                            tag[k - 1]
                        }
                    };
                    if b == want(self.close, &self.tag) {
                        self.close += 1;
                    } else {
                        self.close = usize::from(b == b'$');
                    }
                    if self.close == self.tag.len() + 2 {
                        self.st = St::Normal;
                        self.prev2 = self.prev;
                        self.prev = b' ';
                        return;
                    }
                }
                St::Meta => {
                    if b == b'\n' {
                        self.end_meta();
                        self.st = St::Normal;
                        self.newline();
                    } else {
                        self.meta.push(b);
                    }
                }
                St::Copy => {
                    if b == b'\n' {
                        let l = self
                            .copy_line
                            .strip_suffix(b"\r")
                            .unwrap_or(&self.copy_line);
                        if l == b"\\." {
                            if let Some(Item {
                                kind: Kind::Copy { rows, .. },
                                last,
                                ..
                            }) = self.items.last_mut()
                            {
                                *rows = self.copy_rows;
                                *last = self.line;
                            }
                            self.st = St::Normal;
                            self.prev = b'\n';
                        } else {
                            self.copy_rows += 1;
                        }
                        self.copy_line.clear();
                        self.line += 1;
                    } else if self.copy_line.len() < 4 {
                        self.copy_line.push(b);
                    } else if self.copy_line.len() == 4 {
                        self.copy_line.push(b'x'); // long: not the end marker
                    }
                    return;
                }
            }
            break;
        }
        self.prev2 = self.prev;
        self.prev = b;
    }

    fn finish(mut self) -> Vec<Item> {
        match self.st {
            St::Meta => self.end_meta(),
            St::Copy => {
                if let Some(Item {
                    kind: Kind::Copy { rows, .. },
                    last,
                    ..
                }) = self.items.last_mut()
                {
                    *rows = self.copy_rows + u64::from(!self.copy_line.is_empty());
                    *last = self.line;
                }
            }
            _ => self.end_statement(),
        }
        self.items
    }
}

fn refuse(line: u64, what: &str, why: &str) -> anyhow::Error {
    Fail::new(format!("line {line} of the file: {what} {why}"))
        .hint("pgbox restores a plain SQL file into one scratch database only; remove that statement from the file (or apply it yourself with `pgbox psql`), then restore again")
        .into()
}

/// Read a plain SQL file and decide what psql may run of it. `want` picks the
/// database section of a file with several (`--db`).
pub fn plan(input: impl Read, want: Option<&str>) -> anyhow::Result<Plan> {
    let mut sc = Scanner::new();
    let mut r = std::io::BufReader::with_capacity(1 << 20, input);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            sc.feed(b);
        }
    }
    decide(sc.finish(), want)
}

fn decide(items: Vec<Item>, want: Option<&str>) -> anyhow::Result<Plan> {
    let mut sections: Vec<String> = Vec::new();
    for it in &items {
        if let Kind::Connect(db) = &it.kind {
            if !sections.contains(db) {
                sections.push(db.clone());
            }
        }
    }
    let roles_first = items
        .iter()
        .any(|i| i.ctx.is_none() && matches!(i.kind, Kind::Cluster(_)));
    let cluster = sections.len() > 1 || (!sections.is_empty() && roles_first);
    let section = match (sections.as_slice(), want) {
        ([], _) => None,
        (_, Some(w)) if sections.iter().any(|s| s == w) => Some(w.to_string()),
        ([one], _) if !cluster => Some(one.clone()),
        _ => {
            let names = sections
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let what = if cluster {
                "is a whole-cluster dump (pg_dumpall): it holds roles and the databases"
            } else {
                "holds the databases"
            };
            let msg = match want {
                Some(w) => format!("this SQL file {what} {names}, not `{w}`"),
                None => format!("this SQL file {what} {names}"),
            };
            return Err(Fail::new(msg)
                .hint("pgbox restores one database from it: pass `--db NAME` to restore that database's section in place of the database of that name; roles are not restored from it")
                .into());
        }
    };
    let mut plan = Plan {
        sections,
        section: section.clone(),
        cluster,
        ..Plan::default()
    };
    let ours = |ctx: &Option<String>| ctx.is_none() || *ctx == section;
    // Per item: None = keep, Some(None) = delete, Some(Some((before, after))) = rename.
    type Decision = Option<Option<(String, String)>>;
    let mut decisions: Vec<Decision> = Vec::with_capacity(items.len());
    for it in &items {
        let d: Decision = match &it.kind {
            Kind::Plain => (!ours(&it.ctx)).then_some(None),
            Kind::Copy { table, rows } => {
                if ours(&it.ctx) {
                    *plan.tables.entry(table.clone()).or_insert(0) += rows;
                    None
                } else {
                    Some(None)
                }
            }
            Kind::Connect(_) | Kind::Restrict => Some(None),
            Kind::Meta(m) => {
                return Err(refuse(
                    it.first,
                    &format!("`{m}`"),
                    "is a psql command that could act outside the database being restored",
                ))
            }
            Kind::Outside(what) => {
                return Err(refuse(it.first, what, "reaches outside the database"))
            }
            Kind::Cluster(what) => {
                if cluster && it.ctx.is_none() {
                    Some(None)
                } else {
                    return Err(refuse(
                        it.first,
                        what,
                        "changes the whole server, not one database",
                    ));
                }
            }
            Kind::Database {
                verb,
                name,
                before,
                after,
                what,
            } => {
                let mine = Some(name) == section.as_ref();
                match (mine, verb) {
                    (true, DbVerb::Create | DbVerb::Drop) => Some(None),
                    (true, DbVerb::Property) => Some(Some((before.clone(), after.clone()))),
                    (false, _) if cluster => Some(None),
                    (false, _) => {
                        return Err(refuse(
                            it.first,
                            &format!("{what} `{name}`"),
                            "acts on another database",
                        ))
                    }
                }
            }
        };
        decisions.push(d);
    }
    // Edits must not cut a line that also holds something kept.
    for (i, it) in items.iter().enumerate() {
        if decisions[i].is_none() {
            continue;
        }
        let clash = |j: usize| {
            decisions[j].is_none() && (items[j].last >= it.first && items[j].first <= it.last)
        };
        if (i > 0 && clash(i - 1)) || (i + 1 < items.len() && clash(i + 1)) {
            return Err(refuse(
                it.first,
                "a statement that pgbox must leave out",
                "shares its line with one it keeps",
            ));
        }
    }
    for (it, d) in items.iter().zip(decisions) {
        match d {
            None => {}
            Some(None) => match plan.edits.last_mut() {
                Some(Edit::Delete { last, .. }) if *last + 1 >= it.first => {
                    *last = (*last).max(it.last)
                }
                _ => plan.edits.push(Edit::Delete {
                    first: it.first,
                    last: it.last,
                }),
            },
            Some(Some((before, after))) => plan.edits.push(Edit::Rename {
                first: it.first,
                last: it.last,
                before,
                after,
            }),
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sql: &str, want: Option<&str>) -> anyhow::Result<Plan> {
        plan(sql.as_bytes(), want)
    }

    #[test]
    fn a_single_database_dump_passes_untouched_with_its_rows_counted() {
        let sql = "SET x = 1;\nCREATE TABLE public.t (a text);\nCOPY public.t (a) FROM stdin;\nDROP DATABASE x;\n\\connect y\n\\.\nCOPY \"S p\".\"T\"\"q\" (a) FROM stdin;\n\\.\nselect $$;\\connect z$$, 'it''s;\\c', E'\\';\\c';\n/* ; \\c /* nested */ ; */ select 1;\n";
        let p = run(sql, None).unwrap();
        assert!(p.edits.is_empty(), "{:?}", p.edits);
        assert_eq!(p.tables["public.t"], 2);
        assert_eq!(p.tables["S p.T\"q"], 0);
    }

    #[test]
    fn a_create_clean_dump_is_pointed_at_the_scratch_database() {
        let sql = "\\restrict K\nSET a = 1;\nDROP DATABASE app;\nCREATE DATABASE app WITH TEMPLATE = template0;\nALTER DATABASE app OWNER TO app;\n\\unrestrict K\n\\connect app\n\\restrict K\nSET a = 1;\nCOMMENT ON DATABASE app IS 'hi';\nALTER DATABASE app SET work_mem TO '8MB';\nCREATE TABLE t (x int);\nCOPY public.t (x) FROM stdin;\n1\n2\n\\.\n\\unrestrict K\n";
        let p = run(sql, None).unwrap();
        assert_eq!(p.section.as_deref(), Some("app"));
        assert_eq!(
            p.edits,
            vec![
                Edit::Delete { first: 1, last: 1 },
                Edit::Delete { first: 3, last: 4 },
                Edit::Rename {
                    first: 5,
                    last: 5,
                    before: "ALTER DATABASE ".into(),
                    after: " OWNER TO app;".into()
                },
                Edit::Delete { first: 6, last: 8 },
                Edit::Rename {
                    first: 10,
                    last: 10,
                    before: "COMMENT ON DATABASE ".into(),
                    after: " IS 'hi';".into()
                },
                Edit::Rename {
                    first: 11,
                    last: 11,
                    before: "ALTER DATABASE ".into(),
                    after: " SET work_mem TO '8MB';".into()
                },
                Edit::Delete {
                    first: 17,
                    last: 17
                },
            ]
        );
        assert_eq!(p.tables["public.t"], 2);
        let sed = p.sed_script("\"s\"", Some("\\restrict R"));
        assert!(sed.starts_with("1i\\\n\\\\restrict R\n1,1d\n"), "{sed}");
        assert!(
            sed.contains("5,5c\\\nALTER DATABASE \"s\" OWNER TO app;\n"),
            "{sed}"
        );
    }

    #[test]
    fn a_cluster_dump_needs_a_section_and_keeps_only_it() {
        let sql = "DROP DATABASE IF EXISTS app;\nDROP ROLE IF EXISTS app;\nCREATE ROLE app;\nALTER ROLE app WITH SUPERUSER;\n\\connect template1\nCREATE TABLE junk (x int);\nCREATE DATABASE app;\nALTER DATABASE app OWNER TO app;\n\\connect app\nCREATE TABLE t (x int);\nCOPY public.t (x) FROM stdin;\n1\n\\.\nDROP DATABASE postgres;\nCREATE DATABASE postgres;\n\\connect -reuse-previous=on \"dbname='we\\'ird'\"\nCOPY public.t (x) FROM stdin;\n1\n2\n\\.\n";
        let e = run(sql, None).unwrap_err().to_string();
        assert!(e.contains("whole-cluster dump"), "{e}");
        assert!(e.contains("`template1`, `app`, `we'ird`"), "{e}");
        let e = run(sql, Some("nope")).unwrap_err().to_string();
        assert!(e.contains("not `nope`"), "{e}");
        let p = run(sql, Some("app")).unwrap();
        assert!(p.cluster);
        assert_eq!(p.tables["public.t"], 1);
        assert_eq!(
            p.edits,
            vec![
                Edit::Delete { first: 1, last: 7 },
                Edit::Rename {
                    first: 8,
                    last: 8,
                    before: "ALTER DATABASE ".into(),
                    after: " OWNER TO app;".into()
                },
                Edit::Delete { first: 9, last: 9 },
                Edit::Delete {
                    first: 14,
                    last: 20
                },
            ]
        );
        let p = run(sql, Some("we'ird")).unwrap();
        assert_eq!(p.tables["public.t"], 2);
    }

    #[test]
    fn statements_that_reach_outside_the_database_refuse_the_file() {
        for (sql, want) in [
            (
                "select 1;\n\\! rm -rf /\n",
                "line 2 of the file: `\\! rm -rf /`",
            ),
            ("CREATE ROLE x;\n", "CREATE ROLE"),
            ("DROP DATABASE other;\n", "DROP DATABASE `other`"),
            ("alter system set x = 1;\n", "ALTER SYSTEM"),
            ("COPY t FROM PROGRAM 'id';\n", "PROGRAM"),
            ("COPY t TO '/tmp/x';\n", "server file"),
            ("GRANT admin TO bob;\n", "role membership"),
            ("select 1 \\gexec\n", "inside a statement"),
            ("ALTER DATABASE x RENAME TO y;\n", "RENAME"),
        ] {
            let e = run(sql, None).unwrap_err().to_string();
            assert!(e.contains(want), "{sql}: {e}");
        }
        // Per-database statements that look alike are fine.
        run(
            "CREATE USER MAPPING FOR x SERVER s;\nGRANT SELECT ON t TO bob;\nCOPY t TO stdout;\n",
            None,
        )
        .unwrap();
    }
}
