//! The agent's operations end to end below gRPC: deploy, replay, the app
//! lock, refusals, rollback and status, on real files in temp dirs.

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use slipway_proto::{
    agent::v1::{FileEntry, FileKind, LogLevel, Stage},
    tls::TlsPaths,
};
use tonic::{Code, Status};

use super::*;
use crate::{activation::Activation, manifest::Manifest, upload::Chunk};

pub(super) struct Fixture {
    pub(super) dir: tempfile::TempDir,
    pub(super) agent: Arc<Agent>,
    config: Config,
}

pub(super) async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(
        "web-1",
        TlsPaths {
            ca: "/unused".into(),
            cert: "/unused".into(),
            key: "/unused".into(),
        },
    );
    config.apps_dir = dir.path().join("srv");
    config.data_dir = dir.path().join("data");
    config.allowed_roots = vec![dir.path().join("opt")];
    // Tests wait for the tree built after a deploy; no need to wait longer.
    config.prestage_idle = std::time::Duration::ZERO;
    let agent = Agent::open(&config, Default::default()).await.unwrap();
    Fixture { dir, agent, config }
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub(super) fn entry(path: &str, kind: FileKind, content: &[u8]) -> FileEntry {
    FileEntry {
        path: path.into(),
        kind: kind as i32,
        mode: 0o644,
        size: content.len() as u64,
        sha256: sha(content),
    }
}

impl Fixture {
    /// A new agent on the same directories, as after a restart.
    pub(super) async fn restart(&mut self) {
        self.agent = Agent::open(&self.config, Default::default()).await.unwrap();
    }

    pub(super) fn app(&self) -> AppRoot {
        self.agent.roots().resolve("app", "web", "").unwrap()
    }

    pub(super) fn files(&self, id: &str) -> Vec<FileEntry> {
        vec![
            entry("VERSION", FileKind::Regular, id.as_bytes()),
            entry("public/index.html", FileKind::Regular, b"<h1>hi</h1>"),
            entry("index.html", FileKind::Symlink, b"public/index.html"),
        ]
    }

    pub(super) async fn upload(&self, files: &[FileEntry], contents: &[&[u8]]) {
        // Unfenced (0): staging objects changes no app state worth fencing.
        let mut upload = self.agent.upload(self.app(), 0).await.unwrap();
        for (file, content) in files.iter().zip(contents) {
            let chunk = Chunk {
                sha256: file.sha256.clone(),
                size: content.len() as u64,
                offset: 0,
                data: content.to_vec(),
            };
            upload.push(chunk).unwrap();
        }
        upload.finish().unwrap();
    }

    pub(super) fn plan(&self, deployment: &str, id: &str) -> DeployPlan {
        DeployPlan {
            app: self.app(),
            deployment_id: deployment.into(),
            release_id: id.into(),
            manifest: Manifest::from_wire(self.files(id)).unwrap(),
            keep: 5,
            activation: Activation::default(),
            environment: "test".into(),
            prepare_only: false,
            rebuild: false,
            fencing_token: 1,
            fencing_epoch: String::new(),
        }
    }

    pub(super) async fn deploy(&self, deployment: &str, id: &str) -> Vec<ProgressEvent> {
        self.deploy_with(deployment, id, Activation::default(), 5)
            .await
    }

    /// Uploads the objects of release `id`.
    pub(super) async fn stage(&self, id: &str) {
        let contents: [&[u8]; 3] = [id.as_bytes(), b"<h1>hi</h1>", b"public/index.html"];
        self.upload(&self.files(id), &contents).await;
    }

    /// Uploads release `id` and deploys it with `activation`, keeping `keep`.
    pub(super) async fn deploy_with(
        &self,
        deployment: &str,
        id: &str,
        activation: Activation,
        keep: usize,
    ) -> Vec<ProgressEvent> {
        self.stage(id).await;
        let plan = DeployPlan {
            activation,
            keep,
            ..self.plan(deployment, id)
        };
        let events = self.agent.deploy(plan).await.unwrap().collect().await;
        // The tree prestaged after it is built by the time anyone looks.
        self.agent.prestage.settle(&self.app());
        events
    }
}

pub(super) fn result(events: &[ProgressEvent]) -> &slipway_proto::agent::v1::OperationResult {
    events.last().unwrap().result.as_ref().unwrap()
}

#[tokio::test]
async fn deploy_streams_every_stage_and_a_repeat_replays() {
    let f = fixture().await;
    let events = f.deploy("d1", "r1").await;
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=events.len() as u64).collect::<Vec<_>>());
    let stages: Vec<Stage> = events.iter().map(|e| e.stage()).collect();
    // A first release prunes nothing, and says nothing about it.
    assert!(!stages.contains(&Stage::Prune), "{stages:?}");
    for stage in [
        Stage::Prepare,
        Stage::Materialise,
        Stage::Activate,
        Stage::Done,
    ] {
        assert!(stages.contains(&stage), "{stage:?} in {stages:?}");
    }
    assert!(events.iter().all(|e| e.time.is_some()));
    let done = result(&events);
    assert!(done.success, "{events:#?}");
    assert_eq!(
        (
            done.previous_release.as_str(),
            done.current_release.as_str()
        ),
        ("", "r1")
    );
    let current = f.app().current();
    assert_eq!(
        std::fs::read(current.join("index.html")).unwrap(),
        b"<h1>hi</h1>"
    );

    // Same deployment id: the recorded events, nothing redone.
    let replay: Vec<_> = f
        .agent
        .deploy(f.plan("d1", "r1"))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(replay, events);
    // Same id for something else: refused.
    let err = f.agent.deploy(f.plan("d1", "r2")).await.err().unwrap();
    assert_eq!(Status::from(err).code(), Code::FailedPrecondition);

    let second = f.deploy("d2", "r2").await;
    let done = result(&second);
    assert!(done.success);
    assert_eq!(
        (
            done.previous_release.as_str(),
            done.current_release.as_str()
        ),
        ("r1", "r2")
    );

    let status = f.agent.status(Vec::new(), true).await.unwrap();
    let host = status.host.unwrap();
    assert_eq!(host.host_name, "web-1");
    let [app] = status.apps.as_slice() else {
        panic!("{:?}", status.apps)
    };
    assert_eq!(
        (app.name.as_str(), app.current_release.as_str()),
        ("web", "r2")
    );
    let ids: Vec<_> = app.releases.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["r1", "r2"]);
    assert_eq!(app.releases[0].size_bytes, 2 + 11);
    assert_eq!(app.running_deployment, "");
}

#[tokio::test]
async fn missing_objects_are_refused_before_anything_runs() {
    let f = fixture().await;
    let err = f.agent.deploy(f.plan("d1", "r1")).await.err().unwrap();
    let status = Status::from(err);
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "3 objects are missing; upload them first");
    // Not recorded: the same deployment id works once the objects are there.
    let events = f.deploy("d1", "r1").await;
    assert!(result(&events).success);
}

#[tokio::test]
async fn a_second_deployment_waits_for_the_first() {
    let f = fixture().await;
    let contents: [&[u8]; 3] = [b"r1", b"<h1>hi</h1>", b"public/index.html"];
    f.upload(&f.files("r1"), &contents).await;
    let spec = Spec::of(Kind::Deploy, &f.app(), "d0", "r0");
    let Begin::New(guard) = f.agent.operations.begin(spec).unwrap() else {
        panic!()
    };
    let err = f.agent.deploy(f.plan("d1", "r1")).await.err().unwrap();
    let status = Status::from(err);
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        status.message(),
        "deployment d0 is already running for app web"
    );
    let status = f.agent.status(vec![f.app()], true).await.unwrap();
    assert_eq!(status.apps[0].running_deployment, "d0");
    drop(guard);
    assert!(
        result(
            &f.agent
                .deploy(f.plan("d1", "r1"))
                .await
                .unwrap()
                .collect::<Vec<_>>()
                .await
        )
        .success
    );
}

#[tokio::test]
async fn rollback_switches_to_a_release_on_disk_or_says_it_is_not_there() {
    let f = fixture().await;
    f.deploy("d1", "r1").await;
    f.deploy("d2", "r2").await;
    let plan = |deployment: &str, id: &str| RollbackPlan {
        app: f.app(),
        deployment_id: deployment.into(),
        release_id: id.into(),
        activation: Activation::default(),
        environment: "test".into(),
        fencing_token: 1,
        fencing_epoch: String::new(),
        prepared_keep: None,
        secrets_only: false,
    };
    let events: Vec<_> = f
        .agent
        .rollback(plan("d3", "r1"))
        .await
        .unwrap()
        .collect()
        .await;
    let done = result(&events);
    assert!(done.success);
    assert_eq!(
        (
            done.previous_release.as_str(),
            done.current_release.as_str()
        ),
        ("r2", "r1")
    );
    assert_eq!(
        std::fs::read(f.app().current().join("VERSION")).unwrap(),
        b"r1"
    );

    let err = f.agent.rollback(plan("d4", "r9")).await.err().unwrap();
    let status = Status::from(err);
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "release r9 is not on this host");
}

#[tokio::test]
async fn a_failing_deploy_ends_with_an_error_event_and_current_untouched() {
    let f = fixture().await;
    f.deploy("d1", "r1").await;
    // Replace `current` by hand with a directory: the switch must refuse.
    let app = f.app();
    std::fs::remove_file(app.current()).unwrap();
    std::fs::create_dir(app.current()).unwrap();
    let events = f.deploy("d2", "r2").await;
    let last = events.last().unwrap();
    assert_eq!(last.level(), LogLevel::Error);
    assert_eq!(last.stage(), Stage::Prepare);
    let done = result(&events);
    assert!(!done.success);
    assert!(
        done.error.contains("is not a symlink; move it away"),
        "{}",
        done.error
    );
    assert!(std::fs::symlink_metadata(app.current()).unwrap().is_dir());
}

#[tokio::test]
async fn deploy_roots_outside_the_allowed_roots_are_refused() {
    let f = fixture().await;
    let outside = f.dir.path().join("etc").display().to_string();
    let err = f.agent.roots().resolve("app", "web", &outside).unwrap_err();
    assert_eq!(err.field, "app.deploy_root");
    let inside = f.dir.path().join("opt/web").display().to_string();
    assert!(f.agent.roots().resolve("app", "web", &inside).is_ok());
}
