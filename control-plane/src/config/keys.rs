//! Every key of the control plane's configuration: its TOML name, flag,
//! environment variable, default and whether SIGHUP applies it live. The
//! README's Configuration table is made of these rows.

use slipway_proto::{config::Key, config_key};

/// The control plane's keys, in the order `--check-config` prints them.
pub const KEYS: &[Key] = &[
    config_key!(
        "listen",
        "listen",
        "SLIPWAY_CP_LISTEN",
        Text,
        "0.0.0.0:7443",
        restart,
        "Operator API address (mutual TLS)."
    ),
    config_key!(
        "data_dir",
        "data-dir",
        "SLIPWAY_CP_DATA_DIR",
        Text,
        "/var/lib/slipway",
        restart,
        "sled data directory (created if its parent exists)."
    ),
    config_key!(
        "store.etcd.endpoints",
        "etcd-endpoint",
        "SLIPWAY_CP_ETCD_ENDPOINTS",
        List,
        "",
        restart,
        "etcd client URLs (repeat the flag; comma-separated variable): the store is etcd, not sled in data_dir. https:// with [store.etcd.tls]; plain http:// only without it."
    ),
    config_key!(
        "store.etcd.prefix",
        "etcd-prefix",
        "SLIPWAY_CP_ETCD_PREFIX",
        Text,
        "slipway",
        restart,
        "Prefix of every etcd key of this control plane's store."
    ),
    config_key!(
        "store.etcd.max_txn_ops",
        "etcd-max-txn-ops",
        "SLIPWAY_CP_ETCD_MAX_TXN_OPS",
        Number,
        "128",
        restart,
        "Operations per etcd transaction: etcd's --max-txn-ops; raise both together (8192 fits the largest deployment record)."
    ),
    config_key!(
        "store.etcd.dial_timeout_seconds",
        "etcd-dial-timeout-seconds",
        "SLIPWAY_CP_ETCD_DIAL_TIMEOUT_SECONDS",
        Number,
        "5",
        restart,
        "How long connecting to etcd may take at start (at least 1)."
    ),
    config_key!(
        "store.etcd.tls.ca",
        "etcd-tls-ca",
        "SLIPWAY_CP_ETCD_TLS_CA",
        Text,
        "",
        restart,
        "CA that signed the etcd members' certificates (mutual TLS to etcd)."
    ),
    config_key!(
        "store.etcd.tls.cert",
        "etcd-tls-cert",
        "SLIPWAY_CP_ETCD_TLS_CERT",
        Text,
        "",
        restart,
        "Client certificate for etcd."
    ),
    config_key!(
        "store.etcd.tls.key",
        "etcd-tls-key",
        "SLIPWAY_CP_ETCD_TLS_KEY",
        Text,
        "",
        restart,
        "Key of the etcd client certificate."
    ),
    config_key!(
        "pki_dir",
        "pki-dir",
        "SLIPWAY_CP_PKI_DIR",
        Text,
        "",
        restart,
        "Directory as written by `slipctl pki init`: fills every [tls], [agent_tls] and [signing] path not set otherwise."
    ),
    config_key!(
        "tls.ca",
        "tls-ca",
        "SLIPWAY_CP_TLS_CA",
        Text,
        "<pki_dir>/ca.crt",
        restart,
        "CA that signed operators' certificates."
    ),
    config_key!(
        "tls.cert",
        "tls-cert",
        "SLIPWAY_CP_TLS_CERT",
        Text,
        "<pki_dir>/control-plane.crt",
        restart,
        "Server certificate of the operator API (its contents reload on SIGHUP)."
    ),
    config_key!(
        "tls.key",
        "tls-key",
        "SLIPWAY_CP_TLS_KEY",
        Text,
        "<pki_dir>/control-plane.key",
        restart,
        "Key of the server certificate."
    ),
    config_key!(
        "agent_tls.ca",
        "agent-tls-ca",
        "SLIPWAY_CP_AGENT_TLS_CA",
        Text,
        "<pki_dir>/ca.crt",
        restart,
        "CA that signed agents' certificates."
    ),
    config_key!(
        "agent_tls.cert",
        "agent-tls-cert",
        "SLIPWAY_CP_AGENT_TLS_CERT",
        Text,
        "<pki_dir>/control-plane-client.crt",
        restart,
        "Client certificate for dialing agents (its contents reload on SIGHUP)."
    ),
    config_key!(
        "agent_tls.key",
        "agent-tls-key",
        "SLIPWAY_CP_AGENT_TLS_KEY",
        Text,
        "<pki_dir>/control-plane-client.key",
        restart,
        "Key of the client certificate."
    ),
    config_key!(
        "signing.ca_cert",
        "signing-ca-cert",
        "SLIPWAY_CP_SIGNING_CA_CERT",
        Text,
        "<pki_dir>/ca.crt if ca.key is there",
        restart,
        "CA certificate that signs agents' certificates (enrollment, renewal)."
    ),
    config_key!(
        "signing.ca_key",
        "signing-ca-key",
        "SLIPWAY_CP_SIGNING_CA_KEY",
        Text,
        "<pki_dir>/ca.key if it exists",
        restart,
        "Key of the signing CA."
    ),
    config_key!(
        "cache_capacity_bytes",
        "cache-capacity-bytes",
        "SLIPWAY_CP_CACHE_CAPACITY_BYTES",
        Number,
        "67108864",
        restart,
        "sled page cache, bytes."
    ),
    config_key!(
        "log_level",
        "log-level",
        "SLIPWAY_CP_LOG_LEVEL",
        Text,
        "RUST_LOG, else info",
        live,
        "Log filter, e.g. `info` or `info,slipway_control_plane=debug`."
    ),
    config_key!(
        "log_json",
        "log-json",
        "SLIPWAY_CP_LOG_JSON",
        Bool,
        "false",
        restart,
        "Log one JSON object per line."
    ),
    config_key!(
        "limits.message_bytes",
        "limits-message-bytes",
        "SLIPWAY_CP_LIMITS_MESSAGE_BYTES",
        Number,
        "4096",
        live,
        "Longest deploy message or cancel/mark/lock reason (16 to 65536)."
    ),
    config_key!(
        "limits.description_bytes",
        "limits-description-bytes",
        "SLIPWAY_CP_LIMITS_DESCRIPTION_BYTES",
        Number,
        "1024",
        live,
        "Longest environment description (16 to 65536)."
    ),
    config_key!(
        "recheck_every_seconds",
        "recheck-every-seconds",
        "SLIPWAY_CP_RECHECK_EVERY_SECONDS",
        Number,
        "30",
        restart,
        "Seconds between checks of hosts whose outcome is unknown."
    ),
    config_key!(
        "health_sample_every_seconds",
        "health-sample-every-seconds",
        "SLIPWAY_CP_HEALTH_SAMPLE_EVERY_SECONDS",
        Number,
        "30",
        restart,
        "Seconds between two health samples of every host (at least 1)."
    ),
    config_key!(
        "drift_every_seconds",
        "drift-every-seconds",
        "SLIPWAY_CP_DRIFT_EVERY_SECONDS",
        Number,
        "600",
        restart,
        "Seconds between drift checks of every environment; 0: on demand only."
    ),
    config_key!(
        "history_retention_days",
        "history-retention-days",
        "SLIPWAY_CP_HISTORY_RETENTION_DAYS",
        Number,
        "90",
        restart,
        "Days a finished deployment keeps its event log; 0 keeps every log."
    ),
    config_key!(
        "notify_retry_max_seconds",
        "notify-retry-max-seconds",
        "SLIPWAY_CP_NOTIFY_RETRY_MAX_SECONDS",
        Number,
        "60",
        restart,
        "Longest pause between two notification delivery attempts."
    ),
    config_key!(
        "source_roots",
        "source-root",
        "SLIPWAY_CP_SOURCE_ROOTS",
        List,
        "",
        restart,
        "Directories apps' repositories may lie in (repeat the flag; comma-separated variable); none: any absolute path."
    ),
    config_key!(
        "sources.poll_seconds",
        "source-poll-seconds",
        "SLIPWAY_CP_SOURCE_POLL_SECONDS",
        Number,
        "300",
        restart,
        "Seconds between fetches of every remote git source; 0: on demand only."
    ),
    config_key!(
        "sources.fetch_timeout_seconds",
        "source-fetch-timeout-seconds",
        "SLIPWAY_CP_SOURCE_FETCH_TIMEOUT_SECONDS",
        Number,
        "300",
        restart,
        "Longest fetch of a remote source (at least 1)."
    ),
    config_key!(
        "sources.max_fetch_bytes",
        "source-max-fetch-bytes",
        "SLIPWAY_CP_SOURCE_MAX_FETCH_BYTES",
        Number,
        "2147483648",
        restart,
        "Most bytes one fetch may receive (at least 1)."
    ),
    config_key!(
        "sources.https_ca_file",
        "source-https-ca-file",
        "SLIPWAY_CP_SOURCE_HTTPS_CA_FILE",
        Text,
        "",
        restart,
        "Extra CA certificates (PEM) trusted for https git sources."
    ),
    config_key!(
        "enroll_listen",
        "enroll-listen",
        "SLIPWAY_CP_ENROLL_LISTEN",
        Text,
        "",
        restart,
        "Enrollment listener address (needs the signing CA); unset: off."
    ),
    config_key!(
        "metrics_listen",
        "metrics-listen",
        "SLIPWAY_CP_METRICS_LISTEN",
        Text,
        "127.0.0.1:9480",
        restart,
        "Metrics listener (/metrics, /healthz, /readyz over plain HTTP), or `off`."
    ),
    config_key!(
        "web_listen",
        "web-listen",
        "SLIPWAY_CP_WEB_LISTEN",
        Text,
        "",
        restart,
        "Web listener (HTTPS: webhooks, dashboard); unset: off."
    ),
    config_key!(
        "build_user",
        "build-user",
        "SLIPWAY_CP_BUILD_USER",
        Text,
        "nobody as root, else own user",
        restart,
        "User apps' builds run as."
    ),
    config_key!(
        "build_dir",
        "build-dir",
        "SLIPWAY_CP_BUILD_DIR",
        Text,
        "<data_dir>-builds",
        restart,
        "Where builds' scratch directories go."
    ),
    config_key!(
        "secrets_key_file",
        "secrets-key-file",
        "SLIPWAY_CP_SECRETS_KEY_FILE",
        Text,
        "",
        restart,
        "File of 32 random bytes (mode 0600) that seals secrets at rest; unset: SLIPWAY_SECRETS_KEY (base64), else secrets are off."
    ),
    config_key!(
        "secrets_previous_key_file",
        "secrets-previous-key-file",
        "SLIPWAY_CP_SECRETS_PREVIOUS_KEY_FILE",
        Text,
        "",
        restart,
        "During a key rotation, the previous key: secrets sealed with it are sealed again with the current key at start."
    ),
    config_key!(
        "cluster.replica_id",
        "cluster-replica-id",
        "SLIPWAY_CP_CLUSTER_REPLICA_ID",
        Text,
        "<host name>:<port>",
        restart,
        "This replica's id in a cluster on etcd."
    ),
    config_key!(
        "cluster.advertise",
        "cluster-advertise",
        "SLIPWAY_CP_CLUSTER_ADVERTISE",
        Text,
        "<listen>",
        restart,
        "host:port clients reach this replica's operator API at (followers send clients there when it leads)."
    ),
    config_key!(
        "cluster.lease_ttl_seconds",
        "cluster-lease-ttl-seconds",
        "SLIPWAY_CP_CLUSTER_LEASE_TTL_SECONDS",
        Number,
        "10",
        restart,
        "Seconds a replica's etcd lease runs without a keep-alive: a dead leader is replaced after this."
    ),
];
