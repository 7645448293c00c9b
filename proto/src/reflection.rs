//! What each daemon's reflection serves: the files of its own package and
//! the files they import, with any other package's services taken out, so
//! `grpcurl list` on a daemon names only what that daemon answers.

use std::collections::BTreeSet;

use prost::Message;
use prost_types::FileDescriptorSet;

use crate::FILE_DESCRIPTOR_SET;

/// The control plane's package.
pub const CONTROL_PACKAGE: &str = "slipway.control.v1";
/// The agent's package.
pub const AGENT_PACKAGE: &str = "slipway.agent.v1";

/// The descriptor set for a daemon serving `package`: its files, their
/// imports (messages only), nothing else.
pub fn descriptor_set(package: &str) -> FileDescriptorSet {
    let all = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("built-in descriptor set");
    let mut needed: BTreeSet<String> = all
        .file
        .iter()
        .filter(|f| f.package() == package)
        .map(|f| f.name().to_owned())
        .collect();
    // Imports of imports, until nothing new is named.
    loop {
        let imports: BTreeSet<String> = all
            .file
            .iter()
            .filter(|f| needed.contains(f.name()))
            .flat_map(|f| f.dependency.iter().cloned())
            .collect();
        let before = needed.len();
        needed.extend(imports);
        if needed.len() == before {
            break;
        }
    }
    let file = all
        .file
        .into_iter()
        .filter(|f| needed.contains(f.name()))
        .map(|mut f| {
            if f.package() != package {
                f.service.clear();
            }
            f
        })
        .collect();
    FileDescriptorSet { file }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services(set: &FileDescriptorSet) -> Vec<String> {
        set.file
            .iter()
            .flat_map(|f| {
                f.service
                    .iter()
                    .map(move |s| format!("{}.{}", f.package(), s.name()))
            })
            .collect()
    }

    #[test]
    fn each_daemon_lists_only_its_own_services_and_keeps_the_messages_it_needs() {
        let agent = descriptor_set(AGENT_PACKAGE);
        assert_eq!(services(&agent), ["slipway.agent.v1.AgentService"]);
        let control = descriptor_set(CONTROL_PACKAGE);
        let names = services(&control);
        assert!(names.contains(&"slipway.control.v1.DeploymentService".to_owned()));
        assert!(
            names.iter().all(|s| s.starts_with("slipway.control.v1.")),
            "{names:?}"
        );
        // control.proto uses the agent's messages: the file stays, without its service.
        assert!(control.file.iter().any(|f| f.package() == AGENT_PACKAGE));
    }
}
