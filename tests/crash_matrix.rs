//! Crash matrix: the operator binary SIGKILLed at every step boundary of both kinds (a failpoint
//! kills it right after a cloud call succeeded, before what the call did reaches the object),
//! then over many rounds at random moments while the emulator answers slowly, with objects
//! created, changed and deleted across the rounds. After the last restart, what the emulator
//! holds equals the set of live objects: no duplicate, no leak, nothing stuck (the invariants
//! are spelled out in `crash_matrix/invariants.rs`).
//!
//! The random rounds read `ALICLOUD_CRASH_ROUNDS` (default 12) and `ALICLOUD_CRASH_SEED`
//! (default: from the clock; printed, so a failing run can be repeated); `cargo xtask soak`
//! runs them for longer.

#[allow(dead_code)]
mod common;
#[path = "crash_matrix/invariants.rs"]
mod invariants;
#[path = "crash_matrix/rounds.rs"]
mod rounds;

use alicloud_db_operator::crd::{BackupPlan, RdsConnection};
use serde_json::json;

use common::{CREDENTIALS, Setup, World, backup_plan_spec, rds_connection};
use invariants::{Created, assert_inventory_matches};

/// The RDS instances of every world of this file: one public endpoint each at most.
pub const INSTANCES: [&str; 3] = ["rm-bp1crash0001", "rm-bp1crash0002", "rm-bp1crash0003"];

/// A world with [`INSTANCES`] and DBS's precheck lasting `precheck`.
async fn world(prefix: &str, precheck: std::time::Duration) -> World {
    World::start(
        prefix,
        Setup {
            instances: INSTANCES.iter().map(|s| (*s).to_owned()).collect(),
            precheck,
            ..Setup::default()
        },
    )
    .await
}

/// Which kind a cell exercises.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Plan,
    Connection,
}

/// What the test does while the failpoint operator runs, to reach the failpoint.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Trigger {
    /// Create the object.
    Create,
    /// Create it, wait until Ready, change the spec (schedule; prefix and port).
    ChangeSpec,
    /// Create it, wait until Ready, delete it.
    Delete,
}

/// One cell of the matrix.
struct Cell {
    /// Namespace prefix.
    name: &'static str,
    kind: Kind,
    /// `ALICLOUD_DB_OPERATOR_FAILPOINT` of the first operator.
    failpoint: &'static str,
    /// The cloud action the failpoint follows: its last call must have succeeded.
    action: &'static str,
    trigger: Trigger,
    /// Delete the object while no operator runs, before the restart.
    delete_while_down: bool,
    /// DBS's precheck duration.
    precheck: std::time::Duration,
}

const OBJECT: &str = "subject";
const FAST_PRECHECK: std::time::Duration = std::time::Duration::from_millis(300);

/// Runs `cell`: an operator with the failpoint, the trigger, the SIGKILL, maybe a deletion while
/// down, a restarted operator, and the invariants once it has settled. Returns the world.
async fn run_cell(cell: Cell) -> World {
    let w = world(cell.name, cell.precheck).await;
    let mut first = w.operator(&format!("{}-1", cell.name), Some(cell.failpoint));
    match cell.kind {
        Kind::Plan => {
            w.create(&BackupPlan::new(OBJECT, backup_plan_spec())).await;
        }
        Kind::Connection => {
            let conn = rds_connection(OBJECT, INSTANCES[0], "crash-subject", 3306, CREDENTIALS);
            w.create(&conn).await;
        }
    }
    if cell.trigger != Trigger::Create {
        match cell.kind {
            Kind::Plan => drop(w.wait_ready::<BackupPlan>(OBJECT).await),
            Kind::Connection => drop(w.wait_ready::<RdsConnection>(OBJECT).await),
        }
        assert!(
            first.running(),
            "the failpoint fired too early:\n{}",
            first.log_tail(20)
        );
    }
    match (cell.trigger, cell.kind) {
        (Trigger::Create, _) => {}
        (Trigger::ChangeSpec, Kind::Plan) => {
            let schedule = json!({"weekdays": ["Tuesday", "Saturday"], "startTime": "03:30"});
            w.patch::<BackupPlan>(OBJECT, json!({"spec": {"schedule": schedule}}))
                .await;
        }
        (Trigger::ChangeSpec, Kind::Connection) => {
            let spec = json!({"connectionStringPrefix": "crash-subject-v2", "port": 3307});
            w.patch::<RdsConnection>(OBJECT, json!({"spec": spec}))
                .await;
        }
        (Trigger::Delete, Kind::Plan) => w.delete::<BackupPlan>(OBJECT).await,
        (Trigger::Delete, Kind::Connection) => w.delete::<RdsConnection>(OBJECT).await,
    }
    first.wait_killed_by_failpoint().await;
    let log = first.log();
    assert!(
        log.contains("failpoint reached") && log.contains(cell.failpoint),
        "killed by {}:\n{}",
        cell.failpoint,
        first.log_tail(20)
    );
    let last = w.calls(cell.action).pop();
    assert_eq!(
        last.map(|c| c.outcome),
        Some("Success".to_owned()),
        "the kill came right after a successful {}",
        cell.action
    );

    let deleted = cell.trigger == Trigger::Delete || cell.delete_while_down;
    if cell.delete_while_down {
        match cell.kind {
            Kind::Plan => w.delete::<BackupPlan>(OBJECT).await,
            Kind::Connection => w.delete::<RdsConnection>(OBJECT).await,
        }
    }
    let mut second = w.operator(&format!("{}-2", cell.name), None);
    match (deleted, cell.kind) {
        (true, Kind::Plan) => w.wait_gone::<BackupPlan>(OBJECT).await,
        (true, Kind::Connection) => w.wait_gone::<RdsConnection>(OBJECT).await,
        (false, _) => {
            common::eventually(
                "the restarted operator to settle",
                std::time::Duration::from_secs(90),
                || invariants::settled(&w),
            )
            .await;
        }
    }
    assert!(second.running(), "{}", second.log_tail(20));
    let created = Created {
        plans: usize::from(matches!(cell.kind, Kind::Plan)),
        connections: usize::from(matches!(cell.kind, Kind::Connection)),
    };
    let gone: Vec<String> = if deleted {
        vec![OBJECT.to_owned()]
    } else {
        vec![]
    };
    assert_inventory_matches(&w, created, &gone).await;
    w
}

/// Successful calls of `action` the emulator logged.
fn successes(w: &World, action: &str) -> usize {
    w.calls(action)
        .iter()
        .filter(|c| c.outcome == "Success")
        .count()
}

fn plan_cell(
    name: &'static str,
    failpoint: &'static str,
    action: &'static str,
    trigger: Trigger,
) -> Cell {
    Cell {
        name,
        kind: Kind::Plan,
        failpoint,
        action,
        trigger,
        delete_while_down: false,
        precheck: FAST_PRECHECK,
    }
}

fn connection_cell(
    name: &'static str,
    failpoint: &'static str,
    action: &'static str,
    trigger: Trigger,
) -> Cell {
    Cell {
        name,
        kind: Kind::Connection,
        failpoint,
        action,
        trigger,
        delete_while_down: false,
        precheck: FAST_PRECHECK,
    }
}

// ------------------------------------------------------------ BackupPlan boundaries
//
// Not here: a deletion while down after `kill-after-create-backup-plan` (the id never reached
// the status, so deletion cannot know which unconfigured plan is the object's and waits for a
// human: `deletion_after_a_lost_create_answer_never_creates_and_waits_until_the_plan_is_gone` in
// tests/backup_plan.rs).

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_after_create_backup_plan_restarts_into_the_same_plan() {
    let w = run_cell(plan_cell(
        "cm-create",
        "kill-after-create-backup-plan",
        "CreateBackupPlan",
        Trigger::Create,
    ))
    .await;
    assert_eq!(w.plans_at_dbs().len(), 1, "one plan, created once");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_after_configure_backup_plan_restarts_without_a_second_plan() {
    let w = run_cell(plan_cell(
        "cm-configure",
        "kill-after-configure-backup-plan",
        "ConfigureBackupPlan",
        Trigger::Create,
    ))
    .await;
    assert_eq!(successes(&w, "CreateBackupPlan"), 1, "no second create");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_after_configure_backup_plan_then_deleted_while_down_releases_the_plan() {
    let cell = Cell {
        delete_while_down: true,
        ..plan_cell(
            "cm-configure-del",
            "kill-after-configure-backup-plan",
            "ConfigureBackupPlan",
            Trigger::Create,
        )
    };
    let w = run_cell(cell).await;
    assert_eq!(successes(&w, "ReleaseBackupPlan"), 1);
}

/// A start lost in flight (recorded in the status, never received by DBS) is not sent again
/// before `PRECHECK_TIMEOUT` (15 min): the restarted operator cannot tell it from a start whose
/// precheck runs, and a second start could take a second full backup. The plan stays
/// `Prechecking`, DBS's plan `init`; nothing is duplicated or leaked meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_before_start_backup_plan_waits_for_the_precheck_timeout_without_duplicates() {
    let w = run_cell(plan_cell(
        "cm-lost-start",
        "kill-before-start-backup-plan",
        // The last call before the kill.
        "ConfigureBackupPlan",
        Trigger::Create,
    ))
    .await;
    assert_eq!(w.calls("StartBackupPlan").len(), 0, "no start reached DBS");
    let plan: BackupPlan = w.get(OBJECT).await;
    assert!(
        invariants::lost_start(&w, &plan),
        "waits out the lost start: {:?}",
        plan.status
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_the_precheck_restarts_without_starting_the_plan_again() {
    let cell = Cell {
        // The restarted operator finds DBS still prechecking.
        precheck: std::time::Duration::from_secs(4),
        ..plan_cell(
            "cm-precheck",
            "kill-after-start-backup-plan",
            "StartBackupPlan",
            Trigger::Create,
        )
    };
    let w = run_cell(cell).await;
    assert_eq!(successes(&w, "StartBackupPlan"), 1, "started once");
    let plans = w.plans_at_dbs();
    assert_eq!(
        plans[0].full_backup_set_ids.len(),
        1,
        "one full backup taken"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_the_precheck_then_deleted_while_down_releases_the_plan() {
    let cell = Cell {
        delete_while_down: true,
        precheck: std::time::Duration::from_secs(4),
        ..plan_cell(
            "cm-precheck-del",
            "kill-after-start-backup-plan",
            "StartBackupPlan",
            Trigger::Create,
        )
    };
    let w = run_cell(cell).await;
    assert_eq!(successes(&w, "StartBackupPlan"), 1, "never started again");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_after_a_schedule_change_restarts_into_the_new_schedule() {
    let w = run_cell(plan_cell(
        "cm-modify",
        "kill-after-modify-backup-plan",
        "ModifyBackupStrategy",
        Trigger::ChangeSpec,
    ))
    .await;
    let plan = &w.plans_at_dbs()[0];
    assert_eq!(plan.backup_period.as_deref(), Some("Tuesday,Saturday"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_after_release_backup_plan_completes_the_deletion() {
    let w = run_cell(plan_cell(
        "cm-release",
        "kill-after-release-backup-plan",
        "ReleaseBackupPlan",
        Trigger::Delete,
    ))
    .await;
    assert_eq!(w.plans_at_dbs()[0].status, "released");
}

// ------------------------------------------------------------ RdsConnection boundaries

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_after_allocate_restarts_into_the_same_endpoint() {
    let w = run_cell(connection_cell(
        "cm-allocate",
        "kill-after-allocate-instance-public-connection",
        "AllocateInstancePublicConnection",
        Trigger::Create,
    ))
    .await;
    assert_eq!(successes(&w, "AllocateInstancePublicConnection"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_after_allocate_then_deleted_while_down_releases_the_endpoint() {
    let cell = Cell {
        delete_while_down: true,
        ..connection_cell(
            "cm-allocate-del",
            "kill-after-allocate-instance-public-connection",
            "AllocateInstancePublicConnection",
            Trigger::Create,
        )
    };
    let w = run_cell(cell).await;
    assert_eq!(successes(&w, "ReleaseInstanceConnection"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_after_modify_connection_string_restarts_into_the_new_endpoint() {
    let w = run_cell(connection_cell(
        "cm-conn-modify",
        "kill-after-modify-db-instance-connection-string",
        "ModifyDBInstanceConnectionString",
        Trigger::ChangeSpec,
    ))
    .await;
    assert_eq!(successes(&w, "ModifyDBInstanceConnectionString"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_after_modify_connection_string_then_deleted_while_down_releases_it() {
    let cell = Cell {
        delete_while_down: true,
        ..connection_cell(
            "cm-conn-modify-del",
            "kill-after-modify-db-instance-connection-string",
            "ModifyDBInstanceConnectionString",
            Trigger::ChangeSpec,
        )
    };
    let w = run_cell(cell).await;
    assert_eq!(successes(&w, "ReleaseInstanceConnection"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_after_release_instance_connection_completes_the_deletion() {
    let w = run_cell(connection_cell(
        "cm-conn-release",
        "kill-after-release-instance-connection",
        "ReleaseInstanceConnection",
        Trigger::Delete,
    ))
    .await;
    assert_eq!(successes(&w, "ReleaseInstanceConnection"), 1);
}

// ------------------------------------------------------------ random timing

#[tokio::test(flavor = "multi_thread")]
async fn random_sigkills_over_many_rounds_leave_no_duplicate_leak_or_stuck_object() {
    rounds::run(rounds::Config::from_env()).await;
}
