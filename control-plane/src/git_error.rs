//! Why git could not produce a release: one error for the release cut and
//! the blob reader.

/// Why git could not produce a release.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The repository is not a local path or file:// URL.
    #[error("repository {0:?} is not a local path or file:// URL")]
    UnsupportedSource(String),
    /// The repository cannot be opened.
    #[error("cannot open git repository {path}")]
    Open {
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: git2::Error,
    },
    /// The ref does not name a commit.
    #[error("ref {git_ref:?} does not name a commit in {path}")]
    UnknownRef {
        /// Ref.
        git_ref: String,
        /// Repository path.
        path: String,
    },
    /// The tree holds something a release cannot (a submodule, a bad path).
    #[error("commit {commit} cannot be released: {reason}")]
    Unreleasable {
        /// Commit.
        commit: String,
        /// Why.
        reason: String,
    },
    /// A blob's content could not be streamed.
    #[error("reading blob {blob} failed")]
    Stream {
        /// Blob id.
        blob: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// libgit2 failed while reading objects.
    #[error("reading the git object database failed")]
    Read(#[from] git2::Error),
}
