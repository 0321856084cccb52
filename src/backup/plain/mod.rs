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

mod classify;
mod decide;
mod scan;

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

pub(super) fn refuse(line: u64, what: &str, why: &str) -> anyhow::Error {
    Fail::new(format!("line {line} of the file: {what} {why}"))
        .hint("pgbox restores a plain SQL file into one scratch database only; remove that statement from the file (or apply it yourself with `pgbox psql`), then restore again")
        .into()
}

/// Read a plain SQL file and decide what psql may run of it. `want` picks the
/// database section of a file with several (`--db`).
pub fn plan(input: impl Read, want: Option<&str>) -> anyhow::Result<Plan> {
    let mut sc = scan::Scanner::new();
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
    decide::decide(sc.finish(), want)
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
