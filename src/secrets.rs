//! The project's password: generated or supplied once, kept in a private file.
//!
//! The password lives in `.pgbox/secrets/postgres_password` (0600 in a 0700
//! folder) and reaches the container only as a mounted file, never through
//! arguments or the environment. Everything that creates, checks or reads it is
//! here, so `init`, `up`, `url --with-password` and `generate` agree on it.

use anyhow::Context;
use rand::Rng;

use crate::config::Settings;
use crate::error::Fail;

/// 32 random characters from an alphabet without look-alikes (no 0/O, 1/l/I).
pub fn generate_password() -> String {
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    (0..32)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// Check a user-supplied password: non-empty, one line.
pub fn check_password(p: &str) -> Result<(), Fail> {
    if p.is_empty() {
        return Err(Fail::new("the password is empty")
            .hint("pipe a non-empty password into `--password-stdin`"));
    }
    if p.contains('\n') || p.contains('\r') || p.contains('\0') {
        return Err(Fail::new("the password contains a line break or NUL")
            .hint("use a single-line password"));
    }
    Ok(())
}

/// Write the password file (0600 in a 0700 folder) unless it exists. True if written.
pub fn ensure_secret(s: &Settings, provided: Option<&str>) -> anyhow::Result<bool> {
    let path = s.secret_path();
    if path.is_file() && provided.is_none() {
        return Ok(false);
    }
    let dir = path.parent().expect("secret path has a parent");
    crate::fsutil::private_dir(&s.state_dir(), 0o700)?;
    crate::fsutil::private_dir(dir, 0o700)?;
    let password = provided
        .map(str::to_string)
        .unwrap_or_else(generate_password);
    crate::fsutil::write_atomic(&path, format!("{password}\n").as_bytes(), 0o600)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(true)
}

/// The password: the first line of the password file, which must not be empty
/// (an empty one would be applied to the role, or put into URLs, as is).
pub fn read_password(s: &Settings) -> anyhow::Result<String> {
    let path = s.secret_path();
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Fail::new(format!(
            "cannot read the password file `{}`: {e}",
            path.display()
        ))
        .hint("run `pgbox init` to create it")
    })?;
    match text.lines().next() {
        Some(line) if !line.is_empty() => Ok(line.to_string()),
        _ => Err(Fail::new(format!(
            "the password file `{}` is empty",
            path.display()
        ))
        .hint("put the password on its first line, or set a new one with `pgbox init --force --password-stdin`")
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let a = generate_password();
        assert_eq!(a.len(), 32);
        assert_ne!(a, generate_password());
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
