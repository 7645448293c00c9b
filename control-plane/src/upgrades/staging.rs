//! Agent binaries staged on the control plane:
//! `<data_dir>/agent-binaries/<sha256>`, written under a temporary name,
//! hashed as they arrive and renamed into place, at most 256 MiB each.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};
use slipway_proto::{control::v1::StageAgentBinaryRequest, validate::InvalidField};
use tonic::Streaming;

use crate::error::Error;

/// Largest binary accepted.
pub const MAX_BINARY_BYTES: u64 = 256 << 20;
/// Largest chunk accepted.
const MAX_CHUNK_BYTES: usize = 1 << 20;

/// Where staged binaries live; none for a control plane without a data
/// directory (tests of the engine).
#[derive(Clone, Debug, Default)]
pub struct Staging(Option<PathBuf>);

fn io(what: &str, path: &Path, err: std::io::Error) -> Error {
    tracing::error!(%err, path = %path.display(), "agent binary staging: {what}");
    Error::Precondition(format!("cannot {what} {}: {err}", path.display()))
}

impl Staging {
    /// Binaries under `<data_dir>/agent-binaries`.
    pub fn new(data_dir: &Path) -> Self {
        Self(Some(data_dir.join("agent-binaries")))
    }

    fn dir(&self) -> Result<&Path, Error> {
        self.0.as_deref().ok_or_else(|| {
            Error::Precondition("this control plane has no directory for agent binaries".into())
        })
    }

    /// Where binary `sha256` is.
    pub fn path(&self, sha256: &str) -> Result<PathBuf, Error> {
        let ok = sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok {
            return Err(InvalidField::new("sha256", "must be 64 lowercase hex digits").into());
        }
        Ok(self.dir()?.join(sha256))
    }

    /// The size of staged binary `sha256`; NOT_FOUND when it is not staged.
    pub fn size(&self, sha256: &str) -> Result<u64, Error> {
        let path = self.path(sha256)?;
        std::fs::metadata(&path)
            .map(|m| m.len())
            .map_err(|_| Error::NotFound {
                what: "staged agent binary",
                name: sha256.to_owned(),
            })
    }

    /// Receives a binary; returns its SHA-256 and size.
    pub async fn stage(
        &self,
        mut stream: Streaming<StageAgentBinaryRequest>,
    ) -> Result<(String, u64), Error> {
        let dir = self.dir()?.to_owned();
        std::fs::create_dir_all(&dir).map_err(|e| io("create", &dir, e))?;
        let part = dir.join(format!(".incoming-{}", crate::upgrades::run::millis()));
        let mut file = std::fs::File::create(&part).map_err(|e| io("create", &part, e))?;
        let (mut hasher, mut received, mut size) = (Sha256::new(), 0u64, None);
        let result = async {
            while let Some(chunk) = stream.message().await.map_err(|s| {
                Error::Precondition(format!("the upload broke off: {}", s.message()))
            })? {
                let announced = *size.get_or_insert(chunk.size);
                if announced == 0 || announced > MAX_BINARY_BYTES {
                    return Err(InvalidField::new("size", "must be 1 byte to 256 MiB").into());
                }
                if chunk.data.len() > MAX_CHUNK_BYTES {
                    return Err(InvalidField::new("data", "chunks are at most 1 MiB").into());
                }
                received += chunk.data.len() as u64;
                if received > announced {
                    return Err(
                        InvalidField::new("data", "more bytes than the announced size").into(),
                    );
                }
                hasher.update(&chunk.data);
                file.write_all(&chunk.data)
                    .map_err(|e| io("write", &part, e))?;
            }
            if size != Some(received) {
                return Err(
                    InvalidField::new("data", "fewer bytes than the announced size").into(),
                );
            }
            file.sync_all().map_err(|e| io("sync", &part, e))?;
            let sha256 = hex::encode(hasher.finalize());
            let dest = dir.join(&sha256);
            std::fs::rename(&part, &dest).map_err(|e| io("rename", &part, e))?;
            Ok((sha256, received))
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_file(&part);
        }
        result
    }
}
