//! S3 credentials, region and endpoint, found where the AWS tools look for them, so a device
//! that already has the AWS CLI configured needs nothing else:
//!
//! - credentials: with `ship.profile` set, that profile of the shared credentials file (as
//!   `aws --profile` does); otherwise `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+
//!   `AWS_SESSION_TOKEN`), then the profile `AWS_PROFILE` (or `default`) of the shared
//!   credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`);
//! - region: `ship.region`, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region` in the
//!   shared config file (`AWS_CONFIG_FILE`, else `~/.aws/config`), else `us-east-1`;
//! - endpoint: `ship.endpoint`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, else AWS's own.
//!
//! Read once when the shipper starts. No instance-metadata lookups: a device without
//! credentials gets an error naming where they were looked for, never a request to a
//! link-local metadata address.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The region when nothing names one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// An access key pair (and session token). `Debug` leaves the secrets out.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// `aws_access_key_id`.
    pub access_key_id: String,
    /// `aws_secret_access_key`.
    pub secret_access_key: String,
    /// `aws_session_token`, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Everything resolved for an S3 target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// The credentials.
    pub credentials: AwsCredentials,
    /// Where they came from, for messages (`environment`, `profile prod in /root/.aws/credentials`).
    pub credentials_from: String,
    /// The region.
    pub region: String,
    /// A custom endpoint, if any.
    pub endpoint: Option<String>,
}

/// What the lookup starts from: the `ship` section's explicit values, and a view of the
/// environment (injected so tests do not touch the process's).
#[derive(Debug, Clone, Default)]
pub struct Lookup<'a> {
    /// `ship.profile`.
    pub profile: Option<&'a str>,
    /// `ship.region`.
    pub region: Option<&'a str>,
    /// `ship.endpoint`.
    pub endpoint: Option<&'a str>,
}

/// Credentials could not be found or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CredentialsError(pub String);

/// Resolve with `env` as the environment (`std::env::var` for the process's).
pub fn resolve(
    lookup: &Lookup<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AwsSettings, CredentialsError> {
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let home = var("HOME").map(PathBuf::from);
    let credentials_file = var("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws").join("credentials")));
    let config_file = var("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws").join("config")));
    let profile = lookup
        .profile
        .map(str::to_owned)
        .or_else(|| var("AWS_PROFILE"))
        .unwrap_or_else(|| "default".to_owned());

    let from_env = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        // `ship.profile` names a profile on purpose: it wins over the environment, as
        // `aws --profile` does.
        (Some(id), Some(secret)) if lookup.profile.is_none() => Some(AwsCredentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: var("AWS_SESSION_TOKEN"),
        }),
        _ => None,
    };
    let (credentials, credentials_from) = match from_env {
        Some(c) => (c, "environment".to_owned()),
        None => {
            let Some(path) = credentials_file else {
                return Err(CredentialsError(
                    "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
                     AWS_SHARED_CREDENTIALS_FILE (HOME is not set either)"
                        .to_owned(),
                ));
            };
            let c = profile_credentials(&path, &profile, lookup.profile.is_some())?;
            (c, format!("profile {profile} in {}", path.display()))
        }
    };

    let region = match lookup
        .region
        .map(str::to_owned)
        .or_else(|| var("AWS_REGION"))
        .or_else(|| var("AWS_DEFAULT_REGION"))
    {
        Some(r) => r,
        None => config_file
            .as_deref()
            .and_then(|path| read_ini(path).ok().flatten())
            .and_then(|ini| {
                let section = if profile == "default" {
                    "default".to_owned()
                } else {
                    format!("profile {profile}")
                };
                ini.get(&section)?.get("region").cloned()
            })
            .unwrap_or_else(|| DEFAULT_REGION.to_owned()),
    };
    let endpoint = lookup
        .endpoint
        .map(str::to_owned)
        .or_else(|| var("AWS_ENDPOINT_URL_S3"))
        .or_else(|| var("AWS_ENDPOINT_URL"));
    Ok(AwsSettings {
        credentials,
        credentials_from,
        region,
        endpoint,
    })
}

/// The credentials of `profile` in the shared credentials file at `path`.
fn profile_credentials(
    path: &Path,
    profile: &str,
    named: bool,
) -> Result<AwsCredentials, CredentialsError> {
    let where_ = || {
        if named {
            format!("profile {profile} (ship.profile) in {}", path.display())
        } else {
            format!(
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, nor profile {profile} in {}",
                path.display()
            )
        }
    };
    let ini = match read_ini(path) {
        Ok(Some(ini)) => ini,
        Ok(None) => {
            return Err(CredentialsError(format!(
                "no S3 credentials: neither {} (no such file)",
                where_()
            )))
        }
        Err(e) => {
            return Err(CredentialsError(format!(
                "read the shared credentials file {}: {e}",
                path.display()
            )))
        }
    };
    let Some(section) = ini.get(profile) else {
        return Err(CredentialsError(format!(
            "no S3 credentials: neither {} (no such profile)",
            where_()
        )));
    };
    match (
        section.get("aws_access_key_id"),
        section.get("aws_secret_access_key"),
    ) {
        (Some(id), Some(secret)) => Ok(AwsCredentials {
            access_key_id: id.clone(),
            secret_access_key: secret.clone(),
            session_token: section.get("aws_session_token").cloned(),
        }),
        _ => Err(CredentialsError(format!(
            "profile {profile} in {} has no aws_access_key_id and aws_secret_access_key",
            path.display()
        ))),
    }
}

/// Sections of an INI file: `None` when it does not exist.
fn read_ini(path: &Path) -> std::io::Result<Option<Ini>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(parse_ini(&text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Section name -> key -> value.
pub type Ini = BTreeMap<String, BTreeMap<String, String>>;

/// The AWS files' INI dialect: `[section]` headers, `key = value` lines, `#` and `;` comment
/// lines, keys case-insensitive, indented lines continuing a nested value (`s3 =` blocks)
/// skipped; lines before the first section are ignored.
pub fn parse_ini(text: &str) -> Ini {
    let mut ini = Ini::new();
    let mut section: Option<String> = None;
    for line in text.lines() {
        // A nested block's lines are indented; the credentials never are.
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            ini.entry(name.clone()).or_default();
            section = Some(name);
            continue;
        }
        let (Some(s), Some((k, v))) = (&section, line.split_once('=')) else {
            continue;
        };
        if let Some(values) = ini.get_mut(s) {
            values.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    ini
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const CREDENTIALS: &str = "\
# a comment
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key = secret/default+key

[prod]
AWS_ACCESS_KEY_ID=AKIAPROD
aws_secret_access_key=prodsecret
aws_session_token = tok
; another comment
[nested]
aws_access_key_id = AKIANESTED
aws_secret_access_key = s
s3 =
  max_concurrent_requests = 20
[broken]
aws_access_key_id = only-half
";

    const CONFIG: &str = "\
[default]
region = eu-west-1
[profile prod]
region = ap-south-1
";

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn files() -> (tempfile::TempDir, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        let config = dir.path().join("config");
        std::fs::write(&creds, CREDENTIALS).unwrap();
        std::fs::write(&config, CONFIG).unwrap();
        let creds = creds.display().to_string();
        let config = config.display().to_string();
        (dir, creds, config)
    }

    #[test]
    fn parses_the_aws_ini_dialect() {
        let ini = parse_ini(CREDENTIALS);
        assert_eq!(
            ini["default"]["aws_secret_access_key"],
            "secret/default+key"
        );
        assert_eq!(ini["prod"]["aws_access_key_id"], "AKIAPROD");
        assert_eq!(ini["prod"]["aws_session_token"], "tok");
        assert_eq!(ini["nested"]["aws_access_key_id"], "AKIANESTED");
        assert!(!ini["nested"].contains_key("max_concurrent_requests"));
        assert_eq!(parse_ini(CONFIG)["profile prod"]["region"], "ap-south-1");
        assert!(parse_ini("key = before any section\n").is_empty());
    }

    #[test]
    fn the_environment_comes_first_unless_a_profile_is_named() {
        let (_d, creds, config) = files();
        let vars = [
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "envsecret"),
            ("AWS_SESSION_TOKEN", "envtoken"),
            ("AWS_SHARED_CREDENTIALS_FILE", creds.as_str()),
            ("AWS_CONFIG_FILE", config.as_str()),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
        ];
        let s = resolve(&Lookup::default(), &env(&vars)).unwrap();
        assert_eq!(s.credentials.access_key_id, "AKIAENV");
        assert_eq!(s.credentials.session_token.as_deref(), Some("envtoken"));
        assert_eq!(s.credentials_from, "environment");
        assert_eq!(s.region, "eu-west-1", "the default profile's region");
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(!format!("{:?}", s.credentials).contains("envsecret"));

        let named = Lookup {
            profile: Some("prod"),
            ..Lookup::default()
        };
        let s = resolve(&named, &env(&vars)).unwrap();
        assert_eq!(s.credentials.access_key_id, "AKIAPROD");
        assert_eq!(s.region, "ap-south-1");
        assert!(
            s.credentials_from.contains("profile prod"),
            "{}",
            s.credentials_from
        );
    }

    #[test]
    fn the_file_profile_from_aws_profile_or_default() {
        let (_d, creds, config) = files();
        let base = [
            ("AWS_SHARED_CREDENTIALS_FILE", creds.as_str()),
            ("AWS_CONFIG_FILE", config.as_str()),
        ];
        let s = resolve(&Lookup::default(), &env(&base)).unwrap();
        assert_eq!(s.credentials.access_key_id, "AKIADEFAULT");
        assert_eq!(s.credentials.session_token, None);
        let mut vars = base.to_vec();
        vars.push(("AWS_PROFILE", "prod"));
        vars.push(("AWS_REGION", "us-west-2"));
        let s = resolve(&Lookup::default(), &env(&vars)).unwrap();
        assert_eq!(s.credentials.access_key_id, "AKIAPROD");
        assert_eq!(s.region, "us-west-2", "AWS_REGION over the config file");
        let explicit = Lookup {
            region: Some("eu-central-1"),
            endpoint: Some("https://s3.example.test"),
            ..Lookup::default()
        };
        let s = resolve(&explicit, &env(&vars)).unwrap();
        assert_eq!(s.region, "eu-central-1");
        assert_eq!(s.endpoint.as_deref(), Some("https://s3.example.test"));
    }

    #[test]
    fn missing_credentials_say_where_they_were_looked_for() {
        let (_d, creds, _config) = files();
        let e = resolve(
            &Lookup {
                profile: Some("nosuch"),
                ..Lookup::default()
            },
            &env(&[("AWS_SHARED_CREDENTIALS_FILE", creds.as_str())]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("profile nosuch") && e.contains(&creds), "{e}");
        let e = resolve(
            &Lookup {
                profile: Some("broken"),
                ..Lookup::default()
            },
            &env(&[("AWS_SHARED_CREDENTIALS_FILE", creds.as_str())]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("aws_secret_access_key"), "{e}");
        let e = resolve(&Lookup::default(), &env(&[("HOME", "/nonexistent-home")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("AWS_ACCESS_KEY_ID") && e.contains("/nonexistent-home/.aws/credentials"),
            "{e}"
        );
        let s = resolve(
            &Lookup::default(),
            &env(&[
                ("HOME", "/nonexistent-home"),
                ("AWS_ACCESS_KEY_ID", "a"),
                ("AWS_SECRET_ACCESS_KEY", "b"),
            ]),
        )
        .unwrap();
        assert_eq!(s.region, DEFAULT_REGION);
        assert_eq!(s.endpoint, None);
    }
}
