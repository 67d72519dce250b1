//! Readings of the operator and the emulator: cloud calls by action and code from the
//! operator's `/metrics`, throttled calls from the emulator's call log, memory from `/proc`.

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde_json::Value;

/// Cloud calls the operator made, by (action, code), as `alicloud_api_requests_total` counts
/// them (every attempt, retries included).
#[derive(Clone, Debug, Default)]
pub struct Calls(pub BTreeMap<(String, String), u64>);

impl Calls {
    /// Scrapes `url` (the operator's `/metrics`).
    pub async fn scrape(http: &reqwest::Client, url: &str) -> anyhow::Result<Self> {
        let text = http.get(url).send().await?.text().await?;
        Ok(Self::parse(&text))
    }

    /// Reads the `alicloud_api_requests_total` samples of a Prometheus text exposition.
    pub fn parse(text: &str) -> Self {
        let mut calls = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("alicloud_api_requests_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            let label = |name: &str| {
                labels
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.trim_matches('"').to_owned())
                    .unwrap_or_default()
            };
            let value = value.trim().parse::<f64>().unwrap_or_default() as u64;
            *calls.entry((label("action"), label("code"))).or_default() += value;
        }
        Self(calls)
    }

    /// The calls made since `before`.
    pub fn since(&self, before: &Self) -> Self {
        let mut delta = BTreeMap::new();
        for (key, n) in &self.0 {
            let d = n.saturating_sub(before.0.get(key).copied().unwrap_or_default());
            if d > 0 {
                delta.insert(key.clone(), d);
            }
        }
        Self(delta)
    }

    /// Calls by action, every code together.
    pub fn by_action(&self) -> BTreeMap<String, u64> {
        let mut by = BTreeMap::new();
        for ((action, _), n) in &self.0 {
            *by.entry(action.clone()).or_default() += n;
        }
        by
    }

    /// Calls of `action`, every code together.
    pub fn of(&self, action: &str) -> u64 {
        self.by_action().get(action).copied().unwrap_or_default()
    }

    /// Calls answered with a `Throttling*` code.
    pub fn throttled(&self) -> u64 {
        self.0
            .iter()
            .filter(|((_, code), _)| code.starts_with("Throttling"))
            .map(|(_, n)| n)
            .sum()
    }

    /// Every call.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// `Action n, Action n` (sorted by action).
    pub fn describe(&self) -> String {
        let by = self.by_action();
        if by.is_empty() {
            return "none".into();
        }
        by.iter()
            .map(|(a, n)| format!("{a} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Calls in the emulator's call log (its last 10,000) answered `Throttling*`, and how many
/// calls the log holds.
pub fn emulator_throttled(state: &Value) -> (u64, usize) {
    let calls = state
        .get("calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let throttled = calls
        .iter()
        .filter(|c| {
            c.get("outcome")
                .and_then(Value::as_str)
                .is_some_and(|o| o.starts_with("Throttling"))
        })
        .count();
    (throttled as u64, calls.len())
}

/// Where the time went, from the emulator's call log: for each action, how many calls it logged,
/// when the first and the last came (seconds after `start_ms`, epoch ms), and its calls in each
/// 10 s window from `start_ms` on (whether it ran at its quota throughout).
pub fn timeline(state: &Value, start_ms: i64) -> Vec<String> {
    let calls = state
        .get("calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut by: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for call in calls {
        let (Some(action), Some(time)) = (
            call.get("action").and_then(Value::as_str),
            call.get("timeMs").and_then(Value::as_i64),
        ) else {
            continue;
        };
        by.entry(action)
            .or_default()
            .push((time - start_ms) as f64 / 1000.0);
    }
    by.iter()
        .map(|(action, times)| {
            let first = times.iter().copied().fold(f64::INFINITY, f64::min);
            let last = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut windows = vec![0usize; (last.max(0.0) / 10.0) as usize + 1];
            for t in times.iter().filter(|t| **t >= 0.0) {
                windows[(t / 10.0) as usize] += 1;
            }
            let windows: Vec<String> = windows.iter().map(usize::to_string).collect();
            format!(
                "{action}: {} calls, first {first:.1} s, last {last:.1} s; per 10 s: {}",
                times.len(),
                windows.join(" ")
            )
        })
        .collect()
}

/// The API server's own account of the requests it served (its `/metrics`): for each verb,
/// resource and subresource with at least `min` requests, how many, their mean latency and
/// their total time, busiest first.
pub fn apiserver_requests(metrics: &str, min: f64) -> Vec<String> {
    let mut by: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in metrics.lines() {
        let (is_sum, rest) =
            if let Some(r) = line.strip_prefix("apiserver_request_duration_seconds_sum{") {
                (true, r)
            } else if let Some(r) = line.strip_prefix("apiserver_request_duration_seconds_count{") {
                (false, r)
            } else {
                continue;
            };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let subresource = label("subresource");
        let key = format!(
            "{} {}{}",
            label("verb"),
            label("resource"),
            if subresource.is_empty() {
                String::new()
            } else {
                format!("/{subresource}")
            }
        );
        let entry = by.entry(key).or_default();
        if is_sum {
            entry.0 += value;
        } else {
            entry.1 += value;
        }
    }
    let mut rows: Vec<(String, f64, f64)> = by
        .into_iter()
        .filter(|(_, (_, count))| *count >= min)
        .map(|(key, (sum, count))| (key, sum, count))
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    rows.into_iter()
        .map(|(key, sum, count)| {
            format!(
                "{key}: {count} requests, mean {:.0} ms, {sum:.0} s in all",
                sum / count * 1000.0
            )
        })
        .collect()
}

/// Resident memory of a process, in KiB: (VmRSS, VmHWM).
pub fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_default()
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// The `p`th percentile (0..=100) of `samples` (nearest rank), `None` when empty.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The machine: cores and load averages.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{cores} cores, load average {}", load.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_read_by_action_and_code() {
        let text = "# TYPE alicloud_api_requests counter\n\
            alicloud_api_requests_total{product=\"dbs\",action=\"CreateBackupPlan\",code=\"Success\"} 3\n\
            alicloud_api_requests_total{product=\"dbs\",action=\"CreateBackupPlan\",code=\"Throttling.User\"} 1\n\
            alicloud_api_requests_total{product=\"dbs\",action=\"StartBackupPlan\",code=\"Success\"} 2\n";
        let calls = Calls::parse(text);
        assert_eq!(calls.of("CreateBackupPlan"), 4);
        assert_eq!(calls.throttled(), 1);
        assert_eq!(calls.total(), 6);
        let before = Calls::parse(&text.replace("} 3", "} 1"));
        assert_eq!(calls.since(&before).of("CreateBackupPlan"), 2);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), Some(50.0));
        assert_eq!(percentile(&samples, 99.0), Some(99.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
