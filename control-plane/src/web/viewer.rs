//! Who is looking at a page: the operator a dashboard session acts as, the
//! session and the language. [`super::session`] reads it from a request.

use super::i18n::Lang;
use crate::{auth::Caller, store::dashboard::DashboardSession};

/// A signed-in operator looking at the dashboard.
#[derive(Clone, Debug)]
pub struct Viewer {
    /// The operator the session acts as.
    pub caller: Caller,
    /// The session.
    pub session: DashboardSession,
    /// The language of the pages.
    pub lang: Lang,
}
