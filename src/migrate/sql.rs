//! SQL text as PostgreSQL sees it: splitting a script into statements (quotes,
//! dollar quotes, comments and `BEGIN ... END` bodies respected) and turning the
//! server's error position back into a line and column of the file.
//!
//! A file that runs in a transaction is sent whole, so the server's position is an
//! offset into the file's up section; a `no-transaction` file is sent statement by
//! statement (PostgreSQL refuses `CREATE INDEX CONCURRENTLY` in a multi-statement
//! string), so each statement keeps its byte offset in the file.

/// One statement of a script: its text and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    pub offset: usize,
    pub text: &'a str,
}

/// Split `sql` at top-level semicolons; statements holding only whitespace and
/// comments are dropped. `offset` is added to each statement's position.
pub fn split(sql: &str, offset: usize) -> Vec<Statement<'_>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut start) = (0, 0);
    let mut depth = 0i32; // BEGIN ATOMIC ... END bodies
    let mut word = String::new();
    let flush_word = |word: &mut String, depth: &mut i32| {
        match word.to_ascii_lowercase().as_str() {
            "atomic" => *depth += 1,
            "end" if *depth > 0 => *depth -= 1,
            _ => {}
        }
        word.clear();
    };
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphanumeric() || c == b'_' {
            word.push(c as char);
            i += 1;
            continue;
        }
        // `E'...'`: a string where a backslash escapes the quote.
        let escape_string = c == b'\'' && word.eq_ignore_ascii_case("e");
        flush_word(&mut word, &mut depth);
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut nest = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        nest += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        nest -= 1;
                        i += 2;
                        if nest == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'\'' | b'"' => {
                i += 1;
                while i < b.len() {
                    if escape_string && b[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b[i] == c {
                        if b.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'$' => {
                // A dollar quote `$tag$` (not a parameter like `$1`).
                let tag_end = sql[i + 1..]
                    .find(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                    .map(|n| i + 1 + n);
                match tag_end {
                    Some(e)
                        if b[e] == b'$' && !b.get(i + 1).is_some_and(|d| d.is_ascii_digit()) =>
                    {
                        let tag = &sql[i..=e];
                        i = match sql[e + 1..].find(tag) {
                            Some(n) => e + 1 + n + tag.len(),
                            None => b.len(),
                        };
                    }
                    _ => i += 1,
                }
            }
            b';' if depth == 0 => {
                push(&mut out, sql, start, i + 1, offset);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    push(&mut out, sql, start, b.len(), offset);
    out
}

fn push<'a>(out: &mut Vec<Statement<'a>>, sql: &'a str, start: usize, end: usize, offset: usize) {
    let text = &sql[start..end.min(sql.len())];
    if has_code(text) {
        let lead = text.len() - text.trim_start().len();
        out.push(Statement {
            offset: offset + start + lead,
            text: text.trim_start(),
        });
    }
}

/// Whether a statement (as [`split`] returns it) begins or ends a transaction.
pub fn controls_transaction(statement: &str) -> bool {
    let mut rest = statement;
    // Skip leading comments.
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    let words: Vec<String> = rest
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter(|w| !w.is_empty())
        .take(2)
        .map(str::to_ascii_lowercase)
        .collect();
    match words.first().map(String::as_str) {
        Some("commit" | "rollback" | "end" | "abort") => {
            words.get(1).is_none_or(|w| w != "prepared")
        }
        Some("begin") => true,
        Some("start") => words.get(1).is_some_and(|w| w == "transaction"),
        _ => false,
    }
}

/// Whether `sql` holds anything but whitespace, comments and semicolons.
pub fn has_code(sql: &str) -> bool {
    let mut rest = sql;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ';');
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, r)| r);
        } else {
            return !rest.is_empty();
        }
    }
}

/// The 1-based line and column (in characters) of byte `at` in `text`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// The byte offset of PostgreSQL's error position `pos` (1-based, in characters)
/// into `sent`.
pub fn byte_of_position(sent: &str, pos: u32) -> usize {
    let n = (pos as usize).saturating_sub(1);
    sent.char_indices().nth(n).map_or(sent.len(), |(b, _)| b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<&str> {
        split(sql, 0).into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn splits_at_top_level_semicolons_only() {
        assert_eq!(
            texts(
                "create table a (x text default ';');\n-- c; d\ninsert into a values ('it''s;');"
            ),
            [
                "create table a (x text default ';');",
                "-- c; d\ninsert into a values ('it''s;');"
            ]
        );
        let f =
            "create function f() returns int as $body$ select 1; $body$ language sql;\nselect $1;";
        assert_eq!(texts(f).len(), 2);
        let atomic = "create procedure p() begin atomic insert into t values (1); insert into t values (2); end;\nselect 1;";
        assert_eq!(texts(atomic).len(), 2);
        assert_eq!(
            texts("/* a; /* b; */ c; */ select 1;"),
            ["/* a; /* b; */ c; */ select 1;"]
        );
        assert!(texts("-- only a comment\n;\n").is_empty());
        assert_eq!(texts("select E'it\\'s; fine';\nselect 'a\\';").len(), 2);
    }

    #[test]
    fn offsets_point_into_the_file() {
        let sql = "select 1;\n\n  select 2;";
        let st = split(sql, 100);
        assert_eq!(st[1].offset, 100 + sql.find("select 2").unwrap());
    }

    #[test]
    fn positions_become_lines_and_columns() {
        let text = "a\nbé\ncd";
        assert_eq!(line_col(text, text.find('d').unwrap()), (3, 2));
        assert_eq!(byte_of_position("é x", 3), "é ".len());
        assert_eq!(line_col(text, byte_of_position(text, 6)), (3, 1));
        assert!(has_code(" -- x\n select"));
        assert!(!has_code(" -- x\n /* y */ ;"));
    }
}
