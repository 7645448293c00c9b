//! The one table of input limits: how long each kind of string a caller or a
//! repository controls may be, and how many of a repeated thing a request may
//! carry. Both sides check against these before anything is recorded; the
//! README's "Limits" table lists them.

/// App and environment names (`[a-z][a-z0-9-]*`).
pub const NAME: usize = 63;
/// Host names (DNS names).
pub const HOST_NAME: usize = 253;
/// Release ids.
pub const RELEASE_ID: usize = 128;
/// Deployment ids (`dep-0000000042`).
pub const DEPLOYMENT_ID: usize = 64;
/// Git refs (branch, tag, sha or revision expression).
pub const GIT_REF: usize = 256;
/// Free text an operator writes: a deploy message, a cancel or mark reason.
pub const MESSAGE: usize = 4 << 10;
/// An environment's description.
pub const DESCRIPTION: usize = 1 << 10;
/// Filesystem paths: a repository, a deploy root, a shared path.
pub const PATH: usize = 4 << 10;
/// One hook or health-check command.
pub const COMMAND: usize = 4 << 10;
/// URLs and addresses: a health-check URL, an agent address.
pub const URL: usize = 2 << 10;
/// A host label's key.
pub const LABEL_KEY: usize = 63;
/// A host label's value.
pub const LABEL_VALUE: usize = 253;
/// Labels on one host.
pub const LABELS: usize = 64;
/// Hooks of one app.
pub const HOOKS: usize = 32;
/// Shared paths of one app.
pub const SHARED_PATHS: usize = 64;
/// A list filter (author, text, method, actor) or a page token.
pub const FILTER: usize = 256;
/// Longest audit field (target, message) written; longer ones are cut.
pub const AUDIT_FIELD: usize = 1 << 10;
/// Largest request the operator services decode. Operator requests are
/// small; release contents never travel in them.
pub const OPERATOR_MESSAGE_BYTES: usize = 1 << 20;
/// Default largest file of a release, when the app sets none.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 1 << 30;
/// Longest symlink target in a release (Linux's PATH_MAX).
pub const SYMLINK_TARGET: usize = 4 << 10;
/// Most hook output lines an app may have recorded per operation.
pub const HOOK_OUTPUT_LINES: u64 = 1_000_000;
/// Most hook output bytes an app may have recorded per operation.
pub const HOOK_OUTPUT_BYTES: u64 = 256 << 20;

/// The limits an operator may change without a restart (`[limits]` in the
/// control plane's configuration, applied on SIGHUP). They are process-wide:
/// one daemon per process, and every handler reads the values in effect at
/// the moment it checks a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Live {
    /// Free text an operator writes: a deploy message, a cancel or mark
    /// reason (default [`MESSAGE`]).
    pub message_bytes: usize,
    /// An environment's description (default [`DESCRIPTION`]).
    pub description_bytes: usize,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            message_bytes: MESSAGE,
            description_bytes: DESCRIPTION,
        }
    }
}

/// The range each live limit may be set to: whatever is configured, what a
/// caller sends stays bounded.
pub const LIVE_RANGE: std::ops::RangeInclusive<usize> = 16..=64 << 10;

static LIVE: std::sync::LazyLock<arc_swap::ArcSwap<Live>> =
    std::sync::LazyLock::new(|| arc_swap::ArcSwap::from_pointee(Live::default()));

/// The live limits in effect now.
pub fn live() -> Live {
    **LIVE.load()
}

/// Puts `limits` in effect for every check from now on.
pub fn set_live(limits: Live) {
    LIVE.store(std::sync::Arc::new(limits));
}

/// 2345678 -> "2,345,678".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `value` cut to at most `max` bytes on a character boundary, with `…`
/// appended when something was cut: for echoing a caller's string in an
/// error or an audit entry without echoing megabytes.
pub fn cut(value: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if value.len() <= max {
        return value.into();
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end]).into()
}

/// How a caller's value is shown inside an error message: debug-quoted and
/// cut to 80 bytes.
pub fn shown(value: &str) -> String {
    format!("{:?}", cut(value, 80))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_short_values_and_respects_char_boundaries() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "abc…");
        assert_eq!(cut("ééé", 3), "é…");
        assert!(shown(&"x".repeat(1 << 20)).len() < 100);
    }
}
