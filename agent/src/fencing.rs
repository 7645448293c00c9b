//! Fencing tokens: every mutating request carries the token of the control
//! plane's lock on the app. The app's journal keeps the highest token seen;
//! a lower one is refused, so a control plane that lost its lock cannot
//! interfere with the one that holds it.

use slipway_proto::validate::InvalidField;

use crate::journal::{Journal, JournalError};

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
pub(crate) fn required(field: &str, token: u64) -> Result<u64, InvalidField> {
    if token == 0 {
        return Err(InvalidField::new(
            field,
            "is required: send the token of the control plane's lock on the app \
             (0 means no lock, which only PinRelease accepts)",
        ));
    }
    Ok(token)
}

/// Checks `token` against the highest the app has seen without recording
/// it: for a request that may yet be refused or do nothing.
pub(crate) fn check(journal: &Journal, app: &str, token: u64) -> Result<(), FenceError> {
    let seen = journal.read(|data| data.fencing_token);
    if token != 0 && token < seen {
        return Err(StaleToken {
            token,
            app: app.to_owned(),
            seen,
        }
        .into());
    }
    Ok(())
}

/// Checks `token` against the highest the app has seen and records it when
/// it is higher, durably, before the request goes on. Equal is fine (the
/// lock holder's every call carries the same token); 0 is neither checked
/// nor recorded. Runs under the journal's lock, so two requests cannot both
/// pass with the lower token after the higher one was recorded. Blocking.
pub(crate) fn fence(journal: &Journal, app: &str, token: u64) -> Result<(), FenceError> {
    if token == 0 {
        return Ok(());
    }
    journal.update(|data| {
        if token < data.fencing_token {
            return Err(FenceError::from(StaleToken {
                token,
                app: app.to_owned(),
                seen: data.fencing_token,
            }));
        }
        data.fencing_token = token;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};

    use super::*;
    use crate::{error::Error, layout::AppRoot};

    #[test]
    fn lower_tokens_are_refused_higher_ones_recorded_durably() {
        let dir = tempfile::tempdir().unwrap();
        let app = AppRoot::new("web", dir.path().join("web"));
        app.ensure().unwrap();
        let journal = Journal::open(&app).unwrap();
        fence(&journal, "web", 0).unwrap();
        assert!(!app.journal().exists(), "0 records nothing");
        fence(&journal, "web", 5).unwrap();
        fence(&journal, "web", 5).unwrap();
        let before = std::fs::read(app.journal()).unwrap();
        let status = Status::from(Error::from(fence(&journal, "web", 3).unwrap_err()));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(
            status.message(),
            "stale fencing token 3: app web has seen 5; another control plane holds its lock"
        );
        assert_eq!(std::fs::read(app.journal()).unwrap(), before, "unchanged");
        fence(&journal, "web", 0).unwrap();
        fence(&journal, "web", 8).unwrap();
        let reopened = Journal::open(&app).unwrap();
        assert_eq!(reopened.read(|d| d.fencing_token), 8);
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
        fence(&journal, "web", 1).unwrap();
    }
}
