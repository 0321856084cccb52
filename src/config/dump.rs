//! The dump settings of `[backup]` (format, compression, level): the enums the
//! `backup --format/--compress` flags share, and which levels each compressor takes.

use serde::{Deserialize, Serialize};

/// The format of a dump (`[backup] format`, `backup --format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Custom,
    Plain,
    Directory,
}

/// How a dump is compressed (`[backup] compress`, `backup --compress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Zstd,
    Gzip,
    None,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Custom => "custom",
            Format::Plain => "plain",
            Format::Directory => "directory",
        }
    }
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
            Compression::None => "none",
        }
    }

    /// The level used when none is given: 3 for zstd, 6 for gzip.
    pub fn default_level(self) -> u32 {
        match self {
            Compression::Zstd => 3,
            Compression::Gzip => 6,
            Compression::None => 0,
        }
    }

    /// Whether `level` is one this compressor takes (zstd 1-19, gzip 1-9).
    pub fn takes_level(self, level: u32) -> bool {
        match self {
            Compression::Zstd => (1..=19).contains(&level),
            Compression::Gzip => (1..=9).contains(&level),
            Compression::None => true,
        }
    }
}
