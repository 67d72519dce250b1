//! The orphan report: a plan the operator made whose object went without a release (an
//! interrupted uninstall: the operator down, the finalizer removed by hand) is counted in
//! `alicloud_db_operator_orphaned_resources` and reported once, as a Warning Event about the
//! object it was made for; the operator never touches it. Real kube-apiserver, emulator over
//! HTTP, in-process controllers.

#[allow(dead_code)]
mod common;

use std::time::Duration;

use alicloud_db_operator::crd::{BackupPlan, BackupPlanSpec};
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use serde_json::json;

use common::{Controller, Setup, World, backup_plan_spec, eventually, sample};

const GAUGE: &str = r#"alicloud_db_operator_orphaned_resources{kind="BackupPlan"}"#;
const REASON: &str = "CloudResourceOrphaned";

fn plans() -> Setup {
    Setup {
        controllers: vec![Controller::BackupPlan],
        ..Setup::default()
    }
}

fn plan_id(obj: &BackupPlan) -> String {
    obj.status
        .as_ref()
        .and_then(|s| s.backup_plan_id.clone())
        .expect("a Ready object has a plan id")
}

/// The orphan Events about `name`, as stored (a repeat would be a series or a second Event).
async fn orphan_events(w: &World, name: &str) -> Vec<Event> {
    w.api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("list Events")
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(REASON)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .collect()
}

async fn wait_gauge(w: &World, want: f64) {
    eventually(
        &format!("{GAUGE} = {want}"),
        Duration::from_secs(20),
        || async {
            let text = w.metrics();
            match sample(&text, GAUGE) {
                Some(v) if v == want => Ok(()),
                other => Err(format!(
                    "{other:?} in {:?}",
                    text.lines()
                        .filter(|l| l.contains("orphan"))
                        .collect::<Vec<_>>()
                )),
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_whose_object_went_without_a_release_is_reported_once_and_left_alone() {
    let setup = plans();
    let mut w = World::start("orphans", setup.clone()).await;
    for name in ["kept", "orders"] {
        w.create(&BackupPlan::new(name, backup_plan_spec())).await;
    }
    w.wait_ready::<BackupPlan>("kept").await;
    let orphan_id = plan_id(&w.wait_ready::<BackupPlan>("orders").await);

    // The operator is down (an uninstall) while the object is deleted and its finalizer is
    // removed by hand: nothing releases the plan.
    w.stop_controllers();
    w.delete::<BackupPlan>("orders").await;
    w.patch::<BackupPlan>("orders", json!({"metadata": {"finalizers": null}}))
        .await;
    w.wait_gone::<BackupPlan>("orders").await;
    w.restart_controllers(&setup);

    wait_gauge(&w, 1.0).await;
    let events = eventually("the orphan Event", Duration::from_secs(20), || async {
        let events = orphan_events(&w, "orders").await;
        if events.is_empty() {
            Err("none yet".to_owned())
        } else {
            Ok(events)
        }
    })
    .await;
    let note = events[0].note.clone().unwrap_or_default();
    assert_eq!(events[0].type_.as_deref(), Some("Warning"));
    assert!(note.contains(&orphan_id), "{note}");
    assert!(
        orphan_events(&w, "kept").await.is_empty(),
        "a live object's plan is no orphan"
    );

    // Several resync periods later (2 s each) it is still one Event, not a series.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let events = orphan_events(&w, "orders").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].series.is_none(),
        "reported once: {:?}",
        events[0].series
    );
    assert!(
        w.calls("ReleaseBackupPlan").is_empty(),
        "the orphan is left alone"
    );
    assert_eq!(w.plan_at_dbs(&orphan_id).status, "running");

    // Taken over again by an object naming it: no longer an orphan.
    let adopt = BackupPlanSpec {
        backup_plan_id: Some(orphan_id.clone()),
        ..backup_plan_spec()
    };
    w.create(&BackupPlan::new("orders-again", adopt)).await;
    wait_gauge(&w, 0.0).await;
}
