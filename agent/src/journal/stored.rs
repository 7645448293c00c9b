//! How the journal's content is stored as records: `meta` (version, previous
//! good release, fencing), `release/<id>` per release,
//! `op/<deployment>/<kind>` per operation and `probe` (the live release's
//! health check), so a change writes only the few records it changed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{JournalData, OperationRecord, Records};
use crate::operations::Kind;

const META: &str = "meta";
const RELEASE: &str = "release/";
const OPERATION: &str = "op/";
const PROBE: &str = "probe";

/// The fields of [`JournalData`] that are neither releases nor operations.
#[derive(Serialize, Deserialize)]
struct Meta {
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_good: Option<String>,
    #[serde(default)]
    fencing_token: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    fencing_epoch: String,
}

fn kind_name(kind: Kind) -> String {
    match serde_json::to_value(kind).expect("a kind serialises") {
        Value::String(name) => name,
        other => other.to_string(),
    }
}

fn value<T: Serialize>(record: &T) -> Value {
    serde_json::to_value(record).expect("journal records serialise")
}

/// The records of `data`.
pub fn to_records(data: &JournalData) -> Records {
    let mut records = Records::new();
    let meta = Meta {
        version: data.version,
        previous_good: data.previous_good.clone(),
        fencing_token: data.fencing_token,
        fencing_epoch: data.fencing_epoch.clone(),
    };
    records.insert(META.to_owned(), value(&meta));
    for (id, release) in &data.releases {
        records.insert(format!("{RELEASE}{id}"), value(release));
    }
    for op in &data.operations {
        let key = format!("{OPERATION}{}/{}", op.deployment_id, kind_name(op.kind));
        records.insert(key, value(op));
    }
    if let Some(probe) = &data.probe {
        records.insert(PROBE.to_owned(), value(probe));
    }
    records
}

/// The content the records hold, operations oldest first.
pub fn from_records(records: &Records) -> Result<JournalData, serde_json::Error> {
    let mut data = JournalData::default();
    for (key, value) in records {
        if key == META {
            let meta = Meta::deserialize(value)?;
            data.version = meta.version;
            data.previous_good = meta.previous_good;
            data.fencing_token = meta.fencing_token;
            data.fencing_epoch = meta.fencing_epoch;
        } else if let Some(id) = key.strip_prefix(RELEASE) {
            data.releases
                .insert(id.to_owned(), Deserialize::deserialize(value)?);
        } else if key.starts_with(OPERATION) {
            data.operations.push(OperationRecord::deserialize(value)?);
        } else if key == PROBE {
            data.probe = Some(Deserialize::deserialize(value)?);
        }
    }
    data.operations.sort_by_key(|op| op.seq);
    Ok(data)
}

/// The deployment id and kind of an operation's key.
pub fn operation_key(key: &str) -> Option<(String, Kind)> {
    let (id, kind) = key.strip_prefix(OPERATION)?.rsplit_once('/')?;
    let kind = serde_json::from_value(Value::String(kind.to_owned())).ok()?;
    Some((id.to_owned(), kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::State;

    #[test]
    fn content_round_trips_through_records_in_order() {
        let mut data = JournalData {
            previous_good: Some("r0".into()),
            fencing_token: 7,
            probe: Some(crate::journal::ProbeRecord {
                http_url: "https://127.0.0.1:8443/health".into(),
                command: String::new(),
                timeout_ms: 5000,
                interval_ms: 30_000,
                environment: "prod".into(),
                variables: vec![("RAILS_ENV".into(), "production".into())],
                release_id: "r1".into(),
                passed_unix_ms: 1_700_000_000_000,
                response_ms: 2.5,
            }),
            ..JournalData::default()
        };
        data.set_state("r1", State::Active, "d1");
        for id in ["d9", "d1", "d5"] {
            data.begin_operation(OperationRecord {
                kind: Kind::Rollback,
                ..OperationRecord::running(id, "r1")
            });
        }
        let records = to_records(&data);
        assert!(records.contains_key("op/d9/rollback"), "{records:?}");
        assert_eq!(
            operation_key("op/d9/rollback"),
            Some(("d9".to_owned(), Kind::Rollback))
        );
        assert_eq!(from_records(&records).unwrap(), data);
    }
}
