//! The agent's configuration from the shared layered loader (file,
//! environment, flags): typed, completed and checked, every problem named
//! with its key and where its value came from.

use slipway_proto::config::{self, Layered, Reason, reload::Live};

use super::{Config, ConfigError, ConfigFile};

/// Checks `layered` and returns it with the configuration to run.
pub fn load(layered: Layered) -> Result<(Layered, Config), config::ConfigError> {
    let file: ConfigFile = layered.typed()?;
    Live::of(&layered)?;
    let config = file.into_config().map_err(|err| named(&layered, err))?;
    config.validate().map_err(|err| named(&layered, err))?;
    layered.dir_or_parent("apps_dir", &config.apps_dir)?;
    layered.dir_or_parent("data_dir", &config.data_dir)?;
    Ok((layered, config))
}

/// An agent configuration error with the origin of its key.
fn named(layered: &Layered, err: ConfigError) -> config::ConfigError {
    match err {
        ConfigError::Missing { field, .. } => layered.missing(field),
        ConfigError::Invalid { field, reason } => layered.key_error(field, Reason(reason)),
        ConfigError::Unreadable { field, path, .. } => {
            layered.readable(field, &path).err().unwrap_or_else(|| {
                layered.key_error(field, Reason(format!("cannot read {}", path.display())))
            })
        }
    }
}
