//! What an upgrade changes, worked out before anything is touched: the target's
//! base image and new data location, as the pgbox.toml values that select them
//! ([`Side`]), and the settings each side runs with.
//!
//! The old and the new cluster never share a location: the new one goes to a
//! folder or volume named for its major (`.pgbox/data-pg17`,
//! `pgbox-app-data-pg17`), so the old data is never written by the upgrade and
//! switching majors is one atomic rewrite of pgbox.toml.

use crate::config::{self, FileConfig, Settings, StorageMode};
use crate::error::{Fail, EXIT_USAGE};
use crate::state::Side;

/// The old side: what pgbox.toml selects now.
pub fn current_side(s: &Settings, file: &FileConfig) -> Side {
    let pg = file.postgres.as_ref();
    let st = file.storage.as_ref();
    Side {
        major: s.pg_version,
        base_image: pg.and_then(|p| p.base_image.clone()),
        path: st.and_then(|s| s.path.as_ref().map(|p| p.display().to_string())),
        volume: st.and_then(|s| s.volume.clone()),
    }
}

/// `name` for major `to`: a `-pgNN` suffix replaced, or added.
pub fn name_for(name: &str, to: u32) -> String {
    let stem = match name.rsplit_once("-pg") {
        Some((stem, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => stem,
        _ => name,
    };
    format!("{stem}-pg{to}")
}

/// The new side for major `to`. The base image: `--base-image`, else the major's
/// default when pgbox.toml names none (still none) or the old major's default (now
/// the new one's, named), else the official
/// image of the new major when it names `postgres:<old>`; any other image needs the flag.
pub fn target_side(
    s: &Settings,
    old: &Side,
    mode: StorageMode,
    to: u32,
    base_flag: Option<&str>,
) -> Result<Side, Fail> {
    let base_image = match (base_flag, old.base_image.as_deref()) {
        (Some(b), _) => Some(b.to_string()),
        (None, None) => None,
        // Named in the file: the new major's default is named in its place, so the
        // key keeps its line (and a rollback gives back the file as it was).
        (None, Some(b)) if Some(b) == config::default_base_image(old.major) => Some(
            config::default_base_image(to)
                .ok_or_else(|| unknown_major(to))?
                .to_string(),
        ),
        (None, Some(b)) if b.starts_with("postgres:") => Some(format!("postgres:{to}")),
        (None, Some(b)) => {
            return Err(Fail::new(format!(
                "pgbox.toml builds PostgreSQL {} from `{b}`, and pgbox cannot tell which image ships {to}",
                old.major
            ))
            .hint(format!(
                "name one with `--base-image IMAGE` (for example `postgres:{to}`)"
            ))
            .code(EXIT_USAGE))
        }
    };
    if base_image.is_none() && config::default_base_image(to).is_none() {
        return Err(unknown_major(to));
    }
    let (path, volume) = match mode {
        StorageMode::Volume => (
            old.path.clone(),
            Some(name_for(old.volume.as_deref().unwrap_or(&s.volume), to)),
        ),
        _ => (
            Some(name_for(old.path.as_deref().unwrap_or(".pgbox/data"), to)),
            old.volume.clone(),
        ),
    };
    Ok(Side {
        major: to,
        base_image,
        path,
        volume,
    })
}

/// A major no known base image ships.
pub fn unknown_major(to: u32) -> Fail {
    let known: Vec<String> = config::KNOWN_MAJORS
        .iter()
        .map(|(m, b)| format!("{m} (`{b}`)"))
        .collect();
    Fail::new(format!(
        "pgbox knows no base image that ships PostgreSQL {to}; it knows {}",
        known.join(", ")
    ))
    .hint(format!(
        "choose one of those, or name an image that ships {to} with `--base-image` (for example `postgres:{to}` where a registry is reachable)"
    ))
    .code(EXIT_USAGE)
}

/// The settings a side runs with: `s` with that side's major, image and location.
pub fn settings_for(s: &Settings, side: &Side) -> Settings {
    let mut out = s.clone();
    out.pg_version = side.major;
    out.base_image_set = side.base_image.is_some();
    out.base_image = side
        .base_image
        .clone()
        .or_else(|| config::default_base_image(side.major).map(String::from))
        .unwrap_or_else(|| s.base_image.clone());
    out.data_dir = config::absolute(
        &s.project_dir,
        std::path::Path::new(side.path.as_deref().unwrap_or(".pgbox/data")),
    );
    out.volume = side
        .volume
        .clone()
        .unwrap_or_else(|| format!("pgbox-{}-data", s.project));
    out
}

/// pgbox.toml's changes that select `side`.
pub fn toml_changes(side: &Side) -> Vec<(&'static str, &'static str, config::edit::Value)> {
    use config::edit::Value;
    let opt = |v: &Option<String>| v.clone().map_or(Value::Remove, Value::Str);
    vec![
        ("postgres", "version", Value::Int(side.major as i64)),
        ("postgres", "base_image", opt(&side.base_image)),
        ("storage", "path", opt(&side.path)),
        ("storage", "volume", opt(&side.volume)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn side(base: Option<&str>, path: Option<&str>) -> Side {
        Side {
            major: 15,
            base_image: base.map(String::from),
            path: path.map(String::from),
            volume: None,
        }
    }

    #[test]
    fn names_carry_the_major_once() {
        assert_eq!(name_for(".pgbox/data", 17), ".pgbox/data-pg17");
        assert_eq!(name_for(".pgbox/data-pg17", 18), ".pgbox/data-pg18");
        assert_eq!(name_for("pgbox-app-data", 18), "pgbox-app-data-pg18");
        assert_eq!(name_for("my-pgdata", 17), "my-pgdata-pg17");
    }

    #[test]
    fn the_base_image_follows_the_major_or_needs_the_flag() {
        let s = Settings::resolve(Path::new("/x/app/pgbox.toml"), &[]);
        let t = |b: Option<&str>, flag: Option<&str>| {
            target_side(&s, &side(b, None), StorageMode::Direct, 17, flag)
        };
        assert_eq!(t(None, None).unwrap().base_image, None);
        assert_eq!(
            t(Some("debian:bookworm-slim"), None)
                .unwrap()
                .base_image
                .as_deref(),
            Some("debian:trixie-slim")
        );
        assert_eq!(
            t(Some("postgres:15"), None).unwrap().base_image.as_deref(),
            Some("postgres:17")
        );
        assert!(t(Some("registry.local/pg:15"), None).is_err());
        assert_eq!(
            t(Some("registry.local/pg:15"), Some("registry.local/pg:17"))
                .unwrap()
                .base_image
                .as_deref(),
            Some("registry.local/pg:17")
        );
        let e = target_side(&s, &side(None, None), StorageMode::Direct, 16, None).unwrap_err();
        assert!(
            e.message.contains("15 (`debian:bookworm-slim`)"),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_new_location_never_is_the_old_one() {
        let s = Settings::resolve(Path::new("/x/app/pgbox.toml"), &[]);
        let new = target_side(&s, &side(None, None), StorageMode::Fallback, 18, None).unwrap();
        assert_eq!(new.path.as_deref(), Some(".pgbox/data-pg18"));
        let ns = settings_for(&s, &new);
        assert_eq!(ns.data_dir, Path::new("/x/app/.pgbox/data-pg18"));
        assert_eq!(ns.base_image, "debian:forky-slim");
        let v = target_side(&s, &side(None, None), StorageMode::Volume, 17, None).unwrap();
        assert_eq!(v.volume.as_deref(), Some("pgbox-app-data-pg17"));
        assert_ne!(settings_for(&s, &v).volume, s.volume);
    }
}
