//! The emulator as the tests start it, and its admin API.

use std::time::Duration;

use alicloud_emulator::{CallRecord, Emulator, EmulatorConfig};
use reqwest::Method;
use serde_json::{Value, json};

use super::{ACCESS_KEY_ID, ACCESS_KEY_SECRET, RDS_INSTANCE, REGION};

/// An emulator accepting the samples' account and holding the samples' RDS instance
/// (configure delay 1 s, precheck 300 ms, instances busy 500 ms after a change), then changed
/// by `tweak`.
pub async fn start_emulator(tweak: impl FnOnce(&mut EmulatorConfig)) -> Emulator {
    let mut config = EmulatorConfig {
        accounts: vec![(ACCESS_KEY_ID.into(), ACCESS_KEY_SECRET.into())],
        rds_instances: vec![(REGION.into(), RDS_INSTANCE.into())],
        configure_delay: Duration::from_secs(1),
        precheck: Duration::from_millis(300),
        instance_busy: Duration::from_millis(500),
        ..EmulatorConfig::default()
    };
    tweak(&mut config);
    Emulator::start(config).await.expect("emulator starts")
}

/// The emulator the samples of `examples/` work against.
pub async fn sample_emulator() -> Emulator {
    start_emulator(|_| {}).await
}

/// Every call of `action` the emulator logged, oldest first.
pub fn calls(emulator: &Emulator, action: &str) -> Vec<CallRecord> {
    emulator.snapshot().calls_of(action).cloned().collect()
}

/// `method` on the emulator's admin API at `/_emulator{path}`; panics unless it succeeds.
pub async fn admin(emulator: &Emulator, method: Method, path: &str, body: Value) {
    let url = format!("{}/_emulator{path}", emulator.url());
    let response = reqwest::Client::new()
        .request(method, &url)
        .json(&body)
        .send()
        .await
        .expect("emulator admin API answers");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "{path}: {status} {text}");
}

/// The next `count` calls of `action` fail with `(code, http_status)`.
pub async fn fail_next(emulator: &Emulator, action: &str, (code, status): (&str, u16), count: u32) {
    let fault = json!({"code": code, "httpStatus": status, "count": count});
    admin(
        emulator,
        Method::POST,
        &format!("/faults/{action}/once"),
        fault,
    )
    .await;
}

/// Every call of `action` fails with `(code, http_status)` until [`clear_faults`].
pub async fn fail_always(emulator: &Emulator, action: &str, (code, status): (&str, u16)) {
    let fault = json!({"errorRate": 1.0, "code": code, "httpStatus": status});
    admin(emulator, Method::PUT, &format!("/faults/{action}"), fault).await;
}

/// Removes every injected fault.
pub async fn clear_faults(emulator: &Emulator) {
    admin(emulator, Method::DELETE, "/faults", json!({})).await;
}

/// STS credentials `(AccessKeyId, AccessKeySecret, SecurityToken)` of the role
/// `acs:ram::<uid>:role/db-operator`, issued by the emulator's AssumeRoleWithOIDC (anonymous,
/// so no client is needed); they expire after the emulator's `stsMaxDurationSeconds` cap, if
/// one is set, else after 900 s.
pub async fn sts_credentials(emulator: &Emulator, uid: &str) -> (String, String, String) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let payload = json!({"iss": "https://oidc.test", "sub": "system:serviceaccount:test:op",
        "aud": "sts.aliyuncs.com", "iat": now, "exp": now + 3600});
    let token = format!(
        "{}.{}.c2lnbmF0dXJl",
        b64.encode(r#"{"alg":"RS256"}"#),
        b64.encode(payload.to_string())
    );
    let role = format!("acs:ram::{uid}:role/db-operator");
    let provider = format!("acs:ram::{uid}:oidc-provider/test");
    let response = reqwest::Client::new()
        .post(emulator.url())
        .form(&[
            ("Action", "AssumeRoleWithOIDC"),
            ("Version", "2015-04-01"),
            ("Format", "JSON"),
            ("RoleArn", &role),
            ("OIDCProviderArn", &provider),
            ("OIDCToken", &token),
            ("DurationSeconds", "900"),
        ])
        .send()
        .await
        .expect("AssumeRoleWithOIDC answers");
    let body: Value = response.json().await.expect("JSON");
    let field = |k: &str| {
        body["Credentials"][k]
            .as_str()
            .unwrap_or_else(|| panic!("Credentials.{k} in {body}"))
            .to_owned()
    };
    (
        field("AccessKeyId"),
        field("AccessKeySecret"),
        field("SecurityToken"),
    )
}
