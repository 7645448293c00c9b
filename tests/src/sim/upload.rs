//! An upload to a simulated agent: the chunks checked as a real agent
//! checks them (object by object, in order, each verified against its
//! SHA-256 once complete, at most 1 MiB a chunk and 1 GiB an object); the
//! in-memory host stores the hashes of an upload that arrived intact.

use sha2::{Digest, Sha256};
use slipway_proto::{
    CHUNK_BYTES,
    agent::v1::UploadObjectsRequest,
    reason::{self, Reason},
    validate,
};
use tonic::{Code, Status, Streaming};

use super::node::agent_status;

/// Largest object a simulated agent accepts.
const MAX_OBJECT_BYTES: u64 = 1 << 30;

/// The object being received.
struct Object {
    sha256: String,
    size: u64,
    received: u64,
    hasher: Sha256,
}

fn invalid(message: String) -> Status {
    reason::status(
        Code::InvalidArgument,
        message,
        Reason::InvalidRequest,
        [("field", "data".to_owned())],
    )
}

impl Object {
    fn start(chunk: &UploadObjectsRequest) -> Result<Self, Status> {
        validate::sha256("sha256", &chunk.sha256).map_err(agent_status)?;
        if chunk.size > MAX_OBJECT_BYTES {
            return Err(invalid(format!(
                "object {} is larger than {MAX_OBJECT_BYTES} bytes",
                chunk.sha256
            )));
        }
        Ok(Self {
            sha256: chunk.sha256.clone(),
            size: chunk.size,
            received: 0,
            hasher: Sha256::new(),
        })
    }

    fn push(&mut self, chunk: &UploadObjectsRequest) -> Result<(), Status> {
        let len = chunk.data.len() as u64;
        if chunk.offset != self.received || self.received + len > self.size {
            return Err(invalid(format!(
                "object {}: chunk at offset {} of {len} bytes does not follow the {} bytes received of {}",
                self.sha256, chunk.offset, self.received, self.size
            )));
        }
        self.hasher.update(&chunk.data);
        self.received += len;
        Ok(())
    }

    fn finish(self) -> Result<String, Status> {
        let actual = hex::encode(self.hasher.finalize());
        if self.received != self.size || actual != self.sha256 {
            return Err(invalid(format!(
                "object {}: {} of {} bytes arrived, with hash {actual}; nothing of it is kept",
                self.sha256, self.received, self.size
            )));
        }
        Ok(self.sha256)
    }
}

/// Objects one upload may carry.
const MAX_OBJECTS: usize = 100_000;

/// What an upload brought, every object verified.
pub(super) struct Received {
    /// The objects' hashes.
    pub objects: Vec<String>,
    /// Bytes received.
    pub bytes: u64,
}

/// Reads and checks every chunk of `stream` (starting with `first`); the
/// host is given the objects only once all arrived intact.
pub(super) async fn receive(
    first: UploadObjectsRequest,
    mut stream: Streaming<UploadObjectsRequest>,
) -> Result<Received, Status> {
    let mut received = Received {
        objects: Vec::new(),
        bytes: 0,
    };
    let mut object: Option<Object> = None;
    let mut next = Some(first);
    while let Some(chunk) = next {
        if chunk.data.len() > CHUNK_BYTES {
            return Err(invalid(format!(
                "a chunk is larger than {CHUNK_BYTES} bytes"
            )));
        }
        if object.as_ref().is_none_or(|o| o.sha256 != chunk.sha256) {
            if let Some(done) = object.take() {
                received.objects.push(done.finish()?);
            }
            if received.objects.len() >= MAX_OBJECTS {
                return Err(invalid(format!(
                    "more than {MAX_OBJECTS} objects in one upload"
                )));
            }
            object = Some(Object::start(&chunk)?);
        }
        if let Some(current) = object.as_mut() {
            current.push(&chunk)?;
        }
        received.bytes += chunk.data.len() as u64;
        next = stream.message().await?;
    }
    if let Some(done) = object {
        received.objects.push(done.finish()?);
    }
    Ok(received)
}
