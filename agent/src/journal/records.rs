//! The journal's file, `<root>/.slipway/journal.log`: an append-only log of
//! small keyed records. Each change is one line (a batch of puts and deletes)
//! written and fdatasynced before it is acknowledged, so a crash loses at most
//! a torn last line, which the next open drops. The log is rewritten as one
//! snapshot line (temp, fsync, rename, fsync of the directory) on open and
//! whenever it passes [`COMPACT_AT`]. Files are 0600. Blocking.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    io::{self, BufRead, BufReader, Read, Write},
    path::Path,
};

use serde::{Deserialize, Serialize};

use crate::fsutil;

/// The records: key -> value.
pub type Records = BTreeMap<String, serde_json::Value>;

/// A log this long is rewritten as a snapshot.
pub const COMPACT_AT: u64 = 1024 * 1024;
/// A longer line is not one this agent wrote.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// One line: what a change put and deleted.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Batch {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    put: Records,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    del: Vec<String>,
}

/// Why a log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A filesystem call failed.
    #[error("cannot read")]
    Io(#[from] io::Error),
    /// A line that is neither a batch nor the torn last one.
    #[error("line {line} is not a journal record")]
    Corrupt {
        /// 1-based.
        line: usize,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// The open log, appended to.
#[derive(Debug)]
pub struct RecordLog {
    file: File,
    size: u64,
}

impl RecordLog {
    /// Reads the log at `path`, dropping a torn last line: None when there
    /// is no log.
    pub fn load(path: &Path) -> Result<Option<Records>, LoadError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        Self::read(BufReader::new(file)).map(Some)
    }

    /// Reads a whole log from `reader`, dropping a torn last line.
    pub fn read(mut reader: impl BufRead) -> Result<Records, LoadError> {
        let mut records = Records::new();
        let mut line = Vec::new();
        let mut number = 0;
        loop {
            line.clear();
            let read = (&mut reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)?;
            if read == 0 {
                break;
            }
            number += 1;
            let complete = line.last() == Some(&b'\n');
            // A write cut short by a crash: that change never happened.
            if !complete && reader.fill_buf()?.is_empty() {
                break;
            }
            let batch = if complete {
                serde_json::from_slice::<Batch>(&line)
            } else {
                Err(serde::de::Error::custom("longer than any record"))
            };
            let batch = batch.map_err(|source| LoadError::Corrupt {
                line: number,
                source,
            })?;
            for key in batch.del {
                records.remove(&key);
            }
            records.extend(batch.put);
        }
        Ok(records)
    }

    /// Writes `records` as the whole log (a snapshot replacing any other)
    /// and opens it for appending.
    pub fn create(path: &Path, records: &Records) -> io::Result<Self> {
        let dir = path.parent().expect("the journal lives in .slipway");
        fsutil::create_private_dir(dir)?;
        let tmp = dir.join(format!(".journal.log.{:016x}", rand::random::<u64>()));
        let mut line = serde_json::to_vec(&Batch {
            put: records.clone(),
            del: Vec::new(),
        })
        .expect("records serialise");
        line.push(b'\n');
        let write = || -> io::Result<()> {
            let mut file = fsutil::create_private_file(&tmp)?;
            file.write_all(&line)?;
            file.sync_all()?;
            fs::rename(&tmp, path)?;
            fsutil::sync_dir(dir)
        };
        if let Err(err) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(err);
        }
        let file = fs::OpenOptions::new().append(true).open(path)?;
        Ok(Self {
            file,
            size: line.len() as u64,
        })
    }

    /// Appends one change durably.
    pub fn append(&mut self, put: Records, del: Vec<String>) -> io::Result<()> {
        let mut line = serde_json::to_vec(&Batch { put, del }).expect("records serialise");
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()?;
        self.size += line.len() as u64;
        Ok(())
    }

    /// Whether the log has grown enough to be rewritten.
    pub fn wants_compaction(&self) -> bool {
        self.size > COMPACT_AT
    }
}

/// What changed from `old` to `new`: the records to put, the keys to delete.
pub fn diff(old: &Records, new: &Records) -> (Records, Vec<String>) {
    let put = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let del = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    (put, del)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use serde_json::json;

    use super::*;

    fn records(pairs: &[(&str, serde_json::Value)]) -> Records {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn changes_replay_in_order_and_a_torn_last_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".slipway/journal.log");
        assert!(RecordLog::load(&path).unwrap().is_none());
        let first = records(&[("a", json!(1)), ("b", json!(2))]);
        let mut log = RecordLog::create(&path, &first).unwrap();
        let second = records(&[("a", json!(3)), ("c", json!(4))]);
        let (put, del) = diff(&first, &second);
        assert_eq!(del, ["b"]);
        log.append(put, del).unwrap();
        assert_eq!(RecordLog::load(&path).unwrap().unwrap(), second);
        // A crash in the middle of the next append.
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(br#"{"put":{"a":99"#)
            .unwrap();
        assert_eq!(RecordLog::load(&path).unwrap().unwrap(), second);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
    }

    #[test]
    fn a_bad_line_before_the_last_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.log");
        fs::write(&path, b"{\"put\":{}}\nnot json\n{\"put\":{}}\n").unwrap();
        let err = RecordLog::load(&path).unwrap_err();
        assert!(matches!(err, LoadError::Corrupt { line: 2, .. }), "{err:?}");
    }
}
