//! Rounds with random timing: each round sets a random latency on every cloud call, changes the
//! objects (creates, schedule or endpoint changes, deletions) while the operator is down or just
//! after it starts, and SIGKILLs it at a random moment. After the last round an operator runs
//! until everything has settled, and the invariants must hold; then everything is deleted and
//! nothing may be left in the cloud.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alicloud_db_operator::crd::{BackupPlan, RdsConnection};
use kube::ResourceExt;
use kube::api::ListParams;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::common::{
    CREDENTIALS, CREDENTIALS_IN_USE, World, backup_plan_spec, clear_faults, eventually,
    rds_connection,
};
use crate::invariants::{Created, assert_inventory_matches, settled};
use crate::{FAST_PRECHECK, INSTANCES, world};

/// At most this many BackupPlans live at once.
const MAX_PLANS: usize = 4;
/// Latency added to every cloud call in a round: up to this many ms.
const MAX_LATENCY_MS: u64 = 150;
/// The SIGKILL comes this long after the operator started, at most.
const MAX_KILL_AFTER_MS: u64 = 4_000;
/// How long the last operator may take to settle everything.
const SETTLE: Duration = Duration::from_secs(120);

/// How many rounds, from which seed.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Rounds of (changes, operator start, SIGKILL).
    pub rounds: u32,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Config {
    /// `ALICLOUD_CRASH_ROUNDS` (default 12) and `ALICLOUD_CRASH_SEED` (default: from the
    /// clock), both printed.
    pub fn from_env() -> Self {
        let rounds = std::env::var("ALICLOUD_CRASH_ROUNDS").ok().map_or(12, |v| {
            v.parse().expect("ALICLOUD_CRASH_ROUNDS is a number")
        });
        let seed = std::env::var("ALICLOUD_CRASH_SEED").ok().map_or_else(
            || {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or_default()
            },
            |v| v.parse().expect("ALICLOUD_CRASH_SEED is a number"),
        );
        eprintln!("crash rounds: ALICLOUD_CRASH_SEED={seed} ALICLOUD_CRASH_ROUNDS={rounds}");
        Self { rounds, seed }
    }
}

/// What the test has done to the objects so far.
#[derive(Default)]
struct Model {
    /// Names of the BackupPlans not deleted.
    plans: BTreeSet<String>,
    /// Names of the RdsConnections not deleted, with the instance each names.
    connections: BTreeMap<String, &'static str>,
    /// Every name deleted.
    deleted: Vec<String>,
    created: Created,
    /// Counter for new names, prefixes.
    serial: u32,
}

/// Whether the operator runs while the test changes the objects.
#[derive(Clone, Copy, PartialEq)]
enum OperatorState {
    Down,
    Up,
}

/// Runs the rounds, the final settling and the teardown; panics when an invariant fails.
pub async fn run(config: Config) {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(config.seed);
    let w = world("cm-rounds", FAST_PRECHECK).await;
    let mut model = Model::default();
    // Something to crash on from the first round: two plans and two connections.
    let mut done = Vec::new();
    for change in [
        Change::CreatePlan,
        Change::CreatePlan,
        Change::CreateConnection,
        Change::CreateConnection,
    ] {
        done.extend(apply(&w, &mut rng, &mut model, OperatorState::Down, change).await);
    }
    eprintln!("before round 0: {done:?}");
    for round in 0..config.rounds {
        let latency = rng.random_range(0..=MAX_LATENCY_MS);
        w.admin(
            reqwest::Method::PUT,
            "/faults/*",
            json!({"latencyMs": latency}),
        )
        .await;
        let down = rng.random_bool(0.3);
        let mut done = Vec::new();
        if down {
            change(&w, &mut rng, &mut model, OperatorState::Down, &mut done).await;
        }
        let mut op = w.operator(&format!("cm-round-{round}"), None);
        if !down {
            change(&w, &mut rng, &mut model, OperatorState::Up, &mut done).await;
        }
        let kill_after = Duration::from_millis(rng.random_range(100..=MAX_KILL_AFTER_MS));
        tokio::time::sleep(kill_after).await;
        assert!(
            op.running(),
            "round {round}: the operator exited by itself (seed {}):\n{}",
            config.seed,
            op.log_tail(40)
        );
        op.kill();
        eprintln!(
            "round {round}: latency {latency} ms, changes while {}: {done:?}, SIGKILL after \
             {kill_after:?}; cloud calls so far {}",
            if down { "down" } else { "up" },
            w.call_count()
        );
    }

    clear_faults(&w.emulator).await;
    let mut last = w.operator("cm-rounds-final", None);
    let what = format!("every object settled (seed {})", config.seed);
    eventually(&what, SETTLE, || async {
        let stuck = still_there(&w, &model.deleted).await;
        if !stuck.is_empty() {
            return Err(format!("deleted but still there: {stuck:?}"));
        }
        settled(&w).await
    })
    .await;
    assert!(last.running(), "{}", last.log_tail(40));
    eprintln!(
        "settled after {} rounds: {} plans and {} connections live, {} deleted, {} created; {} \
         cloud calls; {:?}",
        config.rounds,
        model.plans.len(),
        model.connections.len(),
        model.deleted.len(),
        model.created.plans + model.created.connections,
        w.call_count(),
        started.elapsed()
    );
    assert_inventory_matches(&w, model.created, &model.deleted).await;

    // Teardown: every deletion releases what it owns, and the credentials Secret is let go.
    let names: Vec<String> = model.plans.iter().cloned().collect();
    for name in names {
        delete_plan(&w, &mut model, &name).await;
    }
    let names: Vec<String> = model.connections.keys().cloned().collect();
    for name in names {
        delete_connection(&w, &mut model, &name).await;
    }
    eventually("every object gone", SETTLE, || async {
        let stuck = still_there(&w, &model.deleted).await;
        if stuck.is_empty() {
            Ok(())
        } else {
            Err(format!("{stuck:?}"))
        }
    })
    .await;
    assert_inventory_matches(&w, model.created, &model.deleted).await;
    eventually("the credentials Secret let go", SETTLE, || async {
        let secret = w.secret(CREDENTIALS).await.expect("the Secret exists");
        let finalizers = secret.metadata.finalizers.unwrap_or_default();
        if finalizers.iter().any(|f| f == CREDENTIALS_IN_USE) {
            Err(format!("{finalizers:?}"))
        } else {
            Ok(())
        }
    })
    .await;
    assert!(last.running(), "{}", last.log_tail(40));
}

/// The names of `deleted` that still exist (as either kind).
async fn still_there(w: &World, deleted: &[String]) -> Vec<String> {
    let mut names: BTreeSet<String> = w
        .api::<BackupPlan>()
        .list(&ListParams::default())
        .await
        .expect("list plans")
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    names.extend(
        w.api::<RdsConnection>()
            .list(&ListParams::default())
            .await
            .expect("list connections")
            .items
            .iter()
            .map(ResourceExt::name_any),
    );
    deleted
        .iter()
        .filter(|n| names.contains(*n))
        .cloned()
        .collect()
}

/// What one change can be.
#[derive(Clone, Copy, Debug)]
enum Change {
    CreatePlan,
    Reschedule,
    DeletePlan,
    CreateConnection,
    MoveEndpoint,
    DeleteConnection,
}

/// One to three random changes (of those possible now), each recorded in `done`.
async fn change(
    w: &World,
    rng: &mut StdRng,
    model: &mut Model,
    operator: OperatorState,
    done: &mut Vec<String>,
) {
    const ALL: [Change; 6] = [
        Change::CreatePlan,
        Change::Reschedule,
        Change::DeletePlan,
        Change::CreateConnection,
        Change::MoveEndpoint,
        Change::DeleteConnection,
    ];
    let wanted = rng.random_range(1..=3);
    let mut made = 0;
    // A change not possible now (nothing to delete, every instance taken) is skipped.
    for _ in 0..20 {
        if made == wanted {
            break;
        }
        let change = *ALL.choose(rng).expect("changes");
        if let Some(what) = apply(w, rng, model, operator, change).await {
            done.push(what);
            made += 1;
        }
    }
}

/// Performs `change` when it is possible now; says what it did.
async fn apply(
    w: &World,
    rng: &mut StdRng,
    model: &mut Model,
    operator: OperatorState,
    change: Change,
) -> Option<String> {
    model.serial += 1;
    let serial = model.serial;
    match change {
        Change::CreatePlan => {
            if model.plans.len() >= MAX_PLANS {
                return None;
            }
            let name = format!("plan-{serial}");
            w.create(&BackupPlan::new(&name, backup_plan_spec())).await;
            model.plans.insert(name.clone());
            model.created.plans += 1;
            Some(format!("create {name}"))
        }
        Change::Reschedule => {
            let name = pick(rng, model.plans.iter())?;
            let schedule = random_schedule(rng);
            w.patch::<BackupPlan>(&name, json!({"spec": {"schedule": schedule}}))
                .await;
            Some(format!("schedule {name} {schedule}"))
        }
        Change::DeletePlan => {
            let mut deletable = Vec::new();
            for name in &model.plans {
                let obj: BackupPlan = w.get(name).await;
                let status = obj.status.unwrap_or_default();
                // Precondition of the design: an object whose CreateBackupPlan answer was lost
                // (ClientToken, no id) waits for a human on deletion (see tests/backup_plan.rs).
                // With an id it is always deletable; with neither, only while no operator can be
                // about to send the create.
                let no_create_sent =
                    status.client_token.is_none() && operator == OperatorState::Down;
                if status.backup_plan_id.is_some() || no_create_sent {
                    deletable.push(name.clone());
                }
            }
            let name = pick(rng, deletable.iter())?;
            delete_plan(w, model, &name).await;
            Some(format!("delete {name}"))
        }
        Change::CreateConnection => {
            let taken: BTreeSet<String> = w
                .api::<RdsConnection>()
                .list(&ListParams::default())
                .await
                .expect("list connections")
                .items
                .into_iter()
                .map(|c| c.spec.db_instance_id)
                .collect();
            let free: Vec<&'static str> = INSTANCES
                .iter()
                .copied()
                .filter(|i| !taken.contains(*i))
                .collect();
            let instance = *free.choose(rng)?;
            let name = format!("conn-{serial}");
            let prefix = format!("crash-e{serial}");
            let port = *[3306, 3307, 3308].choose(rng).expect("ports");
            w.create(&rds_connection(&name, instance, &prefix, port, CREDENTIALS))
                .await;
            model.connections.insert(name.clone(), instance);
            model.created.connections += 1;
            Some(format!("create {name} on {instance} as {prefix}:{port}"))
        }
        Change::MoveEndpoint => {
            let name = pick(rng, model.connections.keys())?;
            let prefix = format!("crash-e{serial}");
            let port = *[3306, 3307, 3308].choose(rng).expect("ports");
            let spec = json!({"connectionStringPrefix": prefix, "port": port});
            w.patch::<RdsConnection>(&name, json!({"spec": spec})).await;
            Some(format!("endpoint {name} {prefix}:{port}"))
        }
        Change::DeleteConnection => {
            let name = pick(rng, model.connections.keys())?;
            delete_connection(w, model, &name).await;
            Some(format!("delete {name}"))
        }
    }
}

fn pick<'a>(rng: &mut StdRng, names: impl Iterator<Item = &'a String>) -> Option<String> {
    let names: Vec<&String> = names.collect();
    names.choose(rng).map(|n| (*n).clone())
}

async fn delete_plan(w: &World, model: &mut Model, name: &str) {
    w.delete::<BackupPlan>(name).await;
    model.plans.remove(name);
    model.deleted.push(name.to_owned());
}

async fn delete_connection(w: &World, model: &mut Model, name: &str) {
    w.delete::<RdsConnection>(name).await;
    model.connections.remove(name);
    model.deleted.push(name.to_owned());
}

/// A schedule of one to three weekdays, in week order, at a random time.
fn random_schedule(rng: &mut StdRng) -> Value {
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let count = rng.random_range(1..=3);
    let mut picked: Vec<usize> = rand::seq::index::sample(rng, DAYS.len(), count).into_vec();
    picked.sort_unstable();
    let weekdays: Vec<&str> = picked.into_iter().map(|i| DAYS[i]).collect();
    let time = format!(
        "{:02}:{:02}",
        rng.random_range(0..24),
        rng.random_range(0..60)
    );
    json!({"weekdays": weekdays, "startTime": time})
}
