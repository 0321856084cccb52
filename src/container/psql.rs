//! SQL from the host through psql inside the server's container: the server's own
//! client, so versions always match. Quoting helpers for the few statements pgbox
//! builds itself, and the facts about the container's psql that callers need.

use crate::config::Settings;
use crate::engine::{Engine, ExecSpec};

pub fn exec_spec(cmd: &[&str], user: &str) -> ExecSpec {
    ExecSpec {
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        user: Some(user.into()),
        env: Vec::new(),
    }
}

/// psql as the superuser into `db`, without a psqlrc, stopping at the first error;
/// `flags` come before the connection options.
pub fn argv<'a>(s: &'a Settings, db: &'a str, flags: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["psql", "--no-psqlrc"];
    v.extend_from_slice(flags);
    v.extend(["-v", "ON_ERROR_STOP=1", "-U", &s.user, "-d", db]);
    v
}

/// Run SQL (on stdin) with psql as the superuser in `db`; stdout, trimmed.
pub async fn sql(
    engine: &Engine,
    c: &str,
    s: &Settings,
    db: &str,
    sql: &str,
) -> anyhow::Result<String> {
    let out = engine
        .exec_with_stdin(
            c,
            &exec_spec(&argv(s, db, &["-qAt"]), "postgres"),
            sql.as_bytes().to_vec(),
        )
        .await?;
    if out.code != 0 {
        anyhow::bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A SQL string literal.
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A SQL identifier.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Every database as `(oid, name)`, in oid order.
pub async fn databases(
    engine: &Engine,
    c: &str,
    s: &Settings,
) -> anyhow::Result<Vec<(u32, String)>> {
    let out = sql(
        engine,
        c,
        s,
        "postgres",
        "select oid || chr(9) || datname from pg_database order by oid",
    )
    .await?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter_map(|(o, n)| Some((o.parse().ok()?, n.to_string())))
        .collect())
}

/// `17.6` from `17.6 (Debian 17.6-1)` or `PostgreSQL 17.6`: the first word that
/// starts with a digit.
pub fn version_number(text: &str) -> Option<&str> {
    text.split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
}

/// The major of a version number: `17` from `17.6`, `18` from `18beta1`.
pub fn major_of(version: &str) -> Option<u32> {
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Whether this psql has `\restrict` (15.14, 16.10, 17.6 and later; from its
/// `psql --version` line).
pub fn psql_has_restrict(version: &str) -> bool {
    let Some(v) = version
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
    else {
        return false;
    };
    let mut it = v.split('.').map(|x| {
        x.trim_matches(|c: char| !c.is_ascii_digit())
            .parse::<u32>()
            .unwrap_or(0)
    });
    let (major, minor) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    match major {
        0..=12 => false,
        13 => minor >= 22,
        14 => minor >= 19,
        15 => minor >= 14,
        16 => minor >= 10,
        17 => minor >= 6,
        _ => true,
    }
}

/// `psql --version` inside the container.
pub async fn psql_version(engine: &Engine, c: &str) -> anyhow::Result<String> {
    let out = engine
        .exec_capture(c, &exec_spec(&["psql", "--version"], "postgres"))
        .await?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_without_the_packagers_suffix() {
        assert_eq!(version_number("17.6 (Debian 17.6-1)"), Some("17.6"));
        assert_eq!(version_number("PostgreSQL 18.1"), Some("18.1"));
        assert_eq!(version_number(""), None);
        assert_eq!(major_of("17.6"), Some(17));
        assert_eq!(major_of("18beta1"), Some(18));
        assert_eq!(major_of("x"), None);
    }

    #[test]
    fn restrict_arrived_in_these_minor_releases() {
        assert!(psql_has_restrict(
            "psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        ));
        assert!(!psql_has_restrict("psql (PostgreSQL) 15.13"));
        assert!(psql_has_restrict("psql (PostgreSQL) 18.1"));
        assert!(!psql_has_restrict("psql (PostgreSQL) 16.9"));
        assert!(!psql_has_restrict("garbage"));
    }
}
