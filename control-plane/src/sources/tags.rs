//! Release tags: after a deployment succeeds, a tag of its commit pushed to
//! the app's remote, named from the app's strftime pattern. Tagging is a
//! report, never a failure of the deployment.

use chrono::format::{Item, StrftimeItems};
use slipway_proto::control::v1::App;

use super::{Location, Sources, keys};

/// The pattern when the app gives none.
pub const DEFAULT_PATTERN: &str = "release_%Y%m%d_%H%M%S";
/// Longest pattern accepted.
pub const MAX_PATTERN: usize = 128;

/// Why a tag pattern is refused.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.len() > MAX_PATTERN {
        return Err(format!("longer than {MAX_PATTERN} bytes"));
    }
    let name = tag_name(pattern, chrono::Utc::now())?;
    if !git2::Reference::is_valid_name(&format!("refs/tags/{name}")) {
        return Err(format!("{name:?} is not a valid git tag name"));
    }
    Ok(())
}

/// The tag `pattern` (empty: the default) names at `at`.
pub fn tag_name(pattern: &str, at: chrono::DateTime<chrono::Utc>) -> Result<String, String> {
    let pattern = if pattern.is_empty() {
        DEFAULT_PATTERN
    } else {
        pattern
    };
    if StrftimeItems::new(pattern).any(|item| matches!(item, Item::Error)) {
        return Err("not a valid strftime pattern".into());
    }
    Ok(at.format(pattern).to_string())
}

impl Sources {
    /// Pushes the release tag of `commit` for `app` when it asks for tags
    /// and its source is remote: None when there is nothing to do, else
    /// what happened, for the deployment's events.
    pub async fn tag_release(&self, app: &App, commit: &str) -> Option<Result<String, String>> {
        let Ok(Location::Remote { url, .. }) = Location::parse(&app.repository) else {
            return None;
        };
        if !app.release_tags {
            return None;
        }
        let name = match tag_name(&app.release_tag_pattern, chrono::Utc::now()) {
            Ok(name) => name,
            Err(err) => return Some(Err(format!("tagging the release failed: {err}"))),
        };
        let op = keys::Op::Tag {
            name: name.clone(),
            commit: commit.to_owned(),
        };
        Some(match self.connect(&app.name, url, op).await.0 {
            Ok(_) => Ok(format!(
                "tagged {} as {name} on the remote",
                &commit[..7.min(commit.len())]
            )),
            Err(err) => Err(format!("tagging the release as {name} failed: {err}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_name_tags_and_bad_ones_are_refused() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-29T09:05:07Z")
            .unwrap()
            .to_utc();
        assert_eq!(tag_name("", at).unwrap(), "release_20261129_090507");
        assert_eq!(tag_name("v%Y.%m.%d", at).unwrap(), "v2026.11.29");
        assert!(check_pattern("").is_ok());
        assert!(check_pattern("%Q").is_err());
        assert!(check_pattern("bad name..%Y").is_err());
        assert!(check_pattern(&"x".repeat(200)).is_err());
    }
}
