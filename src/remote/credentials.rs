//! Where the store's credentials come from, in order: the private file that
//! `[backup.remote] credentials_file` names, the AWS environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), then the
//! AWS shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
//! `~/.aws/credentials`, profile `AWS_PROFILE`, else `default`). Both files use the
//! AWS INI format. pgbox.toml never holds them; they are handed to the S3 client in
//! memory only, never printed, never put in an argument or a container.

use std::path::{Path, PathBuf};

use crate::config::RemoteSettings;
use crate::error::Fail;

/// An access key pair (and session token), never printed.
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Where they came from, for messages ("AWS_ACCESS_KEY_ID", a file path).
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials(from {})", self.source)
    }
}

/// The credentials for `r` (see the module doc), with `env` reading variables.
pub fn find(r: &RemoteSettings, env: &dyn Fn(&str) -> Option<String>) -> Result<Credentials, Fail> {
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    if let Some(file) = &r.credentials_file {
        crate::fsutil::check_private(file, "the credentials file")?;
        return from_file(file, &profile)?.ok_or_else(|| {
            Fail::new(format!(
                "the credentials file `{}` has no `[{profile}]` section with `aws_access_key_id` and `aws_secret_access_key`",
                file.display()
            ))
            .hint("write it in the AWS credentials format: `[default]`, then `aws_access_key_id = ...` and `aws_secret_access_key = ...`")
        });
    }
    if let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: env("AWS_SESSION_TOKEN"),
            source: "AWS_ACCESS_KEY_ID".into(),
        });
    }
    let shared = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".aws/credentials")));
    if let Some(file) = shared.filter(|f| f.is_file()) {
        if let Some(c) = from_file(&file, &profile)? {
            return Ok(c);
        }
    }
    Err(Fail::new(format!("no credentials for `{}`", r.url)).hint(
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, add a profile to ~/.aws/credentials (AWS_PROFILE picks one), or point `[backup.remote] credentials_file` to a private file in that format",
    ))
}

fn from_file(path: &Path, profile: &str) -> Result<Option<Credentials>, Fail> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Fail::new(format!(
            "cannot read the credentials file `{}`: {e}",
            path.display()
        ))
    })?;
    Ok(
        parse(&text, profile).map(|(id, secret, token)| Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: token,
            source: path.display().to_string(),
        }),
    )
}

/// `(id, secret, token)` of `[profile]` in AWS INI text.
fn parse(text: &str, profile: &str) -> Option<(String, String, Option<String>)> {
    let (mut id, mut secret, mut token) = (None, None, None);
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            inside = name == profile || name == format!("profile {profile}");
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some((id?, secret?, token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn remote(file: Option<PathBuf>) -> RemoteSettings {
        RemoteSettings {
            url: "s3://bucket".into(),
            bucket: "bucket".into(),
            prefix: String::new(),
            endpoint: None,
            region: "us-east-1".into(),
            path_style: false,
            credentials_file: file,
            keep_last: None,
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 6,
        }
    }

    #[test]
    fn profiles_and_files_in_aws_format() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key=B\n\n[profile ci]\naws_access_key_id = C\naws_secret_access_key = D\naws_session_token = T\n";
        assert_eq!(parse(text, "default"), Some(("A".into(), "B".into(), None)));
        assert_eq!(
            parse(text, "ci"),
            Some(("C".into(), "D".into(), Some("T".into())))
        );
        assert_eq!(parse(text, "other"), None);
    }

    #[test]
    fn a_credentials_file_readable_by_others_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("creds");
        std::fs::write(
            &f,
            "[default]\naws_access_key_id = A\naws_secret_access_key = sEcReT\n",
        )
        .unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        let none = |_: &str| None;
        let e = find(&remote(Some(f.clone())), &none).unwrap_err();
        assert!(e.to_string().contains("readable by others"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = find(&remote(Some(f)), &none).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("A", "sEcReT")
        );
        // The environment, then nothing: a clear error.
        let env = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("X".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("Y".into()),
            _ => None,
        };
        assert_eq!(find(&remote(None), &env).unwrap().access_key_id, "X");
        let e = find(&remote(None), &none).unwrap_err();
        assert!(e.to_string().contains("no credentials"), "{e}");
        // Debug never shows the secret.
        assert!(!format!("{c:?}").contains("sEcReT"));
    }
}
