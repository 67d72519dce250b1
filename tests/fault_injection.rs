//! The operator binary against a cloud where 30 % of the calls of every action fail: outages
//! (503, 500), throttling (`Throttling.User`), a busy instance
//! (`OperationDenied.DBInstanceStatus`) and timeouts, some of them after the work was done
//! (the answer is lost, not the request). Every object still converges, the cloud holds
//! exactly what the live objects describe, the number of calls stays within a stated bound
//! (no hot loop), and the process never panics.

#[allow(dead_code)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use alicloud_db_operator::crd::{BackupPlan, BackupSchedule, RdsConnection, Weekday};
use serde_json::json;

use common::{
    ACCESS_KEY_ID, CREDENTIALS, Operator, Setup, World, backup_plan_spec, eventually, fast_flags,
    is_ready, rds_connection,
};

/// Share of calls that fail.
const FAILURE_RATE: f64 = 0.3;
/// The operator's deadline per HTTP attempt; the emulator holds a timed-out call longer.
const CLIENT_TIMEOUT: &str = "1s";
/// How long the emulator holds a timed-out call.
const HOLD_MS: u64 = 2_500;
/// The operator's resync period in `fast_flags`.
const RESYNC_S: f64 = 5.0;
/// BackupPlans and RdsConnections (one per instance: RDS allows one public endpoint each).
const PLANS: usize = 6;
const CONNECTIONS: usize = 4;

/// Successful calls one object needs over this test's lifecycle without faults: a plan reads
/// DBS before creating, then Create, Configure, Start, describes until `running`, one Modify,
/// and on deletion a describe, billing and Release (≈ 10); a connection reads the instance and
/// its endpoints, Allocates, polls while the instance is busy, Modifies once and Releases
/// (≈ 10). 12 allowed.
const CALLS_PER_LIFECYCLE: f64 = 12.0;
/// Reads per object per resync (a connection reads the instance and its endpoints).
const READS_PER_RESYNC: f64 = 2.0;
/// Factor for the failures: each attempt fails with p = 0.3, and a failed reconcile starts
/// over from its first read, so a reconcile of k calls costs ((1/(1-p))^k - 1)/p attempts on
/// average: 2.1× its k calls for k = 3, 2.6× for k = 4. Client retries of safe calls are
/// included in that. 3 leaves room for the variance of a short run.
const FAULT_FACTOR: f64 = 3.0;

fn plan_name(i: usize) -> String {
    format!("plan-{i}")
}

fn conn_name(i: usize) -> String {
    format!("conn-{i}")
}

fn instance(i: usize) -> String {
    format!("rm-bp1faults000{i}")
}

/// The mix of failures every action draws from, 30 % of its calls: outages, throttling, a
/// busy instance, lost requests and lost answers (`lost_requests: false` leaves out the
/// timeouts before the work, and doubles the lost answers instead).
fn faults(lost_requests: bool) -> serde_json::Value {
    let lost = if lost_requests {
        json!({"timeoutMs": HOLD_MS})
    } else {
        json!({"timeoutMs": HOLD_MS, "afterWork": true})
    };
    json!({
        "errorRate": FAILURE_RATE,
        "mix": [
            {"code": "ServiceUnavailable", "httpStatus": 503},
            {"code": "InternalError", "httpStatus": 500},
            {"code": "Throttling.User", "httpStatus": 400},
            {"code": "OperationDenied.DBInstanceStatus", "httpStatus": 400},
            lost,
            {"timeoutMs": HOLD_MS, "afterWork": true}
        ]
    })
}

/// Waits until every named object is Ready for its generation; a shorter wait than the
/// world's, since the whole binary must stay under a minute.
async fn all_ready<K>(world: &World, names: &[String])
where
    K: common::world::Object + common::objects::Conditioned,
{
    eventually(
        &format!("{} {names:?} Ready", std::any::type_name::<K>()),
        Duration::from_secs(45),
        || async {
            let mut not_ready = Vec::new();
            for name in names {
                let obj: K = world.get(name).await;
                if !is_ready(&obj) {
                    let status = serde_json::to_value(&obj).unwrap_or_default()["status"].clone();
                    not_ready.push(format!("{name}: {status}"));
                }
            }
            if not_ready.is_empty() {
                Ok(())
            } else {
                Err(not_ready.join("\n"))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_thirty_percent_failures_every_object_converges_within_a_bounded_number_of_calls() {
    let instances: Vec<String> = (0..CONNECTIONS).map(instance).collect();
    let world = World::start(
        "faults",
        Setup {
            instances: instances.clone(),
            ..Setup::default()
        },
    )
    .await;
    world
        .admin(reqwest::Method::PUT, "/faults/*", faults(true))
        .await;
    // A StartBackupPlan that got no answer may have started the plan, and each start may take
    // a full backup: by design it is not sent again before PRECHECK_TIMEOUT (15 min) while the
    // plan stays `init` (see the BackupPlan `Prechecking` reason), so a lost Start *request*
    // converges only after 15 minutes. Start's answers are lost here, its requests are not.
    world
        .admin(
            reqwest::Method::PUT,
            "/faults/StartBackupPlan",
            faults(false),
        )
        .await;
    let mut args = fast_flags(&world.emulator.url());
    args.extend(
        [
            "--watch-namespace",
            &world.ns,
            "--cloud-timeout",
            CLIENT_TIMEOUT,
        ]
        .iter()
        .map(|s| (*s).to_owned()),
    );
    let mut op = Operator::spawn("faults-op", Operator::command("faults-op", &args));
    let started = Instant::now();

    // Create.
    let plans: Vec<String> = (0..PLANS).map(plan_name).collect();
    let conns: Vec<String> = (0..CONNECTIONS).map(conn_name).collect();
    for name in &plans {
        world
            .create(&BackupPlan::new(name, backup_plan_spec()))
            .await;
    }
    for (i, name) in conns.iter().enumerate() {
        let prefix = format!("faults{i}pub");
        world
            .create(&rds_connection(
                name,
                &instances[i],
                &prefix,
                3306,
                CREDENTIALS,
            ))
            .await;
    }
    all_ready::<BackupPlan>(&world, &plans).await;
    all_ready::<RdsConnection>(&world, &conns).await;

    // Change a spec of each kind.
    let schedule = BackupSchedule {
        weekdays: vec![Weekday::Friday],
        start_time: "03:30".into(),
    };
    world
        .patch::<BackupPlan>(&plans[0], json!({"spec": {"schedule": schedule}}))
        .await;
    world
        .patch::<RdsConnection>(&conns[0], json!({"spec": {"port": 3310}}))
        .await;
    all_ready::<BackupPlan>(&world, &plans).await;
    all_ready::<RdsConnection>(&world, &conns).await;
    let changed: BackupPlan = world.get(&plans[0]).await;
    let changed_id = changed.status.and_then(|s| s.backup_plan_id).expect("id");
    let at_dbs = world.plan_at_dbs(&changed_id);
    assert_eq!(
        at_dbs.backup_period.as_deref().map(str::to_ascii_lowercase),
        Some("friday".to_owned()),
        "{at_dbs:?}"
    );
    let endpoint = world.public_connections(&instances[0]);
    assert_eq!(
        endpoint.iter().map(|c| c.port).collect::<Vec<_>>(),
        [3310],
        "{endpoint:?}"
    );

    // Delete half of them.
    let (gone_plans, live_plans) = plans.split_at(PLANS / 2);
    let (gone_conns, live_conns) = conns.split_at(CONNECTIONS / 2);
    let mut released_ids = Vec::new();
    for name in gone_plans {
        let plan: BackupPlan = world.get(name).await;
        released_ids.push(plan.status.and_then(|s| s.backup_plan_id).expect("id"));
        world.delete::<BackupPlan>(name).await;
    }
    for name in gone_conns {
        world.delete::<RdsConnection>(name).await;
    }
    for name in gone_plans {
        world.wait_gone::<BackupPlan>(name).await;
    }
    for name in gone_conns {
        world.wait_gone::<RdsConnection>(name).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let snapshot = world.snapshot();

    // The cloud holds exactly what the live objects describe.
    for id in &released_ids {
        let plan = snapshot.plan(id).expect("released plan stays in the state");
        assert_eq!(plan.status, "released", "{plan:?}");
    }
    let mut live_ids = BTreeSet::new();
    for name in live_plans {
        let plan: BackupPlan = world.get(name).await;
        assert!(is_ready(&plan), "{name} still Ready: {:?}", plan.status);
        live_ids.insert(plan.status.and_then(|s| s.backup_plan_id).expect("id"));
    }
    let held: BTreeSet<String> = snapshot
        .plans
        .iter()
        .filter(|p| p.status != "released")
        .map(|p| p.backup_plan_id.clone())
        .collect();
    assert_eq!(
        held, live_ids,
        "exactly one plan per live BackupPlan at DBS (lost answers included): {:#?}",
        snapshot.plans
    );
    for (i, name) in conns.iter().enumerate() {
        let endpoints = snapshot.public_connections(Some(&instances[i]));
        let expected = usize::from(live_conns.contains(name));
        assert_eq!(endpoints.len(), expected, "{name}: {endpoints:?}");
    }

    // The faults did happen, in every form.
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for call in &snapshot.calls {
        *outcomes.entry(call.outcome.clone()).or_default() += 1;
    }
    let total = snapshot.calls.len();
    let failed = total - outcomes.get("Success").copied().unwrap_or_default();
    eprintln!("{total} calls in {elapsed:.1} s, {failed} failed: {outcomes:?}");
    for code in [
        "ServiceUnavailable",
        "InternalError",
        "Throttling.User",
        "OperationDenied.DBInstanceStatus",
        "Timeout",
    ] {
        assert!(
            outcomes.contains_key(code),
            "no {code} injected: {outcomes:?}"
        );
    }
    let share = failed as f64 / total as f64;
    assert!(
        (0.15..0.45).contains(&share),
        "about 30 % of the calls failed: {share:.2} ({outcomes:?})"
    );

    // No hot loop: the calls stay within the budget of the lifecycle and the resyncs.
    let objects = (PLANS + CONNECTIONS) as f64;
    let lifecycle = objects * CALLS_PER_LIFECYCLE;
    let resyncs = objects * READS_PER_RESYNC * (elapsed / RESYNC_S + 1.0);
    let bound = FAULT_FACTOR * (lifecycle + resyncs);
    eprintln!(
        "bound {bound:.0} = {FAULT_FACTOR} × ({lifecycle:.0} lifecycle + {resyncs:.0} resync reads)"
    );
    assert!(
        (total as f64) <= bound,
        "{total} calls > bound {bound:.0}: {outcomes:?}"
    );
    // No loop once converged: over a quiet window, with the faults still on, the live objects
    // cost their resync reads (failed ones retried) and nothing more.
    let window = Duration::from_secs(6);
    let before = world.call_count();
    tokio::time::sleep(window).await;
    let quiet = world.call_count() - before;
    let live = (live_plans.len() + live_conns.len()) as f64;
    let quiet_bound = 2.0 * live * READS_PER_RESYNC * (window.as_secs_f64() / RESYNC_S + 1.0)
        / (1.0 - FAILURE_RATE);
    eprintln!("{quiet} calls in the quiet {window:?}, bound {quiet_bound:.0}");
    assert!(
        (quiet as f64) <= quiet_bound,
        "{quiet} calls in {window:?} once converged > {quiet_bound:.0}"
    );
    // At all: the account of every call is the operator's (no call escaped the faults).
    assert!(
        snapshot
            .calls
            .iter()
            .all(|c| c.access_key_id == ACCESS_KEY_ID),
        "calls by the operator's account only"
    );

    // The process lives and never panicked.
    assert!(op.running(), "operator exited:\n{}", op.log_tail(40));
    let log = op.log();
    assert!(
        !log.contains("panicked"),
        "the operator panicked:\n{}",
        log.lines()
            .filter(|l| l.contains("panicked"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    op.kill();
}

/// A modification that fails (an outage, a busy instance) is not a modification DBS refuses to
/// keep: after three failed attempts in a row it is sent a fourth time and the plan converges,
/// never `DriftNotConverging` (which stops sending until the spec changes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_modifications_are_retried_not_taken_for_drift_that_does_not_converge() {
    let world = World::start(
        "faults-drift",
        Setup {
            controllers: vec![common::Controller::BackupPlan],
            ..Setup::default()
        },
    )
    .await;
    world
        .create(&BackupPlan::new("drift", backup_plan_spec()))
        .await;
    let _: BackupPlan = world.wait_ready("drift").await;
    common::fail_next(
        &world.emulator,
        "ModifyBackupStrategy",
        ("InternalError", 500),
        3,
    )
    .await;
    let schedule = BackupSchedule {
        weekdays: vec![Weekday::Sunday],
        start_time: "01:00".into(),
    };
    world
        .patch::<BackupPlan>("drift", json!({"spec": {"schedule": schedule}}))
        .await;
    eventually(
        "drift Ready with the new schedule",
        Duration::from_secs(30),
        || async {
            let plan: BackupPlan = world.get("drift").await;
            let stalled = common::condition(&plan, "Stalled").filter(|c| c.status == "True");
            if let Some(c) = stalled {
                panic!("stalled: {} {}", c.reason, c.message);
            }
            is_ready(&plan)
                .then_some(())
                .ok_or_else(|| format!("{:?}", plan.status))
        },
    )
    .await;
    let outcomes: Vec<String> = world
        .outcomes("ModifyBackupStrategy")
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(
        outcomes,
        ["InternalError", "InternalError", "InternalError", "Success"],
        "three failures, then the change"
    );
}
