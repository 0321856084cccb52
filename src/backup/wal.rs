//! WAL segment names and the archive's shape, for base backups and
//! `backup verify --pitr`.
//!
//! A segment file is named `TTTTTTTTXXXXXXXXYYYYYYYY`: the timeline, then the
//! segment number split into "log id" and "segment in log id" (with 16 MB segments
//! the last part runs 00..FF). Working with the plain segment number (`lsn /
//! segment size`) makes consecutiveness a `+ 1`. The archive holds
//! `<segment>.zst` with `<segment>.sha256` beside it, and `<TLI>.history.zst` for
//! every timeline switch; anything else (backup history files, dot folders) is
//! ignored here.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

/// PostgreSQL's default `wal_segment_size`.
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// `0/2000028` into a number.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// The segment number holding `lsn`.
pub fn segno(lsn: u64, seg_size: u64) -> u64 {
    lsn / seg_size
}

/// The file name of segment `segno` on `tli`.
pub fn file_name(tli: u32, segno: u64, seg_size: u64) -> String {
    let per_id = 0x1_0000_0000 / seg_size;
    format!("{tli:08X}{:08X}{:08X}", segno / per_id, segno % per_id)
}

/// `(timeline, segment number)` of a segment file name, or None for anything else.
pub fn parse_name(name: &str, seg_size: u64) -> Option<(u32, u64)> {
    if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let tli = u32::from_str_radix(&name[0..8], 16).ok()?;
    let hi = u64::from_str_radix(&name[8..16], 16).ok()?;
    let lo = u64::from_str_radix(&name[16..24], 16).ok()?;
    let per_id = 0x1_0000_0000 / seg_size;
    if lo >= per_id {
        return None;
    }
    Some((tli, hi * per_id + lo))
}

/// One timeline switch from a history file: `parent` ran until `switch_lsn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    pub parent: u32,
    pub switch_lsn: u64,
}

/// The lines of a `<TLI>.history` file: `parentTLI  switchpoint  reason`.
pub fn parse_history(text: &str) -> Vec<Switch> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            let mut f = l.split_whitespace();
            let parent = f.next()?.parse().ok()?;
            let switch_lsn = parse_lsn(f.next()?)?;
            Some(Switch { parent, switch_lsn })
        })
        .collect()
}

/// What the archive folder holds.
#[derive(Debug, Default)]
pub struct Archive {
    /// Segment numbers per timeline.
    pub segments: BTreeMap<u32, BTreeSet<u64>>,
    /// The history of each timeline that has a history file.
    pub histories: BTreeMap<u32, Vec<Switch>>,
    /// The newest segment file's modification time.
    pub newest_mtime: Option<SystemTime>,
    /// Each segment file's modification time: when it was archived, so no later
    /// than the first moment after its last record.
    pub mtimes: BTreeMap<(u32, u64), SystemTime>,
}

/// Read the archive folder (a missing folder is an empty archive).
pub fn scan(dir: &Path, seg_size: u64) -> anyhow::Result<Archive> {
    let mut a = Archive::default();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(a),
        Err(e) => return Err(anyhow::anyhow!("cannot read `{}`: {e}", dir.display())),
    };
    for e in rd {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".zst") else {
            continue;
        };
        if let Some((tli, n)) = parse_name(stem, seg_size) {
            a.segments.entry(tli).or_default().insert(n);
            if let Ok(m) = e.metadata().and_then(|m| m.modified()) {
                a.newest_mtime = a.newest_mtime.max(Some(m));
                a.mtimes.insert((tli, n), m);
            }
        } else if let Some(t) = stem.strip_suffix(".history") {
            if let Ok(tli) = u32::from_str_radix(t, 16) {
                let text = decompress(&e.path())?;
                a.histories
                    .insert(tli, parse_history(&String::from_utf8_lossy(&text)));
            }
        }
    }
    Ok(a)
}

/// The newest timeline the archive knows of (segments or history).
pub fn newest_timeline(a: &Archive) -> Option<u32> {
    let s = a.segments.keys().next_back().copied();
    let h = a.histories.keys().next_back().copied();
    s.max(h)
}

/// The segments a base backup starting at `(tli, start)` needs, in order, up to the
/// newest segment of the newest timeline: along that timeline's history, each
/// parent timeline up to the segment before its switch point, then the child from
/// the segment holding it. None when `tli` is not an ancestor of the newest timeline.
pub fn needed(a: &Archive, tli: u32, start: u64, seg_size: u64) -> Option<Vec<(u32, u64)>> {
    let newest = newest_timeline(a)?.max(tli);
    // Path of timelines from `tli` to `newest`, with where each one ends.
    let history = a.histories.get(&newest).cloned().unwrap_or_default();
    let mut path: Vec<(u32, Option<u64>)> = Vec::new();
    let mut on = false;
    for sw in &history {
        if sw.parent == tli {
            on = true;
        }
        if on {
            path.push((sw.parent, Some(segno(sw.switch_lsn, seg_size))));
        }
    }
    if tli != newest && !on {
        return None;
    }
    path.push((newest, None));
    let mut out = Vec::new();
    let mut from = start;
    for (t, switch_seg) in path {
        let last = match switch_seg {
            // The parent's copy of the switch segment is `.partial`: not needed.
            Some(sw) => sw.checked_sub(1),
            // The newest timeline runs to its newest segment, and at least over the
            // segment the backup starts in.
            None => a
                .segments
                .get(&t)
                .and_then(|s| s.iter().next_back().copied())
                .max(Some(from)),
        };
        if let Some(last) = last {
            for n in from..=last {
                out.push((t, n));
            }
        }
        if let Some(sw) = switch_seg {
            from = from.max(sw);
        }
    }
    Some(out)
}

/// The decompressed bytes of a `.zst` file.
pub fn decompress(path: &Path) -> anyhow::Result<Vec<u8>> {
    let f = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot open `{}`: {e}", path.display()))?;
    let mut d = ruzstd::decoding::StreamingDecoder::new(std::io::BufReader::new(f))
        .map_err(|e| anyhow::anyhow!("`{}` is not zstd: {e}", path.display()))?;
    let mut out = Vec::new();
    d.read_to_end(&mut out)
        .map_err(|e| anyhow::anyhow!("cannot decompress `{}`: {e}", path.display()))?;
    Ok(out)
}

/// Check `<name>.zst` against `<name>.sha256` when there is one: Ok(None) when no
/// sum was recorded, Ok(Some(true/false)) for a match or a mismatch; an unreadable
/// or undecodable file is a mismatch too.
pub fn check_sum(dir: &Path, name: &str) -> Option<bool> {
    let recorded = std::fs::read_to_string(dir.join(format!("{name}.sha256"))).ok()?;
    let want = recorded.split_whitespace().next()?.to_ascii_lowercase();
    Some(match decompress(&dir.join(format!("{name}.zst"))) {
        Ok(bytes) => hex(&Sha256::digest(&bytes)) == want,
        Err(_) => false,
    })
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = DEFAULT_SEGMENT_SIZE;

    #[test]
    fn names_round_trip_across_the_log_id() {
        assert_eq!(file_name(1, 2, S), "000000010000000000000002");
        assert_eq!(file_name(1, 0xFF, S), "0000000100000000000000FF");
        assert_eq!(file_name(1, 0x100, S), "000000010000000100000000");
        assert_eq!(parse_name("000000010000000100000000", S), Some((1, 0x100)));
        assert_eq!(parse_name("000000010000000000000100", S), None);
        assert_eq!(parse_name("00000001000000000000000G", S), None);
        assert_eq!(
            segno(parse_lsn("0/2000028").unwrap(), S),
            2,
            "0/2000028 is in segment 2"
        );
    }

    #[test]
    fn needed_follows_a_timeline_switch() {
        let mut a = Archive::default();
        a.segments.insert(1, [2, 3, 4].into_iter().collect());
        a.segments.insert(2, [5, 6].into_iter().collect());
        a.histories.insert(
            2,
            parse_history("1\t0/5000100\tno recovery target specified\n"),
        );
        let n = needed(&a, 1, 2, S).unwrap();
        assert_eq!(n, vec![(1, 2), (1, 3), (1, 4), (2, 5), (2, 6)]);
        let only = needed(&a, 2, 6, S).unwrap();
        assert_eq!(only, vec![(2, 6)]);
        // A timeline with nothing archived still needs its start segment.
        assert_eq!(needed(&a, 3, 7, S), Some(vec![(3, 7)]));
    }
}
