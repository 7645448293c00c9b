//! What hooks and health check commands run with: a clean environment (a
//! fixed PATH, HOME, LANG, the operation's `SLIPWAY_*` variables and the
//! app's configured variables, never the agent's own environment), the
//! agent-wide hook settings of the `[hooks]` config table, and this agent
//! instance's id, which marks every process its hooks start.

use std::{
    fs, io,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

use serde::Deserialize;

use crate::hook_output::{DEFAULT_LINE_BYTES, DEFAULT_MAX_BYTES, DEFAULT_MAX_LINES, OutputLimits};

/// PATH of hooks unless `[hooks] path` says otherwise.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// LANG of hooks (an app may set its own).
pub const LANG: &str = "C.UTF-8";
/// The file in the data dir holding this agent instance's id.
const INSTANCE_FILE: &str = "instance-id";

/// The `[hooks]` table of the agent's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HookConfig {
    /// PATH of every hook and check command.
    pub path: String,
    /// Lines of hook output an operation records as events, for apps that
    /// set no limit of their own.
    pub output_max_lines: u64,
    /// Bytes of hook output an operation records as events, for apps that
    /// set no limit of their own.
    pub output_max_bytes: u64,
    /// A longer line of output is cut with a marker.
    pub output_line_bytes: usize,
}

impl Default for HookConfig {
    fn default() -> Self {
        Self {
            path: DEFAULT_PATH.to_owned(),
            output_max_lines: DEFAULT_MAX_LINES,
            output_max_bytes: DEFAULT_MAX_BYTES,
            output_line_bytes: DEFAULT_LINE_BYTES,
        }
    }
}

/// The variable holding the host's name in a command's environment.
pub const HOST_VAR: &str = "SLIPWAY_HOST";
/// Replaced by the host's name in drain and restore URLs.
pub const HOST_PLACEHOLDER: &str = "{host}";

/// What every hook of this agent runs with, whatever the app.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookHost {
    /// The `[hooks]` settings.
    pub config: HookConfig,
    /// This agent instance's id (see [`instance_id`]).
    pub instance: String,
    /// The host's name from the agent's configuration (`SLIPWAY_HOST`, and
    /// `{host}` in drain and restore URLs).
    pub name: String,
}

impl HookHost {
    /// The output limits of an app asking for `max_lines` / `max_bytes`
    /// (0: the agent's default).
    pub fn limits(&self, max_lines: u64, max_bytes: u64) -> OutputLimits {
        let or = |app: u64, agent: u64| if app == 0 { agent } else { app };
        OutputLimits {
            max_lines: or(max_lines, self.config.output_max_lines),
            max_bytes: or(max_bytes, self.config.output_max_bytes),
            line_bytes: self.config.output_line_bytes,
        }
    }

    /// The whole environment of a command of the app at `app_root`: PATH,
    /// HOME (the app's root), LANG, then the app's `variables` (which may
    /// replace those three), then the operation's `SLIPWAY_*` variables, the
    /// host's name and the agent instance's, which nothing replaces.
    pub fn environment(
        &self,
        app_root: &Path,
        variables: &[(String, String)],
        operation: Vec<(&'static str, String)>,
    ) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), self.config.path.clone()),
            ("HOME".into(), app_root.display().to_string()),
            ("LANG".into(), LANG.into()),
        ];
        for (name, value) in variables {
            env.retain(|(n, _)| n != name);
            env.push((name.clone(), value.clone()));
        }
        for (name, value) in operation {
            env.retain(|(n, _)| n != name);
            env.push((name.to_owned(), value));
        }
        env.retain(|(n, _)| n != crate::hooks::INSTANCE_VAR && n != HOST_VAR);
        env.push((HOST_VAR.to_owned(), self.name.clone()));
        env.push((crate::hooks::INSTANCE_VAR.to_owned(), self.instance.clone()));
        env
    }

    /// `text` with every `{host}` replaced by the host's name.
    pub fn for_host(&self, text: &str) -> String {
        text.replace(HOST_PLACEHOLDER, &self.name)
    }
}

/// This agent instance's id: random, made once per data directory and kept
/// in `<data_dir>/instance-id` (0600), so a restarted agent recognises the
/// hooks it started before, and another agent sharing the PID namespace
/// (with its own data dir) never takes them for its own. Blocking.
pub fn instance_id(data_dir: &Path) -> io::Result<String> {
    let path = data_dir.join(INSTANCE_FILE);
    match fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let id = format!("{:032x}", rand::random::<u128>());
    let tmp = data_dir.join(format!(".{INSTANCE_FILE}.{:016x}", rand::random::<u64>()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(id.as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, &path)?;
    crate::fsutil::sync_dir(data_dir)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_the_base_the_app_and_the_operation_only() {
        let host = HookHost {
            config: HookConfig::default(),
            instance: "i1".into(),
            name: "web-1".into(),
        };
        assert_eq!(
            host.for_host("http://lb/backends/{host}/drain"),
            "http://lb/backends/web-1/drain"
        );
        let env = host.environment(
            Path::new("/srv/web"),
            &[
                ("LANG".into(), "de_DE.UTF-8".into()),
                ("RAILS_ENV".into(), "production".into()),
                ("SLIPWAY_APP".into(), "forged".into()),
            ],
            vec![("SLIPWAY_APP", "web".into())],
        );
        let get = |name: &str| {
            let found: Vec<&str> = env
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect();
            assert!(found.len() <= 1, "{name} once: {env:?}");
            found.first().map(|v| (*v).to_owned())
        };
        assert_eq!(get("PATH").as_deref(), Some(DEFAULT_PATH));
        assert_eq!(get("HOME").as_deref(), Some("/srv/web"));
        assert_eq!(get("LANG").as_deref(), Some("de_DE.UTF-8"));
        assert_eq!(get("RAILS_ENV").as_deref(), Some("production"));
        assert_eq!(get("SLIPWAY_APP").as_deref(), Some("web"));
        assert_eq!(get("SLIPWAY_AGENT_INSTANCE").as_deref(), Some("i1"));
        assert_eq!(get("SLIPWAY_HOST").as_deref(), Some("web-1"));
        assert_eq!(env.len(), 7);
    }

    #[test]
    fn limits_fall_back_to_the_agents() {
        let host = HookHost::default();
        assert_eq!(host.limits(0, 0), OutputLimits::default());
        assert_eq!(host.limits(5, 0).max_lines, 5);
        assert_eq!(host.limits(0, 7).max_bytes, 7);
    }

    #[test]
    fn the_instance_id_is_made_once_per_data_dir_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = instance_id(dir.path()).unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(instance_id(dir.path()).unwrap(), first);
        let mode = fs::metadata(dir.path().join(INSTANCE_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(instance_id(other.path()).unwrap(), first);
    }
}
