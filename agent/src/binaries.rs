//! The agent binaries a control plane sent for upgrades:
//! `<data_dir>/agent-binaries/<sha256>`, each verified by its hash and size
//! before it is renamed into place, so a stored binary is always whole.
//! Blocking.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};
use slipway_proto::validate::InvalidField;

use crate::fsutil::{self, FsError, io_err};

/// Largest binary accepted.
pub const MAX_BINARY_BYTES: u64 = 256 << 20;
/// Largest chunk accepted.
const MAX_CHUNK_BYTES: usize = 1 << 20;

/// Why a binary upload failed.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    /// The store could not be written.
    #[error(transparent)]
    Io(#[from] FsError),
    /// The upload broke the rules (size, chunk size).
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// What arrived does not hash to what was announced.
    #[error("the binary arrived with SHA-256 {actual}, not {expected}; nothing was stored")]
    Mismatch {
        /// Announced.
        expected: String,
        /// Received.
        actual: String,
    },
}

/// The store of agent binaries under a data dir.
#[derive(Clone, Debug)]
pub struct Binaries {
    dir: PathBuf,
}

/// Checks a lowercase hex SHA-256 from a request.
pub fn check_sha256(field: &str, value: &str) -> Result<(), InvalidField> {
    let ok = value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        Ok(())
    } else {
        Err(InvalidField::new(
            field,
            "must be 64 lowercase hex digits (a SHA-256)",
        ))
    }
}

impl Binaries {
    /// The store of `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("agent-binaries"),
        }
    }

    /// Where the binary `sha256` (checked) lives.
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }

    /// Whether the binary `sha256` (checked) is stored.
    pub fn has(&self, sha256: &str) -> bool {
        self.path(sha256).is_file()
    }

    /// Starts receiving `sha256` of `size` bytes.
    pub fn receive(&self, sha256: &str, size: u64) -> Result<Incoming, BinaryError> {
        check_sha256("sha256", sha256)?;
        if size == 0 || size > MAX_BINARY_BYTES {
            return Err(InvalidField::new("size", "must be 1 byte to 256 MiB").into());
        }
        fsutil::create_private_dir(&self.dir).map_err(io_err("create", &self.dir))?;
        let part = self.dir.join(format!("{sha256}.part"));
        // A leftover of an upload that broke off.
        let _ = fs::remove_file(&part);
        let file = fsutil::create_private_file(&part).map_err(io_err("create", &part))?;
        Ok(Incoming {
            file,
            part,
            dest: self.path(sha256),
            sha256: sha256.to_owned(),
            size,
            received: 0,
            hasher: Sha256::new(),
        })
    }
}

/// A binary being received.
#[derive(Debug)]
pub struct Incoming {
    file: fs::File,
    part: PathBuf,
    dest: PathBuf,
    sha256: String,
    size: u64,
    received: u64,
    hasher: Sha256,
}

impl Incoming {
    /// Appends a chunk.
    pub fn push(&mut self, data: &[u8]) -> Result<(), BinaryError> {
        if data.len() > MAX_CHUNK_BYTES {
            return Err(InvalidField::new("data", "chunks are at most 1 MiB").into());
        }
        if self.received + data.len() as u64 > self.size {
            return Err(InvalidField::new("data", "more bytes than the announced size").into());
        }
        self.file
            .write_all(data)
            .map_err(io_err("write", &self.part))?;
        self.hasher.update(data);
        self.received += data.len() as u64;
        Ok(())
    }

    /// Verifies and stores the binary; returns the bytes received.
    pub fn finish(self) -> Result<u64, BinaryError> {
        if self.received != self.size {
            let _ = fs::remove_file(&self.part);
            return Err(InvalidField::new("data", "fewer bytes than the announced size").into());
        }
        let actual = hex::encode(self.hasher.finalize());
        if actual != self.sha256 {
            let _ = fs::remove_file(&self.part);
            return Err(BinaryError::Mismatch {
                expected: self.sha256,
                actual,
            });
        }
        self.file.sync_all().map_err(io_err("sync", &self.part))?;
        fs::rename(&self.part, &self.dest).map_err(io_err("rename", &self.part))?;
        if let Some(dir) = self.dest.parent() {
            fsutil::sync_dir(dir).map_err(io_err("sync", dir))?;
        }
        Ok(self.received)
    }
}
