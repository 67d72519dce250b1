//! The operator as users run it: one process (or two, with leader election) against a real
//! kube-apiserver and the emulator over HTTP. Its `/metrics` must agree with what the emulator
//! recorded, and of two replicas only the Lease holder may call the cloud.

#[allow(dead_code)]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alicloud_emulator::CallRecord;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::Value;

use common::{
    Operator, apply_examples, delete_samples, eventually, fast_flags, get, kubectl, ready_states,
    sample, sample_emulator, wait_examples_ready,
};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

fn user_agent_of(pod: &str) -> String {
    format!(
        "AlibabaCloud ({}; {}) alicloud-db-operator/{} pod/{pod}",
        std::env::consts::OS,
        std::env::consts::ARCH,
        env!("CARGO_PKG_VERSION")
    )
}

/// `leader_election_master_status` of the test Lease, as the replica at `url` exports it.
async fn leader_status(url: &str) -> Option<f64> {
    let text = get(&format!("{url}/metrics")).await.1;
    sample(
        &text,
        r#"leader_election_master_status{name="alicloud-db-operator-test"}"#,
    )
}

/// Waits until the replica at `url` says it leads.
async fn wait_until_leading(url: &str, name: &str) {
    eventually(
        &format!("{name} leads"),
        Duration::from_secs(30),
        || async { (leader_status(url).await == Some(1.0)).then_some(()) },
    )
    .await;
}

/// Flags for a leader-electing replica watching `ns`, with a 4 s Lease in `ns`.
fn electing_flags(url: &str, ns: &str) -> Vec<String> {
    let mut flags = fast_flags(url);
    flags.extend(
        [
            "--watch-namespace",
            ns,
            "--leader-elect",
            "--leader-election-id",
            "alicloud-db-operator-test",
            "--leader-election-namespace",
            ns,
            "--leader-election-lease-duration",
            "4s",
        ]
        .iter()
        .map(|s| (*s).to_owned()),
    );
    flags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_lifecycle_match_the_calls_the_emulator_recorded() {
    let plane = alicloud_testenv::shared();
    let ns = plane.create_namespace("metrics").await;
    let emulator = sample_emulator().await;
    let mut op = Operator::spawn(
        "metrics-op",
        Operator::command("metrics-op", &electing_flags(&emulator.url(), &ns)),
    );
    let url = op.metrics_url().await;
    let (code, body) = get(&format!("{url}/healthz")).await;
    assert_eq!(code, 200, "healthz: {body}");
    eventually("readyz 200", Duration::from_secs(60), || async {
        (get(&format!("{url}/readyz")).await.0 == 200).then_some(())
    })
    .await;

    apply_examples(&ns);
    wait_examples_ready(&ns, &mut op).await;
    let text = eventually(
        "resources gauge shows 2 ready plans",
        Duration::from_secs(10),
        || async {
            let text = get(&format!("{url}/metrics")).await.1;
            (sample(
                &text,
                r#"alicloud_db_operator_resources{kind="BackupPlan",ready="true"}"#,
            ) == Some(2.0))
            .then_some(text)
        },
    )
    .await;
    assert_eq!(
        sample(
            &text,
            r#"alicloud_db_operator_resources{kind="RdsConnection",ready="true"}"#
        ),
        Some(1.0),
        "{text}"
    );

    delete_samples(&ns);
    // Deletions are done; the last calls (releases) are in the emulator's log.
    let text = get(&format!("{url}/metrics")).await.1;
    let calls = emulator.snapshot().calls;
    let ua = user_agent_of("metrics-op");
    let mut recorded: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for c in &calls {
        assert_eq!(
            c.user_agent,
            ua.as_str(),
            "every call names the operator: {c:?}"
        );
        *recorded
            .entry((c.product.clone(), c.action.clone(), c.outcome.clone()))
            .or_default() += 1.0;
    }
    for action in [
        "CreateBackupPlan",
        "ConfigureBackupPlan",
        "StartBackupPlan",
        "ReleaseBackupPlan",
    ] {
        assert!(
            recorded.contains_key(&("dbs".into(), action.into(), "Success".into())),
            "the lifecycle calls {action}: {recorded:?}"
        );
    }
    for (product, action) in [
        ("rds", "AllocateInstancePublicConnection"),
        ("rds", "ReleaseInstanceConnection"),
    ] {
        assert!(
            recorded.contains_key(&(product.into(), action.into(), "Success".into())),
            "the lifecycle calls {action}: {recorded:?}"
        );
    }
    // Every call the emulator saw is counted once, under its outcome, and nothing else is.
    let mut exported_total = 0.0;
    for line in text
        .lines()
        .filter(|l| l.starts_with("alicloud_api_requests_total{"))
    {
        exported_total += line
            .rsplit_once(' ')
            .and_then(|(_, v)| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    }
    for ((product, action, outcome), count) in &recorded {
        let series = format!(
            r#"alicloud_api_requests_total{{product="{product}",action="{action}",code="{outcome}"}}"#
        );
        assert_eq!(sample(&text, &series), Some(*count), "{series}\n{text}");
        let duration = format!(
            r#"alicloud_api_request_duration_seconds_count{{product="{product}",action="{action}"}}"#
        );
        assert!(
            sample(&text, &duration).unwrap_or(0.0) >= *count,
            "{duration}"
        );
        let waits = format!(r#"alicloud_ratelimiter_wait_seconds_count{{action="{action}"}}"#);
        assert!(sample(&text, &waits).unwrap_or(0.0) >= *count, "{waits}");
    }
    assert_eq!(
        exported_total,
        calls.len() as f64,
        "alicloud_api_requests_total sums to the emulator's call count\n{text}"
    );

    for controller in ["backupplan", "rdsconnection", "credentialssecret"] {
        let ok = sample(
            &text,
            &format!(
                r#"controller_runtime_reconcile_total{{controller="{controller}",result="success"}}"#
            ),
        );
        assert!(ok.unwrap_or(0.0) >= 1.0, "{controller} reconciled: {text}");
        for series in [
            format!(r#"controller_runtime_reconcile_errors_total{{controller="{controller}"}}"#),
            format!(r#"controller_runtime_active_workers{{controller="{controller}"}}"#),
        ] {
            assert!(sample(&text, &series).is_some(), "{series}\n{text}");
        }
        assert_eq!(
            sample(
                &text,
                &format!(
                    r#"controller_runtime_max_concurrent_reconciles{{controller="{controller}"}}"#
                )
            ),
            Some(64.0),
            "the default --concurrency"
        );
        let count = sample(
            &text,
            &format!(
                r#"controller_runtime_reconcile_time_seconds_count{{controller="{controller}"}}"#
            ),
        );
        assert!(
            count.unwrap_or(0.0) >= ok.unwrap_or(0.0),
            "{controller} timed"
        );
    }
    assert_eq!(
        sample(
            &text,
            r#"alicloud_db_operator_resources{kind="BackupPlan",ready="true"}"#
        ),
        Some(0.0),
        "deleted plans are no longer counted"
    );
    assert_eq!(leader_status(&url).await, Some(1.0), "it leads");
    assert!(op.running(), "operator still up:\n{}", op.log_tail(20));
    let status = op.terminate(Duration::from_secs(20)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM stops it cleanly ({status:?}):\n{}",
        op.log_tail(20)
    );
    assert!(
        op.log().contains("released the Lease"),
        "the Lease is released on SIGTERM:\n{}",
        op.log_tail(20)
    );
    let leases: Api<Lease> = Api::namespaced(plane.client().await, &ns);
    let lease = leases
        .get("alicloud-db-operator-test")
        .await
        .expect("Lease exists");
    let holder = lease.spec.and_then(|s| s.holder_identity);
    assert!(
        holder.as_deref().is_none_or(str::is_empty),
        "no holder after release: {holder:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_makes_no_cloud_call_and_takes_over_after_the_leader_is_killed() {
    let plane = alicloud_testenv::shared();
    let ns = plane.create_namespace("leader").await;
    let emulator = sample_emulator().await;
    let flags = electing_flags(&emulator.url(), &ns);
    let mut a = Operator::spawn("replica-a", Operator::command("replica-a", &flags));
    let url_a = a.metrics_url().await;
    // The first replica leads before the second starts, so the roles are known.
    wait_until_leading(&url_a, "replica-a").await;
    let mut b = Operator::spawn("replica-b", Operator::command("replica-b", &flags));
    let url_b = b.metrics_url().await;
    eventually("both replicas ready", Duration::from_secs(30), || async {
        let ra = get(&format!("{url_a}/readyz")).await.0;
        let rb = get(&format!("{url_b}/readyz")).await;
        (ra == 200 && rb.0 == 200 && rb.1.contains("follower")).then_some(())
    })
    .await;
    assert_eq!(leader_status(&url_b).await, Some(0.0), "replica-b follows");

    apply_examples(&ns);
    wait_examples_ready(&ns, &mut a).await;
    let killed_at = now_ms();
    a.kill();
    let killed = Instant::now();
    // Work that arrives while nobody leads.
    let extra = kubectl(&["get", "backupplan", "orders-db", "-n", &ns, "-o", "json"]);
    let mut extra: Value = serde_json::from_str(&extra).expect("JSON");
    extra["metadata"] = serde_json::json!({"name": "orders-db-2"});
    extra["status"] = Value::Null;
    let path = std::env::temp_dir().join(format!("{ns}-orders-db-2.json"));
    std::fs::write(&path, extra.to_string()).expect("write object");
    kubectl(&["create", "-n", &ns, "-f", &path.display().to_string()]);

    wait_until_leading(&url_b, "replica-b").await;
    let takeover = killed.elapsed();
    eprintln!("takeover after SIGKILL of the leader: {takeover:?} (lease duration 4s)");
    eventually(
        "orders-db-2 Ready under the new leader",
        Duration::from_secs(60),
        || async {
            let states = ready_states(&ns, "backupplans");
            (states.get("orders-db-2").map(String::as_str) == Some("True")).then_some(())
        },
    )
    .await;

    let leases: Api<Lease> = Api::namespaced(plane.client().await, &ns);
    let lease = leases
        .get("alicloud-db-operator-test")
        .await
        .expect("Lease exists");
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("replica-b")
    );
    let calls = emulator.snapshot().calls;
    let (ua_a, ua_b) = (user_agent_of("replica-a"), user_agent_of("replica-b"));
    let from_b: Vec<&CallRecord> = calls.iter().filter(|c| c.user_agent == ua_b).collect();
    let from_a = calls.iter().filter(|c| c.user_agent == ua_a).count();
    assert!(from_a > 0, "the first leader did the first lifecycle");
    assert!(
        !from_b.is_empty(),
        "the new leader finished the pending work"
    );
    assert_eq!(
        from_a + from_b.len(),
        calls.len(),
        "every call names one of the replicas"
    );
    for c in from_b {
        assert!(
            c.time_ms >= killed_at,
            "replica-b called the cloud while following: {c:?}"
        );
    }
    assert!(
        b.running(),
        "the new leader keeps running:\n{}",
        b.log_tail(20)
    );
    delete_samples(&ns);
}
