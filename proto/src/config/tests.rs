//! The layered loader: precedence, sources, errors naming origin and key.

use super::*;

const KEYS: &[Key] = &[
    Key {
        name: "listen",
        flag: "listen",
        env: "SLIPWAY_TEST_LISTEN",
        kind: Kind::Text,
        default: "0.0.0.0:1",
        live: false,
        help: "Address.",
    },
    Key {
        name: "log_level",
        flag: "log-level",
        env: "SLIPWAY_TEST_LOG_LEVEL",
        kind: Kind::Text,
        default: "info",
        live: true,
        help: "Log filter.",
    },
    Key {
        name: "tls.cert",
        flag: "tls-cert",
        env: "SLIPWAY_TEST_TLS_CERT",
        kind: Kind::Text,
        default: "",
        live: false,
        help: "Certificate.",
    },
    Key {
        name: "limits.message_bytes",
        flag: "limits-message-bytes",
        env: "SLIPWAY_TEST_LIMITS_MESSAGE_BYTES",
        kind: Kind::Number,
        default: "4096",
        live: true,
        help: "Message bound.",
    },
];

#[allow(dead_code)]
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<std::net::SocketAddr>,
    log_level: Option<String>,
    tls: Option<Tls>,
    limits: Option<toml::Table>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Tls {
    cert: Option<String>,
}

fn command() -> clap::Command {
    clap::Command::new("test").args(args::args(KEYS))
}

fn layered(file: Option<&Path>, argv: &[&str]) -> Result<Layered, ConfigError> {
    let matches = command().try_get_matches_from(argv).unwrap();
    Layered::resolve(KEYS, file, args::given(KEYS, &matches)?)
}

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("test.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_flag_wins_over_the_file_and_each_value_knows_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "listen = \"127.0.0.1:1\"\nlog_level = \"warn\"\n[tls]\ncert = \"/c\"\n",
    );
    let layered = layered(Some(&file), &["test", "--listen", "127.0.0.1:2"]).unwrap();
    assert_eq!(layered.source("listen"), Source::Flag("listen"));
    assert_eq!(layered.source("tls.cert"), Source::File(file.clone()));
    assert_eq!(layered.source("limits.message_bytes"), Source::Default);
    let typed: File = layered.typed().unwrap();
    assert_eq!(typed.listen, "127.0.0.1:2".parse().ok());
    assert_eq!(typed.tls.unwrap().cert.as_deref(), Some("/c"));
    let shown = show::effective(&layered);
    assert!(
        shown.contains("listen = \"127.0.0.1:2\"  # flag --listen\n"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("tls.cert = \"/c\"  # file:{}\n", file.display())),
        "{shown}"
    );
    assert!(
        shown.contains("limits.message_bytes = 4096  # default, live\n"),
        "{shown}"
    );
}

#[test]
fn errors_name_the_origin_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "[tls]\ncert = \"/c\"\nkey = \"/k\"\n");
    let err = layered(Some(&file), &["test"]).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: unknown key tls.key (see --help or the README's Configuration table)",
            file.display()
        )
    );

    let file = write(dir.path(), "listen = \"nowhere\"\n");
    let layered_file = layered(Some(&file), &["test"]).unwrap();
    let err = layered_file.typed::<File>().unwrap_err();
    assert_eq!(err.to_string(), format!("{}: listen", file.display()));

    let flagged = layered(Some(&file), &["test", "--limits-message-bytes", "lots"]).unwrap_err();
    assert_eq!(
        flagged.to_string(),
        "flag --limits-message-bytes: [limits] message_bytes"
    );

    let layered = layered(Some(&file), &["test"]).unwrap();
    let err = layered.key_error("tls.cert", Reason("no such file".into()));
    assert_eq!(err.to_string(), format!("{}: [tls] cert", file.display()));
    assert_eq!(
        crate::daemon::chain(&err),
        format!("{}: [tls] cert: no such file", file.display())
    );
}

#[test]
fn a_reload_keeps_restart_only_keys_and_takes_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "listen = \"127.0.0.1:1\"\nlog_level = \"info\"\n",
    );
    let before = layered(Some(&file), &["test"]).unwrap();
    write(
        dir.path(),
        "listen = \"127.0.0.1:2\"\nlog_level = \"debug\"\n[limits]\nmessage_bytes = 100\n",
    );
    let after = layered(Some(&file), &["test"]).unwrap();
    assert_eq!(before.restart_only_changes(&after), ["listen"]);
    let in_use = before.with_live_of(&after);
    assert_eq!(
        in_use.get("listen").unwrap().0.as_str(),
        Some("127.0.0.1:1")
    );
    assert_eq!(in_use.get("log_level").unwrap().0.as_str(), Some("debug"));
    let live = reload::Live::of(&in_use).unwrap();
    assert_eq!(live.limits.message_bytes, 100);

    write(dir.path(), "[limits]\nmessage_bytes = 1\n");
    let tiny = layered(Some(&file), &["test"]).unwrap();
    let err = crate::daemon::chain(&reload::Live::of(&tiny).unwrap_err());
    assert!(
        err.ends_with("[limits] message_bytes: must be a number from 16 to 65536"),
        "{err}"
    );
}

#[test]
fn environment_values_sit_between_the_file_and_the_flags() {
    // The variables are read through clap's env support: set them on the
    // command's arguments rather than on this process's environment.
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "log_level = \"warn\"\n");
    let keys: &'static [Key] = KEYS;
    let cmd = clap::Command::new("test").args(args::args(keys).into_iter().map(|arg| {
        if arg.get_id() == "log_level" {
            arg.env("PATH")
        } else {
            arg
        }
    }));
    let matches = cmd.try_get_matches_from(["test"]).unwrap();
    let given = args::given(keys, &matches).unwrap();
    let layered = Layered::resolve(keys, Some(&file), given).unwrap();
    assert_eq!(
        layered.source("log_level"),
        Source::Env("SLIPWAY_TEST_LOG_LEVEL")
    );
}
