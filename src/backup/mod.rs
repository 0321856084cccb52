//! Backups on the host: names, manifests, the listing of a backup folder and
//! format detection from magic bytes; the operations on backups (create, verify,
//! restore, retention, the record of the last attempt) live in the submodules.
//!
//! A backup is one file (custom dumps, plain SQL, or a directory dump packed as
//! tar) plus `<file>.json`, its manifest. Files are only ever complete: they are
//! written as `.partial`, fsynced and checked before the rename, so a listing
//! never sees half a backup.

pub mod base;
pub mod create;
pub mod dump;
pub mod listing;
pub mod load;
pub mod offsite;
pub mod pitr;
pub mod pitr_restore;
pub mod plain;
pub mod policy;
pub mod record;
pub mod restore;
pub mod retention;
pub mod transfer;
pub mod verify;
pub mod wal;
pub mod wal_retention;

use std::io::Read;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

pub use crate::config::{Compression, Format};
pub use crate::manifest::{manifest_path, Manifest};

impl Format {
    fn ext(self) -> &'static str {
        match self {
            Format::Custom => "dump",
            Format::Plain => "sql",
            Format::Directory => "dir.tar",
        }
    }
}

impl Compression {
    fn ext(self) -> &'static str {
        match self {
            Compression::Zstd => ".zst",
            Compression::Gzip => ".gz",
            Compression::None => "",
        }
    }
}

/// `<project>-<database>-<UTC timestamp>.<ext>`
pub fn file_name(
    project: &str,
    database: &str,
    at: DateTime<Utc>,
    format: Format,
    comp: Compression,
) -> String {
    let safe: String = database
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{project}-{safe}-{}.{}{}",
        at.format("%Y%m%dT%H%M%SZ"),
        format.ext(),
        comp.ext()
    )
}

/// A complete backup in the folder: its file and manifest.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    pub manifest: Manifest,
}

/// Every backup of `project` in `dir` with a manifest and its file, newest first.
///
/// A manifest that cannot be read or parsed is an error naming each such file: a
/// listing that silently skipped it would say "no backups" beside real backups,
/// pick an older one as `latest`, or prune without seeing them all.
pub fn list(dir: &Path, project: &str) -> anyhow::Result<Vec<Entry>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(crate::error::Fail::new(format!(
                "cannot list the backup folder `{}`: {e}",
                dir.display()
            ))
            .hint(OWNERSHIP_HINT)
            .into())
        }
    };
    let mut unreadable = Vec::new();
    for ent in rd {
        let path = ent?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.ends_with(".json") || name.starts_with('.') {
            continue;
        }
        let file = path.with_file_name(name.trim_end_matches(".json"));
        if !file.exists() {
            continue;
        }
        match Manifest::read_checked(&file) {
            Ok(m) if m.project == project => out.push(Entry {
                path: file,
                manifest: m,
            }),
            Ok(_) => {}
            // Another project's manifest may be unreadable to us; this project's may not.
            Err(why) if name.starts_with(&format!("{project}-")) => {
                unreadable.push(format!("  `{}`: {why}", path.display()))
            }
            Err(_) => {}
        }
    }
    if !unreadable.is_empty() {
        unreadable.sort();
        return Err(crate::error::Fail::new(format!(
            "cannot read {} backup manifest(s) in `{}`:\n{}",
            unreadable.len(),
            dir.display(),
            unreadable.join("\n")
        ))
        .hint(OWNERSHIP_HINT)
        .into());
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.manifest.created_at));
    Ok(out)
}

const OWNERSHIP_HINT: &str = "backups made by another user (e.g. with sudo) are readable only by them: \
     `sudo chown -R $USER` the backup folder, or run pgbox as that user; \
     a damaged manifest can be moved aside, its backup file is still usable with `pgbox restore FILE`";

/// What a file turns out to be, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    pub format: Format,
    pub compression: Compression,
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
const GZIP_MAGIC: [u8; 2] = [0x1F, 0x8B];

/// Sniff the first decompressed bytes of a reader.
fn sniff_inner(mut r: impl Read) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 1024];
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    buf.truncate(n);
    Ok(buf)
}

/// UTF-8 text without NUL bytes (a cut multi-byte character at the end is fine).
fn is_text(b: &[u8]) -> bool {
    !b.is_empty()
        && !b.contains(&0)
        && match std::str::from_utf8(b) {
            Ok(_) => true,
            Err(e) => e.error_len().is_none(),
        }
}

fn classify(inner: &[u8], compression: Compression) -> Option<Detected> {
    let format = if inner.starts_with(b"PGDMP") {
        Format::Custom
    } else if inner.len() > 262 && &inner[257..262] == b"ustar" {
        // A packed directory dump (tar of toc.dat and the data files).
        Format::Directory
    } else if is_text(inner) {
        Format::Plain
    } else {
        return None;
    };
    Some(Detected {
        format,
        compression,
    })
}

/// Detect format and compression of a backup from its magic bytes, not its name.
/// A folder holding `toc.dat` is an unpacked directory dump.
pub fn detect(path: &Path) -> anyhow::Result<Detected> {
    if path.is_dir() {
        anyhow::ensure!(
            path.join("toc.dat").is_file(),
            "`{}` is a folder without toc.dat, not a directory dump",
            path.display()
        );
        return Ok(Detected {
            format: Format::Directory,
            compression: Compression::None,
        });
    }
    let mut f = std::fs::File::open(path)?;
    let mut head = [0u8; 4];
    let n = f.read(&mut head)?;
    let f = std::fs::File::open(path)?;
    let (inner, compression) = if n >= 4 && head == ZSTD_MAGIC {
        let dec = ruzstd::decoding::StreamingDecoder::new(f).map_err(|e| {
            anyhow::anyhow!("`{}` is not a readable zstd file: {e}", path.display())
        })?;
        (sniff_inner(dec)?, Compression::Zstd)
    } else if n >= 2 && head[..2] == GZIP_MAGIC {
        (
            sniff_inner(flate2::read::GzDecoder::new(f))?,
            Compression::Gzip,
        )
    } else {
        (sniff_inner(f)?, Compression::None)
    };
    classify(&inner, compression).ok_or_else(|| {
        anyhow::anyhow!(
            "`{}` is neither a pg_dump archive nor SQL text (first bytes {:02x?})",
            path.display(),
            &inner[..inner.len().min(8)]
        )
    })
}

/// A backup file's content, decompressed as detected.
pub fn open_decompressed(path: &Path, d: Detected) -> anyhow::Result<Box<dyn Read + Send>> {
    let f = std::fs::File::open(path)?;
    Ok(match d.compression {
        Compression::None => Box::new(f),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
        Compression::Zstd => Box::new(ruzstd::decoding::StreamingDecoder::new(f).map_err(|e| {
            anyhow::anyhow!("`{}` is not a readable zstd file: {e}", path.display())
        })?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn names_hold_project_database_and_utc_time() {
        let at = DateTime::parse_from_rfc3339("2026-11-27T05:16:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            file_name("shop", "sales db", at, Format::Custom, Compression::Zstd),
            "shop-sales_db-20261127T051600Z.dump.zst"
        );
        assert_eq!(
            file_name("a", "b", at, Format::Plain, Compression::Gzip),
            "a-b-20261127T051600Z.sql.gz"
        );
    }

    #[test]
    fn a_damaged_manifest_is_named_not_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("shop-app-20260101T000000Z.dump.zst");
        std::fs::write(&f, b"x").unwrap();
        std::fs::write(manifest_path(&f), b"{\"file\": tru").unwrap();
        // Not this project's: ignored.
        let other = tmp.path().join("notes.txt");
        std::fs::write(&other, b"x").unwrap();
        std::fs::write(manifest_path(&other), b"[]").unwrap();
        let e = format!("{:#}", list(tmp.path(), "shop").unwrap_err());
        assert!(
            e.contains("cannot read 1 backup manifest(s)")
                && e.contains("shop-app-20260101T000000Z.dump.zst.json`: not a pgbox manifest"),
            "{e}"
        );
        std::fs::remove_file(manifest_path(&f)).unwrap();
        assert!(list(tmp.path(), "shop").unwrap().is_empty());
    }

    #[test]
    fn detection_reads_magic_bytes_not_names() {
        let tmp = tempfile::tempdir().unwrap();
        // A gzip'd plain dump with a misleading name.
        let p = tmp.path().join("backup.dump");
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&p).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(b"--\n-- PostgreSQL database dump\n--\nSET statement_timeout = 0;\n")
            .unwrap();
        gz.finish().unwrap();
        assert_eq!(
            detect(&p).unwrap(),
            Detected {
                format: Format::Plain,
                compression: Compression::Gzip
            }
        );
        let c = tmp.path().join("x.sql");
        std::fs::write(&c, b"PGDMP\x01\x0f\x00binary...").unwrap();
        assert_eq!(detect(&c).unwrap().format, Format::Custom);
        let junk = tmp.path().join("junk");
        std::fs::write(&junk, [0u8, 159, 146, 150, 1, 2, 3]).unwrap();
        assert!(detect(&junk).is_err());
    }
}
