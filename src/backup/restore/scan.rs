//! One read of the backup file on the host, started before anything else and run
//! while the restore connects, cleans up and uploads: its SHA-256 (checked against
//! the manifest) and, for a custom-format archive whose data pg_dump stored
//! uncompressed (pgbox's own backups: `--compress=0` inside zstd), the rows per
//! table of its COPY data, which the restored database must hold.
//!
//! Counting here replaced an in-container `pg_restore --data-only | awk` that ran
//! beside pg_restore and competed with it for the CPU. The counts are exact and
//! keyed as that awk keyed them (the COPY statement's target, unquoted), so
//! [`super::scratch`] compares them with the restored tables the same way. An
//! archive this reader does not know (another version, compressed data, a
//! directory dump) gives no counts, and the restore counts in the container as
//! before.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::backup::{Compression, Detected, Format};
use crate::error::Fail;

/// Rows per table (`schema.table`, unquoted).
pub type Counts = BTreeMap<String, u64>;

/// What the archive's table of contents says, read on the host so the restore
/// needs no `pg_restore --list` and `--schema-only` runs in the container when
/// the roles it names all exist.
#[derive(Debug, Clone, PartialEq)]
pub struct Toc {
    /// Its entries (the progress bar's length).
    pub items: u64,
    /// Every role it names: the owners of all its entries and the roles of the
    /// `OWNER TO` and `GRANT` lines in their definitions. A superset of the roles
    /// the container's `pg_restore --schema-only` names (it prints some of these
    /// entries, their definitions verbatim and `ALTER .. OWNER TO` their owner), so
    /// all of them existing means the container's check would pass.
    pub roles: Vec<String>,
    /// Whether [`Scan::rows`] will give the rows (the archive's data is not
    /// compressed by pg_dump).
    pub countable: bool,
}

/// The two reads of one backup file, each on its own blocking thread: the
/// checksum (fast: the compressed bytes) and the rows (the archive decompressed).
/// Dropping the scan stops both.
pub struct Scan {
    path: PathBuf,
    /// The manifest's checksum, when there is a manifest.
    want: Option<String>,
    hash: Option<JoinHandle<anyhow::Result<String>>>,
    /// The table of contents: sent once it was read (None, or dropped, when
    /// this reader does not know the archive).
    toc: Option<tokio::sync::oneshot::Receiver<Option<Toc>>>,
    /// What `toc` gave, once awaited.
    got_toc: Option<Option<Toc>>,
    rows: Option<JoinHandle<anyhow::Result<Option<Counts>>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Scan {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Scan {
    /// Start reading `path`: its checksum when there is one to compare (`want`),
    /// its COPY rows when `detected` is a custom archive in a file.
    pub fn start(path: &Path, detected: Option<Detected>, want: Option<String>) -> Scan {
        let stop = Arc::new(AtomicBool::new(false));
        let hash = want.is_some().then(|| {
            let (file, stop) = (path.to_path_buf(), stop.clone());
            tokio::task::spawn_blocking(move || sha256(&file, &stop))
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let rows = detected
            .filter(|d| d.format == Format::Custom && !path.is_dir())
            .map(|d| {
                let (file, stop) = (path.to_path_buf(), stop.clone());
                tokio::task::spawn_blocking(move || count_file(&file, d.compression, &stop, tx))
            });
        Scan {
            path: path.to_path_buf(),
            want,
            hash,
            toc: Some(rx),
            got_toc: None,
            rows,
            stop,
        }
    }

    /// Wait for the checksum; an error when the file does not match its
    /// manifest's (or cannot be read). Returns at once when it was checked.
    pub async fn verified(&mut self) -> anyhow::Result<()> {
        let Some(handle) = self.hash.take() else {
            return Ok(());
        };
        let sum = handle.await??;
        if let Some(want) = &self.want {
            if &sum != want {
                return Err(Fail::new(format!(
                    "`{}` does not match its manifest's checksum; refusing to restore it",
                    self.path.display()
                ))
                .hint("the file was changed or damaged after it was written; pick another backup (`pgbox backup list`)")
                .into());
            }
        }
        Ok(())
    }

    /// The archive's table of contents (read at the start of the file); None
    /// when this reader does not know it, which leaves the work to the container.
    pub async fn toc(&mut self) -> Option<Toc> {
        if let Some(rx) = self.toc.take() {
            self.got_toc = Some(rx.await.unwrap_or(None));
        }
        self.got_toc.clone().flatten()
    }

    /// Whether [`Scan::rows`] will give the rows (known once the archive's table
    /// of contents was read); false leaves the counting to the container.
    pub async fn countable(&mut self) -> bool {
        self.toc().await.is_some_and(|t| t.countable)
    }

    /// The rows per table of the archive's COPY data; None when this reader could
    /// not count them (or the file turned out unreadable).
    pub async fn rows(&mut self) -> Option<Counts> {
        let handle = self.rows.take()?;
        handle.await.ok()?.ok()?
    }
}

/// A reader that fails once the restore was cancelled or the scan dropped.
struct Stoppable<'a, R> {
    inner: R,
    stop: &'a AtomicBool,
}

impl<R: Read> Read for Stoppable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if crate::cancel::is_cancelled() || self.stop.load(Ordering::Relaxed) {
            // Not ErrorKind::Interrupted: io::copy would retry that.
            return Err(std::io::Error::other(crate::error::Interrupted));
        }
        self.inner.read(buf)
    }
}

fn sha256(path: &Path, stop: &AtomicBool) -> anyhow::Result<String> {
    let f = Stoppable {
        inner: std::fs::File::open(path)?,
        stop,
    };
    Ok(crate::digest::sum_reader(f)?.sha256)
}

fn count_file(
    path: &Path,
    compression: Compression,
    stop: &AtomicBool,
    countable: tokio::sync::oneshot::Sender<Option<Toc>>,
) -> anyhow::Result<Option<Counts>> {
    let f = Stoppable {
        inner: std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?),
        stop,
    };
    match compression {
        Compression::None => copy_rows(f, countable),
        Compression::Zstd => {
            let z =
                ruzstd::decoding::StreamingDecoder::new(f).map_err(|e| anyhow::anyhow!("{e}"))?;
            copy_rows(std::io::BufReader::with_capacity(1 << 20, z), countable)
        }
        Compression::Gzip => copy_rows(
            std::io::BufReader::with_capacity(1 << 20, flate2::read::MultiGzDecoder::new(f)),
            countable,
        ),
    }
}

/// The archive versions this reader knows (pg_dump 11 to 18 write 1.13 to 1.16).
const OLDEST: (u8, u8) = (1, 12);
const NEWEST: (u8, u8) = (1, 16);

/// A pg_dump custom archive, read front to back.
struct Archive<R> {
    r: R,
    version: (u8, u8),
    int_size: usize,
    off_size: usize,
}

impl<R: Read> Archive<R> {
    fn byte(&mut self) -> std::io::Result<u8> {
        let mut b = [0u8; 1];
        self.r.read_exact(&mut b)?;
        Ok(b[0])
    }

    /// A byte, or None at the end of the archive.
    fn byte_or_end(&mut self) -> std::io::Result<Option<u8>> {
        let mut b = [0u8; 1];
        match self.r.read(&mut b)? {
            0 => Ok(None),
            _ => Ok(Some(b[0])),
        }
    }

    /// pg_dump's ReadInt: a sign byte, then `int_size` bytes, least significant first.
    fn int(&mut self) -> anyhow::Result<i64> {
        let negative = self.byte()? != 0;
        let mut v: i64 = 0;
        for i in 0..self.int_size {
            let b = self.byte()? as i64;
            if i < 8 {
                v |= b << (8 * i);
            }
        }
        Ok(if negative { -v } else { v })
    }

    /// pg_dump's ReadStr: a length (-1 for NULL), then the bytes.
    fn str(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        let n = self.int()?;
        if n < 0 {
            return Ok(None);
        }
        anyhow::ensure!(n < 1 << 30, "a string of {n} bytes");
        let mut v = vec![0u8; n as usize];
        self.r.read_exact(&mut v)?;
        Ok(Some(v))
    }

    fn skip(&mut self, n: u64) -> anyhow::Result<()> {
        let copied = std::io::copy(&mut (&mut self.r).take(n), &mut std::io::sink())?;
        anyhow::ensure!(copied == n, "the archive ends inside a block");
        Ok(())
    }

    fn at_least(&self, minor: u8) -> bool {
        self.version >= (1, minor)
    }
}

/// Rows per table in the COPY data of a custom archive; None when the archive is
/// of a version this reader does not know, or its data is compressed.
fn copy_rows(
    r: impl Read,
    toc: tokio::sync::oneshot::Sender<Option<Toc>>,
) -> anyhow::Result<Option<Counts>> {
    let mut a = Archive {
        r,
        version: (0, 0),
        int_size: 4,
        off_size: 8,
    };
    let mut magic = [0u8; 5];
    a.r.read_exact(&mut magic)?;
    anyhow::ensure!(&magic == b"PGDMP", "not a custom archive");
    let (major, minor, _rev) = (a.byte()?, a.byte()?, a.byte()?);
    a.version = (major, minor);
    if a.version < OLDEST || a.version > NEWEST {
        return Ok(None);
    }
    a.int_size = a.byte()? as usize;
    a.off_size = a.byte()? as usize;
    anyhow::ensure!(
        (1..=8).contains(&a.int_size) && (1..=16).contains(&a.off_size),
        "odd int and offset sizes"
    );
    if a.byte()? != 1 {
        return Ok(None); // not the custom format
    }
    let compressed = if a.at_least(15) {
        a.byte()? != 0
    } else {
        a.int()? != 0
    };
    for _ in 0..7 {
        a.int()?; // creation time
    }
    a.str()?; // database
    a.str()?; // server version
    a.str()?; // pg_dump version
    let entries = a.int()?;
    anyhow::ensure!((0..10_000_000).contains(&entries), "{entries} entries");
    // dump id -> the COPY target of a table's data
    let mut copy_of: BTreeMap<i64, Option<String>> = BTreeMap::new();
    let mut roles = std::collections::BTreeSet::new();
    for _ in 0..entries {
        let id = a.int()?;
        a.int()?; // had dumper
        a.str()?; // table oid
        a.str()?; // oid
        a.str()?; // tag
        let desc = a.str()?.unwrap_or_default();
        a.int()?; // section
        if let Some(defn) = a.str()? {
            roles.extend(crate::backup::transfer::roles_in_sql(
                &String::from_utf8_lossy(&defn),
            ));
        }
        a.str()?; // drop statement
        let copy = a.str()?;
        a.str()?; // namespace
        a.str()?; // tablespace
        a.str()?; // table access method
        if a.at_least(16) {
            a.int()?; // relkind
        }
        if let Some(owner) = a.str()?.filter(|o| !o.is_empty()) {
            roles.insert(String::from_utf8_lossy(&owner).into_owned());
        }
        a.str()?; // "with oids"
        while a.str()?.is_some() {} // dependencies
        a.byte()?; // data offset: its state, then the offset
        a.skip(a.off_size as u64)?;
        let target = copy
            .filter(|_| desc == b"TABLE DATA")
            .and_then(|c| copy_target(&String::from_utf8_lossy(&c)));
        copy_of.insert(id, target);
    }
    // Known now: the table of contents, and whether the rows will come (unless
    // the file turns out damaged, when pg_restore fails too).
    let _ = toc.send(Some(Toc {
        items: entries as u64,
        roles: roles.into_iter().collect(),
        countable: !compressed,
    }));
    if compressed {
        return Ok(None);
    }
    let mut rows = Counts::new();
    // Data blocks until the end: a type (1: table data, 3: large objects), a dump
    // id, then chunks (a length, the bytes) up to one of length zero.
    while let Some(kind) = a.byte_or_end()? {
        let id = a.int()?;
        let target = copy_of
            .get(&id)
            .ok_or_else(|| anyhow::anyhow!("data of unknown entry {id}"))?;
        match kind {
            1 => match target {
                Some(t) => {
                    let n = count_copy_lines(&mut a)?;
                    *rows.entry(t.clone()).or_insert(0) += n;
                }
                None => skip_chunks(&mut a)?,
            },
            3 => {
                while a.int()? != 0 {
                    skip_chunks(&mut a)?;
                }
            }
            k => anyhow::bail!("a data block of type {k}"),
        }
    }
    // Every table's data must have been seen: counts that missed a table would
    // let a restore without it pass the comparison.
    let missed = copy_of.values().flatten().find(|t| !rows.contains_key(*t));
    anyhow::ensure!(missed.is_none(), "no data for {missed:?}");
    Ok(Some(rows))
}

fn skip_chunks<R: Read>(a: &mut Archive<R>) -> anyhow::Result<()> {
    loop {
        let n = a.int()?;
        anyhow::ensure!(n >= 0, "a chunk of {n} bytes");
        if n == 0 {
            return Ok(());
        }
        a.skip(n as u64)?;
    }
}

/// The rows of one table's COPY data: its lines up to the end marker `\.` (a COPY
/// row is never that line: a backslash in data is written `\\`).
fn count_copy_lines<R: Read>(a: &mut Archive<R>) -> anyhow::Result<u64> {
    let mut rows = 0u64;
    let mut ended = false;
    // The line so far, up to 3 bytes: enough to tell `\.` from a row.
    let mut line: Vec<u8> = Vec::with_capacity(3);
    let mut line_len = 0usize;
    let mut buf = Vec::new();
    loop {
        let n = a.int()?;
        anyhow::ensure!(n >= 0, "a chunk of {n} bytes");
        if n == 0 {
            break;
        }
        if ended {
            a.skip(n as u64)?;
            continue;
        }
        buf.resize(n as usize, 0);
        a.r.read_exact(&mut buf)?;
        for seg in buf.split_inclusive(|&b| b == b'\n') {
            let complete = seg.last() == Some(&b'\n');
            let body = if complete { &seg[..seg.len() - 1] } else { seg };
            for &b in body.iter().take(3usize.saturating_sub(line.len())) {
                line.push(b);
            }
            line_len += body.len();
            if complete {
                if line_len == 2 && line == b"\\." {
                    ended = true;
                    break;
                }
                rows += 1;
                line.clear();
                line_len = 0;
            }
        }
    }
    Ok(rows)
}

/// The table a COPY statement fills, as `schema.table` without quotes:
/// `COPY "a ""b""".c (x) FROM stdin;` gives `a "b".c`.
fn copy_target(stmt: &str) -> Option<String> {
    let rest = stmt.strip_prefix("COPY ")?;
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = rest.chars().peekable();
    while let Some(ch) = chars.next() {
        if quoted {
            if ch == '"' {
                if chars.peek() == Some(&'"') {
                    out.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                out.push(ch);
            }
        } else if ch == '"' {
            quoted = true;
        } else if ch == ' ' {
            break;
        } else {
            out.push(ch);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_targets_lose_their_quotes_as_the_awk_did() {
        assert_eq!(
            copy_target("COPY public.t (x) FROM stdin;\n").as_deref(),
            Some("public.t")
        );
        assert_eq!(
            copy_target("COPY \"a \"\"b\"\"\".\"C d\" (x) FROM stdin;\n").as_deref(),
            Some("a \"b\".C d")
        );
        assert_eq!(copy_target("SELECT 1"), None);
    }

    /// A custom archive as pg_dump 15 writes it (format 1.14, `--compress=0`),
    /// built by hand: one table with an empty row, a `\.`-looking escaped row,
    /// a row split over two chunks, and the end marker.
    fn archive(minor: u8) -> Vec<u8> {
        let mut v = b"PGDMP".to_vec();
        v.extend([1, minor, 0, 4, 8, 1]);
        let int = |v: &mut Vec<u8>, n: i64| {
            v.push((n < 0) as u8);
            v.extend((n.unsigned_abs() as u32).to_le_bytes());
        };
        let str = |v: &mut Vec<u8>, s: Option<&str>| match s {
            None => int(v, -1),
            Some(s) => {
                int(v, s.len() as i64);
                v.extend(s.as_bytes());
            }
        };
        if minor >= 15 {
            v.push(0);
        } else {
            int(&mut v, 0);
        }
        for _ in 0..7 {
            int(&mut v, 1);
        }
        for s in ["db", "15.1", "15.1"] {
            str(&mut v, Some(s));
        }
        int(&mut v, 2);
        for (id, desc, copy) in [
            (1, "TABLE", None),
            (
                2,
                "TABLE DATA",
                Some("COPY public.\"t x\" (a) FROM stdin;\n"),
            ),
        ] {
            int(&mut v, id);
            int(&mut v, (copy.is_some()) as i64);
            str(&mut v, Some("0"));
            str(&mut v, Some("0"));
            str(&mut v, Some("t x"));
            str(&mut v, Some(desc));
            int(&mut v, 2);
            let defn = if id == 1 {
                "CREATE TABLE public.\"t x\" (a text);\nGRANT SELECT ON TABLE public.\"t x\" TO \"Bob\";\n"
            } else {
                ""
            };
            str(&mut v, Some(defn));
            str(&mut v, Some(""));
            str(&mut v, copy);
            str(&mut v, Some("public"));
            str(&mut v, Some(""));
            str(&mut v, Some("heap"));
            if minor >= 16 {
                int(&mut v, 114);
            }
            str(&mut v, Some("me"));
            str(&mut v, Some("false"));
            if id == 2 {
                str(&mut v, Some("1"));
            }
            str(&mut v, None);
            v.push(1);
            v.extend([0u8; 8]);
        }
        v.push(1);
        int(&mut v, 2);
        for chunk in ["\n", "\\\\.\n", "half a ", "row\n", "\\.\n\n\n"] {
            str(&mut v, Some(chunk));
        }
        int(&mut v, 0);
        v
    }

    fn rows_of(archive: &[u8]) -> anyhow::Result<Option<Counts>> {
        let (tx, _rx) = tokio::sync::oneshot::channel();
        copy_rows(archive, tx)
    }

    #[test]
    fn the_table_of_contents_names_every_owner_and_granted_role() {
        for minor in [14, 15, 16] {
            let (tx, mut rx) = tokio::sync::oneshot::channel();
            copy_rows(&archive(minor)[..], tx).unwrap();
            let toc = rx.try_recv().unwrap().unwrap();
            assert_eq!(
                toc,
                Toc {
                    items: 2,
                    roles: vec!["Bob".to_string(), "me".to_string()],
                    countable: true,
                },
                "1.{minor}"
            );
        }
        // An archive of a version this reader does not know gives none.
        let mut v = archive(14);
        v[6] = 99;
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        copy_rows(&v[..], tx).unwrap();
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn rows_are_the_lines_before_the_end_marker() {
        for minor in [14, 15, 16] {
            let rows = rows_of(&archive(minor)).unwrap().unwrap();
            assert_eq!(
                rows,
                Counts::from([("public.t x".to_string(), 3)]),
                "1.{minor}"
            );
        }
    }

    #[test]
    fn unknown_versions_and_truncated_archives_give_no_counts() {
        let mut v = archive(14);
        v[6] = 99;
        assert!(rows_of(&v).unwrap().is_none());
        let v = archive(14);
        assert!(rows_of(&v[..v.len() - 9]).is_err());
    }
}
