//! The connection flags shared by every command, the mutual-TLS channel they
//! make, and the one place that turns errors into hints for the operator.

use std::{fmt, path::PathBuf};

use rustls::pki_types::UnixTime;
use slipway_proto::tls::{
    self, CertificateProblem, ConnectError, Peer, TlsError, TlsMaterial, TlsPaths,
};
use tonic::{Code, Status, transport::Channel};

pub use self::{api::Api, flags::ConnectionFlags};

mod api;
mod flags;
mod leader;

/// Default control plane address.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:7443";

/// How to reach the control plane and who you are to it, resolved from the
/// flags, the environment and the context in use ([`ConnectionFlags`]).
#[derive(Clone, Debug)]
pub struct Connection {
    /// Control plane address, host:port or https://host:port; several,
    /// comma-separated, for the replicas of a cluster.
    pub endpoint: String,
    /// Directory holding ca.crt and operator-admin.{crt,key}.
    pub pki_dir: Option<PathBuf>,
    /// CA certificate that signed the control plane's certificate.
    pub ca: Option<PathBuf>,
    /// Operator certificate.
    pub cert: Option<PathBuf>,
    /// Operator private key (default: `cert` with the extension .key).
    pub key: Option<PathBuf>,
    /// Name sent in TLS SNI (default: the endpoint's host).
    pub server_name: Option<String>,
}

/// No CA, certificate or key could be found from the flags.
#[derive(Debug)]
pub struct MissingCredentials {
    /// The flags that had no value.
    pub missing: Vec<&'static str>,
}

impl fmt::Display for MissingCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no {} given: pass --pki-dir DIR (or set SLIPWAY_PKI_DIR), or --ca, --cert and --key \
             (SLIPWAY_CA, SLIPWAY_CERT, SLIPWAY_KEY), or add a context (`slipctl context add`)",
            self.missing.join(", ")
        )
    }
}

impl std::error::Error for MissingCredentials {}

impl Default for Connection {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            pki_dir: None,
            ca: None,
            cert: None,
            key: None,
            server_name: None,
        }
    }
}

impl Connection {
    /// A connection to `endpoint` with the certificates of `pki_dir`.
    pub fn new(endpoint: impl Into<String>, pki_dir: impl Into<PathBuf>) -> Self {
        Self {
            endpoint: endpoint.into(),
            pki_dir: Some(pki_dir.into()),
            ..Self::default()
        }
    }

    /// The CA, certificate and key to use, from the explicit flags or the PKI directory.
    pub fn tls_paths(&self) -> Result<TlsPaths, MissingCredentials> {
        let in_dir = |name: &str| self.pki_dir.as_ref().map(|dir| dir.join(name));
        let ca = self.ca.clone().or_else(|| in_dir("ca.crt"));
        let cert = self.cert.clone().or_else(|| in_dir("operator-admin.crt"));
        let key = self.key.clone().or_else(|| match &self.cert {
            // A certificate given on its own: its key sits next to it.
            Some(cert) => Some(cert.with_extension("key")),
            None => in_dir("operator-admin.key"),
        });
        match (ca, cert, key) {
            (Some(ca), Some(cert), Some(key)) => Ok(TlsPaths { ca, cert, key }),
            (ca, cert, key) => {
                let missing = [
                    (ca.is_none(), "CA certificate (--ca)"),
                    (cert.is_none(), "operator certificate (--cert)"),
                    (key.is_none(), "private key (--key)"),
                ];
                Err(MissingCredentials {
                    missing: missing.iter().filter(|m| m.0).map(|m| m.1).collect(),
                })
            }
        }
    }

    /// The name sent in TLS SNI.
    pub fn server_name(&self) -> &str {
        self.server_name
            .as_deref()
            .unwrap_or_else(|| tls::host_of(self.endpoints().next().unwrap_or_default()))
    }

    /// Dials the control plane with mutual TLS: the first of the
    /// comma-separated endpoints that answers, or the leader it names when
    /// it is a replica that does not lead.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let paths = self.tls_paths()?;
        let material = TlsMaterial::load(&paths)?;
        // What a handshake would only say as an alert, said plainly first.
        material.check_own(UnixTime::now())?;
        let mut failed = None;
        for endpoint in self.endpoints() {
            match self.dial(endpoint, &material).await {
                Ok(channel) => return Ok(self.follow(channel, &material).await),
                Err(err) => failed = Some(err),
            }
        }
        Err(failed.unwrap_or_else(|| anyhow::anyhow!("no control plane address given")))
    }

    /// The addresses given, in order.
    fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.endpoint
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
    }

    async fn dial(&self, endpoint: &str, material: &TlsMaterial) -> anyhow::Result<Channel> {
        let server_name = self
            .server_name
            .as_deref()
            .unwrap_or_else(|| tls::host_of(endpoint));
        Ok(tls::endpoint(endpoint, Peer::ControlPlane, material)?
            .server_name(server_name)?
            .connect()
            .await?)
    }

    /// The leader's channel when `channel` reaches a replica that does not
    /// lead (and the leader answers), else `channel`.
    async fn follow(&self, channel: Channel, material: &TlsMaterial) -> Channel {
        match leader::ask(&channel).await {
            leader::Follow::Here => channel,
            leader::Follow::Leader(address) => {
                self.dial(&address, material).await.unwrap_or(channel)
            }
        }
    }

    /// Dials the control plane and returns its API clients.
    pub async fn api(&self) -> anyhow::Result<Api> {
        Ok(Api::new(self.channel().await?))
    }
}

/// A failed call, displayed as `<code>: <message>` rather than tonic's
/// Debug-like `status: ..., metadata: ...`.
#[derive(Debug)]
pub struct RpcError(pub Status);

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = code_name(self.0.code());
        match self.0.message() {
            "" => f.write_str(code),
            message => write!(f, "{code}: {message}"),
        }
    }
}

impl std::error::Error for RpcError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // Transport failures carry the cause (refused, TLS alert, ...) here.
        std::error::Error::source(&self.0)
    }
}

impl From<Status> for RpcError {
    fn from(status: Status) -> Self {
        RpcError(status)
    }
}

/// Unwraps a unary call's response, turning its status into an [`RpcError`].
pub fn rpc<T>(result: Result<tonic::Response<T>, Status>) -> Result<T, RpcError> {
    result.map(tonic::Response::into_inner).map_err(RpcError)
}

/// The gRPC code in words.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown error",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "deadline exceeded",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "resource exhausted",
        Code::FailedPrecondition => "failed precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal error",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// What the operator can do about a failed call, when there is something to say.
pub fn hint(status: &Status, endpoint: &str) -> Option<String> {
    match status.code() {
        Code::Unavailable => Some(unavailable_hint(endpoint)),
        // A connection torn down mid-call (e.g. the server refused our
        // certificate after the handshake) surfaces as Unknown with a cause.
        Code::Unknown if looks_like_transport(status) => Some(unavailable_hint(endpoint)),
        Code::PermissionDenied => Some(
            "your certificate's role cannot do this; an admin can issue one with \
             `slipctl pki issue operator NAME --role deployer`"
                .to_owned(),
        ),
        Code::Unauthenticated => Some(
            "the control plane did not accept your certificate as an operator's; \
             use one made by `slipctl pki issue operator`"
                .to_owned(),
        ),
        Code::NotFound => not_found_hint(status.message()),
        Code::FailedPrecondition => {
            let id = deployment_id_in(status.message())?;
            Some(format!("wait for it or watch it with `slipctl watch {id}`"))
        }
        // The message names the field; nothing to add.
        _ => None,
    }
}

/// Points at the listing of the kind of thing the message names
/// ("app \"web\" not found" -> `slipctl app list`).
fn not_found_hint(message: &str) -> Option<String> {
    let listing = match message.split_whitespace().next() {
        Some("app") => "`slipctl app list`",
        Some("environment") => "`slipctl env list`",
        Some("host") => "`slipctl host list`",
        Some("release") => "`slipctl release list APP`",
        Some("deployment") => "`slipctl history`",
        // A git ref or something else the message explains itself.
        Some(_) => return None,
        None => "`slipctl app list` / `env list` / `host list` / `release list APP` / `history`",
    };
    Some(format!("list what exists with {listing}"))
}

fn unavailable_hint(endpoint: &str) -> String {
    format!("is the control plane running at {endpoint}? check --endpoint and your certificates")
}

fn looks_like_transport(status: &Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// The id in "deployment <id> is running ...", the control plane's message
/// for a held lock.
fn deployment_id_in(message: &str) -> Option<&str> {
    let mut words = message.split_whitespace();
    while let Some(word) = words.next() {
        if word == "deployment" {
            let id = words
                .next()?
                .trim_matches(|c: char| matches!(c, '"' | '\'' | ',' | ';' | ':' | '(' | ')'));
            if slipway_proto::validate::release_id("id", id).is_ok() {
                return Some(id);
            }
        }
    }
    None
}

/// Hints for transport failures, by what the TLS error names; the first
/// match wins, so the specific come before the general.
fn certificate_hint(chain: &str, endpoint: &str) -> Option<String> {
    const RENEW_OURS: &str = "an admin issues a new one with `slipctl pki issue operator NAME \
                              --role ROLE --dir DIR`";
    let hint = if chain.contains("expected a control plane") {
        format!(
            "{endpoint} is not a control plane (is it an agent's address?); point --endpoint \
             at the control plane"
        )
    } else if chain.contains("is revoked") || chain.contains("are revoked") {
        "the control plane's certificate is revoked; ask an admin for its new one".into()
    } else if chain.contains("CertificateRevoked") {
        format!("the control plane refused your certificate as revoked; {RENEW_OURS}")
    } else if chain.contains("CertificateExpired") {
        format!(
            "the control plane says your certificate has expired (check this machine's clock \
             with `date -u`); {RENEW_OURS}"
        )
    } else if chain.contains("received fatal alert") {
        "the control plane refused your certificate: it is not signed by a CA the control plane \
         trusts; use an operator certificate of its CA (check with `slipctl pki list --dir DIR`)"
            .into()
    } else if [
        "connection closed",
        "connection reset",
        "broken pipe",
        "operation was canceled",
    ]
    .iter()
    .any(|closed| chain.to_lowercase().contains(closed))
    {
        // TLS 1.3: the client's certificate is judged after the handshake
        // completes on its side, so a refusal can arrive as a bare close.
        "the control plane closed the connection: most often it refused your certificate (signed \
         by a CA it does not trust, or revoked); check it with `slipctl pki list --dir DIR`"
            .into()
    } else if chain.contains("UnknownIssuer") || chain.contains("BadSignature") {
        "the control plane's certificate is not signed by your CA; check --ca / --pki-dir".into()
    } else if chain.contains("NotValidYet") {
        "the control plane's certificate is not valid yet: check both machines' clocks".into()
    } else if chain.contains("Expired") {
        "the control plane's certificate has expired; an admin renews it with `slipctl pki \
         issue control-plane --dir DIR --force` and sends the control plane SIGHUP"
            .into()
    } else {
        return None;
    };
    Some(hint)
}

/// What to do about unusable local certificate files.
fn tls_error_hint(err: &TlsError) -> String {
    let renew = "an admin issues a new one with `slipctl pki issue operator NAME --role ROLE \
                 --dir DIR`";
    match err {
        TlsError::Unusable { problem, .. } => match problem {
            CertificateProblem::Expired { .. } => format!("your certificate has expired; {renew}"),
            CertificateProblem::NotYetValid { .. } => {
                "check this machine's clock with `date -u`; the certificate is valid from the \
                 time shown"
                    .into()
            }
            CertificateProblem::ForeignCa { .. } => {
                "--cert and --ca come from different CAs: use the certificate and ca.crt of the \
                 same `slipctl pki` directory (list it with `slipctl pki list --dir DIR`)"
                    .into()
            }
            CertificateProblem::Other(_) => format!("the certificate cannot be used; {renew}"),
        },
        TlsError::Invalid { reason, .. } if reason.contains("does not match its private key") => {
            "--key is not the key of --cert: pass the .key file written beside the certificate"
                .into()
        }
        _ => PKI_INIT_HINT.into(),
    }
}

const PKI_INIT_HINT: &str = "make certificates with `slipctl pki init --dir DIR`, then pass \
                             --pki-dir DIR or set SLIPWAY_PKI_DIR";

/// Whether `cause` says the control plane could not be reached or trusted
/// (as opposed to a refusal from it).
pub fn is_connection_error(cause: &(dyn std::error::Error + 'static)) -> bool {
    cause.is::<MissingCredentials>()
        || cause.is::<TlsError>()
        || cause.is::<ConnectError>()
        || cause.is::<tonic::transport::Error>()
}

/// The hint for any error a command returned, looking through its causes.
pub fn error_hint(err: &anyhow::Error, conn: &Connection) -> Option<String> {
    let chain = format!("{err:#}");
    let certificate_problem = || certificate_hint(&chain, &conn.endpoint);
    for cause in err.chain() {
        if let Some(lost) = cause.downcast_ref::<crate::commands::StreamLost>() {
            return Some(format!(
                "the deployment goes on; follow it with: {}",
                lost.resume_command()
            ));
        }
        if let Some(RpcError(status)) = cause.downcast_ref::<RpcError>() {
            return certificate_problem().or_else(|| hint(status, &conn.endpoint));
        }
        if let Some(status) = cause.downcast_ref::<Status>() {
            return certificate_problem().or_else(|| hint(status, &conn.endpoint));
        }
        if let Some(ConnectError::Transport { .. }) = cause.downcast_ref::<ConnectError>() {
            return certificate_problem().or_else(|| Some(unavailable_hint(&conn.endpoint)));
        }
        if let Some(err) = cause.downcast_ref::<TlsError>() {
            return Some(tls_error_hint(err));
        }
        if cause.is::<MissingCredentials>() {
            return Some(PKI_INIT_HINT.into());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENDPOINT: &str = "cp.example.com:7443";

    #[test]
    fn hints_per_code() {
        let unavailable = hint(&Status::unavailable("connection refused"), ENDPOINT).unwrap();
        assert!(unavailable.contains("is the control plane running at cp.example.com:7443"));
        let denied = hint(&Status::permission_denied("viewer cannot deploy"), ENDPOINT).unwrap();
        assert!(denied.contains("slipctl pki issue operator NAME --role deployer"));
        let missing = hint(&Status::not_found("app \"web\" not found"), ENDPOINT).unwrap();
        assert_eq!(missing, "list what exists with `slipctl app list`");
        let missing = hint(&Status::not_found("release \"web/r1\" not found"), ENDPOINT).unwrap();
        assert!(missing.contains("slipctl release list APP"));
        let missing = hint(&Status::not_found(""), ENDPOINT).unwrap();
        assert!(missing.contains("env list"), "{missing}");
        assert_eq!(
            hint(
                &Status::not_found("ref \"x\" does not name a commit"),
                ENDPOINT
            ),
            None
        );
        let locked = Status::failed_precondition(
            "deployment dep-0000000012 is running for app web in environment prod",
        );
        assert_eq!(
            hint(&locked, ENDPOINT).unwrap(),
            "wait for it or watch it with `slipctl watch dep-0000000012`"
        );
        assert_eq!(
            hint(
                &Status::failed_precondition("repository is empty"),
                ENDPOINT
            ),
            None
        );
        assert_eq!(
            hint(&Status::invalid_argument("invalid app.name: ..."), ENDPOINT),
            None
        );
    }

    #[test]
    fn rpc_errors_read_as_one_line() {
        let err = RpcError(Status::not_found("app \"web\" not found"));
        assert_eq!(err.to_string(), "not found: app \"web\" not found");
        assert_eq!(RpcError(Status::internal("")).to_string(), "internal error");
        let err = anyhow::Error::from(RpcError(Status::permission_denied("role viewer")));
        let conn = Connection::new(ENDPOINT, "/pki");
        assert!(error_hint(&err, &conn).unwrap().contains("--role deployer"));
    }

    #[test]
    fn credentials_from_the_pki_dir_or_flags() {
        let conn = Connection::new(ENDPOINT, "/pki");
        let paths = conn.tls_paths().unwrap();
        assert_eq!(paths.ca, PathBuf::from("/pki/ca.crt"));
        assert_eq!(paths.cert, PathBuf::from("/pki/operator-admin.crt"));
        assert_eq!(paths.key, PathBuf::from("/pki/operator-admin.key"));
        assert_eq!(conn.server_name(), "cp.example.com");

        let conn = Connection {
            pki_dir: Some("/pki".into()),
            cert: Some("/me/operator-alice.crt".into()),
            server_name: Some("main".into()),
            ..Connection::default()
        };
        let paths = conn.tls_paths().unwrap();
        assert_eq!(paths.key, PathBuf::from("/me/operator-alice.key"));
        assert_eq!(conn.server_name(), "main");

        let err = Connection::default().tls_paths().unwrap_err();
        assert!(err.to_string().contains("--pki-dir"), "{err}");
        let err = anyhow::Error::from(err);
        assert!(
            error_hint(&err, &Connection::default())
                .unwrap()
                .contains("pki init")
        );
    }

    #[tokio::test]
    async fn unreachable_control_plane_gets_the_running_hint() {
        slipway_proto::daemon::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        crate::pki::init(dir.path(), &crate::pki::InitOptions::default()).unwrap();
        // A port nobody listens on: bind, note it, drop the listener.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conn = Connection::new(format!("127.0.0.1:{port}"), dir.path());
        let err = conn.channel().await.unwrap_err();
        let hint = error_hint(&err, &conn).unwrap();
        assert!(
            hint.contains(&format!("running at 127.0.0.1:{port}")),
            "{hint}"
        );
    }
}
