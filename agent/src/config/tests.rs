//! The agent's keys through the shared loader: the example file, defaults,
//! and errors that name the key and where its value came from.

use std::fs;

use slipway_proto::{
    config::{self, Layered, args, show},
    daemon::chain,
    observe::MetricsListen,
};

use super::*;

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("agent.example.toml")
}

fn try_layered(file: Option<&Path>, argv: &[&str]) -> Result<Layered, config::ConfigError> {
    let cmd = clap::Command::new("slipway-agent").args(args::args(KEYS));
    let matches = cmd.try_get_matches_from(argv).unwrap();
    Layered::resolve(KEYS, file, args::given(KEYS, &matches)?)
}

fn layered(file: Option<&Path>, argv: &[&str]) -> Layered {
    try_layered(file, argv).unwrap()
}

#[test]
fn the_example_config_parses_and_validates() {
    let file: ConfigFile = layered(Some(&example_path()), &["agent"]).typed().unwrap();
    assert_eq!(file.log_level.as_deref(), Some("info"));
    let config = file.into_config().unwrap();
    config.check_values().unwrap();
    assert_eq!(config.listen, DEFAULT_LISTEN.parse().unwrap());
    assert_eq!(config.metrics_listen, DEFAULT_METRICS_LISTEN.parse().ok());
    assert_eq!(config.host_name, "web-1.example.com");
    assert_eq!(config.allowed_roots, [PathBuf::from("/opt/apps")]);
    // The names `slipctl pki issue agent HOST` writes.
    let pki = Path::new("/etc/slipway/pki");
    assert_eq!(config.tls.ca, pki.join("ca.crt"));
    let stem = format!("agent-{}", config.host_name);
    assert_eq!(config.tls.cert, pki.join(format!("{stem}.crt")));
    assert_eq!(config.tls.key, pki.join(format!("{stem}.key")));
}

#[test]
fn every_key_is_in_the_readme_table() {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    for key in KEYS {
        let row = show::readme_row("agent", key);
        assert!(readme.contains(&row), "README lacks the row\n{row}");
    }
}

#[test]
fn defaults_fill_what_is_not_given() {
    let tls = TlsPaths {
        ca: "/ca.pem".into(),
        cert: "/agent.pem".into(),
        key: "/agent.key".into(),
    };
    let config = Config::new("web-1", tls);
    assert_eq!(config.apps_dir, Path::new(DEFAULT_APPS_DIR));
    assert_eq!(config.data_dir, Path::new(DEFAULT_DATA_DIR));
    config.check_values().unwrap();
    let off: ConfigFile = layered(None, &["agent", "--metrics-listen", "off"])
        .typed()
        .unwrap();
    assert_eq!(off.metrics_listen, Some(MetricsListen::Off));
    let err = layered(None, &["agent", "--metrics-listen", "9481"]).typed::<ConfigFile>();
    assert_eq!(
        err.unwrap_err().to_string(),
        "flag --metrics-listen: metrics_listen"
    );
}

#[test]
fn an_allowed_root_that_is_not_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["ca.pem", "agent.pem", "agent.key"] {
        fs::write(dir.path().join(name), "").unwrap();
    }
    let tls = TlsPaths {
        ca: dir.path().join("ca.pem"),
        cert: dir.path().join("agent.pem"),
        key: dir.path().join("agent.key"),
    };
    let mut config = Config::new("web-1", tls);
    config.allowed_roots = vec![dir.path().to_owned()];
    config.validate().unwrap();
    config.allowed_roots.push(dir.path().join("typo"));
    let err = config.validate().unwrap_err().to_string();
    assert!(err.starts_with("allowed_roots: "), "{err}");
    assert!(err.ends_with("typo is not a directory"), "{err}");
}

#[test]
fn errors_name_the_file_and_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    let file = path.display();
    let load_file = |text: &str| {
        fs::write(&path, text).unwrap();
        try_layered(Some(&path), &["agent"])
            .and_then(load)
            .map(|_| ())
    };

    let err = load_file("host_name = \"Web_1\"\n[tls]\nca = \"/a\"\ncert = \"/b\"\nkey = \"/c\"\n");
    assert!(chain(&err.unwrap_err()).starts_with(&format!("{file}: host_name: ")));

    let err = chain(&load_file("host_name = \"web-1\"\n").unwrap_err());
    assert_eq!(
        err,
        format!("{file}: [tls] ca: is required (in the file, as --ca or SLIPWAY_AGENT_CA)")
    );

    let err = chain(&load_file("host_nmae = \"web-1\"\n").unwrap_err());
    assert!(
        err.starts_with(&format!("{file}: unknown key host_nmae")),
        "{err}"
    );

    let ca = dir.path().join("ca.pem");
    let tls = format!("[tls]\nca = {ca:?}\ncert = {ca:?}\nkey = {ca:?}\n");
    let err = chain(
        &load_file(&format!(
            "host_name = \"web-1\"\napps_dir = \"/srv\"\n{tls}"
        ))
        .unwrap_err(),
    );
    assert_eq!(
        err,
        format!("{file}: [tls] ca: {}: no such file", ca.display())
    );
    fs::write(&ca, "pem").unwrap();
    let apps = dir.path().join("apps");
    load_file(&format!(
        "host_name = \"web-1\"\napps_dir = {apps:?}\ndata_dir = {apps:?}\n{tls}"
    ))
    .unwrap();

    let err = chain(
        &load_file(&format!("host_name = \"web-1\"\napps_dir = \"srv\"\n{tls}")).unwrap_err(),
    );
    assert!(
        err.contains("apps_dir: \"srv\" must be an absolute path"),
        "{err}"
    );

    let missing = dir.path().join("no/such/apps");
    let text = format!("host_name = \"web-1\"\napps_dir = {missing:?}\ndata_dir = {apps:?}\n{tls}");
    let err = chain(&load_file(&text).unwrap_err());
    assert_eq!(
        err,
        format!(
            "{file}: apps_dir: {}: no such directory (nor its parent)",
            missing.display()
        )
    );

    // A flag names itself, not the file.
    fs::write(&path, format!("host_name = \"web-1\"\n{tls}")).unwrap();
    let flagged = layered(
        Some(&path),
        &["agent", "--allowed-root", "/nonexistent/apps"],
    );
    let err = chain(&load(flagged).unwrap_err());
    assert_eq!(
        err,
        "flag --allowed-root: allowed_roots: /nonexistent/apps is not a directory"
    );
}
