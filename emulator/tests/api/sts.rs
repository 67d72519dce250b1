//! STS AssumeRoleWithOIDC and use of the issued credentials.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::common::*;

const ROLE: &str = "acs:ram::1234567890:role/backup-operator";
const PROVIDER: &str = "acs:ram::1234567890:oidc-provider/ack-rrsa-c1";

fn jwt(claims: Value) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        e.encode(r#"{"alg":"RS256"}"#),
        e.encode(claims.to_string()),
        e.encode("sig")
    )
}

async fn assume(emu: &alicloud_emulator::Emulator, token: &str, extra: &[(&str, &str)]) -> Resp {
    let form = [
        ("Action", "AssumeRoleWithOIDC"),
        ("Version", STS),
        ("Format", "JSON"),
        ("RoleArn", ROLE),
        ("OIDCProviderArn", PROVIDER),
        ("OIDCToken", token),
        ("RoleSessionName", "op-session"),
    ];
    let body = canonical(&owned(&merged(&form, extra))).into_bytes();
    let headers = owned(&[("content-type", "application/x-www-form-urlencoded")]);
    Client::new(emu).send("POST", "", &headers, body).await
}

fn valid_token() -> String {
    let exp = chrono::Utc::now().timestamp() + 600;
    jwt(
        json!({"iss": "https://oidc.example", "sub": "system:serviceaccount:ops:operator", "aud": "sts.aliyuncs.com", "exp": exp}),
    )
}

#[tokio::test]
async fn oidc_credentials_sign_dbs_calls_with_their_security_token() {
    let emu = start().await;
    let Resp { status, body, .. } = assume(&emu, &valid_token(), &[]).await;
    assert_eq!(status, 200, "{body}");
    let cred = &body["Credentials"];
    let ak = cred["AccessKeyId"].as_str().expect("ak");
    assert!(ak.starts_with("STS."));
    let exp = cred["Expiration"].as_str().expect("expiration");
    assert!(
        chrono::NaiveDateTime::parse_from_str(exp, "%Y-%m-%dT%H:%M:%SZ").is_ok(),
        "{exp}"
    );
    assert_eq!(
        body["OIDCTokenInfo"]["Subject"],
        "system:serviceaccount:ops:operator"
    );
    assert_eq!(body["OIDCTokenInfo"]["Issuer"], "https://oidc.example");
    assert_eq!(body["OIDCTokenInfo"]["ClientIds"], "sts.aliyuncs.com");
    assert_eq!(
        body["AssumedRoleUser"]["Arn"],
        "acs:ram::1234567890:assumed-role/backup-operator/op-session"
    );
    let secret = cred["AccessKeySecret"].as_str().expect("secret");
    let token = cred["SecurityToken"].as_str().expect("token");
    let base = Client::new(&emu);
    let c = base.with_key(ak, secret, Some(token));
    let id = create_plan(&c, &[]).await;
    let v2 = c
        .call_v2(DBS, "DescribeBackupPlanList", &[("BackupPlanId", &id)])
        .await;
    assert_eq!(v2.body["TotalElements"], 1, "{}", v2.body);
    let state = emu.state();
    assert_eq!(state["plans"][0]["accountId"], "1234567890");
    let r = base
        .with_key(ak, secret, None)
        .dbs("DescribeBackupPlanList", &[])
        .await;
    r.assert_code(400, "InvalidSecurityToken.Malformed");
    let r = base
        .with_key(ak, secret, Some("CAISwrong"))
        .dbs("DescribeBackupPlanList", &[])
        .await;
    r.assert_code(403, "InvalidSecurityToken.Mismatch");
    emu.shutdown().await;
}

#[tokio::test]
async fn expired_sts_credentials_are_rejected() {
    let emu = start().await;
    let settings = json!({"stsMaxDurationSeconds": 1});
    admin_ok(&emu, "PUT", "/settings", Some(settings)).await;
    let Resp { status, body, .. } =
        assume(&emu, &valid_token(), &[("DurationSeconds", "900")]).await;
    assert_eq!(status, 200, "{body}");
    let cred = &body["Credentials"];
    let c = Client::new(&emu).with_key(
        cred["AccessKeyId"].as_str().expect("ak"),
        cred["AccessKeySecret"].as_str().expect("secret"),
        cred["SecurityToken"].as_str(),
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = c.dbs("DescribeBackupPlanList", &[]).await;
    r.assert_code(403, "InvalidSecurityToken.Expired");
    emu.shutdown().await;
}

#[tokio::test]
async fn bad_oidc_requests_are_rejected() {
    let emu = start().await;
    assume(&emu, "not-a-jwt", &[])
        .await
        .assert_code(400, "InvalidParameter.OIDCToken");
    let expired = jwt(json!({"sub": "x", "exp": chrono::Utc::now().timestamp() - 10}));
    assume(&emu, &expired, &[])
        .await
        .assert_code(400, "AuthenticationFail.OIDCToken.Expired");
    assume(&emu, &valid_token(), &[("DurationSeconds", "100")])
        .await
        .assert_code(400, "InvalidParameter.DurationSeconds");
    assume(&emu, &valid_token(), &[("RoleSessionName", "bad name!")])
        .await
        .assert_code(400, "InvalidParameter.RoleSessionName");
    emu.shutdown().await;
}
