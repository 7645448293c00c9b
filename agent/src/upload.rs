//! Receiving an UploadObjects stream: objects one after another, each a
//! first chunk with hash and size followed by contiguous chunks. An upload
//! is plain blocking code: the service runs it on one blocking thread fed
//! by a bounded channel, one thread hop per message.

use slipway_proto::{CHUNK_BYTES, validate};

use crate::{
    error::Error,
    objects::{ObjectError, ObjectStore, PendingObject},
};

/// One chunk as it arrived.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chunk {
    /// Hash of the object; required on an object's first chunk, optional
    /// (but then equal) on the others.
    pub sha256: String,
    /// Size of the whole object.
    pub size: u64,
    /// Offset of this chunk in the object.
    pub offset: u64,
    /// The bytes.
    pub data: Vec<u8>,
}

/// What an upload achieved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Objects received completely: stored, or already present and discarded.
    pub objects: u64,
    /// Bytes received.
    pub bytes: u64,
}

#[derive(Debug)]
enum Incoming {
    /// New to the store: written to a temp file.
    Store(Box<PendingObject>),
    /// Already stored: the bytes are read and dropped.
    Discard { received: u64 },
}

#[derive(Debug)]
struct Current {
    sha256: String,
    size: u64,
    incoming: Incoming,
}

impl Current {
    fn received(&self) -> u64 {
        match &self.incoming {
            Incoming::Store(pending) => pending.received(),
            Incoming::Discard { received } => *received,
        }
    }
}

/// An upload in progress into one app's store.
#[derive(Debug)]
pub struct Upload {
    store: ObjectStore,
    current: Option<Current>,
    summary: Summary,
    /// Objects received and verified, committed together at the end.
    verified: Vec<crate::objects::Verified>,
}

fn protocol(sha256: &str, problem: String) -> Error {
    ObjectError::Protocol {
        sha256: sha256.to_owned(),
        problem,
    }
    .into()
}

impl Upload {
    /// An upload into `store`, whose directories exist.
    pub fn new(store: ObjectStore) -> Self {
        Self {
            store,
            current: None,
            summary: Summary::default(),
            verified: Vec::new(),
        }
    }

    /// Takes the next chunk. A chunk with neither hash nor data between
    /// objects is ignored (the first message may only name the app).
    /// Blocking.
    pub fn push(&mut self, chunk: Chunk) -> Result<(), Error> {
        if chunk.data.len() > CHUNK_BYTES {
            return Err(protocol(
                &chunk.sha256,
                format!(
                    "chunk of {} bytes exceeds the {CHUNK_BYTES}-byte limit",
                    chunk.data.len()
                ),
            ));
        }
        let mut current = match self.current.take() {
            Some(current) => {
                if !chunk.sha256.is_empty() && chunk.sha256 != current.sha256 {
                    return Err(protocol(
                        &current.sha256,
                        format!(
                            "ended after {} of {} bytes when object {} started",
                            current.received(),
                            current.size,
                            chunk.sha256
                        ),
                    ));
                }
                current
            }
            None if chunk.sha256.is_empty() && chunk.data.is_empty() => return Ok(()),
            None => self.start(&chunk)?,
        };
        if chunk.offset != current.received() {
            return Err(protocol(
                &current.sha256,
                format!(
                    "chunk at offset {} after {} bytes; chunks must be contiguous",
                    chunk.offset,
                    current.received()
                ),
            ));
        }
        let len = chunk.data.len() as u64;
        if current.received() + len > current.size {
            return Err(protocol(
                &current.sha256,
                format!(
                    "chunk runs past the object's size of {} bytes",
                    current.size
                ),
            ));
        }
        self.summary.bytes += len;
        current.incoming = match current.incoming {
            Incoming::Discard { received } => Incoming::Discard {
                received: received + len,
            },
            Incoming::Store(mut pending) => {
                pending.write(&chunk.data)?;
                Incoming::Store(pending)
            }
        };
        if current.received() < current.size {
            self.current = Some(current);
            return Ok(());
        }
        if let Incoming::Store(pending) = current.incoming {
            self.verified.push(pending.verify()?);
        }
        self.summary.objects += 1;
        Ok(())
    }

    fn start(&self, chunk: &Chunk) -> Result<Current, Error> {
        validate::sha256("sha256", &chunk.sha256)?;
        if chunk.offset != 0 {
            return Err(protocol(
                &chunk.sha256,
                format!(
                    "first chunk at offset {}; an object starts at 0",
                    chunk.offset
                ),
            ));
        }
        let incoming = if self.store.contains(&chunk.sha256) {
            Incoming::Discard { received: 0 }
        } else {
            Incoming::Store(Box::new(self.store.begin(&chunk.sha256, chunk.size)?))
        };
        Ok(Current {
            sha256: chunk.sha256.clone(),
            size: chunk.size,
            incoming,
        })
    }

    /// Ends the upload: every verified object enters the store durably
    /// (blocking: two filesystem syncs). An object still incomplete fails it
    /// and nothing of this upload is kept.
    pub fn finish(self) -> Result<Summary, Error> {
        let Upload {
            store,
            current,
            summary,
            verified,
        } = self;
        match current {
            Some(current) => Err(protocol(
                &current.sha256,
                format!(
                    "the stream ended after {} of {} bytes",
                    current.received(),
                    current.size
                ),
            )),
            None => {
                store.commit_batch(verified)?;
                Ok(summary)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};
    use tonic::Code;

    use super::*;
    use crate::layout::AppRoot;

    fn sha(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    fn chunk(sha256: &str, size: u64, offset: u64, data: &[u8]) -> Chunk {
        Chunk {
            sha256: sha256.into(),
            size,
            offset,
            data: data.to_vec(),
        }
    }

    fn setup() -> (tempfile::TempDir, AppRoot, ObjectStore) {
        let dir = tempfile::tempdir().unwrap();
        let app = AppRoot::new("web", dir.path().join("web"));
        app.ensure().unwrap();
        let store = ObjectStore::new(&app);
        (dir, app, store)
    }

    fn tmp_entries(app: &AppRoot) -> usize {
        std::fs::read_dir(app.tmp()).unwrap().count()
    }

    #[test]
    fn objects_arrive_in_chunks_and_known_ones_are_discarded() {
        let (_dir, app, store) = setup();
        let (a, b) = (sha(b"hello world"), sha(b""));
        let mut upload = Upload::new(store.clone());
        upload.push(Chunk::default()).unwrap();
        upload.push(chunk(&a, 11, 0, b"hello ")).unwrap();
        upload.push(chunk("", 0, 6, b"world")).unwrap();
        upload.push(chunk(&b, 0, 0, b"")).unwrap();
        assert_eq!(
            upload.finish().unwrap(),
            Summary {
                objects: 2,
                bytes: 11
            }
        );
        assert!(store.contains(&a) && store.contains(&b));

        let mut again = Upload::new(store.clone());
        again.push(chunk(&a, 11, 0, b"hello world")).unwrap();
        assert_eq!(again.finish().unwrap().objects, 1);
        assert_eq!(tmp_entries(&app), 0);
    }

    #[test]
    fn a_corrupt_upload_never_enters_the_store() {
        let (_dir, app, store) = setup();
        let a = sha(b"hello world");
        let mut upload = Upload::new(store.clone());
        let err = upload.push(chunk(&a, 11, 0, b"hello w0rld")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("object {a}: content does not match its hash")
        );
        assert_eq!(tonic::Status::from(err).code(), Code::InvalidArgument);
        assert!(!store.contains(&a));
        assert_eq!(tmp_entries(&app), 0);
    }

    #[test]
    fn protocol_violations_are_refused_and_leave_nothing() {
        let (_dir, app, store) = setup();
        let a = sha(b"hello world");
        let cases: Vec<Vec<Chunk>> = vec![
            vec![chunk(&a, 11, 0, b"hello"), chunk(&a, 11, 6, b"world")],
            vec![chunk(&a, 11, 0, b"hello world!")],
            vec![chunk(&a, 11, 3, b"lo")],
            vec![chunk("nothex", 1, 0, b"x")],
            vec![chunk(&a, 11, 0, b"hello"), chunk(&sha(b"x"), 1, 0, b"x")],
            vec![chunk(&a, 2 << 20, 0, &vec![0; CHUNK_BYTES + 1])],
        ];
        for chunks in cases {
            let mut upload = Upload::new(store.clone());
            let mut failed = false;
            for c in chunks {
                if let Err(err) = upload.push(c) {
                    assert_eq!(tonic::Status::from(err).code(), Code::InvalidArgument);
                    failed = true;
                    break;
                }
            }
            assert!(failed);
            drop(upload);
            assert_eq!(tmp_entries(&app), 0);
        }
        let mut truncated = Upload::new(store.clone());
        truncated.push(chunk(&a, 11, 0, b"hello")).unwrap();
        let err = truncated.finish().unwrap_err();
        assert!(
            err.to_string().contains("ended after 5 of 11 bytes"),
            "{err}"
        );
        assert!(!store.contains(&a));
        assert_eq!(tmp_entries(&app), 0);
    }
}
