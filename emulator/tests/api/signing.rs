//! Signature verification over HTTP.

use crate::common::*;

#[test]
fn test_signer_reproduces_official_v3_vector() {
    let empty = sha256_hex(b"");
    let headers = owned(&[
        ("host", "ecs.cn-shanghai.aliyuncs.com"),
        ("x-acs-action", "RunInstances"),
        ("x-acs-version", "2014-05-26"),
        ("x-acs-date", "2023-10-26T10:22:32Z"),
        ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
        ("x-acs-content-sha256", &empty),
    ]);
    let query = canonical(&owned(&[
        ("RegionId", "cn-shanghai"),
        (
            "ImageId",
            "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
        ),
    ]));
    let (sig, signed) = v3_sign("YourAccessKeySecret", "POST", &query, &headers, &empty);
    assert_eq!(
        sig,
        "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    );
    assert_eq!(
        signed,
        "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
    );
}

#[test]
fn test_signer_reproduces_official_v2_vector() {
    let pairs = owned(&[
        ("AccessKeyId", "testid"),
        ("Action", "DescribeDedicatedHosts"),
        ("Format", "JSON"),
        ("RegionId", "cn-beijing"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", "edb2b34af0af9a6d14deaf7c1a5315eb"),
        ("SignatureVersion", "1.0"),
        ("Timestamp", "2023-03-13T08:34:30Z"),
        ("Version", "2014-05-26"),
    ]);
    assert_eq!(
        v2_sign("testsecret", "GET", &pairs),
        "9NaGiOspFP5UPcwX8Iwt2YJXXuk="
    );
}

#[tokio::test]
async fn v3_signed_form_post_and_query_get_are_accepted() {
    let (emu, c) = start_client().await;
    let r = c
        .dbs(
            "DescribeBackupPlanList",
            &[("Region", "cn-hangzhou"), ("BackupPlanName", "a b*~")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["Success"], true);
    let r = c
        .call_get(
            RDS,
            "DescribeDBInstanceNetInfo",
            &[("DBInstanceId", "rm-test1"), ("RegionId", "cn-hangzhou")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    emu.shutdown().await;
}

#[tokio::test]
async fn v2_signed_request_is_accepted() {
    let (emu, c) = start_client().await;
    let r = c
        .call_v2(
            RDS,
            "DescribeDBInstanceAttribute",
            &[("DBInstanceId", "rm-test1"), ("Note", "x y/z:*")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["Items"]["DBInstanceAttribute"][0]["DBInstanceStatus"],
        "Running"
    );
    let wrong = c.with_key(AK, "not-the-secret", None);
    let r = wrong
        .call_v2(
            RDS,
            "DescribeDBInstanceAttribute",
            &[("DBInstanceId", "rm-test1")],
        )
        .await;
    r.assert_code(400, "SignatureDoesNotMatch");
    emu.shutdown().await;
}

#[tokio::test]
async fn param_changed_after_signing_is_signature_does_not_match() {
    let (emu, c) = start_client().await;
    let query = canonical(&owned(&[("DBInstanceId", "rm-test1")]));
    let headers = c.v3_headers("GET", RDS, "DescribeDBInstanceNetInfo", &query, b"", false);
    let tampered = canonical(&owned(&[("DBInstanceId", "rm-test2")]));
    let r = c.send("GET", &tampered, &headers, Vec::new()).await;
    r.assert_code(400, "SignatureDoesNotMatch");
    // A body changed after signing no longer matches x-acs-content-sha256.
    let body = canonical(&owned(&[("DBInstanceId", "rm-test1")])).into_bytes();
    let headers = c.v3_headers("POST", RDS, "DescribeDBInstanceNetInfo", "", &body, true);
    let r = c
        .send("POST", "", &headers, b"DBInstanceId=rm-test2".to_vec())
        .await;
    r.assert_code(400, "SignatureDoesNotMatch");
    let state = emu.state();
    let calls = state["calls"].as_array().expect("calls");
    assert!(
        calls
            .iter()
            .all(|c| c["outcome"] == "SignatureDoesNotMatch")
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn unknown_access_key_is_404_invalid_access_key_id_not_found() {
    let emu = start().await;
    let c = Client::new(&emu).with_key("nobody", "x", None);
    let r = c.dbs("DescribeBackupPlanList", &[]).await;
    r.assert_code(404, "InvalidAccessKeyId.NotFound");
    for key in ["RequestId", "HostId", "Code", "Message", "Recommend"] {
        assert!(r.body.get(key).is_some(), "missing {key} in {}", r.body);
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn reused_nonce_stale_date_and_missing_signature_are_rejected() {
    let (emu, c) = start_client().await;
    let headers = c.v3_headers(
        "GET",
        RDS,
        "DescribeDBInstanceNetInfo",
        "DBInstanceId=rm-test1",
        b"",
        false,
    );
    let first = c
        .send("GET", "DBInstanceId=rm-test1", &headers, Vec::new())
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let again = c
        .send("GET", "DBInstanceId=rm-test1", &headers, Vec::new())
        .await;
    again.assert_code(400, "SignatureNonceUsed");

    // x-acs-date 20 minutes in the past, correctly signed.
    let mut headers = c.v3_headers("GET", RDS, "DescribeDBInstanceNetInfo", "", b"", false);
    headers.retain(|(k, _)| k != "authorization");
    let old = (chrono::Utc::now() - chrono::Duration::minutes(20))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    for h in &mut headers {
        if h.0 == "x-acs-date" {
            h.1 = old.clone();
        }
    }
    let (sig, signed) = v3_sign(SECRET, "GET", "", &headers, &sha256_hex(b""));
    headers.push((
        "authorization".into(),
        format!("ACS3-HMAC-SHA256 Credential={AK},SignedHeaders={signed},Signature={sig}"),
    ));
    let r = c.send("GET", "", &headers, Vec::new()).await;
    r.assert_code(400, "InvalidTimeStamp.Expired");

    let unsigned = owned(&[
        ("x-acs-action", "DescribeBackupPlanList"),
        ("x-acs-version", DBS),
    ]);
    let r = c.send("POST", "", &unsigned, Vec::new()).await;
    r.assert_code(400, "MissingParameter");
    let r = c
        .send(
            "POST",
            "",
            &[
                (
                    "authorization".to_string(),
                    "ACS3-HMAC-SHA256 nonsense".to_string(),
                ),
                unsigned[0].clone(),
                unsigned[1].clone(),
            ],
            Vec::new(),
        )
        .await;
    r.assert_code(400, "IncompleteSignature");
    emu.shutdown().await;
}

#[tokio::test]
async fn unknown_action_is_invalid_action_not_found() {
    let (emu, c) = start_client().await;
    let r = c.dbs("DescribeEverything", &[]).await;
    r.assert_code(400, "InvalidAction.NotFound");
    let r = c.call("1999-01-01", "DescribeBackupPlanList", &[]).await;
    r.assert_code(400, "InvalidParameter");
    emu.shutdown().await;
}
