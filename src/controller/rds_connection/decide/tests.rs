//! Table tests of the pure decisions: one row per documented transition.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::*;
use crate::crd::{CredentialsRef, DeletionPolicy, InstanceNetworkType, LocalSecretRef};

fn spec(prefix: &str, port: i32) -> RdsConnectionSpec {
    RdsConnectionSpec {
        region: "cn-hangzhou".into(),
        db_instance_id: "rm-test0001".into(),
        connection_string_prefix: prefix.into(),
        port,
        instance_network_type: InstanceNetworkType::VPC,
        babelfish_port: None,
        pg_bouncer_port: None,
        deletion_policy: DeletionPolicy::Delete,
        credentials_ref: None,
        write_connection_secret_to_ref: None,
    }
}

fn public(prefix: &str, port: i32) -> NetInfoEndpoint {
    NetInfoEndpoint {
        connection_string: format!("{prefix}.mysql.rds.aliyuncs.com"),
        ip_address: Some("47.0.0.1".into()),
        ip_type: PUBLIC.into(),
        port: Some(port),
        babelfish_port: None,
        pg_bouncer_port: None,
    }
}

fn private(prefix: &str) -> NetInfoEndpoint {
    NetInfoEndpoint {
        connection_string: format!("{prefix}.mysql.rds.aliyuncs.com"),
        ip_address: Some("10.0.0.1".into()),
        ip_type: "Private".into(),
        port: Some(3306),
        babelfish_port: None,
        pg_bouncer_port: None,
    }
}

fn observed(status: &str, endpoints: Vec<NetInfoEndpoint>) -> Observed {
    Observed {
        instance_status: status.into(),
        net_info: InstanceNetInfo {
            instance_network_type: Some("VPC".into()),
            endpoints,
        },
    }
}

fn kind(step: &Step) -> String {
    match step {
        Step::Ready { endpoint } => format!("Ready {}", endpoint.connection_string),
        Step::WaitForInstance { endpoint } => format!(
            "Wait {}",
            endpoint
                .as_ref()
                .map_or("-", |e| e.connection_string.as_str())
        ),
        Step::Allocate(a) => format!("Allocate {}:{}", a.connection_string_prefix, a.port),
        Step::Modify { request, .. } => format!(
            "Modify {} -> {}:{}",
            request.current_connection_string, request.connection_string_prefix, request.port
        ),
        Step::Stall { reason, .. } => format!("Stall {}", reason.as_str()),
    }
}

#[test]
fn next_step_table() {
    let ours = "myapp-db.mysql.rds.aliyuncs.com";
    let cases: Vec<(&str, RdsConnectionSpec, Option<&str>, Observed, &str)> = vec![
        (
            "no public endpoint on a running instance: allocate",
            spec("myapp-db", 3306),
            None,
            observed("Running", vec![private("rm-test0001")]),
            "Allocate myapp-db:3306",
        ),
        (
            "no endpoint on a busy instance: wait, never allocate",
            spec("myapp-db", 3306),
            None,
            observed("Rebooting", vec![]),
            "Wait -",
        ),
        (
            "endpoint created out of band with our prefix and port: adopt without allocate",
            spec("myapp-db", 3306),
            None,
            observed(
                "Running",
                vec![private("rm-test0001"), public("myapp-db", 3306)],
            ),
            "Ready myapp-db.mysql.rds.aliyuncs.com",
        ),
        (
            "our endpoint right after allocate, instance still changing: wait",
            spec("myapp-db", 3306),
            Some(ours),
            observed("DBInstanceNetTypeChanging", vec![public("myapp-db", 3306)]),
            "Wait myapp-db.mysql.rds.aliyuncs.com",
        ),
        (
            "port changed in the spec: modify the current endpoint",
            spec("myapp-db", 4000),
            Some(ours),
            observed("Running", vec![public("myapp-db", 3306)]),
            "Modify myapp-db.mysql.rds.aliyuncs.com -> myapp-db:4000",
        ),
        (
            "port changed but the instance is busy: wait",
            spec("myapp-db", 4000),
            Some(ours),
            observed("Rebooting", vec![public("myapp-db", 3306)]),
            "Wait myapp-db.mysql.rds.aliyuncs.com",
        ),
        (
            "prefix changed in the spec: modify the endpoint status names",
            spec("myapp-db-new", 3306),
            Some(ours),
            observed("Running", vec![public("myapp-db", 3306)]),
            "Modify myapp-db.mysql.rds.aliyuncs.com -> myapp-db-new:3306",
        ),
        (
            "prefix change already done (status write lost): adopt the new name",
            spec("myapp-db-new", 3306),
            Some(ours),
            observed("Running", vec![public("myapp-db-new", 3306)]),
            "Ready myapp-db-new.mysql.rds.aliyuncs.com",
        ),
        (
            "rename to a prefix shorter than Modify accepts: stall, no call",
            spec("short", 3306),
            Some(ours),
            observed("Running", vec![public("myapp-db", 3306)]),
            "Stall InvalidSpec",
        ),
        (
            "foreign public endpoint with another prefix: stall, never rename it",
            spec("myapp-db", 3306),
            None,
            observed("Running", vec![public("someone-else", 3306)]),
            "Stall PublicEndpointExists",
        ),
        (
            "foreign endpoint on a busy instance: wait before judging",
            spec("myapp-db", 3306),
            None,
            observed(
                "DBInstanceNetTypeChanging",
                vec![public("someone-else", 3306)],
            ),
            "Wait -",
        ),
        (
            "our endpoint vanished out of band: allocate again",
            spec("myapp-db", 3306),
            Some(ours),
            observed("Running", vec![private("rm-test0001")]),
            "Allocate myapp-db:3306",
        ),
        (
            "unknown status string is transitional",
            spec("myapp-db", 3306),
            None,
            observed("NET_CREATING", vec![]),
            "Wait -",
        ),
        (
            "a private endpoint with our prefix is not ours",
            spec("myapp-db", 3306),
            None,
            observed("Running", vec![private("myapp-db")]),
            "Allocate myapp-db:3306",
        ),
    ];
    for (name, spec, managed, observed, want) in cases {
        assert_eq!(kind(&next_step(&spec, managed, &observed)), want, "{name}");
    }
}

#[test]
fn optional_ports_are_compared_only_when_the_spec_sets_them() {
    let mut s = spec("myapp-db", 3306);
    let mut ep = public("myapp-db", 3306);
    ep.pg_bouncer_port = Some(6432);
    assert!(matches_spec(&s, &ep), "unset pgBouncerPort is not compared");
    s.babelfish_port = Some(1433);
    assert!(
        matches_spec(&s, &ep),
        "a port RDS does not report cannot be verified"
    );
    s.pg_bouncer_port = Some(5432);
    assert!(!matches_spec(&s, &ep));
    let step = next_step(&s, None, &observed("Running", vec![ep]));
    match step {
        Step::Modify { request, .. } => assert_eq!(request.pg_bouncer_port, Some(5432)),
        other => panic!("expected Modify, got {other:?}"),
    }
}

#[test]
fn after_duplicate_table() {
    let cases: Vec<(&str, RdsConnectionSpec, Option<&str>, Observed, &str)> = vec![
        (
            "duplicate and the endpoint is on our instance: adopt (earlier attempt succeeded)",
            spec("myapp-db", 3306),
            None,
            observed("DBInstanceNetTypeChanging", vec![public("myapp-db", 3306)]),
            "Wait myapp-db.mysql.rds.aliyuncs.com",
        ),
        (
            "duplicate and nothing on our instance: the prefix belongs to someone else",
            spec("myapp-db", 3306),
            None,
            observed("Running", vec![private("rm-test0001")]),
            "Stall ConnectionStringTaken",
        ),
        (
            "duplicate on a rename: the new prefix is taken elsewhere",
            spec("myapp-db-new", 3306),
            Some("myapp-db.mysql.rds.aliyuncs.com"),
            observed("Running", vec![public("myapp-db", 3306)]),
            "Stall ConnectionStringTaken",
        ),
        (
            "duplicate because a foreign endpoint exists: say so",
            spec("myapp-db", 3306),
            None,
            observed("Running", vec![public("other-one", 3306)]),
            "Stall PublicEndpointExists",
        ),
    ];
    for (name, spec, managed, observed, want) in cases {
        assert_eq!(
            kind(&after_duplicate(&spec, managed, &observed)),
            want,
            "{name}"
        );
    }
}

#[test]
fn validate_table() {
    let ok = spec("myapp-db", 3306);
    let mut same_ports = ok.clone();
    same_ports.pg_bouncer_port = Some(3306);
    let mut same_optional = ok.clone();
    same_optional.babelfish_port = Some(4000);
    same_optional.pg_bouncer_port = Some(4000);
    let double_hyphen = spec("my--app", 3306);
    let mut secret_clash = ok.clone();
    secret_clash.credentials_ref = Some(CredentialsRef {
        name: "creds".into(),
    });
    secret_clash.write_connection_secret_to_ref = Some(LocalSecretRef {
        name: "creds".into(),
    });
    let mut distinct = ok.clone();
    distinct.babelfish_port = Some(1433);
    distinct.pg_bouncer_port = Some(6432);
    let cases = [
        ("valid spec", ok, None),
        ("distinct optional ports", distinct, None),
        (
            "pgBouncerPort equal to port",
            same_ports,
            Some("port and pgBouncerPort"),
        ),
        (
            "babelfish equal to pgbouncer",
            same_optional,
            Some("babelfishPort and pgBouncerPort"),
        ),
        (
            "consecutive hyphens",
            double_hyphen,
            Some("consecutive hyphens"),
        ),
        (
            "endpoint Secret is the credentials Secret",
            secret_clash,
            Some("overwrite the credentials"),
        ),
    ];
    for (name, s, want) in cases {
        match (validate(&s), want) {
            (Ok(()), None) => {}
            (Err(msg), Some(part)) => assert!(msg.contains(part), "{name}: {msg}"),
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}

fn ready_status(generation: i64, synced_at: i64) -> RdsConnectionStatus {
    RdsConnectionStatus {
        last_sync_time: Some(Time(Timestamp::from_second(synced_at).expect("valid"))),
        conditions: vec![Condition {
            type_: READY.into(),
            status: "True".into(),
            reason: "Available".into(),
            message: String::new(),
            observed_generation: Some(generation),
            last_transition_time: Time(Timestamp::from_second(0).expect("valid")),
        }],
        ..Default::default()
    }
}

#[test]
fn fresh_for_table() {
    let now = Timestamp::from_second(1_000).expect("valid");
    let resync = Duration::from_secs(300);
    let mut not_ready = ready_status(2, 900);
    not_ready.conditions[0].status = "False".into();
    let cases = [
        (
            "ready, same generation, synced 100 s ago",
            Some(ready_status(2, 900)),
            Some(2),
            Some(Duration::from_secs(200)),
        ),
        (
            "ready but the spec changed",
            Some(ready_status(1, 900)),
            Some(2),
            None,
        ),
        (
            "ready, synced longer ago than the resync period",
            Some(ready_status(2, 600)),
            Some(2),
            None,
        ),
        (
            "ready, synced exactly one period ago",
            Some(ready_status(2, 700)),
            Some(2),
            None,
        ),
        ("not ready", Some(not_ready), Some(2), None),
        ("no status yet", None, Some(1), None),
    ];
    for (name, status, generation, want) in cases {
        assert_eq!(
            fresh_for(status.as_ref(), generation, now, resync),
            want,
            "{name}"
        );
    }
}

#[test]
fn cleanup_table() {
    let mut retain = spec("myapp-db", 3306);
    retain.deletion_policy = DeletionPolicy::Retain;
    let delete = spec("myapp-db", 3306);
    let ours = Some("myapp-db.mysql.rds.aliyuncs.com");
    let reason = |c: Cleanup| match c {
        Cleanup::Forget { reason, .. } => reason.as_str(),
        Cleanup::Release => "Release",
    };
    assert_eq!(reason(cleanup(&delete, ours)), "Release");
    assert_eq!(
        reason(cleanup(&delete, None)),
        "Release",
        "status may have been lost"
    );
    assert_eq!(reason(cleanup(&retain, ours)), "Retained");
}

#[test]
fn release_targets_only_our_endpoint() {
    let s = spec("myapp-db", 3306);
    let net = |eps| InstanceNetInfo {
        instance_network_type: None,
        endpoints: eps,
    };
    let with_ours = net(vec![private("rm-x"), public("myapp-db", 3306)]);
    assert_eq!(
        endpoint_to_release(&s, None, &with_ours).map(|e| e.connection_string.as_str()),
        Some("myapp-db.mysql.rds.aliyuncs.com")
    );
    let foreign = net(vec![public("someone-else", 3306)]);
    assert_eq!(
        endpoint_to_release(&s, None, &foreign),
        None,
        "never release a foreign endpoint"
    );
    let renamed = spec("myapp-db-new", 3306);
    assert_eq!(
        endpoint_to_release(
            &renamed,
            Some("myapp-db.mysql.rds.aliyuncs.com"),
            &with_ours
        )
        .map(|e| e.connection_string.as_str()),
        Some("myapp-db.mysql.rds.aliyuncs.com"),
        "a pending rename still releases the endpoint status names"
    );
    assert_eq!(endpoint_to_release(&s, None, &net(vec![])), None);
}

#[test]
fn release_names_the_network_type_rds_reports() {
    let net = |t: Option<&str>| InstanceNetInfo {
        instance_network_type: t.map(str::to_owned),
        endpoints: vec![],
    };
    let vpc_spec = spec("myapp-db", 3306);
    let classic_spec = RdsConnectionSpec {
        instance_network_type: InstanceNetworkType::Classic,
        ..spec("myapp-db", 3306)
    };
    let cases = [
        ("VPC instance", &vpc_spec, Some("VPC"), "0"),
        (
            "classic instance, spec says VPC",
            &vpc_spec,
            Some("Classic"),
            "1",
        ),
        (
            "VPC instance, spec says Classic",
            &classic_spec,
            Some("VPC"),
            "0",
        ),
        ("not reported: the spec's", &classic_spec, None, "1"),
        ("unknown value: the spec's", &vpc_spec, Some("Hybrid"), "0"),
    ];
    for (name, s, reported, want) in cases {
        assert_eq!(
            requests::release_network_type(s, &net(reported)),
            want,
            "{name}"
        );
    }
}
