//! The Alibaba Cloud client over real HTTP against the in-process emulator: every typed call,
//! every error class, retries, idempotency, client-side rate limiting, RRSA, and redaction.

#[allow(dead_code)]
mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alicloud_db_operator::cloud::dbs::{
    BackupPlanPage, ConfigureBackupPlan, CreateBackupPlan, DescribeBackupPlanList,
    ModifyBackupSourceEndpoint, ModifyBackupStrategy, ModifyStorageStrategy, SourceEndpoint,
    StopMethod,
};
use alicloud_db_operator::cloud::rds::{
    AllocatePublicConnection, InstanceNetInfo, ModifyConnectionString,
};
use alicloud_db_operator::cloud::{
    AlibabaCloud, ClientConfig, CloudError, CredentialProvider, Credentials, DbsApi, Endpoints,
    ErrorKind, Quotas, RdsApi, RrsaConfig, Scope, SignatureVersion,
};
use alicloud_emulator::{Emulator, EmulatorConfig};
use base64::Engine as _;
use serde_json::json;

const AK: &str = common::ACCESS_KEY_ID;
const SECRET: &str = common::ACCESS_KEY_SECRET;
const PASSWORD: &str = "db-Passw0rd-never-logged";
const REGION: &str = "cn-hangzhou";
const INSTANCE: &str = "rm-bp1test0001";
const OTHER_INSTANCE: &str = "rm-bp1test0002";
/// The fault of a transient outage: code and HTTP status.
const UNAVAILABLE: (&str, u16) = ("ServiceUnavailable", 503);

// ---------------------------------------------------------------- harness

/// The emulator with two instances and short delays, then changed by `tweak`.
async fn start_emulator(tweak: impl FnOnce(&mut EmulatorConfig)) -> Emulator {
    common::start_emulator(|c| {
        c.rds_instances = vec![
            (REGION.into(), INSTANCE.into()),
            (REGION.into(), OTHER_INSTANCE.into()),
        ];
        c.configure_delay = Duration::from_millis(300);
        c.instance_busy = Duration::from_millis(200);
        tweak(c);
    })
    .await
}

/// An emulator as [`start_emulator`] with no changes, and a client of it changed by `tweak`.
async fn setup(tweak: impl FnOnce(&mut ClientConfig)) -> (Emulator, AlibabaCloud) {
    let emu = start_emulator(|_| {}).await;
    let client = client_for(&emu, tweak);
    (emu, client)
}

/// The emulator's quota of ReleaseInstanceConnection: 10 calls a second.
fn release_quota_of_10(c: &mut EmulatorConfig) {
    c.quotas = HashMap::from([("ReleaseInstanceConnection".to_owned(), 10)]);
}

fn client_for(emu: &Emulator, tweak: impl FnOnce(&mut ClientConfig)) -> AlibabaCloud {
    let mut config = ClientConfig {
        endpoints: Endpoints::all(emu.url()),
        timeout: Duration::from_secs(5),
        base_backoff: Duration::from_millis(20),
        ..ClientConfig::default()
    };
    tweak(&mut config);
    AlibabaCloud::new(config).expect("client builds")
}

fn scope() -> Scope {
    scope_of(Credentials::new(AK, SECRET))
}

fn scope_of(credentials: Credentials) -> Scope {
    Scope {
        credentials,
        region: REGION.into(),
    }
}

/// Panics unless `err` is of `kind` and carries `code`.
fn assert_error(err: &CloudError, kind: ErrorKind, code: &str) {
    assert_eq!(err.kind, kind, "{err}");
    assert!(err.has_code(code), "{err}");
}

/// The plan `id` as DescribeBackupPlanList lists it (one page of up to 10).
async fn plan_page(client: &AlibabaCloud, s: &Scope, id: &str) -> BackupPlanPage {
    let request = DescribeBackupPlanList {
        backup_plan_id: Some(id.to_owned()),
        page_size: 10,
        ..DescribeBackupPlanList::default()
    };
    client.describe_backup_plan_list(s, &request).await.unwrap()
}

async fn net_info(client: &AlibabaCloud) -> InstanceNetInfo {
    client
        .describe_db_instance_net_info(&scope(), INSTANCE)
        .await
        .unwrap()
}

fn postpay_plan(client_token: Option<&str>) -> CreateBackupPlan {
    CreateBackupPlan {
        instance_class: "micro".into(),
        database_type: "MySQL".into(),
        backup_method: "logical".into(),
        pay_type: "postpay".into(),
        database_region: Some(REGION.into()),
        storage_region: Some(REGION.into()),
        instance_type: Some("RDS".into()),
        client_token: client_token.map(str::to_owned),
        ..CreateBackupPlan::default()
    }
}

fn rds_source() -> SourceEndpoint {
    SourceEndpoint {
        instance_type: "RDS".into(),
        region: Some(REGION.into()),
        instance_id: Some(INSTANCE.into()),
        user_name: Some("backup".into()),
        password: Some(PASSWORD.into()),
        ..SourceEndpoint::default()
    }
}

fn configure(plan_id: &str) -> ConfigureBackupPlan {
    ConfigureBackupPlan {
        backup_plan_id: plan_id.into(),
        backup_plan_name: "orders".into(),
        source: rds_source(),
        backup_objects: Some(r#"[{"DBName":"orders"}]"#.into()),
        backup_period: Some("Monday,Thursday".into()),
        backup_start_time: Some("14:22".into()),
        backup_strategy_type: Some("simple".into()),
        backup_retention_period: Some(30),
        ..ConfigureBackupPlan::default()
    }
}

fn outcomes(emu: &Emulator, action: &str) -> Vec<String> {
    common::calls(emu, action)
        .into_iter()
        .map(|c| c.outcome)
        .collect()
}

async fn wait_running(client: &AlibabaCloud) {
    common::eventually(
        "the instance to be Running",
        Duration::from_secs(5),
        || async {
            let attr = client
                .describe_db_instance_attribute(&scope(), INSTANCE)
                .await
                .unwrap();
            attr.is_running().then_some(())
        },
    )
    .await;
}

fn jwt(subject: &str, exp_offset_s: i64) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = chrono::Utc::now().timestamp();
    let header = b64.encode(r#"{"alg":"RS256","kid":"test"}"#);
    let payload = b64.encode(
        json!({
            "iss": "https://oidc-ack-cn-hangzhou.oss-cn-hangzhou.aliyuncs.com/c1",
            "sub": subject,
            "aud": "sts.aliyuncs.com",
            "iat": now,
            "exp": now + exp_offset_s,
        })
        .to_string(),
    );
    format!("{header}.{payload}.c2lnbmF0dXJl")
}

/// A token file in a fresh directory (kept while the `TempDir` lives), holding `token`.
fn write_token_file(token: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, token).unwrap();
    (dir, file)
}

fn rrsa_config(token_file: &std::path::Path) -> RrsaConfig {
    RrsaConfig {
        role_arn: "acs:ram::1234567890123456:role/db-operator".into(),
        oidc_provider_arn: "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1".into(),
        token_file: token_file.to_owned(),
        role_session_name: "alicloud-db-operator".into(),
        duration: None,
    }
}

// ---------------------------------------------------------------- DBS calls

#[tokio::test]
async fn every_dbs_call_round_trips_with_normalised_describe() {
    let (emu, client) = setup(|_| {}).await;
    let s = scope();

    let created = client
        .create_backup_plan(&s, &postpay_plan(Some("tok-lifecycle")))
        .await
        .unwrap();
    assert!(created.backup_plan_id.starts_with("dbs"), "{created:?}");
    assert!(created.order_id.is_some());
    let id = created.backup_plan_id;
    tokio::time::sleep(Duration::from_millis(350)).await;
    client
        .configure_backup_plan(&s, &configure(&id))
        .await
        .unwrap();
    client
        .start_backup_plan(&s, &id, Some("tok-start"))
        .await
        .unwrap();

    let page = plan_page(&client, &s, &id).await;
    assert_eq!(page.total_elements, 1);
    let plan = &page.items[0];
    assert_eq!(plan.backup_plan_id, id);
    assert_eq!(plan.backup_plan_name, "orders");
    assert_eq!(plan.source_endpoint_instance_type.as_deref(), Some("RDS"));
    assert_eq!(plan.backup_period.as_deref(), Some("Monday,Thursday"));
    assert_eq!(plan.source_endpoint_instance_id.as_deref(), Some(INSTANCE));
    assert_eq!(plan.backup_retention_period, Some(30));

    let strategy = ModifyBackupStrategy {
        backup_plan_id: id.clone(),
        backup_period: "Tuesday".into(),
        backup_start_time: Some("03:00".into()),
        ..ModifyBackupStrategy::default()
    };
    client.modify_backup_strategy(&s, &strategy).await.unwrap();
    let storage = ModifyStorageStrategy {
        backup_plan_id: id.clone(),
        backup_retention_period: 400,
        duplication_infrequent_access_period: 180,
        duplication_archive_period: 365,
    };
    client.modify_storage_strategy(&s, &storage).await.unwrap();
    let source = ModifyBackupSourceEndpoint {
        backup_plan_id: id.clone(),
        source: rds_source(),
        backup_objects: Some(r#"[{"DBName":"orders"}]"#.into()),
    };
    client
        .modify_backup_source_endpoint(&s, &source)
        .await
        .unwrap();
    client
        .modify_backup_plan_name(&s, &id, "orders-renamed")
        .await
        .unwrap();

    let billing = client.describe_backup_plan_billing(&s, &id).await.unwrap();
    assert_eq!(billing.buy_charge_type, "POSTPAY");

    let page = plan_page(&client, &s, &id).await;
    let plan = &page.items[0];
    assert_eq!(plan.backup_plan_name, "orders-renamed");
    assert_eq!(plan.backup_period.as_deref(), Some("Tuesday"));
    assert_eq!(plan.backup_retention_period, Some(400));

    client
        .stop_backup_plan(&s, &id, StopMethod::All)
        .await
        .unwrap();
    client.release_backup_plan(&s, &id).await.unwrap();
    let err = client.release_backup_plan(&s, &id).await.unwrap_err();
    assert_error(&err, ErrorKind::NotFound, "InvalidJobId");
    emu.shutdown().await;
}

#[tokio::test]
async fn configure_too_soon_after_create_is_refused_with_a_generic_code() {
    let (emu, client) = setup(|c| c.max_attempts = 1).await;
    let s = scope();
    let id = client
        .create_backup_plan(&s, &postpay_plan(None))
        .await
        .unwrap()
        .backup_plan_id;
    let err = client
        .configure_backup_plan(&s, &configure(&id))
        .await
        .unwrap_err();
    // DBS documents no code for "too early": the client gives it no meaning of its own (the
    // controller waits out any refusal shortly after the creation).
    assert_error(&err, ErrorKind::Terminal, "OperationDenied");
    tokio::time::sleep(Duration::from_millis(350)).await;
    client
        .configure_backup_plan(&s, &configure(&id))
        .await
        .unwrap();
    emu.shutdown().await;
}

#[tokio::test]
async fn the_same_client_token_creates_one_plan() {
    let (emu, client) = setup(|_| {}).await;
    let req = postpay_plan(Some("uid-1234-create"));
    let first = client.create_backup_plan(&scope(), &req).await.unwrap();
    let second = client.create_backup_plan(&scope(), &req).await.unwrap();
    assert_eq!(first.backup_plan_id, second.backup_plan_id);
    let state = emu.snapshot();
    assert_eq!(state.plans.len(), 1, "{:?}", state.plans);
    emu.shutdown().await;
}

// ---------------------------------------------------------------- RDS calls

#[tokio::test]
async fn every_rds_call_round_trips() {
    let (emu, client) = setup(|_| {}).await;
    let s = scope();

    let attr = client
        .describe_db_instance_attribute(&s, INSTANCE)
        .await
        .unwrap();
    assert_eq!(attr.db_instance_id, INSTANCE);
    assert!(attr.is_running());

    let allocate = AllocatePublicConnection {
        db_instance_id: INSTANCE.into(),
        connection_string_prefix: "orderspub".into(),
        port: 3306,
        ..AllocatePublicConnection::default()
    };
    let conn = client
        .allocate_instance_public_connection(&s, &allocate)
        .await
        .unwrap();
    assert!(conn.starts_with("orderspub."), "{conn}");

    let net = net_info(&client).await;
    assert_eq!(net.instance_network_type.as_deref(), Some("VPC"));
    let public = net
        .public_endpoint("orderspub")
        .expect("public endpoint listed");
    assert_eq!(public.connection_string, conn);
    assert_eq!(public.port, Some(3306));

    // Busy right after the allocation: a Modify now is refused as retryable, and not repeated.
    let modify = ModifyConnectionString {
        db_instance_id: INSTANCE.into(),
        current_connection_string: conn.clone(),
        connection_string_prefix: "orderspub2".into(),
        port: 3307,
        ..ModifyConnectionString::default()
    };
    if let Err(err) = client
        .modify_db_instance_connection_string(&s, &modify)
        .await
    {
        assert_eq!(err.kind, ErrorKind::Retryable, "{err}");
        wait_running(&client).await;
        client
            .modify_db_instance_connection_string(&s, &modify)
            .await
            .unwrap();
    }
    wait_running(&client).await;
    let net = net_info(&client).await;
    let public = net
        .public_endpoint("orderspub2")
        .expect("renamed endpoint")
        .clone();
    assert_eq!(public.port, Some(3307));

    client
        .release_instance_connection(&s, INSTANCE, &public.connection_string, "0")
        .await
        .unwrap();
    let net = net_info(&client).await;
    assert!(
        net.endpoints.iter().all(|e| e.ip_type != "Public"),
        "{net:?}"
    );
    emu.shutdown().await;
}

// ---------------------------------------------------------------- error classes

#[tokio::test]
async fn a_transient_503_on_a_read_is_retried_to_success() {
    let (emu, client) = setup(|_| {}).await;
    common::fail_next(&emu, "DescribeDBInstanceNetInfo", UNAVAILABLE, 2).await;
    net_info(&client).await;
    assert_eq!(
        outcomes(&emu, "DescribeDBInstanceNetInfo"),
        ["ServiceUnavailable", "ServiceUnavailable", "Success"]
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn a_503_on_a_non_idempotent_write_is_not_repeated() {
    let (emu, client) = setup(|_| {}).await;
    common::fail_next(&emu, "ReleaseInstanceConnection", UNAVAILABLE, 1).await;
    let err = client
        .release_instance_connection(&scope(), INSTANCE, "nothing.mysql.rds.aliyuncs.com", "0")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable);
    assert_eq!(err.http_status, Some(503));
    assert_eq!(
        outcomes(&emu, "ReleaseInstanceConnection"),
        ["ServiceUnavailable"]
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn persistent_5xx_gives_up_after_max_attempts() {
    let (emu, client) = setup(|c| c.max_attempts = 3).await;
    common::fail_always(&emu, "DescribeBackupPlanList", ("InternalError", 500)).await;
    let err = client
        .describe_backup_plan_list(&scope(), &DescribeBackupPlanList::default())
        .await
        .unwrap_err();
    assert_error(&err, ErrorKind::Retryable, "InternalError");
    assert_eq!(common::calls(&emu, "DescribeBackupPlanList").len(), 3);
    common::clear_faults(&emu).await;
    client
        .describe_backup_plan_list(&scope(), &DescribeBackupPlanList::default())
        .await
        .unwrap();
    emu.shutdown().await;
}

#[tokio::test]
async fn flow_control_refusals_are_throttled() {
    let emu = start_emulator(|_| {}).await;
    let client = client_for(&emu, |c| {
        c.max_attempts = 1;
        c.quotas = Quotas {
            default_per_second: 0,
            ..Quotas::default()
        };
    });
    common::admin(
        &emu,
        reqwest::Method::PUT,
        "/quotas/DescribeDBInstanceAttribute",
        json!({"perSecond": 2}),
    )
    .await;
    let s = scope();
    let results = futures::future::join_all(
        (0..6).map(|_| client.describe_db_instance_attribute(&s, INSTANCE)),
    )
    .await;
    let throttled: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(!throttled.is_empty());
    for err in throttled {
        assert_error(err, ErrorKind::Throttled, "Throttling.User");
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn missing_resources_are_not_found() {
    let (emu, client) = setup(|_| {}).await;
    let s = scope();
    let err = client
        .describe_db_instance_attribute(&s, "rm-missing")
        .await
        .unwrap_err();
    assert_error(&err, ErrorKind::NotFound, "InvalidDBInstanceId.NotFound");
    let err = client
        .release_instance_connection(&s, INSTANCE, "gone.mysql.rds.aliyuncs.com", "0")
        .await
        .unwrap_err();
    assert_error(&err, ErrorKind::NotFound, "Endpoint.NotFound");
    assert_eq!(err.http_status, Some(404));
    let err = client
        .start_backup_plan(&s, "dbsmissing01", None)
        .await
        .unwrap_err();
    assert_error(&err, ErrorKind::NotFound, "InvalidJobId");
    emu.shutdown().await;
}

#[tokio::test]
async fn a_wrong_secret_or_unknown_key_is_invalid_credentials() {
    let (emu, client) = setup(|_| {}).await;
    let wrong_secret = scope_of(Credentials::new(AK, "not-the-secret"));
    let err = client
        .describe_db_instance_attribute(&wrong_secret, INSTANCE)
        .await
        .unwrap_err();
    assert_error(&err, ErrorKind::InvalidCredentials, "SignatureDoesNotMatch");
    let unknown = scope_of(Credentials::new("LTAIunknown", SECRET));
    let err = client
        .describe_backup_plan_list(&unknown, &DescribeBackupPlanList::default())
        .await
        .unwrap_err();
    assert_error(
        &err,
        ErrorKind::InvalidCredentials,
        "InvalidAccessKeyId.NotFound",
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn bad_parameters_and_duplicate_prefixes_are_terminal() {
    let (emu, client) = setup(|_| {}).await;
    let s = scope();
    let bad = CreateBackupPlan {
        instance_class: "gigantic".into(),
        ..postpay_plan(None)
    };
    let err = client.create_backup_plan(&s, &bad).await.unwrap_err();
    assert_error(&err, ErrorKind::Terminal, "InvalidParameter");

    let allocate = AllocatePublicConnection {
        db_instance_id: INSTANCE.into(),
        connection_string_prefix: "duppfx01".into(),
        port: 3306,
        ..AllocatePublicConnection::default()
    };
    client
        .allocate_instance_public_connection(&s, &allocate)
        .await
        .unwrap();
    let same_prefix_elsewhere = AllocatePublicConnection {
        db_instance_id: OTHER_INSTANCE.into(),
        ..allocate
    };
    let err = client
        .allocate_instance_public_connection(&s, &same_prefix_elsewhere)
        .await
        .unwrap_err();
    // A 404 that is not "not found": the controller checks whether the prefix is its own.
    assert_eq!(err.http_status, Some(404));
    assert_eq!(err.kind, ErrorKind::Terminal, "{err}");
    assert!(!err.is_not_found());
    assert!(err.has_code("InvalidConnectionString.Duplicate"));
    emu.shutdown().await;
}

// ---------------------------------------------------------------- client-side rate limiting

/// 2× the quota of ReleaseInstanceConnection (10/s on both sides, the defaults) at once.
async fn release_burst(client: &AlibabaCloud) -> Duration {
    let start = Instant::now();
    let results = futures::future::join_all((0..20).map(|i| async move {
        let endpoint = format!("absent{i:02}.mysql.rds.aliyuncs.com");
        client
            .release_instance_connection(&scope(), INSTANCE, &endpoint, "0")
            .await
    }))
    .await;
    for r in results {
        let err = r.expect_err("the endpoints do not exist");
        assert!(
            err.has_code("Endpoint.NotFound") || err.has_code("Throttling.User"),
            "{err}"
        );
    }
    start.elapsed()
}

#[tokio::test]
async fn twice_the_quota_is_served_without_throttling() {
    let emu = start_emulator(release_quota_of_10).await;
    // Default quotas: ReleaseInstanceConnection at 10/s; no retries to hide throttling.
    let client = client_for(&emu, |c| c.max_attempts = 1);
    let elapsed = release_burst(&client).await;
    let log = outcomes(&emu, "ReleaseInstanceConnection");
    assert_eq!(log.len(), 20);
    assert_eq!(
        log.iter().filter(|o| *o == "Throttling.User").count(),
        0,
        "{log:?}"
    );
    assert!(elapsed >= Duration::from_millis(1800), "{elapsed:?}");
    emu.shutdown().await;
}

#[tokio::test]
async fn without_the_client_limiter_the_same_demand_is_throttled() {
    let emu = start_emulator(release_quota_of_10).await;
    let client = client_for(&emu, |c| {
        c.max_attempts = 1;
        c.quotas = Quotas::default().with("ReleaseInstanceConnection", 1000);
    });
    // The emulator counts per wall-clock second: start just after a boundary so the unpaced
    // burst cannot straddle two windows.
    let now_ms = chrono::Utc::now().timestamp_subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(1050 - now_ms.min(1000)))).await;
    release_burst(&client).await;
    let log = outcomes(&emu, "ReleaseInstanceConnection");
    assert!(log.iter().any(|o| o == "Throttling.User"), "{log:?}");
    emu.shutdown().await;
}

// ---------------------------------------------------------------- RRSA

#[tokio::test]
async fn rrsa_credentials_sign_dbs_calls() {
    let (emu, client) = setup(|_| {}).await;
    let (_dir, token_file) = write_token_file(&jwt("system:serviceaccount:ops:db-operator", 3600));
    // Through the default chain, as the operator starts: no AccessKey pair, the RRSA triple set.
    let config = rrsa_config(&token_file);
    let env: HashMap<&str, String> = HashMap::from([
        ("ALIBABA_CLOUD_ROLE_ARN", config.role_arn.clone()),
        (
            "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
            config.oidc_provider_arn.clone(),
        ),
        (
            "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
            token_file.display().to_string(),
        ),
    ]);
    let provider = client
        .default_credentials_from(&|name| env.get(name).cloned())
        .unwrap();
    let creds = provider.credentials().await.unwrap();
    assert!(creds.access_key_id.starts_with("STS."), "{creds:?}");
    assert!(creds.security_token.is_some());
    assert_ne!(creds.access_key_id, AK);
    // Cached: a second call does not exchange again.
    assert_eq!(provider.credentials().await.unwrap(), creds);
    assert_eq!(common::calls(&emu, "AssumeRoleWithOIDC").len(), 1);

    let sts_scope = scope_of(creds.clone());
    client
        .describe_backup_plan_list(&sts_scope, &DescribeBackupPlanList::default())
        .await
        .unwrap();
    let log = common::calls(&emu, "DescribeBackupPlanList");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].access_key_id, creds.access_key_id.as_str());
    assert_eq!(log[0].outcome, "Success");
    emu.shutdown().await;
}

#[tokio::test]
async fn rrsa_rereads_the_rotated_token_file_on_refresh() {
    let emu = start_emulator(|c| c.sts_max_duration = Some(Duration::from_secs(2))).await;
    let client = client_for(&emu, |_| {});
    let (_dir, token_file) = write_token_file(&jwt("first", 3600));
    let provider = client.rrsa_credentials(rrsa_config(&token_file));
    let first = provider.credentials().await.unwrap();

    // The kubelet rotated the file to a token that has since expired: the refresh must use it.
    std::fs::write(&token_file, jwt("second", -60)).unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let err = provider.credentials().await.unwrap_err();
    assert_error(
        &err,
        ErrorKind::InvalidCredentials,
        "AuthenticationFail.OIDCToken.Expired",
    );

    std::fs::write(&token_file, jwt("third", 3600)).unwrap();
    let third = provider.credentials().await.unwrap();
    assert_ne!(third.access_key_id, first.access_key_id);
    client
        .describe_db_instance_attribute(&scope_of(third), INSTANCE)
        .await
        .unwrap();
    assert_eq!(common::calls(&emu, "AssumeRoleWithOIDC").len(), 3);
    emu.shutdown().await;
}

// ---------------------------------------------------------------- signing, redaction

#[tokio::test]
async fn v2_signatures_are_accepted_too() {
    let (emu, client) = setup(|c| c.signature_version = SignatureVersion::V2).await;
    client
        .describe_db_instance_attribute(&scope(), INSTANCE)
        .await
        .unwrap();
    let id = client
        .create_backup_plan(&scope(), &postpay_plan(Some("v2-token")))
        .await
        .unwrap()
        .backup_plan_id;
    assert!(id.starts_with("dbs"));
    emu.shutdown().await;
}

// ---------------------------------------------------------------- transport

/// The DBS errors a client meets, as (kind, code, message) whatever transport carried them.
async fn dbs_errors_seen(client: &AlibabaCloud) -> Vec<(ErrorKind, Option<String>, String)> {
    let s = scope();
    let mut errors = vec![
        client
            .release_backup_plan(&s, "dbsmissing01")
            .await
            .unwrap_err(),
        client
            .describe_backup_plan_billing(&s, "dbsmissing01")
            .await
            .unwrap_err(),
    ];
    let too_big_a_page = DescribeBackupPlanList {
        page_size: 101,
        ..DescribeBackupPlanList::default()
    };
    errors.push(
        client
            .describe_backup_plan_list(&s, &too_big_a_page)
            .await
            .unwrap_err(),
    );
    errors
        .into_iter()
        .map(|e| (e.kind, e.code, e.message))
        .collect()
}

/// HTTP statuses of the DBS calls the emulator answered (the client's one STS
/// `GetCallerIdentity` per key, which names the account its quotas count against, is left out).
fn dbs_statuses(emu: &Emulator) -> Vec<u16> {
    emu.snapshot()
        .calls
        .iter()
        .filter(|c| c.product == "dbs")
        .map(|c| c.http_status)
        .collect()
}

#[tokio::test]
async fn dbs_errors_are_the_same_on_their_4xx_status_and_on_http_200_success_false() {
    let (emu, client) = setup(|_| {}).await;
    let with_status = dbs_errors_seen(&client).await;
    let statuses: Vec<u16> = dbs_statuses(&emu);
    assert_eq!(
        statuses,
        [404, 404, 400],
        "the default mode sends the status"
    );

    common::admin(
        &emu,
        reqwest::Method::PUT,
        "/settings",
        json!({"dbsErrors": "success-false"}),
    )
    .await;
    common::admin(&emu, reqwest::Method::DELETE, "/calls", json!({})).await;
    let on_200 = dbs_errors_seen(&client).await;
    let statuses: Vec<u16> = dbs_statuses(&emu);
    assert_eq!(statuses, [200, 200, 200]);

    assert_eq!(with_status, on_200);
    let kinds: Vec<(ErrorKind, Option<&str>)> = on_200
        .iter()
        .map(|(kind, code, _)| (*kind, code.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ErrorKind::NotFound, Some("InvalidJobId")),
            (ErrorKind::NotFound, Some("InvalidJobId")),
            (ErrorKind::Terminal, Some("InvalidParameter")),
        ]
    );
    emu.shutdown().await;
}

/// For every logged call: (action, format, query parameter names, body parameter names).
fn shapes(emu: &Emulator) -> Vec<(String, String, Vec<String>, Vec<String>)> {
    emu.snapshot()
        .calls
        .into_iter()
        .map(|c| (c.action, c.format, c.query_params, c.body_params))
        .collect()
}

#[tokio::test]
async fn requests_ask_for_json_and_carry_their_parameters_in_the_query_like_the_sdk() {
    for version in [SignatureVersion::V3, SignatureVersion::V2] {
        let (emu, client) = setup(|c| c.signature_version = version).await;
        let s = scope();
        let id = client
            .create_backup_plan(&s, &postpay_plan(None))
            .await
            .unwrap()
            .backup_plan_id;
        tokio::time::sleep(Duration::from_millis(350)).await;
        client
            .configure_backup_plan(&s, &configure(&id))
            .await
            .unwrap();
        plan_page(&client, &s, &id).await;
        client.start_backup_plan(&s, &id, None).await.unwrap();
        net_info(&client).await;

        for (action, format, query, body) in shapes(&emu) {
            assert_eq!(
                format, "json",
                "{version:?} {action}: Accept: application/json"
            );
            assert!(body.is_empty(), "{version:?} {action}: body {body:?}");
            let has = |name: &str| query.iter().any(|q| q == name);
            let takes_region = matches!(
                action.as_str(),
                "CreateBackupPlan" | "DescribeBackupPlanList"
            );
            assert_eq!(
                has("Region"),
                takes_region,
                "{version:?} {action}: {query:?}"
            );
            assert!(!has("RegionId"), "{version:?} {action}: {query:?}");
            if version == SignatureVersion::V2 {
                assert!(has("Format") && has("Signature"), "{action}: {query:?}");
            }
            if action == "ConfigureBackupPlan" {
                assert!(has("SourceEndpointPassword"), "{query:?}");
            }
        }
        let actions: Vec<String> = shapes(&emu).into_iter().map(|c| c.0).collect();
        assert_eq!(
            actions,
            [
                // Once per key: the account the key's calls count against (its quotas).
                "GetCallerIdentity",
                "CreateBackupPlan",
                "ConfigureBackupPlan",
                "DescribeBackupPlanList",
                "StartBackupPlan",
                "DescribeDBInstanceNetInfo"
            ]
        );
        emu.shutdown().await;
    }
}

#[tokio::test]
async fn a_password_in_the_query_stays_out_of_transport_errors() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = AlibabaCloud::new(ClientConfig {
        endpoints: Endpoints::all(format!("http://{addr}")),
        max_attempts: 1,
        ..ClientConfig::default()
    })
    .unwrap();
    let err = client
        .configure_backup_plan(&scope(), &configure("dbs1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Retryable);
    let rendered = format!("{err} {err:?}");
    assert!(!rendered.contains("Passw0rd"), "{rendered}");
    assert!(!rendered.contains("SourceEndpoint"), "no URL: {rendered}");
}

/// Collects everything the operator's crate logs.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn secrets_never_appear_in_logs_errors_or_debug_output() {
    use tracing_subscriber::layer::SubscriberExt as _;

    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish()
        .with(
            tracing_subscriber::filter::Targets::new()
                .with_target("alicloud_db_operator", tracing::Level::TRACE)
                // The query string carries the password: the HTTP stack must not log it either.
                .with_target("reqwest", tracing::Level::TRACE)
                .with_target("hyper_util", tracing::Level::TRACE),
        );
    let _guard = tracing::subscriber::set_default(subscriber);

    let (emu, client) = setup(|c| c.max_attempts = 2).await;
    let s = scope();
    let id = client
        .create_backup_plan(&s, &postpay_plan(None))
        .await
        .unwrap()
        .backup_plan_id;
    let req = configure(&id);
    // Too early: an error.
    let early = client.configure_backup_plan(&s, &req).await.unwrap_err();
    // Wrong secret: another error.
    let wrong = scope_of(Credentials {
        access_key_id: AK.into(),
        access_key_secret: "wrong-secret-value".into(),
        security_token: Some("sts-token-value-xyz".into()),
    });
    let denied = client
        .configure_backup_plan(&wrong, &req)
        .await
        .unwrap_err();
    tokio::time::sleep(Duration::from_millis(350)).await;
    client.configure_backup_plan(&s, &req).await.unwrap();

    let token = jwt("redaction", 3600);
    let (_dir, token_file) = write_token_file(&token);
    let provider = client.rrsa_credentials(rrsa_config(&token_file));
    let sts = provider.credentials().await.unwrap();

    let rendered = format!(
        "{early:?} {early} {denied:?} {denied} {req:?} {s:?} {wrong:?} {client:?} {provider:?} {sts:?}"
    );
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("ConfigureBackupPlan"),
        "logs were captured: {logged}"
    );
    let token_payload = token.split('.').nth(1).unwrap().to_owned();
    for secret in [
        PASSWORD,
        SECRET,
        "wrong-secret-value",
        "sts-token-value-xyz",
        sts.access_key_secret.as_str(),
        sts.security_token.as_deref().unwrap(),
        token_payload.as_str(),
    ] {
        assert!(
            !rendered.contains(secret),
            "{secret} in debug output: {rendered}"
        );
        assert!(!logged.contains(secret), "{secret} in logs: {logged}");
    }
    emu.shutdown().await;
}
