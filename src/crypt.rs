//! age encryption of backup streams: who a backup is encrypted to
//! (`[backup] encrypt_to`), the private identity file that `--identity` names, and
//! streaming in both directions, so memory stays flat whatever the size.
//!
//! Encryption is push-shaped ([`Encrypting::push`] takes plaintext, returns the
//! ciphertext ready so far) so any byte source (a dump's exec stream, a file, later
//! a base backup or a WAL segment) can feed it without a thread of its own.
//! Decryption is pull-shaped ([`decrypt`] wraps an async reader of ciphertext).
//! Only X25519 recipients are taken: no passphrases (a scheduled backup has no one
//! to type one) and no plugins (nothing to install on the restoring machine).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use age::x25519;
use futures_util::io::AsyncRead;

use crate::error::{Fail, EXIT_USAGE};

/// Whether `s` parses as an age X25519 recipient (`age1...`).
pub fn is_recipient(s: &str) -> bool {
    x25519::Recipient::from_str(s.trim()).is_ok()
}

/// The recipients of `[backup] encrypt_to`, with the public keys as written.
#[derive(Clone)]
pub struct Recipients {
    keys: Vec<x25519::Recipient>,
    /// The public keys, as the manifest records them.
    pub names: Vec<String>,
}

impl Recipients {
    /// Each entry is a recipient (`age1...`) or a recipients file (one per line,
    /// `#` comments), relative to `base`. None when there are no entries.
    pub fn resolve(entries: &[String], base: &Path) -> Result<Option<Recipients>, Fail> {
        let mut keys = Vec::new();
        for e in entries.iter().map(|e| e.trim()) {
            if e.starts_with("age1") {
                keys.push(parse_recipient(e, None)?);
                continue;
            }
            let path = crate::fsutil::absolute(base, Path::new(e));
            let text = std::fs::read_to_string(&path).map_err(|err| {
                Fail::new(format!(
                    "cannot read the recipients file `{}`: {err}",
                    path.display()
                ))
                .hint("`[backup] encrypt_to` takes `age1...` public keys or files of them")
                .code(EXIT_USAGE)
            })?;
            for line in text.lines().map(str::trim) {
                if !line.is_empty() && !line.starts_with('#') {
                    keys.push(parse_recipient(line, Some(&path))?);
                }
            }
        }
        if keys.is_empty() {
            return Ok(None);
        }
        let names = keys.iter().map(|k| k.to_string()).collect();
        Ok(Some(Recipients { keys, names }))
    }
}

fn parse_recipient(s: &str, file: Option<&Path>) -> Result<x25519::Recipient, Fail> {
    x25519::Recipient::from_str(s).map_err(|_| {
        let from = file
            .map(|f| format!(" in `{}`", f.display()))
            .unwrap_or_default();
        Fail::new(format!("`{s}`{from} is not an age X25519 recipient"))
            .hint("make a key pair with `age-keygen -o key.txt`; its `# public key: age1...` line is the recipient")
            .code(EXIT_USAGE)
    })
}

/// The private keys of an identity file (`AGE-SECRET-KEY-1...` lines, as
/// `age-keygen` writes them). The file must be private to its owner.
pub struct Identities {
    keys: Vec<x25519::Identity>,
    pub path: PathBuf,
}

impl Identities {
    pub fn load(path: &Path) -> Result<Identities, Fail> {
        crate::fsutil::check_private(path, "the age identity file")?;
        let text = std::fs::read_to_string(path).map_err(|e| {
            Fail::new(format!(
                "cannot read the age identity file `{}`: {e}",
                path.display()
            ))
        })?;
        let mut keys = Vec::new();
        for (n, line) in text.lines().map(str::trim).enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // Never echo the line: it is a private key.
            keys.push(x25519::Identity::from_str(line).map_err(|_| {
                Fail::new(format!(
                    "line {} of `{}` is not an age X25519 identity",
                    n + 1,
                    path.display()
                ))
                .hint("pass the file `age-keygen` wrote (`AGE-SECRET-KEY-1...` lines)")
                .code(EXIT_USAGE)
            })?);
        }
        if keys.is_empty() {
            return Err(
                Fail::new(format!("`{}` holds no age identity", path.display())).code(EXIT_USAGE),
            );
        }
        Ok(Identities {
            keys,
            path: path.to_path_buf(),
        })
    }

    /// The public keys of these identities.
    pub fn public(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.to_public().to_string())
            .collect()
    }
}

/// A shared buffer the age writer writes into and [`Encrypting::push`] drains.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("sink lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().expect("sink lock"))
    }
}

/// An age stream being written: plaintext in, ciphertext out, 64 KiB at a time.
pub struct Encrypting {
    writer: age::stream::StreamWriter<Sink>,
    sink: Sink,
}

impl Encrypting {
    pub fn new(to: &Recipients) -> anyhow::Result<Encrypting> {
        let sink = Sink::default();
        let enc =
            age::Encryptor::with_recipients(to.keys.iter().map(|k| k as &dyn age::Recipient))?;
        let writer = enc.wrap_output(sink.clone())?;
        Ok(Encrypting { writer, sink })
    }

    /// Encrypt `plain`; returns the ciphertext completed so far (possibly empty).
    pub fn push(&mut self, plain: &[u8]) -> std::io::Result<Vec<u8>> {
        self.writer.write_all(plain)?;
        Ok(self.sink.take())
    }

    /// End the stream: the last ciphertext bytes.
    pub fn finish(self) -> std::io::Result<Vec<u8>> {
        self.writer.finish()?;
        Ok(self.sink.take())
    }
}

/// Why a backup could not be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    #[error("the backup is encrypted to {}, and the identity in `{}` ({}) is none of them", .recipients.join(", "), .path.display(), .have.join(", "))]
    WrongKey {
        recipients: Vec<String>,
        path: PathBuf,
        have: Vec<String>,
    },
    #[error("the backup is not a readable age file: {0}")]
    Damaged(String),
}

/// Decrypt an age stream read from `input`. `recipients` (from the manifest) name
/// the keys the backup was made for, for the error when `ids` holds none of them.
pub async fn decrypt<R: AsyncRead + Unpin>(
    input: R,
    ids: &Identities,
    recipients: &[String],
) -> Result<impl AsyncRead + Unpin, Fail> {
    let damaged = |e: age::DecryptError| Fail::typed(DecryptError::Damaged(e.to_string()));
    let dec = age::Decryptor::new_async(input).await.map_err(damaged)?;
    dec.decrypt_async(ids.keys.iter().map(|k| k as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => Fail::typed(DecryptError::WrongKey {
                recipients: recipients.to_vec(),
                path: ids.path.clone(),
                have: ids.public(),
            })
            .hint("pass `--identity` the key file of one of those recipients")
            .code(EXIT_USAGE),
            e => damaged(e),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::io::AsyncReadExt;
    use std::os::unix::fs::PermissionsExt;

    fn key_file(dir: &Path, name: &str, mode: u32) -> (PathBuf, String) {
        let id = x25519::Identity::generate();
        let path = dir.join(name);
        use age::secrecy::ExposeSecret;
        std::fs::write(
            &path,
            format!("# test\n{}\n", id.to_string().expose_secret()),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (path, id.to_public().to_string())
    }

    #[test]
    fn a_stream_round_trips_for_each_recipient_and_refuses_others() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, pa) = key_file(tmp.path(), "a", 0o600);
        let (b, pb) = key_file(tmp.path(), "b", 0o600);
        let (c, _) = key_file(tmp.path(), "c", 0o600);
        let to = Recipients::resolve(&[pa.clone(), pb.clone()], tmp.path())
            .unwrap()
            .unwrap();
        let plain: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut e = Encrypting::new(&to).unwrap();
        let mut cipher = Vec::new();
        for chunk in plain.chunks(7_000) {
            cipher.extend(e.push(chunk).unwrap());
        }
        cipher.extend(e.finish().unwrap());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for key in [&a, &b] {
            let ids = Identities::load(key).unwrap();
            let mut out = Vec::new();
            rt.block_on(async {
                let mut r = decrypt(&cipher[..], &ids, &to.names).await.unwrap();
                r.read_to_end(&mut out).await.unwrap();
            });
            assert_eq!(out, plain);
        }
        let ids = Identities::load(&c).unwrap();
        let e = rt
            .block_on(async { decrypt(&cipher[..], &ids, &to.names).await.map(|_| ()) })
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains(&pa) && text.contains(&pb), "{text}");
    }

    #[test]
    fn an_identity_readable_by_others_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (k, _) = key_file(tmp.path(), "k", 0o644);
        let e = Identities::load(&k).err().unwrap();
        assert!(e.to_string().contains("readable by others"), "{e}");
        assert!(e.hint.unwrap().contains("chmod 600"));
    }

    #[test]
    fn recipients_come_from_keys_and_files() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, pa) = key_file(tmp.path(), "a", 0o600);
        let (_, pb) = key_file(tmp.path(), "b", 0o600);
        std::fs::write(tmp.path().join("team.txt"), format!("# team\n{pb}\n")).unwrap();
        let r = Recipients::resolve(&[pa.clone(), "team.txt".into()], tmp.path())
            .unwrap()
            .unwrap();
        assert_eq!(r.names, vec![pa, pb]);
        assert!(Recipients::resolve(&["age1nope".into()], tmp.path()).is_err());
        assert!(Recipients::resolve(&[], tmp.path()).unwrap().is_none());
    }
}
