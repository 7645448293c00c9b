//! Where an app lives on this host: resolving a request's app to its root
//! directory (and refusing roots outside the configured ones), and the paths
//! inside that root.

use std::{
    io,
    path::{Component, Path, PathBuf},
};

use slipway_proto::validate::{self, InvalidField};

use crate::fsutil::{create_dir_synced, create_private_dir};

/// Name of the symlink that selects the live release.
pub const CURRENT: &str = "current";

/// The directories app roots may lie under.
#[derive(Clone, Debug)]
pub struct Roots {
    apps_dir: PathBuf,
    allowed: Vec<PathBuf>,
}

impl Roots {
    /// `apps_dir` holds `<apps_dir>/<app>` roots and is always allowed;
    /// `allowed` are further roots a request may name explicitly.
    pub fn new(apps_dir: PathBuf, allowed: Vec<PathBuf>) -> Self {
        Self { apps_dir, allowed }
    }

    /// The directory holding default app roots.
    pub fn apps_dir(&self) -> &Path {
        &self.apps_dir
    }

    /// Resolves an app from the wire. `field` prefixes the field names in
    /// errors (`app` or `apps[2]`). An empty `deploy_root` means
    /// `<apps_dir>/<name>`; otherwise it must be absolute, clean and strictly
    /// below the apps directory or an allowed root.
    pub fn resolve(
        &self,
        field: &str,
        name: &str,
        deploy_root: &str,
    ) -> Result<AppRoot, InvalidField> {
        validate::name(&format!("{field}.name"), name)?;
        if deploy_root.is_empty() {
            return Ok(AppRoot::new(name, self.apps_dir.join(name)));
        }
        let root_field = format!("{field}.deploy_root");
        validate::absolute_path(&root_field, deploy_root)?;
        // Rebuild from components: drops repeated and trailing slashes so
        // `/srv//web/` and `/srv/web` are the same app root (and lock).
        let root: PathBuf = Path::new(deploy_root).components().collect();
        // Lexical containment is enough here: the roots are configured by the
        // host's administrator and `absolute_path` already refused `..`.
        let inside = |base: &PathBuf| root.starts_with(base) && root != *base;
        if inside(&self.apps_dir) || self.allowed.iter().any(inside) {
            return Ok(AppRoot::new(name, root));
        }
        let mut bases = vec![self.apps_dir.display().to_string()];
        bases.extend(self.allowed.iter().map(|p| p.display().to_string()));
        Err(InvalidField::new(
            root_field,
            format!(
                "{deploy_root:?} is not below a root this agent may write to ({}); \
                 add it to the agent's allowed_roots or use a path below one of them",
                bases.join(", ")
            ),
        ))
    }
}

/// One app's root directory on this host and the paths inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppRoot {
    name: String,
    root: PathBuf,
}

impl AppRoot {
    /// An app root without any checks; callers go through [`Roots::resolve`].
    pub fn new(name: impl Into<String>, root: PathBuf) -> Self {
        Self {
            name: name.into(),
            root,
        }
    }

    /// App name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The app's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/current`, the symlink to the live release.
    pub fn current(&self) -> PathBuf {
        self.root.join(CURRENT)
    }

    /// `<root>/releases`.
    pub fn releases(&self) -> PathBuf {
        self.root.join("releases")
    }

    /// `<root>/releases/<id>`.
    pub fn release(&self, id: &str) -> PathBuf {
        self.releases().join(id)
    }

    /// The relative target `current` gets for release `id`.
    pub fn current_target(id: &str) -> PathBuf {
        Path::new("releases").join(id)
    }

    /// `<root>/.slipway`, the agent's private area of the app.
    pub fn private(&self) -> PathBuf {
        self.root.join(".slipway")
    }

    /// `<root>/.slipway/objects`, the content store.
    pub fn objects(&self) -> PathBuf {
        self.private().join("objects")
    }

    /// `<root>/.slipway/staging`, where releases are built.
    pub fn staging(&self) -> PathBuf {
        self.private().join("staging")
    }

    /// `<root>/.slipway/spare`, the tree prestaged for the next deploy.
    pub fn spare(&self) -> PathBuf {
        self.private().join("spare")
    }

    /// `<root>/.slipway/tmp`, uploads in progress.
    pub fn tmp(&self) -> PathBuf {
        self.private().join("tmp")
    }

    /// `<root>/.slipway/trash`, releases being pruned.
    pub fn trash(&self) -> PathBuf {
        self.private().join("trash")
    }

    /// `<root>/.slipway/journal.log`, release states and recent operations.
    pub fn journal(&self) -> PathBuf {
        self.private().join("journal.log")
    }

    /// `<root>/.slipway/journal.json`, the journal of agents before the
    /// record log, migrated on open.
    pub fn legacy_journal(&self) -> PathBuf {
        self.private().join("journal.json")
    }

    /// `<root>/.slipway/events`, the events of finished operations.
    pub fn event_logs(&self) -> PathBuf {
        self.private().join("events")
    }

    /// `<root>/shared`, paths that persist across releases.
    pub fn shared(&self) -> PathBuf {
        self.root.join("shared")
    }

    /// Creates the root and every directory the agent uses inside it,
    /// syncing each parent whose entries changed: the root and `releases/`
    /// 0755, `.slipway` and everything in it 0700. Blocking.
    pub fn ensure(&self) -> io::Result<()> {
        for dir in [self.root.clone(), self.releases()] {
            create_dir_synced(&dir)?;
        }
        for dir in [
            self.private(),
            self.objects(),
            self.staging(),
            self.spare(),
            self.tmp(),
            self.trash(),
        ] {
            create_private_dir(&dir)?;
        }
        Ok(())
    }
}

/// The last component of a path as a string (a release id from a symlink
/// target such as `releases/<id>`).
pub fn last_component(path: &Path) -> Option<String> {
    match path.components().next_back()? {
        Component::Normal(name) => name.to_str().map(str::to_owned),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> Roots {
        Roots::new("/srv".into(), vec!["/opt/apps".into()])
    }

    #[test]
    fn empty_deploy_root_is_under_apps_dir() {
        let app = roots().resolve("app", "web", "").unwrap();
        assert_eq!(app.root(), Path::new("/srv/web"));
        assert_eq!(app.release("r1"), Path::new("/srv/web/releases/r1"));
        assert_eq!(app.objects(), Path::new("/srv/web/.slipway/objects"));
    }

    #[test]
    fn deploy_roots_under_allowed_roots_are_accepted_and_normalised() {
        let app = roots().resolve("app", "web", "/opt/apps//web/").unwrap();
        assert_eq!(app.root(), Path::new("/opt/apps/web"));
        assert!(roots().resolve("app", "web", "/srv/a/b").is_ok());
    }

    #[test]
    fn deploy_roots_outside_are_refused_naming_the_field() {
        for bad in [
            "/etc",
            "/srv",
            "/srvx/web",
            "/opt/apps/../../etc",
            "srv/web",
            "/opt",
        ] {
            let err = roots().resolve("app", "web", bad).unwrap_err();
            assert_eq!(err.field, "app.deploy_root", "{bad}");
        }
        let err = roots().resolve("apps[1]", "Web", "").unwrap_err();
        assert_eq!(err.field, "apps[1].name");
    }

    #[test]
    fn last_components() {
        assert_eq!(
            last_component(Path::new("releases/r1")).as_deref(),
            Some("r1")
        );
        assert_eq!(last_component(Path::new("/")), None);
    }
}
