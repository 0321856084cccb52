//! Error types that carry what went wrong, how to fix it, and the exit code.
//!
//! Modules return their own `thiserror` enums or a [`Fail`]; commands work with
//! `anyhow`. `main` prints the chain as `error:` / `caused by:` / `hint:` and
//! maps it to an exit code with [`exit_code`]. The codes are documented in the
//! README: 0 ok, 1 failure, 2 usage or configuration, 3 no engine, 4 unhealthy,
//! 130 interrupted (143 on SIGTERM); `psql` passes its own code through.

use std::fmt;

pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_NO_ENGINE: u8 = 3;
pub const EXIT_UNHEALTHY: u8 = 4;

/// A failure the user can act on: a message, an optional hint, an exit code, and
/// optionally the module's typed error it was made from, so callers decide by
/// its variant ([`Fail::kind`]), never by the message text.
#[derive(Debug)]
pub struct Fail {
    pub message: String,
    pub hint: Option<String>,
    pub code: u8,
    kind: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Fail {
    pub fn new(message: impl Into<String>) -> Self {
        Fail {
            message: message.into(),
            hint: None,
            code: EXIT_FAILURE,
            kind: None,
        }
    }

    /// A failure made from a module's typed error; its text is the message.
    pub fn typed<E: std::error::Error + Send + Sync + 'static>(e: E) -> Self {
        Fail {
            message: e.to_string(),
            hint: None,
            code: EXIT_FAILURE,
            kind: Some(Box::new(e)),
        }
    }

    /// The typed error this failure was made from, when it is an `E`.
    pub fn kind<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.kind.as_ref()?.downcast_ref::<E>()
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn code(mut self, code: u8) -> Self {
        self.code = code;
        self
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fail {}

/// Ctrl-C while a command ran.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

fn find_fail(err: &anyhow::Error) -> Option<&Fail> {
    err.downcast_ref::<Fail>()
        .or_else(|| err.chain().find_map(|e| e.downcast_ref::<Fail>()))
}

pub fn hint_of(err: &anyhow::Error) -> Option<&str> {
    err.chain()
        .filter_map(|e| e.downcast_ref::<Fail>())
        .chain(err.downcast_ref::<Fail>())
        .find_map(|f| f.hint.as_deref())
}

pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<Interrupted>().is_some() {
        return crate::cancel::exit_code();
    }
    find_fail(err).map_or(EXIT_FAILURE, |f| f.code)
}
