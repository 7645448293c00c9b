//! Every key of the agent's configuration: its TOML name, flag, environment
//! variable, default and whether SIGHUP applies it live. The README's
//! Configuration table is made of these rows.

use slipway_proto::{config::Key, config_key};

/// The agent's keys, in the order `--check-config` prints them.
pub const KEYS: &[Key] = &[
    config_key!(
        "listen",
        "listen",
        "SLIPWAY_AGENT_LISTEN",
        Text,
        "0.0.0.0:7444",
        restart,
        "Address the agent listens on (only the control plane connects)."
    ),
    config_key!(
        "host_name",
        "host-name",
        "SLIPWAY_AGENT_HOST_NAME",
        Text,
        "",
        restart,
        "This host's name as registered in the control plane (a DNS name; required)."
    ),
    config_key!(
        "apps_dir",
        "apps-dir",
        "SLIPWAY_AGENT_APPS_DIR",
        Text,
        "/srv",
        restart,
        "Directory of default app roots `<apps_dir>/<app>`."
    ),
    config_key!(
        "allowed_roots",
        "allowed-root",
        "SLIPWAY_AGENT_ALLOWED_ROOT",
        List,
        "",
        restart,
        "Further directories app roots may lie under, each existing (repeat the flag; comma-separated variable)."
    ),
    config_key!(
        "data_dir",
        "data-dir",
        "SLIPWAY_AGENT_DATA_DIR",
        Text,
        "/var/lib/slipway-agent",
        restart,
        "The agent's own state."
    ),
    config_key!(
        "tls.ca",
        "ca",
        "SLIPWAY_AGENT_CA",
        Text,
        "",
        restart,
        "CA that signed the control plane's certificate (required)."
    ),
    config_key!(
        "tls.cert",
        "cert",
        "SLIPWAY_AGENT_CERT",
        Text,
        "",
        restart,
        "This agent's certificate, as `slipctl pki issue agent HOST` writes it (required; its contents reload on SIGHUP)."
    ),
    config_key!(
        "tls.key",
        "key",
        "SLIPWAY_AGENT_KEY",
        Text,
        "",
        restart,
        "This agent's key (required)."
    ),
    config_key!(
        "log_level",
        "log-level",
        "SLIPWAY_AGENT_LOG_LEVEL",
        Text,
        "RUST_LOG, else info",
        live,
        "Log filter, e.g. `info` or `info,slipway_agent=debug`."
    ),
    config_key!(
        "no_prestage",
        "no-prestage",
        "SLIPWAY_AGENT_NO_PRESTAGE",
        Bool,
        "false",
        restart,
        "Do not build each app's next release tree ahead while it is idle (which lets a deploy link only what changed, for one more tree of directories and links per app)."
    ),
    config_key!(
        "prestage_idle_ms",
        "prestage-idle-ms",
        "SLIPWAY_AGENT_PRESTAGE_IDLE_MS",
        Number,
        "1000",
        restart,
        "Milliseconds an app stays idle after a release goes live before its next tree is prestaged."
    ),
    config_key!(
        "log_json",
        "log-json",
        "SLIPWAY_AGENT_LOG_JSON",
        Bool,
        "false",
        restart,
        "Log one JSON object per line."
    ),
    config_key!(
        "metrics_listen",
        "metrics-listen",
        "SLIPWAY_AGENT_METRICS_LISTEN",
        Text,
        "127.0.0.1:9481",
        restart,
        "Metrics listener (/metrics, /healthz, /readyz over plain HTTP), or `off`."
    ),
    config_key!(
        "hooks.path",
        "hooks-path",
        "SLIPWAY_AGENT_HOOKS_PATH",
        Text,
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        restart,
        "PATH of every hook and health-check command."
    ),
    config_key!(
        "hooks.output_max_lines",
        "hooks-output-max-lines",
        "SLIPWAY_AGENT_HOOKS_OUTPUT_MAX_LINES",
        Number,
        "10000",
        restart,
        "Hook output lines an operation records, for apps that set no limit."
    ),
    config_key!(
        "hooks.output_max_bytes",
        "hooks-output-max-bytes",
        "SLIPWAY_AGENT_HOOKS_OUTPUT_MAX_BYTES",
        Number,
        "4194304",
        restart,
        "Hook output bytes an operation records, for apps that set no limit."
    ),
    config_key!(
        "hooks.output_line_bytes",
        "hooks-output-line-bytes",
        "SLIPWAY_AGENT_HOOKS_OUTPUT_LINE_BYTES",
        Number,
        "16384",
        restart,
        "Longest line of hook output kept; longer ones are cut (80 to 1048576)."
    ),
];
