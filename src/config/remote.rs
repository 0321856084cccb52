//! `[backup.remote]` and `[backup] encrypt_to` of pgbox.toml: where off-site copies
//! go and to whom they are encrypted, checked while deserialised (so a bad URL or
//! recipient is named with its line and column), and resolved into
//! [`RemoteSettings`]. Credentials are deliberately not keys here: they come from
//! the AWS environment variables, the AWS profile files, or the private file that
//! `credentials_file` names (read by the store's credentials module).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use super::check::de_with;

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemoteSection {
    /// `s3://bucket` or `s3://bucket/prefix`.
    #[serde(
        default,
        deserialize_with = "de_s3_url",
        skip_serializing_if = "Option::is_none"
    )]
    pub url: Option<String>,
    /// The store's address for S3-compatible services (MinIO, R2, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), which most self-hosted stores need.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
    /// A private (0600) AWS credentials file (`[default]` with `aws_access_key_id`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
}

/// The off-site destination, resolved.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RemoteSettings {
    /// `s3://bucket/prefix` as written.
    pub url: String,
    pub bucket: String,
    /// Without leading or trailing `/`; may be empty.
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: String,
    pub path_style: bool,
    pub credentials_file: Option<PathBuf>,
    pub keep_last: Option<u32>,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
}

/// Split `s3://bucket/prefix` into bucket and prefix.
pub fn parse_s3_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("`{url}` is not an `s3://bucket/prefix` URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !ok {
        return Err(format!(
            "`{bucket}` is not an S3 bucket name (3-63 lowercase letters, digits, `-` and `.`)"
        ));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

fn de_s3_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    de_with(d, |s: &String| parse_s3_url(s).map(|_| ()))
}

/// Each entry an X25519 recipient (`age1...`) or a recipients file.
pub(super) fn de_recipients<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    de_with(d, |v: &Vec<String>| {
        for r in v {
            if r.trim().is_empty() {
                return Err("an `encrypt_to` entry is empty".into());
            }
            if r.starts_with("age1") && !crate::crypt::is_recipient(r) {
                return Err(format!("`{r}` is not an age X25519 recipient"));
            }
        }
        Ok(())
    })
}

impl RemoteSection {
    /// Resolved against the project folder; None without a `url`.
    pub fn resolve(self, project_dir: &Path) -> Option<RemoteSettings> {
        let url = self.url?;
        let (bucket, prefix) = parse_s3_url(&url).ok()?;
        Some(RemoteSettings {
            url,
            bucket,
            prefix,
            endpoint: self.endpoint,
            region: self.region.unwrap_or_else(|| "us-east-1".into()),
            path_style: self.path_style.unwrap_or(false),
            credentials_file: self
                .credentials_file
                .map(|f| super::absolute(project_dir, &f)),
            keep_last: self.keep_last,
            keep_daily: self.keep_daily.unwrap_or(7),
            keep_weekly: self.keep_weekly.unwrap_or(4),
            keep_monthly: self.keep_monthly.unwrap_or(6),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_bucket_and_prefix() {
        assert_eq!(
            parse_s3_url("s3://my-backups/db/shop/").unwrap(),
            ("my-backups".into(), "db/shop".into())
        );
        assert_eq!(
            parse_s3_url("s3://my-backups").unwrap(),
            ("my-backups".into(), String::new())
        );
        assert!(parse_s3_url("https://x/y").is_err());
        assert!(parse_s3_url("s3://B_ad/x").is_err());
    }

    #[test]
    fn pgbox_toml_names_a_bad_url_or_recipient_with_its_line() {
        let path = Path::new("/p/pgbox.toml");
        let e =
            super::super::parse_file(path, "[backup.remote]\nurl = \"https://x\"\n").unwrap_err();
        assert!(
            e.message.contains("pgbox.toml:2:7") && e.message.contains("s3://"),
            "{}",
            e.message
        );
        let e =
            super::super::parse_file(path, "[backup]\nencrypt_to = [\"age1nope\"]\n").unwrap_err();
        assert!(
            e.message.contains("not an age X25519 recipient"),
            "{}",
            e.message
        );
        let f = super::super::parse_file(
            path,
            "[backup]\nencrypt_to = [\"keys.txt\"]\n[backup.remote]\nurl = \"s3://b-1/x/\"\ncredentials_file = \"c\"\nkeep_daily = 2\n",
        )
        .unwrap();
        let s = crate::config::Settings::resolve(path, &[f]);
        let r = s.remote.unwrap();
        assert_eq!((r.bucket.as_str(), r.prefix.as_str()), ("b-1", "x"));
        assert_eq!(r.credentials_file.as_deref(), Some(Path::new("/p/c")));
        assert_eq!((r.keep_daily, r.keep_weekly), (2, 4));
        assert_eq!(s.encrypt_to, vec!["keys.txt"]);
    }
}
