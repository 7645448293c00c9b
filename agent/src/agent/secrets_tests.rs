//! Secrets through the real handlers (below the network): a prepare writes
//! them into the release as a private file and hooks and the check see
//! them; ApplySecrets rewrites the file of the current release and runs
//! the after-activate hooks again; it refuses a release that is not
//! current; no value reaches the agent's data dir (its journal).

use std::os::unix::fs::PermissionsExt;

use futures_util::StreamExt;
use slipway_proto::agent::v1::{
    ActivateReleaseRequest, ActivationSpec, AppTarget, ApplySecretsRequest, HealthCheck, Hook,
    HookPoint, PrepareReleaseRequest, ProgressEvent, Secret, SecretsFile, SecretsFormat,
    agent_service_server::AgentService,
};
use tonic::{Code, Request, Status};

use super::tests::{Fixture, fixture, result};
use crate::service::{AgentApi, ResponseStream};

const CANARY: &str = "canary-7d1f0c";

fn target() -> Option<AppTarget> {
    Some(AppTarget {
        name: "web".into(),
        deploy_root: String::new(),
    })
}

fn secrets(value: &str) -> Vec<Secret> {
    vec![Secret {
        name: "API_TOKEN".into(),
        value: value.into(),
    }]
}

/// Hooks that log whether they saw `expected` as API_TOKEN, and a check
/// that fails unless it sees it; both compare hashes, so the commands
/// (which events show) do not hold the value.
fn spec(f: &Fixture, expected: &str, format: SecretsFormat) -> ActivationSpec {
    let log = f.dir.path().join("hooks");
    let expected = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(expected));
    let seen = "$(printf %s \"$API_TOKEN\" | sha256sum | cut -d' ' -f1)";
    let hook = |point: HookPoint, name: &str| Hook {
        point: point as i32,
        name: name.into(),
        command: format!(
            "if [ \"{seen}\" = '{expected}' ]; then echo '{name} match' >> {0}; else echo '{name} differ' >> {0}; fi",
            log.display()
        ),
        timeout_seconds: 30,
    };
    ActivationSpec {
        hooks: vec![
            hook(HookPoint::BeforeActivate, "before"),
            hook(HookPoint::AfterActivate, "after"),
        ],
        health_check: Some(HealthCheck {
            command: format!("test \"{seen}\" = '{expected}'"),
            attempts: 1,
            timeout_seconds: 30,
            ..HealthCheck::default()
        }),
        secrets_file: Some(SecretsFile {
            path: "config/secrets.json".into(),
            format: format as i32,
            ..SecretsFile::default()
        }),
        ..ActivationSpec::default()
    }
}

async fn events<T>(
    call: Result<tonic::Response<ResponseStream<T>>, Status>,
    event: fn(T) -> Option<ProgressEvent>,
) -> Result<Vec<ProgressEvent>, Status> {
    let items: Vec<_> = call?.into_inner().collect().await;
    items
        .into_iter()
        .map(|item| item.map(|r| event(r).expect("event set")))
        .collect()
}

async fn deploy(f: &Fixture, api: &AgentApi, deployment: &str, id: &str, value: &str) {
    f.stage(id).await;
    let spec = spec(f, value, SecretsFormat::Json);
    let prepare = PrepareReleaseRequest {
        deployment_id: deployment.into(),
        app: target(),
        release_id: id.into(),
        files: f.files(id),
        keep_releases: 5,
        spec: Some(spec.clone()),
        environment: "prod".into(),
        fencing_token: 1,
        secrets: secrets(value),
        ..PrepareReleaseRequest::default()
    };
    let prepared = events(api.prepare_release(Request::new(prepare)).await, |r| {
        r.event
    });
    assert!(result(&prepared.await.unwrap()).success);
    let activate = ActivateReleaseRequest {
        deployment_id: deployment.into(),
        app: target(),
        release_id: id.into(),
        spec: Some(spec),
        environment: "prod".into(),
        fencing_token: 1,
        fencing_epoch: String::new(),
        secrets: secrets(value),
    };
    let activated = events(api.activate_release(Request::new(activate)).await, |r| {
        r.event
    });
    let activated = activated.await.unwrap();
    assert!(result(&activated).success, "{activated:#?}");
}

fn apply(f: &Fixture, deployment: &str, id: &str, value: &str) -> ApplySecretsRequest {
    ApplySecretsRequest {
        deployment_id: deployment.into(),
        app: target(),
        release_id: id.into(),
        spec: Some(spec(f, value, SecretsFormat::Json)),
        environment: "prod".into(),
        fencing_token: 1,
        fencing_epoch: String::new(),
        secrets: secrets(value),
    }
}

fn read_all(dir: &std::path::Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            read_all(&path, found);
        } else if let Ok(bytes) = std::fs::read(&path)
            && String::from_utf8_lossy(&bytes).contains("canary-")
        {
            found.push(path.display().to_string());
        }
    }
}

#[tokio::test]
async fn secrets_land_in_a_private_file_and_hooks_and_are_applied_again() {
    let f = fixture().await;
    let api = AgentApi::new(f.agent.clone());
    let first = format!("{CANARY}-one");
    deploy(&f, &api, "d1", "r1", &first).await;
    let file = f.app().release("r1").join("config/secrets.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(json["API_TOKEN"], first.as_str());
    let hooks = std::fs::read_to_string(f.dir.path().join("hooks")).unwrap();
    assert_eq!(hooks, "before match\nafter match\n");

    // A changed value, applied to the current release without a new one.
    let second = format!("{CANARY}-two");
    let applied = events(
        api.apply_secrets(Request::new(apply(&f, "d2", "r1", &second)))
            .await,
        |r| r.event,
    )
    .await
    .unwrap();
    assert!(result(&applied).success, "{applied:#?}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(json["API_TOKEN"], second.as_str());
    let hooks = std::fs::read_to_string(f.dir.path().join("hooks")).unwrap();
    assert_eq!(hooks, "before match\nafter match\nafter match\n");
    let said: Vec<&str> = applied.iter().map(|e| e.message.as_str()).collect();
    assert!(said.iter().all(|m| !m.contains(CANARY)), "{said:?}");

    // Only to the current release.
    let refused = api
        .apply_secrets(Request::new(apply(&f, "d3", "r0", &second)))
        .await
        .err()
        .unwrap();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(!refused.message().contains(CANARY));

    // The agent's own files (journal, event logs) hold no value.
    let mut found = Vec::new();
    read_all(&f.dir.path().join("data"), &mut found);
    assert!(found.is_empty(), "values in {found:?}");
}
