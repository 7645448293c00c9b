//! A release's manifest: every file with its mode, size, content hash and the
//! git blob it comes from, as the control plane keeps it for shipping and for
//! the next release's comparison.

use serde::{Deserialize, Serialize};

/// One file of a release as the control plane keeps it: what the agent sees
/// plus the git blob it comes from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestFile {
    /// Path relative to the release root.
    pub path: String,
    /// 0o644, 0o755, or 0o777 for a symlink.
    pub mode: u32,
    /// True for a symlink (its content is the target).
    pub symlink: bool,
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// Hex git blob id, to read the content back for transfer.
    pub blob: String,
}

/// Every file of a release, in path order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// The files.
    pub files: Vec<ManifestFile>,
}
