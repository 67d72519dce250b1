//! RDS public endpoint behaviour.

use std::time::Duration;

use crate::common::*;

async fn allocate(c: &Client, id: &str, prefix: &str, port: &str) -> Resp {
    c.rds(
        "AllocateInstancePublicConnection",
        &[
            ("DBInstanceId", id),
            ("ConnectionStringPrefix", prefix),
            ("Port", port),
            ("RegionId", "cn-hangzhou"),
        ],
    )
    .await
}

/// ModifyDBInstanceConnectionString of rm-test1's `current` to `prefix`, port 3307.
async fn modify(c: &Client, prefix: &str, current: &str) -> Resp {
    let params = [
        ("DBInstanceId", "rm-test1"),
        ("CurrentConnectionString", current),
        ("ConnectionStringPrefix", prefix),
        ("Port", "3307"),
    ];
    c.rds("ModifyDBInstanceConnectionString", &params).await
}

/// ReleaseInstanceConnection of rm-test1's `current`, of the network type `net`.
async fn release(c: &Client, current: &str, net: &str) -> Resp {
    let params = [
        ("DBInstanceId", "rm-test1"),
        ("CurrentConnectionString", current),
        ("InstanceNetworkType", net),
    ];
    c.rds("ReleaseInstanceConnection", &params).await
}

async fn status(c: &Client, id: &str) -> String {
    let r = c
        .rds("DescribeDBInstanceAttribute", &[("DBInstanceId", id)])
        .await;
    r.body["Items"]["DBInstanceAttribute"][0]["DBInstanceStatus"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn allocate_makes_the_instance_busy_and_busy_instances_refuse_changes() {
    let (emu, c) = start_client().await;
    let r = allocate(&c, "rm-test1", "app-public", "3306").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["DbInstanceName"], "rm-test1");
    assert_eq!(
        r.body["ConnectionString"],
        "app-public.mysql.rds.aliyuncs.com"
    );
    assert_eq!(status(&c, "rm-test1").await, "DBInstanceNetTypeChanging");
    let r = release(&c, "app-public.mysql.rds.aliyuncs.com", "0").await;
    r.assert_code(400, "OperationDenied.DBInstanceStatus");
    let r = modify(&c, "app-public-2", "app-public.mysql.rds.aliyuncs.com").await;
    r.assert_code(400, "OperationDenied.DBInstanceStatus");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(status(&c, "rm-test1").await, "Running");
    let r = allocate(&c, "rm-test1", "another-one", "3306").await;
    r.assert_code(400, "NetTypeExists");
    let r = c.net_info("rm-test1").await;
    assert_eq!(r.body["InstanceNetworkType"], "VPC");
    let infos = r.body["DBInstanceNetInfos"]["DBInstanceNetInfo"]
        .as_array()
        .expect("net infos")
        .clone();
    assert_eq!(infos.len(), 2);
    assert_eq!(infos[0]["IPType"], "Private");
    assert_eq!(
        infos[0]["ConnectionString"],
        "rm-test1-internal.mysql.rds.aliyuncs.com"
    );
    assert_eq!(infos[0]["Port"], "3306");
    assert_eq!(infos[1]["IPType"], "Public");
    assert_eq!(infos[1]["ConnectionStringType"], "Normal");
    emu.shutdown().await;
}

#[tokio::test]
async fn prefix_used_by_another_instance_is_404_duplicate() {
    let (emu, c) = start_client().await;
    assert_eq!(
        allocate(&c, "rm-test1", "shared-name", "3306").await.status,
        200
    );
    let r = allocate(&c, "rm-test2", "shared-name", "3306").await;
    r.assert_code(404, "InvalidConnectionString.Duplicate");
    emu.shutdown().await;
}

#[tokio::test]
async fn allocate_validates_prefix_port_and_instance() {
    let (emu, c) = start_client().await;
    for (prefix, port, code) in [
        (
            "bad!name",
            "3306",
            "ConnectionStringContainIllegalCharacterFault",
        ),
        ("abcd", "3306", "InvalidConnectionString.Format"),
        (
            &"a".repeat(41) as &str,
            "3306",
            "InvalidConnectionString.Format",
        ),
        ("goodname", "999", "InvalidPort.Malformed"),
        ("goodname", "6000", "InvalidPort.Malformed"),
    ] {
        let r = allocate(&c, "rm-test1", prefix, port).await;
        assert_eq!((r.status, r.code()), (400, code), "{prefix}:{port}");
    }
    let r = allocate(&c, "rm-nope", "goodname", "3306").await;
    r.assert_code(400, "InvalidDBInstanceId.NotFound");
    let r = c
        .rds(
            "AllocateInstancePublicConnection",
            &[("DBInstanceId", "rm-test1")],
        )
        .await;
    r.assert_code(400, "MissingParameter");
    emu.shutdown().await;
}

#[tokio::test]
async fn modify_and_release_follow_documented_errors() {
    let (emu, c) = start_client().await;
    let endpoint = serde_json::json!({"connectionStringPrefix": "pub-ep", "port": 3306});
    admin_ok(
        &emu,
        "POST",
        "/instances/rm-test1/connections",
        Some(endpoint),
    )
    .await;
    let r = modify(&c, "short", "pub-ep.mysql.rds.aliyuncs.com").await;
    r.assert_code(400, "InvalidConnectionString.Format");
    let r = modify(&c, "longenough", "nope.mysql.rds.aliyuncs.com").await;
    r.assert_code(400, "InvalidConnectionString.NotFound");
    let r = modify(&c, "rm-test2-internal", "pub-ep.mysql.rds.aliyuncs.com").await;
    r.assert_code(400, "InvalidConnectionString.Duplicate");
    let r = modify(&c, "longenough", "pub-ep.mysql.rds.aliyuncs.com").await;
    assert_eq!(r.status, 200, "{}", r.body);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = release(&c, "longenough.mysql.rds.aliyuncs.com", "2").await;
    r.assert_code(400, "InvalidParameter");
    let r = release(&c, "gone.mysql.rds.aliyuncs.com", "0").await;
    r.assert_code(404, "Endpoint.NotFound");
    let r = release(&c, "longenough.mysql.rds.aliyuncs.com", "0").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .rds(
            "ReleaseInstanceConnection",
            &[
                ("DBInstanceId", "rm-test1"),
                ("CurrentConnectionString", "x"),
            ],
        )
        .await;
    r.assert_code(400, "MissingParameter");
    let state = emu.state();
    assert_eq!(
        state["instances"][0]["connections"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn forced_and_deleted_instances_are_reported() {
    let (emu, c) = start_client().await;
    let rebooting = serde_json::json!({"status": "Rebooting"});
    admin_ok(&emu, "PUT", "/instances/rm-test1", Some(rebooting)).await;
    let r = allocate(&c, "rm-test1", "goodname", "3306").await;
    r.assert_code(400, "IncorrectDBInstanceState");
    assert_eq!(status(&c, "rm-test1").await, "Rebooting");
    let running = serde_json::json!({"status": "Running"});
    admin(&emu, "PUT", "/instances/rm-test1", Some(running)).await;
    assert_eq!(
        allocate(&c, "rm-test1", "goodname", "3306").await.status,
        200
    );
    admin_ok(&emu, "DELETE", "/instances/rm-test2", None).await;
    let r = c.net_info("rm-test2").await;
    r.assert_code(400, "InvalidDBInstanceId.NotFound");
    emu.shutdown().await;
}
