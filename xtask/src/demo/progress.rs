//! Where the demo's objects stand, read from the API server, and the one progress line that
//! shows it: redrawn in place on a terminal, printed when it changes (or every 10 s) otherwise.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use alicloud_db_operator::crd::{BackupPlan, RdsConnection};
use kube::api::{Api, ListParams};
use kube::core::{ApiResource, DynamicObject};
use serde_json::Value;

/// One `BackupPlan` or `RdsConnection` as the demo reports it.
#[derive(Clone, Debug)]
pub struct ObjectStatus {
    /// `BackupPlan` or `RdsConnection`.
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `Ready`, `Reconciling/<reason>`, `Stalled/<reason>`, `Deleting/<reason>` or `Pending`.
    pub phase: String,
    /// Ready=True for the current generation.
    pub ready: bool,
    /// `status.conditions` as `type=status reason: message` lines.
    pub conditions: Vec<String>,
    /// The whole object, for kind-specific fields (plan ID, deletion policy, Secret name).
    pub object: Value,
}

impl ObjectStatus {
    /// A string at a JSON pointer of the object (`/spec/payType`).
    pub fn text(&self, pointer: &str) -> Option<&str> {
        self.object.pointer(pointer).and_then(Value::as_str)
    }
}

/// Every `BackupPlan` and `RdsConnection` in the cluster.
pub async fn observe(client: &kube::Client) -> anyhow::Result<Vec<ObjectStatus>> {
    let kinds = [
        ("BackupPlan", ApiResource::erase::<BackupPlan>(&())),
        ("RdsConnection", ApiResource::erase::<RdsConnection>(&())),
    ];
    let mut out = Vec::new();
    for (kind, resource) in kinds {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        for object in api.list(&ListParams::default()).await? {
            out.push(status_of(kind, serde_json::to_value(&object)?));
        }
    }
    Ok(out)
}

/// Reads the phase from the `Ready`, `Reconciling` and `Stalled` conditions.
fn status_of(kind: &'static str, object: Value) -> ObjectStatus {
    let text = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let generation = object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64);
    let conditions: Vec<&Value> = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    let find = |t: &str| {
        conditions
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
            .copied()
    };
    let field = |c: &Value, f: &str| c.get(f).and_then(Value::as_str).unwrap_or("").to_owned();
    let is_true = |c: Option<&Value>| c.is_some_and(|c| field(c, "status") == "True");
    let ready_condition = find("Ready");
    let current = ready_condition
        .and_then(|c| c.get("observedGeneration"))
        .and_then(Value::as_i64)
        .zip(generation)
        .is_none_or(|(observed, generation)| observed >= generation);
    let ready = is_true(ready_condition) && current;
    let reason = ready_condition
        .map(|c| field(c, "reason"))
        .unwrap_or_default();
    let phase = if object.pointer("/metadata/deletionTimestamp").is_some() {
        format!("Deleting/{reason}")
    } else if ready {
        "Ready".to_owned()
    } else if ready_condition.is_none() {
        "Pending".to_owned()
    } else if is_true(find("Stalled")) {
        format!("Stalled/{reason}")
    } else {
        format!("Reconciling/{reason}")
    };
    let conditions = conditions
        .iter()
        .map(|c| {
            format!(
                "{}={} {}: {}",
                field(c, "type"),
                field(c, "status"),
                field(c, "reason"),
                field(c, "message")
            )
        })
        .collect();
    ObjectStatus {
        kind,
        namespace: text("/metadata/namespace"),
        name: text("/metadata/name"),
        phase: phase.trim_end_matches('/').to_owned(),
        ready,
        conditions,
        object,
    }
}

/// `2/3 Ready · orders-db: Reconciling/WaitingToConfigure · ...`: the count, then each object
/// that is not Ready; `expected` names objects that may not exist yet.
pub fn ready_summary(objects: &[ObjectStatus], expected: &[String]) -> String {
    let ready = objects.iter().filter(|o| o.ready).count();
    let total = objects.len().max(expected.len());
    let mut parts = vec![format!("{ready}/{total} Ready")];
    for name in expected {
        if !objects.iter().any(|o| &o.name == name) {
            parts.push(format!("{name}: not created yet"));
        }
    }
    parts.extend(
        objects
            .iter()
            .filter(|o| !o.ready)
            .map(|o| format!("{}: {}", o.name, o.phase)),
    );
    parts.join(" · ")
}

/// `2 left · orders-db: Deleting/PlanReleased`: what is still being deleted.
pub fn deletion_summary(objects: &[ObjectStatus]) -> String {
    let mut parts = vec![format!("{} left", objects.len())];
    parts.extend(objects.iter().map(|o| format!("{}: {}", o.name, o.phase)));
    parts.join(" · ")
}

/// The progress line on stdout.
pub struct ProgressLine {
    tty: bool,
    width: usize,
    last: String,
    last_print: Option<Instant>,
    drawn: bool,
}

impl ProgressLine {
    /// Redraws in place when stdout is a terminal.
    pub fn new() -> Self {
        Self {
            tty: std::io::stdout().is_terminal(),
            width: terminal_width(),
            last: String::new(),
            last_print: None,
            drawn: false,
        }
    }

    /// Shows `[12s] <body>`.
    pub fn show(&mut self, elapsed: Duration, body: &str) {
        let line = format!("[{:>3}s] {body}", elapsed.as_secs());
        let mut out = std::io::stdout().lock();
        if self.tty {
            let line: String = line.chars().take(self.width.saturating_sub(1)).collect();
            let _ = write!(out, "\r\x1b[2K{line}");
            let _ = out.flush();
            self.drawn = true;
        } else if body != self.last
            || self
                .last_print
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            let _ = writeln!(out, "{line}");
            self.last = body.to_owned();
            self.last_print = Some(Instant::now());
        }
    }

    /// Ends the line on a terminal, so the next output starts on its own line.
    pub fn finish(&mut self) {
        if self.tty && self.drawn {
            println!();
        }
        self.drawn = false;
        self.last.clear();
        self.last_print = None;
    }
}

/// Columns of the terminal on stdout (`COLUMNS`, else 100).
fn terminal_width() -> usize {
    if let Ok(size) = rustix::termios::tcgetwinsize(std::io::stdout())
        && size.ws_col > 0
    {
        return usize::from(size.ws_col);
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(conditions: Value, generation: i64) -> Value {
        serde_json::json!({
            "metadata": {"name": "orders-db", "namespace": "default", "generation": generation},
            "status": {"conditions": conditions},
        })
    }

    #[test]
    fn phase_reads_like_the_conditions() {
        let waiting = object(
            serde_json::json!([
                {"type": "Ready", "status": "False", "reason": "WaitingToConfigure", "observedGeneration": 1},
                {"type": "Reconciling", "status": "True", "reason": "WaitingToConfigure"},
            ]),
            1,
        );
        assert_eq!(
            status_of("BackupPlan", waiting).phase,
            "Reconciling/WaitingToConfigure"
        );

        let stalled = object(
            serde_json::json!([
                {"type": "Ready", "status": "False", "reason": "InvalidSpec"},
                {"type": "Stalled", "status": "True", "reason": "InvalidSpec"},
            ]),
            1,
        );
        assert_eq!(
            status_of("BackupPlan", stalled).phase,
            "Stalled/InvalidSpec"
        );

        let fresh = serde_json::json!({"metadata": {"name": "n", "generation": 1}});
        assert_eq!(status_of("BackupPlan", fresh).phase, "Pending");
    }

    #[test]
    fn ready_for_an_older_generation_is_not_ready() {
        let stale = object(
            serde_json::json!([{"type": "Ready", "status": "True", "reason": "Running", "observedGeneration": 1}]),
            2,
        );
        assert!(!status_of("BackupPlan", stale).ready);
        let current = object(
            serde_json::json!([{"type": "Ready", "status": "True", "reason": "Running", "observedGeneration": 2}]),
            2,
        );
        assert!(status_of("BackupPlan", current).ready);
    }

    #[test]
    fn summary_counts_expected_objects_not_yet_created() {
        let ready = object(
            serde_json::json!([{"type": "Ready", "status": "True", "reason": "Running"}]),
            1,
        );
        let objects = vec![status_of("BackupPlan", ready)];
        let expected = vec!["orders-db".to_owned(), "orders-db-public".to_owned()];
        assert_eq!(
            ready_summary(&objects, &expected),
            "1/2 Ready · orders-db-public: not created yet"
        );
    }
}
