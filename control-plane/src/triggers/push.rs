//! What a push delivery says, from the fields GitHub, Gitea and GitLab
//! share: `ref` (`refs/heads/<branch>`), `after` (the new tip; all zeros
//! when the branch was deleted), the pusher and the head commit's message.

use serde::Deserialize;

/// A push to a branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    /// The branch, without `refs/heads/`.
    pub branch: String,
    /// The new tip, 40 or 64 hex digits.
    pub commit: String,
    /// Who pushed, if the sender says.
    pub pusher: String,
    /// The first line of the head commit's message, if the sender says.
    pub subject: String,
}

/// What a delivery's body is.
#[derive(Debug, PartialEq, Eq)]
pub enum Payload {
    /// A push to a branch.
    Push(Push),
    /// Something to acknowledge and leave: a tag, a deleted branch.
    Ignored(String),
}

/// Why a push body cannot be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the push body is not understood: {0}")]
pub struct PayloadError(String);

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    #[serde(default)]
    pusher: Option<Person>,
    #[serde(default)]
    user_username: Option<String>,
    #[serde(default)]
    head_commit: Option<Commit>,
    #[serde(default)]
    commits: Vec<Commit>,
}

#[derive(Deserialize)]
struct Person {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Deserialize)]
struct Commit {
    #[serde(default)]
    id: String,
    #[serde(default)]
    message: String,
}

/// Reads a push body.
pub fn parse(body: &[u8]) -> Result<Payload, PayloadError> {
    let body: Body = serde_json::from_slice(body).map_err(|e| PayloadError(e.to_string()))?;
    let Some(branch) = body.git_ref.strip_prefix("refs/heads/") else {
        return Ok(Payload::Ignored(format!(
            "{} is not a branch",
            body.git_ref
        )));
    };
    let hex = |s: &str| matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(&body.after) {
        return Err(PayloadError(format!(
            "`after` is not a commit id: {:?}",
            body.after
        )));
    }
    if body.after.bytes().all(|b| b == b'0') {
        return Ok(Payload::Ignored(format!("branch {branch} was deleted")));
    }
    let pusher = body
        .pusher
        .and_then(|p| p.name.or(p.username))
        .or(body.user_username)
        .unwrap_or_default();
    let head = body
        .head_commit
        .or_else(|| body.commits.into_iter().find(|c| c.id == body.after));
    let subject = head
        .map(|c| c.message.lines().next().unwrap_or_default().to_owned())
        .unwrap_or_default();
    Ok(Payload::Push(Push {
        branch: branch.to_owned(),
        commit: body.after.to_ascii_lowercase(),
        pusher,
        subject,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "3f2a9c1e0b5d4a6f8e7c9b0a1d2e3f4a5b6c7d8e";

    #[test]
    fn a_github_push() {
        let body = format!(
            r#"{{"ref":"refs/heads/main","after":"{SHA}","pusher":{{"name":"alice"}},
                "head_commit":{{"id":"{SHA}","message":"Fix login\n\nlong text"}}}}"#
        );
        assert_eq!(
            parse(body.as_bytes()),
            Ok(Payload::Push(Push {
                branch: "main".into(),
                commit: SHA.into(),
                pusher: "alice".into(),
                subject: "Fix login".into(),
            }))
        );
    }

    #[test]
    fn a_gitlab_push_names_its_head_among_the_commits() {
        let body = format!(
            r#"{{"object_kind":"push","ref":"refs/heads/release/2","after":"{SHA}",
                "user_username":"bob","commits":[{{"id":"{SHA}","message":"Bump"}}]}}"#
        );
        let Ok(Payload::Push(push)) = parse(body.as_bytes()) else {
            panic!("a push");
        };
        assert_eq!(
            (
                push.branch.as_str(),
                push.pusher.as_str(),
                push.subject.as_str()
            ),
            ("release/2", "bob", "Bump")
        );
    }

    #[test]
    fn tags_and_deleted_branches_are_left() {
        let tag = format!(r#"{{"ref":"refs/tags/v1","after":"{SHA}"}}"#);
        assert!(matches!(parse(tag.as_bytes()), Ok(Payload::Ignored(_))));
        let zeros = "0".repeat(40);
        let deleted = format!(r#"{{"ref":"refs/heads/old","after":"{zeros}"}}"#);
        assert_eq!(
            parse(deleted.as_bytes()),
            Ok(Payload::Ignored("branch old was deleted".into()))
        );
    }

    #[test]
    fn malformed_bodies_are_refused() {
        assert!(parse(b"not json").is_err());
        assert!(parse(br#"{"ref":"refs/heads/main"}"#).is_err());
        assert!(parse(br#"{"ref":"refs/heads/main","after":"../../etc"}"#).is_err());
    }
}
