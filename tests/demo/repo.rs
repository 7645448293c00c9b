//! The demo's git repository: a work tree in the demo's directory, so
//! `--keep` keeps it along with the PKI and the hosts' files.

use std::path::{Path, PathBuf};

use anyhow::Result;

/// A git repository with a work tree, written with git2.
pub struct DemoRepo {
    repo: git2::Repository,
    dir: PathBuf,
}

impl DemoRepo {
    /// An empty repository on branch `main` in `dir`.
    pub fn create(dir: &Path) -> Result<Self> {
        let mut opts = git2::RepositoryInitOptions::new();
        opts.initial_head("main");
        let repo = git2::Repository::init_opts(dir, &opts)?;
        Ok(Self {
            repo,
            dir: dir.to_owned(),
        })
    }

    /// Writes `files` (path, content, executable) and commits them on
    /// `main`; returns the commit's sha.
    pub fn commit(&self, message: &str, files: &[(&str, &[u8], bool)]) -> Result<String> {
        use std::os::unix::fs::PermissionsExt;
        let mut index = self.repo.index()?;
        for (path, content, exec) in files {
            let full = self.dir.join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&full, content)?;
            let mode = if *exec { 0o755 } else { 0o644 };
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode))?;
            index.add_path(Path::new(path))?;
        }
        index.write()?;
        let tree = self.repo.find_tree(index.write_tree()?)?;
        let sig = git2::Signature::now("Demo Author", "demo@example.com")?;
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        Ok(self
            .repo
            .commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)?
            .to_string())
    }
}
