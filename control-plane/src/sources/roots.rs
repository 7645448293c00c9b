//! The repository trust boundary: the directories an app's git source may
//! lie in, from the control plane's configuration. An admin who creates or
//! updates an app can point it only at a repository under one of them; with
//! none configured, any absolute path the control-plane process can read is
//! accepted (and the control plane says so at start). Relative paths are
//! always refused: they would depend on the process's working directory.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

/// The trusted source directories, canonical (symlinks resolved).
#[derive(Clone, Debug, Default)]
pub struct SourceRoots(Arc<Vec<PathBuf>>);

/// A configured source directory that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SourceRootError {
    /// Not absolute.
    #[error("source root {0} must be an absolute path")]
    Relative(PathBuf),
    /// Missing or unreadable.
    #[error("source root {path} does not exist or cannot be read")]
    Missing {
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Why an app's repository is refused.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Not a path or URL Slipway can fetch.
    #[error(transparent)]
    Location(#[from] super::location::LocationError),
    /// A relative path.
    #[error("{0} is relative; give an absolute path or a file:// URL")]
    Relative(String),
    /// It does not exist.
    #[error("{0} does not exist on the control plane's machine")]
    Missing(String),
    /// Outside every trusted directory.
    #[error(
        "{path} is not under a trusted source directory ({roots}); see source_roots in the control plane's configuration"
    )]
    Untrusted {
        /// The repository, resolved.
        path: String,
        /// The trusted directories.
        roots: String,
    },
}

impl SourceRoots {
    /// Checks and canonicalises the configured directories.
    pub fn new(roots: &[PathBuf]) -> Result<Self, SourceRootError> {
        let mut canonical = Vec::with_capacity(roots.len());
        for root in roots {
            if !root.is_absolute() {
                return Err(SourceRootError::Relative(root.clone()));
            }
            let path = std::fs::canonicalize(root).map_err(|source| SourceRootError::Missing {
                path: root.clone(),
                source,
            })?;
            canonical.push(path);
        }
        Ok(Self(Arc::new(canonical)))
    }

    /// Whether any directory is configured.
    pub fn is_restricted(&self) -> bool {
        !self.0.is_empty()
    }

    /// The local repository at `path` when an app may use it: absolute,
    /// and (resolving symlinks) under a trusted directory when any is
    /// configured.
    pub fn check(&self, path: &Path) -> Result<PathBuf, SourceError> {
        if !path.is_absolute() {
            return Err(SourceError::Relative(path.display().to_string()));
        }
        let resolved = std::fs::canonicalize(path)
            .map_err(|_| SourceError::Missing(path.display().to_string()))?;
        if self.is_restricted() && !self.0.iter().any(|root| resolved.starts_with(root)) {
            return Err(SourceError::Untrusted {
                path: resolved.display().to_string(),
                roots: self.list(),
            });
        }
        Ok(resolved)
    }

    fn list(&self) -> String {
        let roots: Vec<String> = self.0.iter().map(|r| r.display().to_string()).collect();
        roots.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_missing_and_outside_are_refused() {
        let trusted = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let repo = trusted.path().join("web.git");
        std::fs::create_dir(&repo).unwrap();
        std::os::unix::fs::symlink(outside.path(), trusted.path().join("escape")).unwrap();
        let roots = SourceRoots::new(&[trusted.path().to_owned()]).unwrap();

        assert!(roots.check(&repo).is_ok());
        for (source, wanted) in [
            (PathBuf::from("web.git"), "relative"),
            (outside.path().to_owned(), "not under a trusted"),
            (trusted.path().join("escape"), "not under a trusted"),
            (trusted.path().join("nope"), "does not exist"),
        ] {
            let err = roots.check(&source).unwrap_err().to_string();
            assert!(err.contains(wanted), "{}: {err}", source.display());
        }
        // Unrestricted: any absolute path, never a relative one.
        let open = SourceRoots::default();
        assert!(open.check(outside.path()).is_ok());
        assert!(open.check(Path::new("web.git")).is_err());
    }

    #[test]
    fn configured_roots_must_be_absolute_and_exist() {
        assert!(matches!(
            SourceRoots::new(&[PathBuf::from("srv/git")]),
            Err(SourceRootError::Relative(_))
        ));
        assert!(matches!(
            SourceRoots::new(&[PathBuf::from("/nonexistent/slipway-sources")]),
            Err(SourceRootError::Missing { .. })
        ));
    }
}
