//! Container resource use from the engine's stats API, in one call.
//!
//! `one-shot` asks the engine for the current counters without its one-second
//! wait for a previous sample (Docker fills `precpu_stats` only by waiting), so a
//! caller that wants CPU % keeps the previous [`Sample`] itself and calls
//! [`cpu_percent`]; that keeps `pgbox metrics` inside its scrape budget. Memory is
//! computed as `docker stats` shows it: usage less the inactive file cache.

use std::time::Duration;

use bollard::query_parameters::StatsOptionsBuilder;
use futures_util::StreamExt;

use super::{Engine, EngineError, Result};

/// One reading of a container's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Sample {
    /// CPU time the container used, in nanoseconds since it started.
    pub cpu_total_ns: u64,
    /// The host's CPU time, in nanoseconds (the denominator of CPU %).
    pub system_ns: u64,
    pub online_cpus: u32,
    /// Memory in use, without the inactive page cache.
    pub mem_used_bytes: u64,
    /// The memory limit the engine reports (the host's memory when none is set).
    pub mem_limit_bytes: u64,
}

impl Engine {
    /// The container's counters now; an error after 3 s (an engine that ignores
    /// `one-shot` would otherwise hold a scrape for its own 1 s wait, or longer).
    pub async fn stats(&self, name: &str) -> Result<Sample> {
        let opts = StatsOptionsBuilder::new()
            .stream(false)
            .one_shot(true)
            .build();
        let mut s = self.docker.stats(name, Some(opts));
        let r = tokio::time::timeout(Duration::from_secs(3), s.next())
            .await
            .map_err(|_| EngineError::Other("the engine's stats did not come in 3 s".into()))?
            .ok_or_else(|| EngineError::Other("the engine sent no stats".into()))??;
        let cpu = r.cpu_stats.unwrap_or_default();
        let usage = cpu.cpu_usage.unwrap_or_default();
        let mem = r.memory_stats.unwrap_or_default();
        let online = cpu.online_cpus.filter(|n| *n > 0).unwrap_or_else(|| {
            usage
                .percpu_usage
                .as_ref()
                .map_or(1, |v| v.len().max(1) as u32)
        });
        Ok(Sample {
            cpu_total_ns: usage.total_usage.unwrap_or(0),
            system_ns: cpu.system_cpu_usage.unwrap_or(0),
            online_cpus: online,
            mem_used_bytes: mem_used(mem.usage.unwrap_or(0), mem.stats.as_ref()),
            mem_limit_bytes: mem.limit.unwrap_or(0),
        })
    }
}

/// Usage less the inactive file cache (cgroup v1 `total_inactive_file`, v2
/// `inactive_file`, old engines `cache`), as `docker stats` computes it.
fn mem_used(usage: u64, stats: Option<&std::collections::HashMap<String, u64>>) -> u64 {
    let Some(st) = stats else { return usage };
    for key in ["total_inactive_file", "inactive_file", "cache"] {
        if let Some(v) = st.get(key) {
            if *v < usage {
                return usage - v;
            }
            return usage;
        }
    }
    usage
}

/// CPU use between two samples, in percent of one core (200 is two full cores).
pub fn cpu_percent(prev: &Sample, cur: &Sample) -> Option<f64> {
    let cpu = cur.cpu_total_ns.checked_sub(prev.cpu_total_ns)?;
    let sys = cur.system_ns.checked_sub(prev.system_ns)?;
    if sys == 0 {
        return None;
    }
    Some(cpu as f64 / sys as f64 * f64::from(cur.online_cpus.max(1)) * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_docker_stats_formula() {
        let a = Sample {
            cpu_total_ns: 1_000,
            system_ns: 10_000,
            online_cpus: 2,
            ..Default::default()
        };
        let b = Sample {
            cpu_total_ns: 2_000,
            system_ns: 20_000,
            ..a
        };
        assert_eq!(cpu_percent(&a, &b), Some(20.0));
        assert_eq!(cpu_percent(&b, &a), None);
        assert_eq!(cpu_percent(&a, &a), None);
    }

    #[test]
    fn memory_leaves_out_the_inactive_cache() {
        let v2 = std::collections::HashMap::from([("inactive_file".to_string(), 30)]);
        assert_eq!(mem_used(100, Some(&v2)), 70);
        let odd = std::collections::HashMap::from([("inactive_file".to_string(), 300)]);
        assert_eq!(mem_used(100, Some(&odd)), 100);
        assert_eq!(mem_used(100, None), 100);
    }
}
