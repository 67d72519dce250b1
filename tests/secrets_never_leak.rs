//! No secret ever leaves the operator: the whole lifecycle of both kinds, with a static
//! AccessKey and with STS credentials (so a security token exists), a password rotation,
//! failing calls and wrong credentials, runs with `RUST_LOG=trace` and JSON logs; then every
//! log line, every Event, every object as it was at each stage (status and annotations) and
//! `/metrics` are searched for the access key secrets, the security token and the database
//! passwords, raw, percent-encoded (signed query strings carry them) and base64 (Secret data).

#[allow(dead_code)]
mod common;

use std::time::Duration;

use alicloud_db_operator::crd::{BackupPlan, RdsConnection};
use base64::Engine;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use reqwest::Method;
use serde_json::{Value, json};

use common::emulator::sts_credentials;
use common::{
    Operator, RDS_INSTANCE, Setup, World, backup_plan_spec, condition, eventually, fail_next,
    fast_flags, get, rds_connection,
};

/// A static key of its own, with characters that percent-encoding changes.
const STATIC_ID: &str = "LTAI5tLeakTestStaticId";
const STATIC_SECRET: &str = "St4tic/Secret+Value=Kq9";
/// The database passwords, before and after the rotation.
const PASSWORD_1: &str = "Pw1/first+Rotation=x7Q";
const PASSWORD_2: &str = "Pw2 second&Rotation%y8R";
/// A wrong secret for a known key (SignatureDoesNotMatch echoes what was signed).
const WRONG_SECRET: &str = "Wr0ng/Secret+Value=Zt3";
/// The STS account.
const STS_UID: &str = "1234567890123456";
const SECOND_INSTANCE: &str = "rm-bp1leaktest0002";
const THIRD_INSTANCE: &str = "rm-bp1leaktest0003";

/// RFC 3986 percent-encoding, upper- or lower-case hex, with `+` or `%20` for a space.
fn percent(value: &str, lower: bool, plus_for_space: bool) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' if plus_for_space => out.push('+'),
            _ if lower => out.push_str(&format!("%{b:02x}")),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Every form in which `secret` could appear in text.
fn forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    for lower in [false, true] {
        for plus in [false, true] {
            let once = percent(secret, lower, plus);
            forms.push(percent(&once, lower, plus));
            forms.push(once);
        }
    }
    forms.push(base64::engine::general_purpose::STANDARD.encode(secret));
    // JSON-escaped (a `/` may be written `\/`).
    forms.push(secret.replace('/', "\\/"));
    forms.sort();
    forms.dedup();
    forms
}

/// Every line of `corpus` holding `value` in any of its [`forms`], with the form found.
fn hits(corpus: &str, value: &str) -> Vec<String> {
    let forms = forms(value);
    corpus
        .lines()
        .enumerate()
        .filter_map(|(n, line)| {
            let form = forms.iter().find(|f| line.contains(f.as_str()))?;
            Some(format!("as {form:?} in line {n}: {line}"))
        })
        .collect()
}

/// What the operator has shown so far: its objects as they are now and the namespace's Events.
async fn shown(world: &World) -> String {
    let mut text = String::new();
    for o in world
        .api::<BackupPlan>()
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
    {
        text.push_str(&serde_json::to_string(&o).expect("JSON"));
        text.push('\n');
    }
    for o in world
        .api::<RdsConnection>()
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
    {
        text.push_str(&serde_json::to_string(&o).expect("JSON"));
        text.push('\n');
    }
    for e in world
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
    {
        text.push_str(&serde_json::to_string(&e).expect("JSON"));
        text.push('\n');
    }
    text
}

/// A Secret `name` with the string values `data`.
async fn secret(world: &World, name: &str, data: Value) {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
    world
        .secrets()
        .patch(
            name,
            &PatchParams::apply("leak-test"),
            &Patch::Apply(&secret),
        )
        .await
        .unwrap_or_else(|e| panic!("Secret {name}: {e}"));
}

/// Waits until `name` is Stalled with `reason`.
async fn wait_stalled<K>(world: &World, name: &str, reason: &str)
where
    K: common::world::Object + common::objects::Conditioned,
{
    eventually(
        &format!("{name} Stalled {reason}"),
        Duration::from_secs(30),
        || async {
            let o: K = world.get(name).await;
            match condition(&o, "Stalled") {
                Some(c) if c.status == "True" && c.reason == reason => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_any_log_line_event_status_or_metric() {
    let world = World::start(
        "leak",
        Setup {
            instances: [RDS_INSTANCE, SECOND_INSTANCE, THIRD_INSTANCE]
                .map(str::to_owned)
                .to_vec(),
            ..Setup::default()
        },
    )
    .await;
    let emulator = &world.emulator;
    world
        .admin(
            Method::POST,
            "/accounts",
            json!({"accessKeyId": STATIC_ID, "accessKeySecret": STATIC_SECRET}),
        )
        .await;
    let (sts_id, sts_secret, sts_token) = sts_credentials(emulator, STS_UID).await;
    secret(
        &world,
        "static-creds",
        json!({"accessKeyId": STATIC_ID, "accessKeySecret": STATIC_SECRET}),
    )
    .await;
    secret(
        &world,
        "sts-creds",
        json!({"accessKeyId": sts_id, "accessKeySecret": sts_secret, "securityToken": sts_token}),
    )
    .await;
    secret(
        &world,
        "wrong-static",
        json!({"accessKeyId": STATIC_ID, "accessKeySecret": WRONG_SECRET}),
    )
    .await;
    secret(
        &world,
        "wrong-sts",
        json!({"accessKeyId": sts_id, "accessKeySecret": WRONG_SECRET, "securityToken": sts_token}),
    )
    .await;
    secret(&world, "leak-password", json!({"password": PASSWORD_1})).await;
    // Failing calls that carry the password, and a failing allocation.
    fail_next(emulator, "ConfigureBackupPlan", ("InternalError", 500), 2).await;
    fail_next(
        emulator,
        "ModifyBackupSourceEndpoint",
        ("ServiceUnavailable", 503),
        1,
    )
    .await;
    fail_next(
        emulator,
        "AllocateInstancePublicConnection",
        ("InternalError", 500),
        1,
    )
    .await;

    let mut args = fast_flags(&emulator.url());
    args.extend(["--watch-namespace".to_owned(), world.ns.clone()]);
    let mut cmd = Operator::command("leak-op", &args);
    cmd.env("RUST_LOG", "trace");
    let mut op = Operator::spawn("leak-op", cmd);
    let metrics_url = op.metrics_url().await;

    let plan = |name: &str, creds: &str| {
        let mut spec = backup_plan_spec();
        spec.credentials_ref =
            Some(alicloud_db_operator::crd::CredentialsRef { name: creds.into() });
        if let Some(p) = spec.source.password_secret_ref.as_mut() {
            p.name = "leak-password".into();
        }
        BackupPlan::new(name, spec)
    };
    world.create(&plan("bp-static", "static-creds")).await;
    world.create(&plan("bp-sts", "sts-creds")).await;
    world.create(&plan("bp-wrong-static", "wrong-static")).await;
    world.create(&plan("bp-wrong-sts", "wrong-sts")).await;
    world
        .create(&rds_connection(
            "rc-static",
            RDS_INSTANCE,
            "leakstatic01",
            3306,
            "static-creds",
        ))
        .await;
    world
        .create(&rds_connection(
            "rc-sts",
            SECOND_INSTANCE,
            "leaksts0001",
            3306,
            "sts-creds",
        ))
        .await;
    world
        .create(&rds_connection(
            "rc-wrong-sts",
            THIRD_INSTANCE,
            "leakwrong01",
            3306,
            "wrong-sts",
        ))
        .await;
    for name in ["bp-static", "bp-sts"] {
        let _: BackupPlan = world.wait_ready(name).await;
    }
    for name in ["rc-static", "rc-sts"] {
        let _: RdsConnection = world.wait_ready(name).await;
    }
    wait_stalled::<BackupPlan>(&world, "bp-wrong-static", "InvalidCredentials").await;
    wait_stalled::<BackupPlan>(&world, "bp-wrong-sts", "InvalidCredentials").await;
    wait_stalled::<RdsConnection>(&world, "rc-wrong-sts", "InvalidCredentials").await;
    let mut corpus = shown(&world).await;

    // Rotate the password (the source endpoint is sent again, once failing) and change specs.
    let modifies = world.calls("ModifyBackupSourceEndpoint").len();
    secret(&world, "leak-password", json!({"password": PASSWORD_2})).await;
    eventually(
        "the rotated password sent to both plans",
        Duration::from_secs(30),
        || async {
            let ok = world
                .calls("ModifyBackupSourceEndpoint")
                .iter()
                .skip(modifies)
                .filter(|c| c.outcome == "Success")
                .count();
            (ok >= 2).then_some(()).ok_or(format!("{ok} successful"))
        },
    )
    .await;
    world
        .patch::<BackupPlan>("bp-static", json!({"spec": {"retention": {"backupRetentionDays": 30, "infrequentAccessDays": 10, "archiveDays": 20}}}))
        .await;
    world
        .patch::<RdsConnection>("rc-sts", json!({"spec": {"port": 3310}}))
        .await;
    for name in ["bp-static", "bp-sts"] {
        let _: BackupPlan = world.wait_ready(name).await;
    }
    for name in ["rc-static", "rc-sts"] {
        let _: RdsConnection = world.wait_ready(name).await;
    }
    corpus.push_str(&shown(&world).await);

    // Delete the working ones.
    for name in ["bp-static", "bp-sts"] {
        world.delete::<BackupPlan>(name).await;
    }
    for name in ["rc-static", "rc-sts"] {
        world.delete::<RdsConnection>(name).await;
    }
    for name in ["bp-static", "bp-sts"] {
        world.wait_gone::<BackupPlan>(name).await;
    }
    for name in ["rc-static", "rc-sts"] {
        world.wait_gone::<RdsConnection>(name).await;
    }
    corpus.push_str(&shown(&world).await);
    let (code, metrics) = get(&format!("{metrics_url}/metrics")).await;
    assert_eq!(code, 200, "{metrics}");
    corpus.push_str(&metrics);
    let log = op.log();
    corpus.push_str(&log);
    assert!(op.running(), "operator exited:\n{}", op.log_tail(30));
    op.kill();

    // The corpus is real: trace lines, the lifecycle, the failures and non-secret identifiers
    // are all in it, found by the same search, so a search that finds no secret could have
    // found one.
    let snapshot = world.snapshot();
    let released: Vec<&str> = snapshot
        .plans
        .iter()
        .filter(|p| p.status == "released")
        .map(|p| p.backup_plan_id.as_str())
        .collect();
    assert_eq!(released.len(), 2, "{:#?}", snapshot.plans);
    let expected_present = [
        "\"level\":\"TRACE\"",
        released[0],
        released[1],
        "leak-password",
        "SignatureDoesNotMatch",
        "InvalidCredentials",
        "ModifyBackupSourceEndpoint",
        "InternalError",
        "alicloud_api_requests_total",
        "PlanReleased",
    ];
    let missing: Vec<&&str> = expected_present
        .iter()
        .filter(|needle| hits(&corpus, needle).is_empty())
        .collect();
    assert!(
        missing.is_empty(),
        "the corpus ({} bytes) lacks {missing:?}",
        corpus.len()
    );

    // No secret, in any form.
    let secrets = [
        ("static AccessKey secret", STATIC_SECRET),
        ("STS AccessKey secret", sts_secret.as_str()),
        ("STS security token", sts_token.as_str()),
        ("first password", PASSWORD_1),
        ("rotated password", PASSWORD_2),
        ("wrong AccessKey secret", WRONG_SECRET),
        ("operator's own AccessKey secret", common::ACCESS_KEY_SECRET),
    ];
    let mut leaks = Vec::new();
    for (what, value) in secrets {
        for hit in hits(&corpus, value) {
            leaks.push(format!("{what} {hit}"));
        }
    }
    eprintln!(
        "searched {} bytes ({} log lines) for {} secrets",
        corpus.len(),
        log.lines().count(),
        secrets.len()
    );
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}
