//! How answers travel: JSON or XML by what the request asks for, and DBS business errors with
//! their 4xx status or as HTTP 200 `Success:false` (the `dbsErrors` setting).

use alicloud_emulator::{DbsErrorMode, EmulatorConfig};
use serde_json::json;

use crate::common::*;

/// A signed V3 query GET of `action` with the given `accept` header (or none).
async fn get_with_accept(
    c: &Client,
    version: &str,
    action: &str,
    params: &[(&str, &str)],
    accept: Option<&str>,
) -> Resp {
    let query = canonical(&owned(params));
    let mut headers = c.v3_headers("GET", version, action, &query, b"", false);
    if let Some(a) = accept {
        headers.push(("accept".into(), a.into()));
    }
    c.send_raw("GET", &query, &headers, Vec::new()).await
}

#[tokio::test]
async fn answers_xml_unless_the_request_asks_for_json() {
    let (emu, c) = start_client().await;
    let id = create_plan(&c, &[]).await;
    let params = [("BackupPlanId", id.as_str())];

    let r = get_with_accept(&c, DBS, "DescribeBackupPlanList", &params, None).await;
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/xml"), "{}", r.content_type);
    let xml = r.body.as_str().expect("XML text, not JSON");
    assert!(
        xml.starts_with(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><DescribeBackupPlanListResponse>"
        ),
        "{xml}"
    );
    assert!(
        xml.contains("<Items><BackupPlanDetail>")
            && xml.contains(&format!("<BackupPlanId>{id}</BackupPlanId>")),
        "{xml}"
    );
    assert!(xml.ends_with("</DescribeBackupPlanListResponse>"), "{xml}");

    let r = get_with_accept(
        &c,
        DBS,
        "DescribeBackupPlanList",
        &params,
        Some("application/json"),
    )
    .await;
    assert!(
        r.content_type.starts_with("application/json"),
        "{}",
        r.content_type
    );
    assert_eq!(r.body["Success"], true, "{}", r.body);

    // `Format=JSON` (any case) asks for JSON too, whatever the Accept header says.
    let with_format = [("BackupPlanId", id.as_str()), ("Format", "json")];
    let r = get_with_accept(&c, DBS, "DescribeBackupPlanList", &with_format, Some("*/*")).await;
    assert_eq!(r.body["Success"], true, "{}", r.body);

    // Errors follow the same rule; their XML root is <Error>.
    let r = get_with_accept(
        &c,
        RDS,
        "DescribeDBInstanceNetInfo",
        &[("DBInstanceId", "rm-nope")],
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    let xml = r.body.as_str().expect("XML text");
    assert!(
        xml.contains("<Error>") && xml.contains("<Code>InvalidDBInstanceId.NotFound</Code>"),
        "{xml}"
    );

    // The admin API stays JSON.
    let (status, state) = admin(&emu, "GET", "/state", None).await;
    assert_eq!(status, 200);
    let formats: Vec<&str> = state["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| c["format"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(formats, ["json", "xml", "json", "json", "xml"]);
    emu.shutdown().await;
}

#[tokio::test]
async fn the_call_log_names_the_parameters_of_the_query_and_of_the_body() {
    let (emu, c) = start_client().await;
    let id = create_plan(&c, &[]).await;
    c.call_get(DBS, "DescribeBackupPlanList", &[("BackupPlanId", &id)])
        .await;
    let state = emu.snapshot();
    let create = state.calls_of("CreateBackupPlan").next().expect("create");
    assert!(create.query_params.is_empty());
    assert!(create.body_params.contains(&"Region".to_owned()));
    let describe = state
        .calls_of("DescribeBackupPlanList")
        .next()
        .expect("describe");
    assert_eq!(describe.query_params, ["BackupPlanId"]);
    assert!(describe.body_params.is_empty());
    emu.shutdown().await;
}

#[tokio::test]
async fn dbs_errors_carry_their_4xx_status_by_default() {
    let (emu, c) = start_client().await;
    let r = c
        .dbs("DescribeBackupPlanBilling", &[("BackupPlanId", "dbs-nope")])
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    r.assert_dbs_error("InvalidJobId");
    assert_eq!(r.body["Message"], r.body["ErrMessage"]);
    assert!(r.body["RequestId"].as_str().is_some_and(|s| !s.is_empty()));
    let r = c
        .dbs("DescribeBackupPlanList", &[("PageSize", "101")])
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    r.assert_dbs_error("InvalidParameter");
    let calls: Vec<(String, u16)> = emu
        .snapshot()
        .calls
        .iter()
        .map(|c| (c.outcome.clone(), c.http_status))
        .collect();
    assert_eq!(
        calls,
        [
            ("InvalidJobId".to_owned(), 404),
            ("InvalidParameter".to_owned(), 400)
        ]
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn the_success_false_mode_answers_http_200_and_is_switched_at_run_time() {
    let emu = start_with(EmulatorConfig {
        dbs_errors: DbsErrorMode::SuccessFalse,
        ..EmulatorConfig::default()
    })
    .await;
    let c = Client::new(&emu);
    let release = [("BackupPlanId", "dbs-nope")];
    let r = c.dbs("ReleaseBackupPlan", &release).await;
    r.assert_dbs_success_false("InvalidJobId");
    assert_eq!(r.body["HttpStatusCode"], 404, "the real status is echoed");

    admin_ok(
        &emu,
        "PUT",
        "/settings",
        Some(json!({"dbsErrors": "http-status"})),
    )
    .await;
    c.dbs("ReleaseBackupPlan", &release)
        .await
        .assert_dbs_error("InvalidJobId");
    admin_ok(
        &emu,
        "PUT",
        "/settings",
        Some(json!({"dbsErrors": "success-false"})),
    )
    .await;
    c.dbs("ReleaseBackupPlan", &release)
        .await
        .assert_dbs_success_false("InvalidJobId");
    let (status, body) = admin(
        &emu,
        "PUT",
        "/settings",
        Some(json!({"dbsErrors": "maybe"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let logged: Vec<(String, u16)> = emu
        .snapshot()
        .calls
        .iter()
        .map(|c| (c.outcome.clone(), c.http_status))
        .collect();
    let want = |s| ("InvalidJobId".to_owned(), s);
    assert_eq!(logged, [want(200), want(404), want(200)]);
    emu.shutdown().await;
}
