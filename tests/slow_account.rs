//! One slow account cannot stall the others: the operator binary against a real kube-apiserver
//! (`alicloud_testenv`) and the emulator, with two accounts, one of which the emulator's admin
//! API makes slow (`PUT /_emulator/faults/*` with an `accountId`).

#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use alicloud_db_operator::crd::{BackupPlan, BackupPlanSpec, CredentialsRef};
use reqwest::Method;
use serde_json::json;

use common::{
    ACCESS_KEY_ID, CREDENTIALS, Operator, Setup, World, backup_plan_spec, condition, eventually,
    fast_flags,
};

/// Reconciles at once per kind: small, so that starving them is easy.
const CONCURRENCY: usize = 2;
/// Objects of the slow account: every slot busy, and more waiting.
const SLOW_OBJECTS: usize = CONCURRENCY + 4;
/// The operator's resync period: the slow account's cache goes stale quickly.
const RESYNC: Duration = Duration::from_secs(4);
/// Latency the emulator adds to each call of the slow account: below the operator's 15 s per
/// attempt, so each call succeeds, only slowly (slowness alone, no error).
const LATENCY: Duration = Duration::from_secs(12);

// Starvation, before the sweep left the reconcile slots: a reconcile of the slow account whose
// cache was stale held its slot for the sweep (one page, LATENCY) and then for a describe by id
// (another LATENCY, the sweep being older than the resync period when it ended), 24 s, while its
// other objects waited on the sweep lock, each in a slot too. With SLOW_OBJECTS = 6 requeued
// every RESYNC (4 s, far shorter than their 24 s in a slot) and CONCURRENCY = 2, four of them are
// always queued before anything new: each reconcile of another account waits about
// (6 - 2) / 2 × 24 s = 48 s for a slot, at best. Creating a plan to Ready takes at least four
// reconciles (create, configure, start, precheck), ≥ 190 s; a deletion takes one, ≥ 48 s.
// Measured on that code: the new plan was not reconciled even once in 400 s.
/// Bound on a new plan of the other account becoming Ready (≈ 190 s when starved).
const READY_WITHIN: Duration = Duration::from_secs(25);
/// Bound on a plan of the other account being released and its object gone (≈ 48 s when
/// starved).
const DELETED_WITHIN: Duration = Duration::from_secs(15);

/// The second account's key, and the Secret holding it.
const OTHER_KEY: (&str, &str) = ("LTAI-other-account", "other-secret");
const OTHER_CREDENTIALS: &str = "other-account";

/// The samples' plan, made with the credentials Secret `credentials`.
fn spec_of(credentials: &str) -> BackupPlanSpec {
    BackupPlanSpec {
        credentials_ref: Some(CredentialsRef {
            name: credentials.into(),
        }),
        ..backup_plan_spec()
    }
}

/// The operator binary watching the world's namespace with [`CONCURRENCY`] and [`RESYNC`].
fn operator(w: &World) -> Operator {
    let mut args = fast_flags(&w.emulator.url());
    let resync = args
        .iter()
        .position(|a| a == "--resync-period")
        .expect("fast flags set the resync period");
    args[resync + 1] = format!("{}s", RESYNC.as_secs());
    args.extend([
        "--watch-namespace".to_owned(),
        w.ns.clone(),
        "--concurrency".to_owned(),
        CONCURRENCY.to_string(),
    ]);
    Operator::spawn("slow-account", Operator::command("slow-account", &args))
}

/// Whether `obj` is Ready (`Available`) at its current generation.
fn ready(obj: &BackupPlan) -> bool {
    common::is_ready(obj)
}

/// The plan id of a Ready object.
fn plan_id(obj: &BackupPlan) -> String {
    obj.status
        .as_ref()
        .and_then(|s| s.backup_plan_id.clone())
        .expect("a Ready object has a plan id")
}

/// Waits at most `within` for the BackupPlan `name` to be Ready; how long it took.
async fn time_to_ready(w: &World, name: &str, within: Duration, op: &Operator) -> Duration {
    let started = Instant::now();
    let api = w.api::<BackupPlan>();
    let what = format!("{name} Ready (operator log {})", op.log_path().display());
    eventually(&what, within, || async {
        match api.get_opt(name).await {
            Ok(Some(obj)) if ready(&obj) => Ok(()),
            Ok(obj) => Err(format!("{:?}", obj.and_then(|o| o.status))),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_account_does_not_stall_the_other_accounts_creations_and_deletions() {
    let w = World::start("slow-account", Setup::default()).await;
    let (key, secret) = OTHER_KEY;
    w.admin(
        Method::POST,
        "/accounts",
        json!({"accessKeyId": key, "accessKeySecret": secret}),
    )
    .await;
    w.create_key_secret(OTHER_CREDENTIALS, OTHER_KEY, Default::default())
        .await;
    let op = operator(&w);

    // The slow account's objects, and one of the other account's, Ready while all is quick.
    let slow: Vec<String> = (0..SLOW_OBJECTS).map(|i| format!("slow-{i}")).collect();
    for name in &slow {
        w.create(&BackupPlan::new(name, spec_of(CREDENTIALS))).await;
    }
    w.create(&BackupPlan::new("doomed", spec_of(OTHER_CREDENTIALS)))
        .await;
    for name in slow.iter().map(String::as_str).chain(["doomed"]) {
        time_to_ready(&w, name, Duration::from_secs(90), &op).await;
    }
    let doomed = plan_id(&w.get::<BackupPlan>("doomed").await);

    // Every call of the slow account now takes LATENCY; its sweeps go stale within RESYNC, and
    // its objects keep coming back for them.
    w.admin(
        Method::PUT,
        "/faults/*",
        json!({"accountId": ACCESS_KEY_ID, "latencyMs": LATENCY.as_millis()}),
    )
    .await;
    tokio::time::sleep(RESYNC * 2).await;

    w.create(&BackupPlan::new("newcomer", spec_of(OTHER_CREDENTIALS)))
        .await;
    let took = time_to_ready(&w, "newcomer", READY_WITHIN, &op).await;
    eprintln!("the other account's new plan was Ready in {took:?}");

    let started = Instant::now();
    w.delete::<BackupPlan>("doomed").await;
    let api = w.api::<BackupPlan>();
    eventually("doomed released and gone", DELETED_WITHIN, || async {
        let status = w.plan_at_dbs(&doomed).status;
        match api.get_opt("doomed").await {
            Ok(None) if status == "released" => Ok(()),
            Ok(obj) => Err(format!("plan {status}, object present: {}", obj.is_some())),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    eprintln!(
        "the other account's plan was released in {:?}",
        started.elapsed()
    );

    // The slow account's objects were only slow: still Ready, and no Warning about them.
    for name in &slow {
        let obj = w.get::<BackupPlan>(name).await;
        let ready_condition = condition(&obj, "Ready");
        assert!(
            ready(&obj),
            "{name} is no longer Ready: {ready_condition:?}"
        );
        let events = w.events_about(name).await;
        let warnings: Vec<_> = events.iter().filter(|(t, _)| t == "Warning").collect();
        assert!(warnings.is_empty(), "{name}: {warnings:?}");
    }
}
