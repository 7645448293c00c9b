//! Following the leader: a control plane on etcd runs as several replicas
//! and only the leader accepts calls that change something. The replica
//! dialled says which one leads; its channel is used when it leads (or
//! when it cannot say), the leader's otherwise.

use std::time::{Duration, Instant};

use slipway_proto::control::v1::{
    GetLeaderRequest, GetLeaderResponse, cluster_service_client::ClusterServiceClient,
};
use tonic::{Code, transport::Channel};

/// How long a client waits for an election in progress to end.
const ELECTION_WAIT: Duration = Duration::from_secs(15);
/// How often it asks meanwhile.
const ASK_EVERY: Duration = Duration::from_millis(200);

/// Where the calls should go.
pub enum Follow {
    /// The replica dialled: it leads, or it cannot say.
    Here,
    /// The leader, at this address.
    Leader(String),
}

/// Asks the replica on `channel` which replica leads, waiting out an
/// election in progress.
pub async fn ask(channel: &Channel) -> Follow {
    let started = Instant::now();
    loop {
        let answer = ClusterServiceClient::new(channel.clone())
            .get_leader(GetLeaderRequest {})
            .await;
        match answer {
            Ok(answer) => match decide(&answer.into_inner()) {
                Some(follow) => return follow,
                None if started.elapsed() < ELECTION_WAIT => {
                    tokio::time::sleep(ASK_EVERY).await;
                }
                None => return Follow::Here,
            },
            // A control plane from before clusters, or a refusal the real
            // call will report.
            Err(status) if status.code() == Code::Unimplemented => return Follow::Here,
            Err(_) => return Follow::Here,
        }
    }
}

/// Where to go after an answer; None while no replica leads.
fn decide(answer: &GetLeaderResponse) -> Option<Follow> {
    let leader = answer.leader.as_ref()?;
    let here = answer.answered_by.as_ref();
    if here.is_some_and(|me| me.id == leader.id) || leader.address.is_empty() {
        Some(Follow::Here)
    } else {
        Some(Follow::Leader(leader.address.clone()))
    }
}

#[cfg(test)]
mod tests {
    use slipway_proto::control::v1::Replica;

    use super::*;

    fn replica(id: &str, address: &str) -> Option<Replica> {
        Some(Replica {
            id: id.into(),
            address: address.into(),
            ..Default::default()
        })
    }

    #[test]
    fn a_follower_sends_the_client_to_the_leader() {
        let at_follower = GetLeaderResponse {
            leader: replica("a", "10.0.0.1:7443"),
            answered_by: replica("b", "10.0.0.2:7443"),
        };
        assert!(matches!(decide(&at_follower), Some(Follow::Leader(a)) if a == "10.0.0.1:7443"));
        let at_leader = GetLeaderResponse {
            leader: replica("a", "10.0.0.1:7443"),
            answered_by: replica("a", "10.0.0.1:7443"),
        };
        assert!(matches!(decide(&at_leader), Some(Follow::Here)));
        let electing = GetLeaderResponse {
            leader: None,
            answered_by: replica("b", "10.0.0.2:7443"),
        };
        assert!(decide(&electing).is_none());
    }
}
