//! The control plane's keys through the shared loader: the example file,
//! defaults, and errors that name the key and where its value came from.

use std::path::{Path, PathBuf};

use slipway_proto::{
    config::{Given, Layered, Source, args, show},
    daemon::chain,
    observe::MetricsListen,
};

use super::*;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("control-plane.example.toml")
}

fn layered(file: Option<&Path>, argv: &[&str]) -> Layered {
    let cmd = clap::Command::new("slipway-control-plane").args(args::args(KEYS));
    let matches = cmd.try_get_matches_from(argv).unwrap();
    Layered::resolve(KEYS, file, args::given(KEYS, &matches).unwrap()).unwrap()
}

fn file_of(text: &str) -> FileConfig {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control-plane.toml");
    std::fs::write(&path, text).unwrap();
    layered(Some(&path), &["cp"]).typed().unwrap()
}

#[test]
fn example_config_parses() {
    let file: FileConfig = layered(Some(&example()), &["cp"]).typed().unwrap();
    assert_eq!(file.listen, Some("0.0.0.0:7443".parse().unwrap()));
    let metrics = file.metrics_listen.and_then(MetricsListen::addr);
    assert_eq!(metrics, DEFAULT_METRICS_LISTEN.parse().ok());
    assert_eq!(file.drift_every_seconds, Some(DEFAULT_DRIFT_EVERY_SECONDS));
    // The names `slipctl pki init` writes.
    let tls = file.tls.unwrap();
    assert_eq!(tls.ca, Some("/etc/slipway/pki/ca.crt".into()));
    assert_eq!(tls.cert, Some("/etc/slipway/pki/control-plane.crt".into()));
    let agent_tls = file.agent_tls.unwrap();
    assert_eq!(
        agent_tls.cert,
        Some("/etc/slipway/pki/control-plane-client.crt".into())
    );
    assert_eq!(file.log_level.as_deref(), Some("info"));
}

#[test]
fn every_key_is_in_the_readme_table() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    for key in KEYS {
        let row = show::readme_row("control plane", key);
        assert!(readme.contains(&row), "README lacks the row\n{row}");
    }
}

#[test]
fn a_missing_or_relative_source_root_is_refused_naming_the_key() {
    let pki = tempfile::tempdir().unwrap();
    for root in ["/nonexistent/slipway", "srv/git"] {
        let argv = [
            "cp",
            "--pki-dir",
            pki.path().to_str().unwrap(),
            "--source-root",
            root,
        ];
        let err = load(layered(None, &argv)).unwrap_err();
        assert!(
            chain(&err).starts_with("flag --source-root: source_roots: "),
            "{}",
            chain(&err)
        );
    }
}

#[test]
fn drift_checks_run_every_ten_minutes_unless_set_and_zero_turns_them_off() {
    let minutes = |m: u64| Some(std::time::Duration::from_secs(m * 60));
    assert_eq!(drift_every(None), minutes(10));
    assert_eq!(drift_every(Some(120)), minutes(2));
    assert_eq!(drift_every(Some(0)), None);
}

#[test]
fn metrics_listen_is_an_address_or_off() {
    assert_eq!(file_of("").metrics_listen, None);
    assert_eq!(
        file_of("metrics_listen = \"off\"").metrics_listen,
        Some(MetricsListen::Off)
    );
    let anywhere = file_of("metrics_listen = \"0.0.0.0:9000\"").metrics_listen;
    assert_eq!(
        anywhere.and_then(MetricsListen::addr),
        "0.0.0.0:9000".parse().ok()
    );
    let err = layered(None, &["cp", "--metrics-listen", "nowhere"])
        .typed::<FileConfig>()
        .unwrap_err();
    assert_eq!(err.to_string(), "flag --metrics-listen: metrics_listen");
}

#[test]
fn the_health_sampling_interval_is_at_least_a_second() {
    let pki = tempfile::tempdir().unwrap();
    let dir = pki.path().to_str().unwrap();
    let argv = ["cp", "--pki-dir", dir, "--health-sample-every-seconds", "0"];
    let err = chain(&load(layered(None, &argv)).unwrap_err());
    assert_eq!(
        err,
        "flag --health-sample-every-seconds: health_sample_every_seconds: must be at least 1"
    );
}

#[test]
fn the_pki_dir_fills_every_tls_path_and_says_so() {
    let pki = tempfile::tempdir().unwrap();
    let dir = pki.path().to_str().unwrap();
    let mut layered = layered(
        None,
        &["cp", "--pki-dir", dir, "--tls-cert", "/elsewhere.crt"],
    );
    let err = chain(&load(layered.clone()).unwrap_err());
    // The first file checked is the operator API's CA, from the PKI directory.
    assert_eq!(
        err,
        format!("flag --pki-dir: [tls] ca: {dir}/ca.crt: no such file")
    );
    super::load::fill(&mut layered);
    assert_eq!(layered.source("tls.cert"), Source::Flag("tls-cert"));
    let via = Box::new(Source::Flag("pki-dir"));
    assert_eq!(
        layered.source("agent_tls.key"),
        Source::Derived {
            from: "pki_dir",
            via
        }
    );
    let shown = show::effective(&layered);
    assert!(
        shown.contains(&format!(
            "agent_tls.key = \"{dir}/control-plane-client.key\"  # from pki_dir (flag --pki-dir)\n"
        )),
        "{shown}"
    );
}

#[test]
fn unknown_keys_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control-plane.toml");
    std::fs::write(&path, "lisen = \"0.0.0.0:1\"").unwrap();
    let err = Layered::resolve(KEYS, Some(&path), Vec::<Given>::new()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: unknown key lisen", path.display())),
        "{err}"
    );
}
