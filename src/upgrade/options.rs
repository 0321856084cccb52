//! What `pgbox upgrade` is asked for ([`UpgradeOptions`], [`Method`]) and the small
//! settings its steps share; a leaf of the upgrade module.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::server::up::UpOptions;

/// How the new cluster is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The new major's pg_dump and pg_restore -j: safe across C libraries (default)
    Dump,
    /// pg_upgrade --link: fastest; the old cluster is unusable once the new one starts
    Link,
    /// pg_upgrade --clone: copy-on-write file clones, where the file system has them
    Clone,
    /// pg_upgrade --copy: copies every file
    Copy,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Dump => "dump",
            Method::Link => "link",
            Method::Clone => "clone",
            Method::Copy => "copy",
        }
    }
}

/// What `pgbox upgrade` was asked for.
pub struct UpgradeOptions {
    pub to: Option<u32>,
    pub method: Method,
    pub check: bool,
    pub finalize: bool,
    pub rollback: bool,
    pub base_image: Option<String>,
    pub jobs: Option<u32>,
    pub yes: bool,
    /// The engine address (`--engine`), for the automatic backup.
    pub engine: Option<String>,
    pub timeout: Duration,
}

/// How the old or new server is started (`up`) during an upgrade.
pub fn up_options(o: &UpgradeOptions) -> UpOptions {
    UpOptions {
        timeout: o.timeout,
        dry_run: false,
    }
}
