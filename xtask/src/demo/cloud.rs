//! What the emulated cloud holds and which calls it received, read from the emulator's admin
//! API (`GET /_emulator/state`, documented in `emulator/README.md`).

use anyhow::Context as _;
use serde_json::Value;

/// `GET <emulator>/_emulator/state`.
pub async fn state(http: &reqwest::Client, emulator: &str) -> anyhow::Result<Value> {
    let url = format!("{emulator}/_emulator/state");
    http.get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("GET {url}"))?
        .json()
        .await
        .with_context(|| format!("GET {url}: not JSON"))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn items<'a>(state: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    state
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The plan with this ID, if the emulator knows it.
pub fn plan<'a>(state: &'a Value, id: &str) -> Option<&'a Value> {
    items(state, "plans").find(|p| text(p, "backupPlanId") == id)
}

/// Whether any RDS instance still has an endpoint with this connection string.
pub fn has_endpoint(state: &Value, connection_string: &str) -> bool {
    items(state, "instances")
        .flat_map(|i| items(i, "connections"))
        .any(|c| text(c, "connectionString") == connection_string)
}

/// One line per backup plan and per RDS instance endpoint.
pub fn inventory(state: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    for p in items(state, "plans") {
        lines.push(format!(
            "backup plan {}  name={}  status={}  payType={}  region={}",
            text(p, "backupPlanId"),
            text(p, "name"),
            text(p, "status"),
            text(p, "payType"),
            text(p, "region"),
        ));
    }
    for i in items(state, "instances") {
        let endpoints: Vec<String> = items(i, "connections")
            .map(|c| {
                let port = c.get("port").map(Value::to_string).unwrap_or_default();
                format!(
                    "{}:{} ({})",
                    text(c, "connectionString"),
                    port.trim_matches('"'),
                    text(c, "ipType")
                )
            })
            .collect();
        lines.push(format!(
            "RDS instance {} ({})  status={}  endpoints: {}",
            text(i, "dbInstanceId"),
            text(i, "region"),
            text(i, "status"),
            endpoints.join(", ")
        ));
    }
    lines
}

/// Calls from `since_ms` on that changed something (not `Describe*`), in order, with repeats of
/// the same action and outcome folded into a count: `ReleaseBackupPlan -> Success`.
pub fn changing_calls(state: &Value, since_ms: i64) -> Vec<String> {
    let mut folded: Vec<(String, String, usize)> = Vec::new();
    let calls = items(state, "calls").filter(|c| {
        c.get("timeMs").and_then(Value::as_i64).unwrap_or(0) >= since_ms
            && !text(c, "action").starts_with("Describe")
    });
    for c in calls {
        let (action, outcome) = (text(c, "action"), text(c, "outcome"));
        match folded.last_mut() {
            Some((a, o, n)) if a == action && o == outcome => *n += 1,
            _ => folded.push((action.to_owned(), outcome.to_owned(), 1)),
        }
    }
    folded
        .into_iter()
        .map(|(action, outcome, n)| {
            let times = if n > 1 {
                format!(" (x{n})")
            } else {
                String::new()
            };
            format!("{action:<34} -> {outcome}{times}")
        })
        .collect()
}

/// `CreateBackupPlan 2, ConfigureBackupPlan 2, ...`: every action called, by first use.
pub fn call_counts(state: &Value) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for c in items(state, "calls") {
        let action = text(c, "action");
        match counts.iter_mut().find(|(a, _)| a == action) {
            Some((_, n)) => *n += 1,
            None => counts.push((action.to_owned(), 1)),
        }
    }
    counts
        .iter()
        .map(|(a, n)| format!("{a} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        serde_json::json!({
            "plans": [{"backupPlanId": "dbs1", "name": "orders-db", "status": "released",
                       "payType": "PostPaid", "region": "cn-hangzhou"}],
            "instances": [{"dbInstanceId": "rm-1", "region": "cn-hangzhou", "status": "Running",
                           "connections": [{"connectionString": "rm-1-internal", "port": "3306",
                                            "ipType": "Private"}]}],
            "calls": [
                {"action": "CreateBackupPlan", "outcome": "Success", "timeMs": 1},
                {"action": "DescribeBackupPlanList", "outcome": "Success", "timeMs": 10},
                {"action": "ReleaseInstanceConnection", "outcome": "OperationDenied.DBInstanceStatus", "timeMs": 11},
                {"action": "ReleaseInstanceConnection", "outcome": "OperationDenied.DBInstanceStatus", "timeMs": 12},
                {"action": "ReleaseInstanceConnection", "outcome": "Success", "timeMs": 13},
            ],
        })
    }

    #[test]
    fn changing_calls_skip_reads_and_fold_repeats() {
        assert_eq!(
            changing_calls(&sample(), 10),
            vec![
                "ReleaseInstanceConnection          -> OperationDenied.DBInstanceStatus (x2)",
                "ReleaseInstanceConnection          -> Success",
            ]
        );
    }

    #[test]
    fn inventory_names_plans_and_endpoints() {
        let lines = inventory(&sample());
        assert!(lines[0].contains("dbs1") && lines[0].contains("status=released"));
        assert!(has_endpoint(&sample(), "rm-1-internal"));
        assert!(!has_endpoint(
            &sample(),
            "orders-db-pub.mysql.rds.aliyuncs.com"
        ));
        assert!(
            lines[1].contains("rm-1-internal:3306 (Private)"),
            "{}",
            lines[1]
        );
        assert_eq!(
            call_counts(&sample()),
            "CreateBackupPlan 1, DescribeBackupPlanList 1, ReleaseInstanceConnection 3"
        );
    }
}
