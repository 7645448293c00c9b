//! Facts about this host for GetStatus: uptime, load, memory and disk free,
//! read from /proc and statvfs(2).

use std::{path::Path, time::Instant};

use slipway_proto::agent::v1::HostInfo;

/// Samples the host now. A fact that cannot be read is reported as 0 (and
/// logged at debug): status must work even where /proc looks different.
/// Blocking.
pub fn host_info(host_name: &str, apps_dir: &Path, started: Instant) -> HostInfo {
    let proc = |file: &str| {
        std::fs::read_to_string(file)
            .inspect_err(|err| tracing::debug!(%err, file, "cannot read host fact"))
            .unwrap_or_default()
    };
    let (memory_total_bytes, memory_available_bytes) = meminfo(&proc("/proc/meminfo"));
    HostInfo {
        agent_version: crate::stamp::version().to_owned(),
        contract_version: slipway_proto::AGENT_CONTRACT_VERSION,
        host_name: host_name.to_owned(),
        uptime_seconds: first_number(&proc("/proc/uptime")).map_or(0, |s| s as u64),
        load_average: first_number(&proc("/proc/loadavg")).unwrap_or(0.0),
        memory_total_bytes,
        memory_available_bytes,
        disk_free_bytes: disk_free(apps_dir),
        agent_uptime_seconds: started.elapsed().as_secs(),
        last_upgrade: None,
    }
}

/// The first whitespace-separated number of `text` (/proc/uptime, loadavg).
fn first_number(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// MemTotal and MemAvailable from /proc/meminfo, in bytes.
fn meminfo(text: &str) -> (u64, u64) {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("MemTotal"), field("MemAvailable"))
}

/// Bytes available to unprivileged users on the filesystem holding `dir`,
/// asking the nearest existing ancestor when `dir` does not exist yet.
fn disk_free(dir: &Path) -> u64 {
    let Some(existing) = dir.ancestors().find(|p| p.exists()) else {
        return 0;
    };
    match rustix::fs::statvfs(existing) {
        Ok(stat) => stat.f_bavail.saturating_mul(stat.f_frsize),
        Err(err) => {
            tracing::debug!(%err, dir = %existing.display(), "cannot statvfs");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(first_number("12345.67 2345.00\n"), Some(12345.67));
        assert_eq!(first_number("0.52 0.58 0.59 1/123 4567\n"), Some(0.52));
        assert_eq!(first_number(""), None);
        let meminfo_text =
            "MemTotal:       16318480 kB\nMemFree:  1 kB\nMemAvailable:   8159240 kB\n";
        assert_eq!(meminfo(meminfo_text), (16318480 * 1024, 8159240 * 1024));
        assert_eq!(meminfo("garbage"), (0, 0));
    }

    #[test]
    fn samples_this_host() {
        let dir = tempfile::tempdir().unwrap();
        let info = host_info("web-1", &dir.path().join("not/yet"), Instant::now());
        assert_eq!(info.host_name, "web-1");
        assert_eq!(info.agent_version, crate::stamp::version());
        assert!(info.disk_free_bytes > 0);
    }
}
