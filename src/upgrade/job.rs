//! What the build phase of an upgrade works with: the [`Job`] the checks worked
//! out, and the one error that is not undone ([`PastNoReturn`]). A leaf, so the
//! build and the methods it runs share these without importing each other.

use std::time::Duration;

use crate::config::{Settings, StorageMode};
use crate::engine::Engine;
use crate::printer::Printer;
use crate::state::Decision;

use super::check::Facts;
use super::options::Method;

/// Everything the build needs, worked out by the checks.
pub struct Job<'a> {
    pub engine: &'a Engine,
    /// The project's settings as loaded (the old side, with its own values).
    pub s: &'a Settings,
    pub old: Settings,
    pub new: Settings,
    pub old_tag: String,
    pub new_tag: String,
    pub d_old: Decision,
    pub d_new: Decision,
    pub facts: Facts,
    pub method: Method,
    pub mode: StorageMode,
    pub jobs: u32,
    pub timeout: Duration,
    pub p: &'a Printer,
}

/// An error past the point of no return (see [`Built::late`]).
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct PastNoReturn(pub anyhow::Error);
