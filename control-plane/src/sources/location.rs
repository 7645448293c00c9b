//! Where an app's repository lives: a local path (or file:// URL) read in
//! place, or a remote the control plane mirrors. Parsing refuses credentials
//! inside the URL (they belong in the app's write-only credentials), and
//! [`Location::masked`] is the only form of a remote that is ever shown.

use std::path::PathBuf;

/// A remote's transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `https://`.
    Https,
    /// `ssh://` or scp-like `user@host:path`.
    Ssh,
    /// `git://` (no authentication).
    Git,
}

/// An app's repository, classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A repository on the control plane's machine.
    Local(PathBuf),
    /// A remote, mirrored under the control plane's data directory.
    Remote {
        /// The URL as given (it holds no credentials).
        url: String,
        /// How it is reached.
        transport: Transport,
    },
}

/// Why a repository string is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LocationError {
    /// Empty.
    #[error("missing: give a path, file://, https://, ssh://, user@host:path or git:// URL")]
    Empty,
    /// A scheme Slipway does not fetch.
    #[error(
        "{0:?} is not a supported source: give a path, file://, https://, ssh://, user@host:path or git:// URL"
    )]
    Unsupported(String),
    /// A URL carrying a password or token.
    #[error(
        "the URL carries credentials; give the URL without them and set app.credentials (held by the control plane, never shown)"
    )]
    CredentialsInUrl,
    /// A URL without a host or path.
    #[error("{0:?} has no host or no repository path")]
    Incomplete(String),
}

impl Location {
    /// Classifies `source`.
    pub fn parse(source: &str) -> Result<Self, LocationError> {
        if source.is_empty() {
            return Err(LocationError::Empty);
        }
        if source.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(LocationError::Unsupported(source.to_owned()));
        }
        if let Some(path) = source.strip_prefix("file://") {
            return Ok(Location::Local(PathBuf::from(path)));
        }
        if let Some((scheme, rest)) = source.split_once("://") {
            let transport = match scheme {
                "https" => Transport::Https,
                "ssh" => Transport::Ssh,
                "git" => Transport::Git,
                _ => return Err(LocationError::Unsupported(source.to_owned())),
            };
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            if let Some((userinfo, _)) = authority.rsplit_once('@') {
                // A user name is how ssh names its account; a password never
                // goes in the URL, nor anything at all for https and git.
                if userinfo.contains(':') || transport != Transport::Ssh {
                    return Err(LocationError::CredentialsInUrl);
                }
            }
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if host.is_empty() || path.is_empty() {
                return Err(LocationError::Incomplete(source.to_owned()));
            }
            return Ok(Location::Remote {
                url: source.to_owned(),
                transport,
            });
        }
        if let Some(scp) = scp_like(source) {
            return scp;
        }
        Ok(Location::Local(PathBuf::from(source)))
    }

    /// Whether the control plane mirrors it.
    pub fn is_remote(&self) -> bool {
        matches!(self, Location::Remote { .. })
    }

    /// The form shown to operators, in events and in logs.
    pub fn masked(&self) -> String {
        match self {
            Location::Local(path) => path.display().to_string(),
            Location::Remote { url, .. } => url.clone(),
        }
    }
}

/// `user@host:path` (the scp-like ssh form); None when `source` is not one.
fn scp_like(source: &str) -> Option<Result<Location, LocationError>> {
    if source.starts_with('/') {
        return None;
    }
    let (authority, path) = source.split_once(':')?;
    let (_, host) = authority.split_once('@')?;
    if host.is_empty() || host.contains('/') {
        return None;
    }
    if path.is_empty() {
        return Some(Err(LocationError::Incomplete(source.to_owned())));
    }
    Some(Ok(Location::Remote {
        url: source.to_owned(),
        transport: Transport::Ssh,
    }))
}

/// `source` for messages: its masked form when it parses, else a note.
pub fn masked(source: &str) -> String {
    match Location::parse(source) {
        Ok(location) => location.masked(),
        Err(_) => "(an unsupported repository)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_source_is_classified() {
        let remote = |s: &str, t| Location::Remote {
            url: s.into(),
            transport: t,
        };
        for (source, wanted) in [
            (
                "/srv/git/web.git",
                Location::Local("/srv/git/web.git".into()),
            ),
            ("file:///srv/web", Location::Local("/srv/web".into())),
            ("web.git", Location::Local("web.git".into())),
            (
                "https://git.example.com/team/web.git",
                remote("https://git.example.com/team/web.git", Transport::Https),
            ),
            (
                "ssh://git@git.example.com:2222/web.git",
                remote("ssh://git@git.example.com:2222/web.git", Transport::Ssh),
            ),
            (
                "git@github.com:team/web.git",
                remote("git@github.com:team/web.git", Transport::Ssh),
            ),
            (
                "git://127.0.0.1:9418/web.git",
                remote("git://127.0.0.1:9418/web.git", Transport::Git),
            ),
        ] {
            assert_eq!(Location::parse(source), Ok(wanted), "{source}");
        }
    }

    #[test]
    fn credentials_in_urls_and_other_schemes_are_refused() {
        for (source, wanted) in [
            (
                "https://bob:hunter2@git.example.com/web.git",
                LocationError::CredentialsInUrl,
            ),
            (
                "https://token@git.example.com/web.git",
                LocationError::CredentialsInUrl,
            ),
            (
                "ssh://git:pw@git.example.com/web.git",
                LocationError::CredentialsInUrl,
            ),
            ("", LocationError::Empty),
        ] {
            assert_eq!(Location::parse(source), Err(wanted), "{source}");
        }
        for source in [
            "http://git.example.com/web.git",
            "ftp://x/y",
            "https://x/ y",
        ] {
            assert!(
                matches!(Location::parse(source), Err(LocationError::Unsupported(_))),
                "{source}"
            );
        }
        assert!(matches!(
            Location::parse("https://git.example.com"),
            Err(LocationError::Incomplete(_))
        ));
        assert_eq!(
            masked("https://bob:hunter2@x/y"),
            "(an unsupported repository)"
        );
    }
}
