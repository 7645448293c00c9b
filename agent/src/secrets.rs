//! An environment's secrets on the host: held only in memory (their
//! `Debug` prints names), written into a release as one private file (mode
//! 0600, a fresh file written to a temp name and renamed over the old one,
//! never an object of the store, so hard-linked releases share nothing of
//! it), in dotenv or JSON, owned by the app's user when it names one.
//! Blocking.

use std::{
    fs,
    io::{self, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use slipway_proto::{
    agent::v1::{self, SecretsFormat},
    secrets::DEFAULT_FILE,
    validate::InvalidField,
};

use crate::fsutil::{FsError, io_err, sync_dir};

/// Secrets of one operation, in the order the control plane sent them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(Vec<(String, String)>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

impl Secrets {
    /// Validates the secrets of a request (`field` names them).
    pub fn from_wire(field: &str, secrets: Vec<v1::Secret>) -> Result<Self, InvalidField> {
        slipway_proto::secrets::shipped(field, &secrets)?;
        Ok(Self(
            secrets.into_iter().map(|s| (s.name, s.value)).collect(),
        ))
    }

    /// No secret at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Name-value pairs, for a command's environment.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The file's content in `format`.
    fn render(&self, format: SecretsFormat) -> Vec<u8> {
        match format {
            SecretsFormat::Json => {
                let map: serde_json::Map<String, serde_json::Value> = (self.0.iter())
                    .map(|(n, v)| (n.clone(), serde_json::Value::String(v.clone())))
                    .collect();
                let mut out = serde_json::to_vec_pretty(&map).unwrap_or_default();
                out.push(b'\n');
                out
            }
            _ => {
                let mut out = String::new();
                for (name, value) in &self.0 {
                    out.push_str(name);
                    out.push_str("=\"");
                    for c in value.chars() {
                        match c {
                            '\\' => out.push_str("\\\\"),
                            '"' => out.push_str("\\\""),
                            '$' => out.push_str("\\$"),
                            '\n' => out.push_str("\\n"),
                            c => out.push(c),
                        }
                    }
                    out.push_str("\"\n");
                }
                out.into_bytes()
            }
        }
    }
}

/// Where and how an app's secrets are written in a release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretsFile {
    /// Relative, clean path in the release.
    pub path: String,
    /// dotenv or JSON.
    pub format: SecretsFormat,
    /// Owner (name or id); empty: the agent's user.
    pub owner: String,
    /// Group (name or id); empty: the owner's.
    pub group: String,
}

impl Default for SecretsFile {
    fn default() -> Self {
        Self {
            path: DEFAULT_FILE.to_owned(),
            format: SecretsFormat::Dotenv,
            owner: String::new(),
            group: String::new(),
        }
    }
}

impl SecretsFile {
    /// From a spec whose `secrets_file` was validated.
    pub fn from_wire(file: Option<&v1::SecretsFile>) -> Self {
        let Some(file) = file else {
            return Self::default();
        };
        Self {
            path: if file.path.is_empty() {
                DEFAULT_FILE.to_owned()
            } else {
                file.path.clone()
            },
            format: match file.format() {
                SecretsFormat::Json => SecretsFormat::Json,
                _ => SecretsFormat::Dotenv,
            },
            owner: file.owner.clone(),
            group: file.group.clone(),
        }
    }

    /// Writes `secrets` into the release at `release` (inside `root`, the
    /// app's deploy root): a private temp file renamed over the path, which
    /// replaces whatever link or file was there. With no secrets, removes
    /// the file if it is there. Returns the path written.
    pub fn write(
        &self,
        root: &Path,
        release: &Path,
        secrets: &Secrets,
    ) -> Result<PathBuf, FsError> {
        let path = release.join(&self.path);
        let parent = path.parent().unwrap_or(release).to_owned();
        fs::create_dir_all(&parent).map_err(io_err("create", &parent))?;
        // A directory of the release may be a shared path's symlink: the
        // file may land in shared/, never outside the app's root.
        let real = fs::canonicalize(&parent).map_err(io_err("resolve", &parent))?;
        let real_root = fs::canonicalize(root).map_err(io_err("resolve", root))?;
        if !real.starts_with(&real_root) {
            let source = io::Error::new(io::ErrorKind::PermissionDenied, "outside the app's root");
            return Err(io_err("write secrets under", &parent)(source));
        }
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let target = real.join(name.as_ref());
        if secrets.is_empty() {
            match fs::remove_file(&target) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("remove", &target)(err));
                }
                _ => {}
            }
            sync_dir(&real).map_err(io_err("sync", &real))?;
            return Ok(target);
        }
        let tmp = real.join(format!(".{name}.slipway-{:016x}", rand::random::<u64>()));
        let written = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            file.write_all(&secrets.render(self.format))?;
            file.sync_all()?;
            let (uid, gid) = owner(&self.owner, &self.group)?;
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::fchown(&file, uid, gid)?;
            }
            fs::rename(&tmp, &target)
        })();
        if let Err(err) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("write secrets file", &target)(err));
        }
        sync_dir(&real).map_err(io_err("sync", &real))?;
        Ok(target)
    }
}

/// The uid and gid of `owner` and `group` (names from /etc/passwd and
/// /etc/group, or numeric ids); a group left out is the owner's.
fn owner(owner: &str, group: &str) -> io::Result<(Option<u32>, Option<u32>)> {
    let mut uid = None;
    let mut gid = None;
    if !owner.is_empty() {
        let (u, g) = lookup("/etc/passwd", owner, 2, 3)?;
        uid = Some(u);
        gid = g;
    }
    if !group.is_empty() {
        gid = Some(lookup("/etc/group", group, 2, 2)?.0);
    }
    Ok((uid, gid))
}

/// The id (field `id_at`) and second id (field `second_at`) of `name` in a
/// passwd-style `file`; a numeric `name` is its own id.
fn lookup(
    file: &str,
    name: &str,
    id_at: usize,
    second_at: usize,
) -> io::Result<(u32, Option<u32>)> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok((id, None));
    }
    let text = fs::read_to_string(file)?;
    for line in text.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() == Some(&name) {
            let id = fields.get(id_at).and_then(|f| f.parse().ok());
            let second = fields.get(second_at).and_then(|f| f.parse().ok());
            if let Some(id) = id {
                return Ok((id, second));
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no user or group {name} in {file}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        Secrets(vec![
            ("DB_URL".into(), "postgres://u:p@h/db".into()),
            ("ODD".into(), "a\"b\\c$d\ne".into()),
        ])
    }

    #[test]
    fn dotenv_quotes_and_escapes() {
        let text = String::from_utf8(secrets().render(SecretsFormat::Dotenv)).unwrap();
        assert_eq!(
            text,
            "DB_URL=\"postgres://u:p@h/db\"\nODD=\"a\\\"b\\\\c\\$d\\ne\"\n"
        );
    }

    #[test]
    fn json_is_one_object() {
        let raw = secrets().render(SecretsFormat::Json);
        let value: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(value["ODD"], "a\"b\\c$d\ne");
    }

    #[test]
    fn debug_shows_names_only() {
        assert_eq!(format!("{:?}", secrets()), "[\"DB_URL\", \"ODD\"]");
    }

    #[test]
    fn the_file_is_private_replaces_a_hard_link_and_stays_in_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let release = dir.path().join("releases/r1");
        fs::create_dir_all(&release).unwrap();
        // A hard link to an object, as a hard-linked release holds.
        let object = dir.path().join("object");
        fs::write(&object, "from git").unwrap();
        fs::hard_link(&object, release.join(".env")).unwrap();
        let file = SecretsFile::default();
        let path = file.write(dir.path(), &release, &secrets()).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(fs::read_to_string(&object).unwrap(), "from git");
        assert!(fs::read_to_string(&path).unwrap().starts_with("DB_URL="));
        file.write(dir.path(), &release, &Secrets::default())
            .unwrap();
        assert!(!path.exists());
        std::os::unix::fs::symlink("/tmp", release.join("out")).unwrap();
        let outside = SecretsFile {
            path: "out/x.env".into(),
            ..SecretsFile::default()
        };
        assert!(outside.write(dir.path(), &release, &secrets()).is_err());
    }
}
