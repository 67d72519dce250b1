//! The operator's Prometheus metrics: reconciles under the names controller-runtime users'
//! dashboards already know, every Alibaba Cloud call, rate-limiter waits, managed objects by
//! readiness and leadership. Served as Prometheus text by [`crate::server`].
//!
//! Labels are bounded sets (controller, result, product, action, error code, kind): never an
//! object's name.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::cloud::{CallObserver, Product};
use crate::sync::lock;

/// `controller` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: &'static str,
}

/// `controller`, `result` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    controller: &'static str,
    result: &'static str,
}

/// `product`, `action`, `code` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    product: &'static str,
    action: String,
    code: String,
}

/// `product`, `action` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    product: &'static str,
    action: String,
}

/// `action` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimiterLabels {
    action: String,
}

/// `kind`, `ready` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    kind: &'static str,
    ready: &'static str,
}

/// `kind`, `reason`, `outcome` labels of a deletion that did not release its cloud resource.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeletionLabels {
    kind: &'static str,
    reason: &'static str,
    outcome: &'static str,
}

/// `kind` label of a resource kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// `name` label (the Lease).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabels {
    name: String,
}

/// Counts objects of one kind: `(ready, not ready)`, read from a controller's cache at scrape time.
type Census = Box<dyn Fn() -> (usize, usize) + Send + Sync>;

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the operator exports, and the registry they are encoded from.
pub struct Metrics {
    registry: Registry,
    reconcile_total: Family<ReconcileLabels, Counter>,
    reconcile_errors: Family<ControllerLabels, Counter>,
    reconcile_time: HistogramFamily<ControllerLabels>,
    max_concurrent: Family<ControllerLabels, Gauge>,
    active_workers: Family<ControllerLabels, Gauge>,
    api_requests: Family<RequestLabels, Counter>,
    api_duration: HistogramFamily<ActionLabels>,
    limiter_wait: HistogramFamily<LimiterLabels>,
    resources: Family<ResourceLabels, Gauge>,
    deletions: Family<DeletionLabels, Counter>,
    orphans: Family<KindLabels, Gauge>,
    leader: Family<LeaseLabels, Gauge>,
    censuses: Mutex<Vec<(&'static str, Census)>>,
}

/// `metric`, registered in `registry` under `name`.
fn registered<M: prometheus_client::registry::Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// A family of latency histograms.
fn histograms<L: Clone + std::hash::Hash + Eq>() -> HistogramFamily<L> {
    Family::new_with_constructor(latency_histogram)
}

fn latency_histogram() -> Histogram {
    // 5 ms … ~41 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry with every family registered and no samples yet.
    pub fn new() -> Self {
        let mut r = Registry::default();
        Self {
            // The encoder appends `_total` to counters.
            reconcile_total: registered(
                &mut r,
                "controller_runtime_reconcile",
                "Total number of reconciliations per controller and result",
                Family::default(),
            ),
            reconcile_errors: registered(
                &mut r,
                "controller_runtime_reconcile_errors",
                "Total number of reconciliation errors per controller",
                Family::default(),
            ),
            reconcile_time: registered(
                &mut r,
                "controller_runtime_reconcile_time_seconds",
                "Length of time per reconciliation per controller",
                histograms(),
            ),
            max_concurrent: registered(
                &mut r,
                "controller_runtime_max_concurrent_reconciles",
                "Maximum number of concurrent reconciles per controller",
                Family::default(),
            ),
            active_workers: registered(
                &mut r,
                "controller_runtime_active_workers",
                "Number of currently used workers per controller",
                Family::default(),
            ),
            api_requests: registered(
                &mut r,
                "alicloud_api_requests",
                "HTTP requests sent to Alibaba Cloud, by product, action and result code \
                 (Success, the cloud's error code, or the client's classification)",
                Family::default(),
            ),
            api_duration: registered(
                &mut r,
                "alicloud_api_request_duration_seconds",
                "Duration of HTTP requests to Alibaba Cloud, by product and action",
                histograms(),
            ),
            limiter_wait: registered(
                &mut r,
                "alicloud_ratelimiter_wait_seconds",
                "Time calls waited in the client-side rate limiter before being sent, by action",
                histograms(),
            ),
            resources: registered(
                &mut r,
                "alicloud_db_operator_resources",
                "Objects the operator manages, by kind and Ready condition",
                Family::default(),
            ),
            deletions: registered(
                &mut r,
                "alicloud_db_operator_deletion_problems",
                "Deletions whose cloud resource was not released: attempts that failed and are \
                 retried (outcome=blocked), finalizers removed with the resource left in the \
                 cloud (outcome=abandoned, given_up), by kind and reason",
                Family::default(),
            ),
            orphans: registered(
                &mut r,
                "alicloud_db_operator_orphaned_resources",
                "Cloud resources that look created by this operator (by their name) but that no \
                 object manages, by kind, as of the last check (an interrupted uninstall, or \
                 finalizers removed by hand)",
                Family::default(),
            ),
            leader: registered(
                &mut r,
                "leader_election_master_status",
                "1 while this replica holds the leader-election Lease, else 0",
                Family::default(),
            ),
            registry: r,
            censuses: Mutex::default(),
        }
    }

    /// Records that `controller` runs at most `concurrency` reconciles at once.
    pub fn controller_started(&self, controller: &'static str, concurrency: u16) {
        let labels = ControllerLabels { controller };
        self.max_concurrent
            .get_or_create(&labels)
            .set(i64::from(concurrency));
        // Series that start at zero, so that rates and alerts work before the first error.
        let _ = self.active_workers.get_or_create(&labels);
        let _ = self.reconcile_errors.get_or_create(&labels);
        for result in ["success", "error"] {
            let _ = self
                .reconcile_total
                .get_or_create(&ReconcileLabels { controller, result });
        }
    }

    /// Runs one reconcile of `controller`, counting it as an active worker meanwhile and
    /// recording its duration and result.
    pub async fn reconcile<T, E, F>(&self, controller: &'static str, reconcile: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        let labels = ControllerLabels { controller };
        let workers = self.active_workers.get_or_create(&labels).clone();
        workers.inc();
        let started = Instant::now();
        let result = reconcile.await;
        workers.dec();
        self.reconcile_time
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        let outcome = if result.is_ok() { "success" } else { "error" };
        self.reconcile_total
            .get_or_create(&ReconcileLabels {
                controller,
                result: outcome,
            })
            .inc();
        if result.is_err() {
            self.reconcile_errors.get_or_create(&labels).inc();
        }
        result
    }

    /// Counts the objects of `kind` at each scrape with `census` (ready, not ready).
    pub fn count_resources(
        &self,
        kind: &'static str,
        census: impl Fn() -> (usize, usize) + Send + Sync + 'static,
    ) {
        lock(&self.censuses).push((kind, Box::new(census)));
    }

    /// Counts a deletion of a `kind` object that did not release its cloud resource:
    /// `outcome` is `blocked` (failed, retried), `abandoned` (by the user) or `given_up`.
    pub fn deletion_problem(
        &self,
        kind: &'static str,
        reason: &'static str,
        outcome: &'static str,
    ) {
        self.deletions
            .get_or_create(&DeletionLabels {
                kind,
                reason,
                outcome,
            })
            .inc();
    }

    /// Sets how many cloud resources of `kind` look orphaned.
    pub fn set_orphans(&self, kind: &'static str, count: usize) {
        self.orphans
            .get_or_create(&KindLabels { kind })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Sets `leader_election_master_status{name}`.
    pub fn set_leader(&self, lease: &str, leading: bool) {
        self.leader
            .get_or_create(&LeaseLabels {
                name: lease.to_owned(),
            })
            .set(i64::from(leading));
    }

    /// The Prometheus text exposition of every metric, objects counted now.
    pub fn encode(&self) -> String {
        for (kind, census) in lock(&self.censuses).iter() {
            let (ready, not_ready) = census();
            for (label, count) in [("true", ready), ("false", not_ready)] {
                self.resources
                    .get_or_create(&ResourceLabels { kind, ready: label })
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
            }
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}

impl CallObserver for Metrics {
    fn attempt(&self, product: Product, action: &str, code: &str, elapsed: Duration) {
        self.api_requests
            .get_or_create(&RequestLabels {
                product: product.code(),
                action: action.to_owned(),
                code: code.to_owned(),
            })
            .inc();
        self.api_duration
            .get_or_create(&ActionLabels {
                product: product.code(),
                action: action.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    fn limiter_wait(&self, action: &str, waited: Duration) {
        self.limiter_wait
            .get_or_create(&LimiterLabels {
                action: action.to_owned(),
            })
            .observe(waited.as_secs_f64());
    }
}

/// Metrics shared by the process: the server, the cloud client and the controllers.
pub type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_family_is_exported_under_its_documented_name() {
        let m = Metrics::new();
        m.controller_started("backupplan", 8);
        let ok: Result<(), ()> = m.reconcile("backupplan", async { Ok(()) }).await;
        assert!(ok.is_ok());
        let err: Result<(), ()> = m.reconcile("backupplan", async { Err(()) }).await;
        assert!(err.is_err());
        m.attempt(
            Product::Dbs,
            "CreateBackupPlan",
            "Success",
            Duration::from_millis(3),
        );
        m.limiter_wait("CreateBackupPlan", Duration::ZERO);
        m.count_resources("BackupPlan", || (2, 1));
        m.set_leader("alicloud-db-operator", true);
        let text = m.encode();
        for line in [
            r#"controller_runtime_reconcile_total{controller="backupplan",result="success"} 1"#,
            r#"controller_runtime_reconcile_total{controller="backupplan",result="error"} 1"#,
            r#"controller_runtime_reconcile_errors_total{controller="backupplan"} 1"#,
            r#"controller_runtime_reconcile_time_seconds_count{controller="backupplan"} 2"#,
            r#"controller_runtime_max_concurrent_reconciles{controller="backupplan"} 8"#,
            r#"controller_runtime_active_workers{controller="backupplan"} 0"#,
            r#"alicloud_api_requests_total{product="dbs",action="CreateBackupPlan",code="Success"} 1"#,
            r#"alicloud_api_request_duration_seconds_count{product="dbs",action="CreateBackupPlan"} 1"#,
            r#"alicloud_ratelimiter_wait_seconds_count{action="CreateBackupPlan"} 1"#,
            r#"alicloud_db_operator_resources{kind="BackupPlan",ready="true"} 2"#,
            r#"alicloud_db_operator_resources{kind="BackupPlan",ready="false"} 1"#,
            r#"leader_election_master_status{name="alicloud-db-operator"} 1"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
