//! Fencing tokens: every mutating request carries the token of the control
//! plane's lock on the app. The app's journal keeps the highest token seen;
//! a lower one is refused, so a control plane that lost its lock cannot
//! interfere with the one that holds it.

use slipway_proto::validate::InvalidField;

use crate::journal::{Journal, JournalData, JournalError};

/// A request's token was lower than the highest the app has seen.
#[derive(Debug, thiserror::Error)]
#[error(
    "stale fencing token {token}: app {app} has seen {seen}; another control plane holds its lock"
)]
pub struct StaleToken {
    /// The request's token.
    pub token: u64,
    /// The app.
    pub app: String,
    /// The highest token the app has seen.
    pub seen: u64,
}

/// Why [`fence`] refused a request or could not record its token.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// The token is lower than one the app has seen.
    #[error(transparent)]
    Stale(#[from] StaleToken),
    /// The journal could not be written.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Validates the token of a request that needs one (all mutating requests
/// but PinRelease): 0, "no lock", is refused.
pub fn required(field: &str, token: u64) -> Result<u64, InvalidField> {
    if token == 0 {
        return Err(InvalidField::new(
            field,
            "is required: send the token of the control plane's lock on the app \
             (0 means no lock, which only PinRelease accepts)",
        ));
    }
    Ok(token)
}

/// A request's fencing token and the epoch (the control plane's store
/// identity) it belongs to; an empty epoch is an older control plane's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fence {
    /// The lock's token (0: no lock).
    pub token: u64,
    /// The control plane's store identity.
    pub epoch: String,
}

impl From<u64> for Fence {
    fn from(token: u64) -> Self {
        Self {
            token,
            epoch: String::new(),
        }
    }
}

/// Longest epoch accepted.
const MAX_EPOCH: usize = 64;

/// Validates a request's epoch: empty, or up to 64 letters, digits and `-`.
pub fn epoch(field: &str, epoch: &str) -> Result<String, InvalidField> {
    let fine =
        epoch.len() <= MAX_EPOCH && epoch.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !fine {
        return Err(InvalidField::new(
            field,
            format!("must be at most {MAX_EPOCH} letters, digits and '-'"),
        ));
    }
    Ok(epoch.to_owned())
}

/// Applies `fence` to the journal's content (see [`admit`]).
pub(crate) fn apply(data: &mut JournalData, app: &str, fence: &Fence) -> Result<(), StaleToken> {
    admit(&mut data.fencing_token, &mut data.fencing_epoch, app, fence)
}

/// Applies `fence` to the token and epoch `app` has seen: a token of the
/// recorded epoch (or of no epoch) lower than the recorded one is refused;
/// a higher one is recorded; a token of another epoch starts that epoch.
/// 0 changes nothing.
pub fn admit(
    seen_token: &mut u64,
    seen_epoch: &mut String,
    app: &str,
    fence: &Fence,
) -> Result<(), StaleToken> {
    if fence.token == 0 {
        return Ok(());
    }
    let same_epoch = fence.epoch.is_empty() || fence.epoch == *seen_epoch;
    if same_epoch {
        if fence.token < *seen_token {
            return Err(StaleToken {
                token: fence.token,
                app: app.to_owned(),
                seen: *seen_token,
            });
        }
    } else {
        tracing::warn!(
            app,
            epoch = %fence.epoch,
            previous_epoch = %seen_epoch,
            previous_token = *seen_token,
            token = fence.token,
            "a control plane of another store identity: starting its fencing epoch"
        );
        seen_epoch.clone_from(&fence.epoch);
    }
    *seen_token = fence.token;
    Ok(())
}

/// Checks `fence` against what the app has seen without recording it: for
/// a request that may yet be refused or do nothing.
pub(crate) fn check(journal: &Journal, app: &str, fence: &Fence) -> Result<(), FenceError> {
    let mut data = journal.read(JournalData::clone);
    Ok(apply(&mut data, app, fence)?)
}

/// Checks `fence` against what the app has seen and records it, durably,
/// before the request goes on (see [`apply`]). Runs under the journal's
/// lock, so two requests cannot both pass with the lower token after the
/// higher one was recorded. Blocking.
pub(crate) fn fence(journal: &Journal, app: &str, fence: &Fence) -> Result<(), FenceError> {
    if fence.token == 0 {
        return Ok(());
    }
    journal.update(|data| Ok(apply(data, app, fence)?))
}

/// [`fence`] for a request that starts an operation: the token is kept in
/// memory now and written with the operation's first journal change (its
/// begin record, before it touches the disk), not in a sync of its own.
/// Does not block.
pub(crate) fn fence_with_operation(
    journal: &Journal,
    app: &str,
    fence: &Fence,
) -> Result<(), FenceError> {
    journal.defer(|data| Ok(apply(data, app, fence)?))
}

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};

    use super::*;
    use crate::{error::Error, layout::AppRoot};

    /// An app root in a temp dir with its (empty) journal.
    fn journal() -> (tempfile::TempDir, AppRoot, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let app = AppRoot::new("web", dir.path().join("web"));
        app.ensure().unwrap();
        let journal = Journal::open(&app).unwrap();
        (dir, app, journal)
    }

    #[test]
    fn lower_tokens_are_refused_higher_ones_recorded_durably() {
        let (_dir, app, journal) = journal();
        fence(&journal, "web", &0.into()).unwrap();
        assert!(!app.journal().exists(), "0 records nothing");
        fence(&journal, "web", &5.into()).unwrap();
        fence(&journal, "web", &5.into()).unwrap();
        let before = std::fs::read(app.journal()).unwrap();
        let status = Status::from(Error::from(fence(&journal, "web", &3.into()).unwrap_err()));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(
            status.message(),
            "stale fencing token 3: app web has seen 5; another control plane holds its lock"
        );
        assert_eq!(std::fs::read(app.journal()).unwrap(), before, "unchanged");
        fence(&journal, "web", &0.into()).unwrap();
        fence(&journal, "web", &8.into()).unwrap();
        let reopened = Journal::open(&app).unwrap();
        assert_eq!(reopened.read(|d| d.fencing_token), 8);
    }

    #[test]
    fn another_epoch_starts_anew_while_the_same_epoch_stays_fenced() {
        let (_dir, app, journal) = journal();
        let of = |token, epoch: &str| Fence {
            token,
            epoch: epoch.into(),
        };
        fence(&journal, "web", &of(40, "")).unwrap();
        // The first control plane with an identity takes over, lower or not.
        fence(&journal, "web", &of(7, "store-a")).unwrap();
        assert!(fence(&journal, "web", &of(6, "store-a")).is_err());
        assert!(
            fence(&journal, "web", &of(6, "")).is_err(),
            "no epoch: same rules"
        );
        // A replaced store (deployment numbers start again) is not locked out.
        fence(&journal, "web", &of(2, "store-b")).unwrap();
        let reopened = Journal::open(&app).unwrap();
        assert_eq!(
            reopened.read(|d| (d.fencing_token, d.fencing_epoch.clone())),
            (2, "store-b".to_owned())
        );
        assert!(fence(&reopened, "web", &of(1, "store-b")).is_err());
        assert!(epoch("e", "store-b").is_ok());
        assert!(epoch("e", "a/b").is_err());
        assert!(epoch("e", &"a".repeat(65)).is_err());
    }

    #[test]
    fn an_operation_s_token_is_enforced_at_once_and_written_with_its_begin() {
        let (_dir, app, journal) = journal();
        fence(&journal, "web", &5.into()).unwrap();
        let before = std::fs::read(app.journal()).unwrap();
        fence_with_operation(&journal, "web", &9.into()).unwrap();
        assert!(fence_with_operation(&journal, "web", &7.into()).is_err());
        assert!(
            check(&journal, "web", &8.into()).is_err(),
            "in memory at once"
        );
        assert_eq!(
            std::fs::read(app.journal()).unwrap(),
            before,
            "no sync of its own"
        );
        journal
            .update(|data| {
                data.set_state("r1", crate::journal::State::Unfinished, "d9");
                Ok::<_, JournalError>(())
            })
            .unwrap();
        let reopened = Journal::open(&app).unwrap();
        assert_eq!(reopened.read(|d| d.fencing_token), 9);
    }

    #[test]
    fn token_zero_is_refused_where_a_lock_is_required() {
        let err = required("fencing_token", 0).unwrap_err();
        assert_eq!(err.field, "fencing_token");
        let status = Status::from(Error::from(err));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status
                .message()
                .starts_with("invalid fencing_token: is required"),
            "{}",
            status.message()
        );
        assert_eq!(required("fencing_token", 4).unwrap(), 4);
    }

    #[test]
    fn a_journal_from_before_fencing_loads_with_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let app = AppRoot::new("web", dir.path().join("web"));
        app.ensure().unwrap();
        std::fs::write(
            app.legacy_journal(),
            br#"{"version": 1, "previous_good": "r1", "releases": {}, "operations": []}"#,
        )
        .unwrap();
        let journal = Journal::open(&app).unwrap();
        assert_eq!(journal.read(|d| d.fencing_token), 0);
        fence(&journal, "web", &1.into()).unwrap();
    }
}
