//! Quotas are per account, not per key: the operator binary against a real kube-apiserver
//! (`alicloud_testenv`) and the emulator, with two credentials Secrets holding the keys of two
//! RAM users of ONE account. Alibaba counts API quotas per operation and per account, and so does
//! the emulator (`--account ID:SECRET:ACCOUNT`); the operator learns each key's account once with
//! STS `GetCallerIdentity` and paces both Secrets' calls in one budget.

#[allow(dead_code)]
mod common;

use std::time::Duration;

use alicloud_db_operator::crd::{BackupPlan, BackupPlanSpec, CredentialsRef};
use futures::future::join_all;
use kube::api::PostParams;
use reqwest::Method;
use serde_json::json;

use common::{Operator, Setup, World, backup_plan_spec, eventually, fast_flags};

/// The account both keys belong to.
const ACCOUNT: &str = "1234567890123456";
/// Two RAM users' keys of [`ACCOUNT`], each in a Secret of its own.
const KEYS: [(&str, &str, &str); 2] = [
    ("LTAI-ram-user-a", "secret-a", "ram-user-a"),
    ("LTAI-ram-user-b", "secret-b", "ram-user-b"),
];
/// The emulator's quota of every action, per account: the operator's own default per-action
/// budget (`Quotas::default()`, 20/s), which it applies per account.
const QUOTA_PER_SECOND: u32 = 20;
/// Plans per Secret, all created at once: each Secret alone asks for a full quota's worth of
/// calls of each action at the same moment, both together for twice the quota.
const PLANS_PER_KEY: usize = 30;

/// The samples' plan, authenticated by the Secret `credentials`.
fn spec_of(credentials: &str) -> BackupPlanSpec {
    BackupPlanSpec {
        credentials_ref: Some(CredentialsRef {
            name: credentials.into(),
        }),
        ..backup_plan_spec()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_secrets_of_one_account_share_its_quota_and_are_never_throttled() {
    let w = World::start("account-quota", Setup::default()).await;
    w.admin(
        Method::PUT,
        "/quotas/*",
        json!({"perSecond": QUOTA_PER_SECOND}),
    )
    .await;
    for (key, secret, name) in KEYS {
        w.admin(
            Method::POST,
            "/accounts",
            json!({"accessKeyId": key, "accessKeySecret": secret, "accountId": ACCOUNT}),
        )
        .await;
        w.create_key_secret(name, (key, secret), Default::default())
            .await;
    }
    let mut args = fast_flags(&w.emulator.url());
    args.extend(["--watch-namespace".to_owned(), w.ns.clone()]);
    let op = Operator::spawn("account-quota", Operator::command("account-quota", &args));

    let api = w.api::<BackupPlan>();
    let objects: Vec<BackupPlan> = KEYS
        .iter()
        .flat_map(|(_, _, credentials)| {
            (0..PLANS_PER_KEY)
                .map(move |i| BackupPlan::new(&format!("{credentials}-{i}"), spec_of(credentials)))
        })
        .collect();
    let pp = PostParams::default();
    let created = join_all(objects.iter().map(|obj| api.create(&pp, obj))).await;
    for result in created {
        result.expect("create a BackupPlan");
    }

    let total = KEYS.len() * PLANS_PER_KEY;
    let what = format!(
        "all {total} plans Ready (operator log {})",
        op.log_path().display()
    );
    eventually(&what, Duration::from_secs(150), || async {
        let list = api
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        let ready = list.items.iter().filter(|o| common::is_ready(*o)).count();
        if ready == total {
            Ok(())
        } else {
            Err(format!("{ready} of {total} Ready"))
        }
    })
    .await;

    let calls = w.snapshot().calls;
    let throttled: Vec<_> = calls
        .iter()
        .filter(|c| c.outcome.contains("Throttling"))
        .map(|c| (c.action.clone(), c.access_key_id.clone()))
        .collect();
    assert!(
        throttled.is_empty(),
        "{} of {} calls throttled: {:?}",
        throttled.len(),
        calls.len(),
        &throttled[..throttled.len().min(10)]
    );
    // The demand was there: both keys called at once, each about a quota's worth per action.
    for (key, _, _) in KEYS {
        let creates = calls
            .iter()
            .filter(|c| c.action == "CreateBackupPlan" && c.access_key_id == key)
            .count();
        assert!(creates >= PLANS_PER_KEY, "{key} created {creates} plans");
    }
    // Each key's account was asked once, not once per call.
    let identities: Vec<&str> = calls
        .iter()
        .filter(|c| c.action == "GetCallerIdentity")
        .map(|c| c.access_key_id.as_str())
        .collect();
    for (key, _, _) in KEYS {
        let n = identities.iter().filter(|k| **k == key).count();
        assert_eq!(n, 1, "GetCallerIdentity calls of {key}: {identities:?}");
    }
    let plans = w.plans_at_dbs();
    assert_eq!(plans.len(), total, "one plan per object");
}
