//! The connection flags shared by every command, and how they combine with
//! the context in use: a flag beats its environment variable, which beats
//! the context, which beats the built-in default.

use std::path::PathBuf;

use super::{Connection, DEFAULT_ENDPOINT};
use crate::contexts::{self, Config, Context, ContextError};

/// How to reach the control plane and who you are to it, as given.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ConnectionFlags {
    /// Named control plane from slipctl's config file (see `slipctl context`;
    /// default: the current context)
    #[arg(long, global = true, env = "SLIPWAY_CONTEXT", value_name = "NAME")]
    pub context: Option<String>,

    /// Control plane address, host:port or https://host:port; the replicas
    /// of a cluster comma-separated, the first that answers is asked which
    /// one leads (default: the context's, else 127.0.0.1:7443)
    #[arg(long, global = true, env = "SLIPWAY_ENDPOINT")]
    pub endpoint: Option<String>,

    /// Directory holding ca.crt and your operator certificate; --ca/--cert/--key
    /// default to <dir>/ca.crt, <dir>/operator-admin.crt, <dir>/operator-admin.key
    #[arg(long, global = true, env = "SLIPWAY_PKI_DIR", value_name = "DIR")]
    pub pki_dir: Option<PathBuf>,

    /// CA certificate that signed the control plane's certificate
    #[arg(long, global = true, env = "SLIPWAY_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// Your operator certificate
    #[arg(long, global = true, env = "SLIPWAY_CERT", value_name = "FILE")]
    pub cert: Option<PathBuf>,

    /// Your operator private key (default: --cert with the extension .key)
    #[arg(long, global = true, env = "SLIPWAY_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Name sent in TLS SNI (default: the endpoint's host); the control plane is
    /// recognised by the spiffe://slipway/control-plane/ identity in its certificate
    #[arg(long, global = true, env = "SLIPWAY_SERVER_NAME", value_name = "NAME")]
    pub server_name: Option<String>,
}

impl ConnectionFlags {
    /// Whether any certificate flag (or its variable) was given: then the
    /// context's certificates are not used at all, so a flag never mixes
    /// with a context's key.
    fn names_credentials(&self) -> bool {
        self.pki_dir.is_some() || self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }

    /// The context in use: the one --context (or SLIPWAY_CONTEXT) names,
    /// else the file's current one, else none.
    pub fn context(&self) -> Result<Option<(String, Context)>, ContextError> {
        let path = contexts::config_path();
        let (path, config) = match (&self.context, path) {
            (Some(_), Err(err)) => return Err(err),
            // No configuration directory and no context asked for: none.
            (None, Err(_)) => return Ok(None),
            (_, Ok(path)) => {
                let config = Config::load(&path)?;
                (path, config)
            }
        };
        let Some(name) = self.context.clone().or(config.current.clone()) else {
            return Ok(None);
        };
        let context = config.get(&name, &path)?.clone();
        Ok(Some((name, context)))
    }

    /// The connection to use.
    pub fn resolve(&self) -> Result<Connection, ContextError> {
        let context = self.context()?.map(|(_, context)| context);
        Ok(self.with_context(context.as_ref()))
    }

    /// The flags with `context` filling in what they leave out.
    pub fn with_context(&self, context: Option<&Context>) -> Connection {
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| context.map(|c| c.endpoint.clone()))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        let server_name = self
            .server_name
            .clone()
            .or_else(|| context.and_then(|c| c.server_name.clone()));
        let mut conn = Connection {
            endpoint,
            pki_dir: self.pki_dir.clone(),
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            server_name,
        };
        if let (false, Some(context)) = (self.names_credentials(), context) {
            conn.ca = Some(context.ca.clone());
            conn.cert = Some(context.cert.clone());
            conn.key = Some(context.key.clone());
        }
        conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context {
        Context {
            endpoint: "ctx:7443".into(),
            ca: "/ctx/ca.crt".into(),
            cert: "/ctx/op.crt".into(),
            key: "/ctx/op.key".into(),
            server_name: Some("cp.ctx".into()),
        }
    }

    #[test]
    fn flags_beat_the_context_which_beats_the_defaults() {
        let none = ConnectionFlags::default();
        let conn = none.with_context(None);
        assert_eq!(conn.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(conn.ca, None);

        let conn = none.with_context(Some(&context()));
        assert_eq!(conn.endpoint, "ctx:7443");
        assert_eq!(conn.server_name(), "cp.ctx");
        let paths = conn.tls_paths().unwrap();
        assert_eq!(paths.key, PathBuf::from("/ctx/op.key"));

        let flags = ConnectionFlags {
            endpoint: Some("flag:1".into()),
            pki_dir: Some("/flag".into()),
            ..Default::default()
        };
        let conn = flags.with_context(Some(&context()));
        assert_eq!(conn.endpoint, "flag:1");
        let paths = conn.tls_paths().unwrap();
        assert_eq!(paths.ca, PathBuf::from("/flag/ca.crt"));
        assert_eq!(paths.key, PathBuf::from("/flag/operator-admin.key"));
    }
}
