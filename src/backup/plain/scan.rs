//! The scanner: a byte-at-a-time state machine that splits a psql script the way
//! psql does (comments, quotes, dollar quotes, parentheses, COPY data, backslash
//! commands) into [`Item`]s with their line numbers, counting COPY rows on the way.

use super::classify::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum St {
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
pub(super) struct Scanner {
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
    pub(super) fn new() -> Scanner {
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

    pub(super) fn feed(&mut self, b: u8) {
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

    pub(super) fn finish(mut self) -> Vec<Item> {
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
