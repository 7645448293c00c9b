//! Release-cut rules on real repositories built with libgit2: names that
//! are not UTF-8, symlinks no agent accepts and files past the app's limit
//! are refused with the path shown; large blobs are hashed in chunks.

use git2::{Oid, Repository, Signature};
use sha2::{Digest, Sha256};

use super::{GitError, manifest};

/// A repository with one commit holding `entries` (name bytes, content,
/// file mode) at its root; returns the commit's sha.
fn commit(entries: &[(&[u8], &[u8], i32)]) -> (tempfile::TempDir, Repository, String) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(dir.path()).unwrap();
    let sha = {
        let mut builder = repo.treebuilder(None).unwrap();
        for (name, content, mode) in entries {
            let blob = repo.blob(content).unwrap();
            builder.insert(name.to_vec(), blob, *mode).unwrap();
        }
        let tree = repo.find_tree(builder.write().unwrap()).unwrap();
        let who = Signature::now("t", "t@example.com").unwrap();
        repo.commit(Some("HEAD"), &who, &who, "one", &tree, &[])
            .unwrap()
            .to_string()
    };
    (dir, repo, sha)
}

fn refusal(result: Result<super::Manifest, GitError>) -> String {
    match result {
        Err(GitError::Unreleasable { reason, .. }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn names_that_are_not_utf8_are_refused_with_the_path() {
    let (_dir, repo, sha) = commit(&[
        (b"n\xff", b"a", 0o100644),
        (b"n\xfe", b"b", 0o100644),
        (b"ok", b"c", 0o100644),
    ]);
    let reason = refusal(manifest(&repo, &sha, None, 1 << 30));
    assert!(
        reason.contains("n\\xfe") || reason.contains("n\\xff"),
        "{reason}"
    );
    assert!(reason.contains("UTF-8"), "{reason}");
}

#[test]
fn symlinks_an_agent_refuses_are_refused_at_cut() {
    for target in ["s/../x", "/etc/passwd", "../outside"] {
        let (_dir, repo, sha) = commit(&[(b"link", target.as_bytes(), 0o120000)]);
        let reason = refusal(manifest(&repo, &sha, None, 1 << 30));
        assert!(reason.contains("link"), "{target}: {reason}");
    }
    let (_dir, repo, sha) = commit(&[(b"link", b"target", 0o120000), (b"target", b"x", 0o100644)]);
    let files = manifest(&repo, &sha, None, 1 << 30).unwrap().files;
    assert!(files.iter().any(|f| f.path == "link" && f.symlink));
}

#[test]
fn a_file_past_the_limit_is_refused_with_its_path() {
    let (_dir, repo, sha) = commit(&[(b"big.bin", &[0; 2000], 0o100644)]);
    let reason = refusal(manifest(&repo, &sha, None, 1999));
    assert!(
        reason.contains("big.bin") && reason.contains("1999"),
        "{reason}"
    );
    assert_eq!(manifest(&repo, &sha, None, 2000).unwrap().files.len(), 1);
}

#[test]
fn a_large_blob_is_hashed_in_chunks() {
    let content = vec![7u8; (super::git_blob::IN_MEMORY as usize) * 2 + 5];
    let (_dir, repo, sha) = commit(&[(b"big.bin", &content, 0o100644)]);
    let files = manifest(&repo, &sha, None, 1 << 30).unwrap().files;
    assert_eq!(files[0].sha256, hex::encode(Sha256::digest(&content)));
    assert_eq!(files[0].size, content.len() as u64);
    let mut parts = 0;
    let oid = Oid::from_str(&files[0].blob).unwrap();
    let sent = super::git_blob::for_each_chunk(&repo, oid, 1 << 20, |part| {
        parts += 1;
        part.len() <= 1 << 20
    })
    .unwrap();
    assert_eq!((sent, parts), (content.len() as u64, 9));
}

#[test]
fn a_large_packed_blob_streams_too() {
    let content: Vec<u8> = (0..(super::git_blob::IN_MEMORY as usize) * 2 + 5)
        .map(|i| (i % 251) as u8)
        .collect();
    let (dir, repo, sha) = commit(&[(b"big.bin", &content, 0o100644)]);
    let packed = std::process::Command::new("git")
        .arg("-C")
        .arg(dir.path())
        .args(["repack", "-a", "-d", "-q"])
        .status()
        .unwrap();
    assert!(packed.success());
    let repo = {
        drop(repo);
        Repository::open(dir.path()).unwrap()
    };
    let files = manifest(&repo, &sha, None, 1 << 30).unwrap().files;
    assert_eq!(files[0].sha256, hex::encode(Sha256::digest(&content)));
    let oid = Oid::from_str(&files[0].blob).unwrap();
    assert!(
        repo.odb().unwrap().reader(oid).is_err(),
        "the blob is packed"
    );
    let mut streamed = Vec::new();
    super::git_blob::for_each_chunk(&repo, oid, 1 << 20, |part| {
        assert!(part.len() <= 1 << 20);
        streamed.extend_from_slice(part);
        true
    })
    .unwrap();
    assert!(streamed == content);
}

mod props {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// A tree entry name: plain, or arbitrary bytes (git forbids '/', NUL
    /// and the dot names, so those are left out).
    fn entry_name() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            3 => "[a-z0-9._-]{1,6}".prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 1..4),
        ]
        .prop_filter("git refuses it", |n| {
            !n.contains(&b'/') && !n.contains(&0) && n != b"." && n != b".." && n != b".git"
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn a_manifest_has_every_file_or_is_refused(
            names in prop::collection::btree_set(entry_name(), 1..6)
        ) {
            let entries: Vec<(&[u8], &[u8], i32)> = names
                .iter()
                .map(|n| (n.as_slice(), n.as_slice(), 0o100644))
                .collect();
            let (_dir, repo, sha) = commit(&entries);
            let all_utf8 = names.iter().all(|n| std::str::from_utf8(n).is_ok());
            match manifest(&repo, &sha, None, 1 << 30) {
                Ok(m) => {
                    // No silent collapse: one manifest entry per tree entry,
                    // named exactly as in git, each a valid release path.
                    prop_assert!(all_utf8);
                    let paths: BTreeSet<Vec<u8>> =
                        m.files.iter().map(|f| f.path.clone().into_bytes()).collect();
                    prop_assert_eq!(&paths, &names);
                    for f in &m.files {
                        prop_assert!(slipway_proto::validate::relative_path("p", &f.path).is_ok());
                    }
                    prop_assert!(m.files.windows(2).all(|w| w[0].path < w[1].path));
                }
                Err(GitError::Unreleasable { reason, .. }) => {
                    let bad_path = names.iter().any(|n| {
                        std::str::from_utf8(n)
                            .map_or(true, |s| slipway_proto::validate::relative_path("p", s).is_err())
                    });
                    prop_assert!(bad_path, "refused a clean tree: {}", reason);
                }
                Err(other) => prop_assert!(false, "{other}"),
            }
        }
    }
}
