//! A recorded deployment resolved again before it starts: when its turn in
//! the queue came, or once the release it waited for was made. The
//! environment's hosts and current release may have changed meanwhile.

use slipway_proto::control::v1::Deployment;

use super::resolve::{Start, Target};

impl Start {
    /// Deployment `d` started again with release `release`: when its turn
    /// came, or once its release was made.
    pub(super) fn again(d: &Deployment, release: String) -> Self {
        Start {
            kind: d.kind(),
            app: d.app.clone(),
            environment: d.environment.clone(),
            target: Target::Release(release),
            message: d.message.clone(),
            policy: d.policy,
            queue: false,
            run_at: None,
            force: false,
        }
    }
}

/// Takes into `d` what resolving it again decided (`fresh`, the record
/// of the new resolution): its release, the release before it, its hosts
/// and batches, its policy.
pub(super) fn refresh(d: &mut Deployment, fresh: Deployment) {
    d.release = fresh.release;
    d.commit = fresh.commit;
    d.git_ref = fresh.git_ref;
    d.previous_release = fresh.previous_release;
    d.hosts = fresh.hosts;
    d.batches = fresh.batches;
    d.policy = fresh.policy;
}
