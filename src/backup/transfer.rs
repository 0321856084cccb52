//! Backups into the container for pg_restore and psql: streamed and decompressed
//! there, then read by the server's own tools (the archive's items, the roles it
//! names, the rows its COPY data holds).

use std::collections::BTreeMap;
use std::path::Path;

use crate::container::psql::exec_spec as spec;
use crate::engine::Engine;
use crate::error::Fail;
use crate::printer::Printer;

use super::{Detected, Format};

/// A backup placed inside the container (`dir/dump`), removed with [`remove_remote`].
pub struct Remote {
    pub dir: String,
    pub path: String,
}

/// Stream a backup file (or packed directory) into the container, decompressed, to
/// `/tmp/pgbox-upload-<pid>`.
pub async fn upload(
    engine: &Engine,
    c: &str,
    local: &Path,
    d: Detected,
    p: &Printer,
) -> anyhow::Result<Remote> {
    let dir = format!("/tmp/pgbox-upload-{}", std::process::id());
    upload_to(engine, c, local, d, &dir, p).await
}

/// Stream a backup file (or packed directory) into the container folder `dir`,
/// decompressed, as `dir/dump`.
pub async fn upload_to(
    engine: &Engine,
    c: &str,
    local: &Path,
    d: Detected,
    dir: &str,
    p: &Printer,
) -> anyhow::Result<Remote> {
    let dir = dir.to_string();
    let path = format!("{dir}/dump");
    let argv = crate::container::ctl::Verb::Receive {
        dest: &path,
        compression: d.compression.as_str(),
        tar: d.format == Format::Directory,
    }
    .argv();
    let cmd: Vec<&str> = argv.iter().map(String::as_str).collect();
    if local.is_dir() {
        // An unpacked directory dump: packed on the fly and streamed (never whole in
        // memory), the tar written on a blocking thread into one end of a socket
        // pair whose other end feeds the exec.
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        ours.set_nonblocking(true)?;
        let reader = tokio::net::UnixStream::from_std(ours)?;
        let folder = local.to_path_buf();
        let packer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut b = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, theirs));
            b.append_dir_all(".", &folder)?;
            b.into_inner()?.into_inner().map_err(|e| e.into_error())?;
            Ok(())
        });
        let sent = send(engine, c, &cmd, reader).await;
        // The exec ended, so its end of the pair is gone: the packer ends too.
        let packed = packer.await?;
        let (code, stderr) = sent?;
        anyhow::ensure!(
            code == 0,
            "uploading failed: {}",
            String::from_utf8_lossy(&stderr)
        );
        if let Err(e) = packed {
            let _ = remove_remote(engine, c, &dir).await;
            return Err(Fail::new(format!("cannot read `{}`: {e}", local.display()))
                .hint("nothing in the database was touched")
                .into());
        }
        return Ok(Remote { dir, path });
    }
    let len = std::fs::metadata(local)?.len();
    let bar = p.bytes_bar("sending the backup into the container", Some(len));
    let file = tokio::fs::File::open(local).await?;
    let reader = bar.wrap_async_read(file);
    let (code, stderr) = send(engine, c, &cmd, reader).await?;
    bar.finish_and_clear();
    if code != 0 {
        let _ = remove_remote(engine, c, &dir).await;
        return Err(Fail::new(format!(
            "`{}` could not be unpacked: {}",
            local.display(),
            String::from_utf8_lossy(&stderr).trim()
        ))
        .hint("the file is truncated or corrupt; nothing in the database was touched")
        .into());
    }
    Ok(Remote { dir, path })
}

/// Feed `input` to `cmd` (as root) in the container: its exit code and stderr.
async fn send(
    engine: &Engine,
    c: &str,
    cmd: &[&str],
    input: impl tokio::io::AsyncRead + Unpin + Send,
) -> anyhow::Result<(i64, Vec<u8>)> {
    let mut stderr = Vec::new();
    let code = engine
        .exec_stream(
            c,
            &spec(cmd, "0"),
            Some(input),
            |_| Ok(()),
            |e| stderr.extend_from_slice(e),
        )
        .await?;
    Ok((code, stderr))
}

pub async fn remove_remote(engine: &Engine, c: &str, dir: &str) -> anyhow::Result<()> {
    engine
        .exec_capture(c, &spec(&["rm", "-rf", dir], "0"))
        .await?;
    Ok(())
}

/// Roles named by `OWNER TO` and `GRANT ... TO` in SQL text (PUBLIC excluded).
pub fn roles_in_sql(sql: &str) -> Vec<String> {
    let mut roles: Vec<String> = sql
        .lines()
        .filter(|l| l.contains(" OWNER TO ") || l.starts_with("GRANT "))
        .filter_map(|l| l.rsplit_once(" TO "))
        .map(|(_, r)| r.trim_end_matches(';').trim())
        .map(|r| r.strip_suffix(" WITH GRANT OPTION").unwrap_or(r))
        .map(|r| {
            if r.starts_with('"') && r.ends_with('"') && r.len() >= 2 {
                r[1..r.len() - 1].replace("\"\"", "\"")
            } else {
                r.to_string()
            }
        })
        .filter(|r| !r.is_empty() && r != "PUBLIC")
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

/// `pg_restore --list` of an uploaded custom or directory dump (the item count),
/// and the roles its objects are owned by or granted to.
pub async fn list_items(
    engine: &Engine,
    c: &str,
    remote: &Remote,
) -> anyhow::Result<(u64, Vec<String>)> {
    // Both read the archive only: side by side, one exec's latency instead of two.
    let list_spec = spec(&["pg_restore", "--list", &remote.path], "postgres");
    let schema_spec = spec(
        &["pg_restore", "--schema-only", "--file=-", &remote.path],
        "postgres",
    );
    let (out, schema) = tokio::join!(
        engine.exec_capture(c, &list_spec),
        engine.exec_capture(c, &schema_spec)
    );
    let (out, schema) = (out?, schema);
    if out.code != 0 {
        return Err(Fail::new(format!(
            "pg_restore cannot read the backup: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .hint("the file is damaged or not a pg_dump archive; nothing in the database was touched")
        .into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let items = text
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .count();
    Ok((items as u64, schema_roles(&schema?)?))
}

/// The roles of a `pg_restore --schema-only` run, which must have succeeded: a
/// failed run would read as "needs no roles" and skip the missing-roles check.
fn schema_roles(out: &crate::engine::ExecOutput) -> anyhow::Result<Vec<String>> {
    if out.code != 0 {
        return Err(Fail::new(format!(
            "pg_restore cannot read the backup's schema (exit {}): {}",
            out.code,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .hint("the file is damaged or not a pg_dump archive; nothing in the database was touched")
        .into());
    }
    Ok(roles_in_sql(&String::from_utf8_lossy(&out.stdout)))
}

/// Rows per table (`schema.table`, unquoted) in the COPY blocks of an uploaded
/// custom or directory dump, read inside the container.
pub async fn archive_row_counts(
    engine: &Engine,
    c: &str,
    remote: &Remote,
) -> anyhow::Result<BTreeMap<String, u64>> {
    // The COPY target as pg_dump quotes it: "a ""b""".c -> a "b".c
    let awk = r#"function qname(s,   i, ch, out, inq) {
    out = ""; inq = 0
    for (i = 1; i <= length(s); i++) {
        ch = substr(s, i, 1)
        if (inq) {
            if (ch == "\"") { if (substr(s, i + 1, 1) == "\"") { out = out ch; i++ } else inq = 0 }
            else out = out ch
        } else if (ch == "\"") inq = 1
        else if (ch == " ") break
        else out = out ch
    }
    return out
}
/^COPY .* FROM stdin;$/ { t = qname(substr($0, 6)); n = 0; inside = 1; next }
inside && /^\\\.$/ { print t "\t" n; inside = 0; next }
inside { n++ }"#;
    let out = engine
        .exec_capture(
            c,
            &spec(
                &[
                    "bash",
                    "-c",
                    r#"set -o pipefail; pg_restore --data-only --file=- "$0" | awk "$1""#,
                    &remote.path,
                    awk,
                ],
                "postgres",
            ),
        )
        .await?;
    anyhow::ensure!(
        out.code == 0,
        "counting the rows in the backup failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.rsplit_once('\t'))
        .filter_map(|(t, n)| Some((t.to_string(), n.parse().ok()?)))
        .fold(BTreeMap::new(), |mut m, (t, n): (String, u64)| {
            *m.entry(t).or_insert(0) += n;
            m
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_schema_read_is_an_error_not_no_roles() {
        let out = |code, stdout: &str| crate::engine::ExecOutput {
            code,
            stdout: stdout.as_bytes().to_vec(),
            stderr: b"pg_restore: error: could not read".to_vec(),
        };
        assert_eq!(
            schema_roles(&out(0, "ALTER TABLE t OWNER TO alice;\n")).unwrap(),
            vec!["alice"]
        );
        let e = format!("{:#}", schema_roles(&out(1, "")).unwrap_err());
        assert!(e.contains("exit 1") && e.contains("could not read"), "{e}");
    }

    #[test]
    fn roles_come_from_owner_and_grant_lines() {
        let sql = "ALTER TABLE public.t OWNER TO alice;\nALTER SCHEMA s OWNER TO \"Bob \"\"B\"\"\";\nGRANT SELECT ON TABLE public.t TO carol WITH GRANT OPTION;\nGRANT ALL ON SCHEMA public TO PUBLIC;\nCOMMENT ON EXTENSION x IS 'TO nobody';\n";
        assert_eq!(roles_in_sql(sql), vec!["Bob \"B\"", "alice", "carol"]);
    }
}
