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
        adopt: false,
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
        lock_mode: "Unlock".into(),
    }
}

/// What the object remembers: `status.connectionString` and the prefix annotation.
fn own<'a>(managed: Option<&'a str>, annotated: Option<&'a str>) -> Ownership<'a> {
    Ownership { managed, annotated }
}

/// The spec with `adopt: true`.
fn adopting(prefix: &str, port: i32) -> RdsConnectionSpec {
    RdsConnectionSpec {
        adopt: true,
        ..spec(prefix, port)
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
    let ours = Some("myapp-db.mysql.rds.aliyuncs.com");
    let nothing = own(None, None);
    let cases: Vec<(&str, RdsConnectionSpec, Ownership, Observed, &str)> = vec![
        (
            "no public endpoint on a running instance: allocate",
            spec("myapp-db", 3306),
            nothing,
            observed("Running", vec![private("rm-test0001")]),
            "Allocate myapp-db:3306",
        ),
        (
            "no endpoint on a busy instance: wait, never allocate",
            spec("myapp-db", 3306),
            nothing,
            observed("Rebooting", vec![]),
            "Wait -",
        ),
        (
            "endpoint created out of band with our prefix, adopt not set: stall, never take it",
            spec("myapp-db", 3306),
            nothing,
            observed(
                "Running",
                vec![private("rm-test0001"), public("myapp-db", 3306)],
            ),
            "Stall EndpointExists",
        ),
        (
            "endpoint created out of band with our prefix, adopt set: ready on it",
            adopting("myapp-db", 3306),
            nothing,
            observed(
                "Running",
                vec![private("rm-test0001"), public("myapp-db", 3306)],
            ),
            "Ready myapp-db.mysql.rds.aliyuncs.com",
        ),
        (
            "adopt set, the endpoint has another prefix: taken over and modified like our own",
            adopting("myapp-db", 4000),
            nothing,
            observed("Running", vec![public("legacy-name", 3306)]),
            "Modify legacy-name.mysql.rds.aliyuncs.com -> myapp-db:4000",
        ),
        (
            "adopt set, two public endpoints: the one with our prefix first",
            adopting("myapp-db", 3306),
            nothing,
            observed(
                "Running",
                vec![public("legacy-name", 3306), public("myapp-db", 3306)],
            ),
            "Ready myapp-db.mysql.rds.aliyuncs.com",
        ),
        (
            "adopt set, nothing to adopt: allocate",
            adopting("myapp-db", 3306),
            nothing,
            observed("Running", vec![private("rm-test0001")]),
            "Allocate myapp-db:3306",
        ),
        (
            "annotation records our prefix, no status (crash after Allocate, restored object): ours",
            spec("myapp-db", 3306),
            own(None, Some("myapp-db")),
            observed("Running", vec![public("myapp-db", 3306)]),
            "Ready myapp-db.mysql.rds.aliyuncs.com",
        ),
        (
            "annotation records our prefix, instance still creating it: wait on it",
            spec("myapp-db", 3306),
            own(None, Some("myapp-db")),
            observed("NET_CREATING", vec![public("myapp-db", 3306)]),
            "Wait myapp-db.mysql.rds.aliyuncs.com",
        ),
        (
            "annotation records an older prefix (restored after a spec change): modify it",
            spec("myapp-db-new", 3306),
            own(None, Some("myapp-db")),
            observed("Running", vec![public("myapp-db", 3306)]),
            "Modify myapp-db.mysql.rds.aliyuncs.com -> myapp-db-new:3306",
        ),
        (
            "our endpoint right after allocate, instance still changing: wait",
            spec("myapp-db", 3306),
            own(ours, Some("myapp-db")),
            observed("DBInstanceNetTypeChanging", vec![public("myapp-db", 3306)]),
            "Wait myapp-db.mysql.rds.aliyuncs.com",
        ),
        (
            "status names our endpoint, no annotation yet (made before it existed): ours",
            spec("myapp-db", 3306),
            own(ours, None),
            observed("Running", vec![public("myapp-db", 3306)]),
            "Ready myapp-db.mysql.rds.aliyuncs.com",
        ),
        (
            "port changed in the spec: modify the current endpoint",
            spec("myapp-db", 4000),
            own(ours, Some("myapp-db")),
            observed("Running", vec![public("myapp-db", 3306)]),
            "Modify myapp-db.mysql.rds.aliyuncs.com -> myapp-db:4000",
        ),
        (
            "port changed but the instance is busy: wait",
            spec("myapp-db", 4000),
            own(ours, Some("myapp-db")),
            observed("Rebooting", vec![public("myapp-db", 3306)]),
            "Wait myapp-db.mysql.rds.aliyuncs.com",
        ),
        (
            "prefix changed in the spec: modify the endpoint status names",
            spec("myapp-db-new", 3306),
            own(ours, Some("myapp-db")),
            observed("Running", vec![public("myapp-db", 3306)]),
            "Modify myapp-db.mysql.rds.aliyuncs.com -> myapp-db-new:3306",
        ),
        (
            "prefix change already done (status write lost): the annotation names the new name",
            spec("myapp-db-new", 3306),
            own(ours, Some("myapp-db-new")),
            observed("Running", vec![public("myapp-db-new", 3306)]),
            "Ready myapp-db-new.mysql.rds.aliyuncs.com",
        ),
        (
            "an endpoint with the new prefix nobody asked for is not ours",
            spec("myapp-db-new", 3306),
            own(ours, Some("myapp-db")),
            observed("Running", vec![public("myapp-db-new", 3306)]),
            "Stall EndpointExists",
        ),
        (
            "rename to a prefix shorter than Modify accepts: stall, no call",
            spec("short", 3306),
            own(ours, Some("myapp-db")),
            observed("Running", vec![public("myapp-db", 3306)]),
            "Stall InvalidSpec",
        ),
        (
            "foreign public endpoint with another prefix: stall, never rename it",
            spec("myapp-db", 3306),
            nothing,
            observed("Running", vec![public("someone-else", 3306)]),
            "Stall EndpointExists",
        ),
        (
            "annotation names a prefix the instance no longer has, a foreign endpoint is there",
            spec("myapp-db", 3306),
            own(ours, Some("myapp-db")),
            observed("Running", vec![public("someone-else", 3306)]),
            "Stall EndpointExists",
        ),
        (
            "foreign endpoint on a busy instance: wait before judging",
            spec("myapp-db", 3306),
            nothing,
            observed(
                "DBInstanceNetTypeChanging",
                vec![public("someone-else", 3306)],
            ),
            "Wait -",
        ),
        (
            "our endpoint vanished out of band: allocate again",
            spec("myapp-db", 3306),
            own(ours, Some("myapp-db")),
            observed("Running", vec![private("rm-test0001")]),
            "Allocate myapp-db:3306",
        ),
        (
            "unknown status string is transitional",
            spec("myapp-db", 3306),
            nothing,
            observed("NET_CREATING", vec![]),
            "Wait -",
        ),
        (
            "a private endpoint with our prefix is not ours",
            spec("myapp-db", 3306),
            nothing,
            observed("Running", vec![private("myapp-db")]),
            "Allocate myapp-db:3306",
        ),
    ];
    for (name, spec, owned, observed, want) in cases {
        assert_eq!(kind(&next_step(&spec, owned, &observed)), want, "{name}");
    }
}

#[test]
fn the_endpoint_exists_message_names_the_endpoint_and_adopt() {
    let step = next_step(
        &spec("myapp-db", 3306),
        own(None, None),
        &observed("Running", vec![public("terraform-made", 3306)]),
    );
    let Step::Stall { message, .. } = step else {
        panic!("expected a stall, got {step:?}");
    };
    assert!(
        message.contains("terraform-made.mysql.rds.aliyuncs.com"),
        "{message}"
    );
    assert!(message.contains("adopt: true"), "{message}");
}

#[test]
fn prefix_to_record_table() {
    let endpoint = public("myapp-db", 3306);
    let allocate = Step::Allocate(requests::allocate(&spec("myapp-db", 3306)));
    let modify = Step::Modify {
        endpoint: endpoint.clone(),
        request: requests::modify(&spec("myapp-db-new", 3306), &endpoint),
    };
    let ready = Step::Ready {
        endpoint: endpoint.clone(),
    };
    let waiting = Step::WaitForInstance {
        endpoint: Some(endpoint.clone()),
    };
    let stall = Step::Stall {
        reason: Reason::EndpointExists,
        message: String::new(),
    };
    let cases = [
        (
            "before Allocate: the prefix requested",
            &allocate,
            None,
            Some("myapp-db"),
        ),
        (
            "Allocate again with it recorded: no write",
            &allocate,
            Some("myapp-db"),
            None,
        ),
        (
            "before Modify: the new prefix",
            &modify,
            Some("myapp-db"),
            Some("myapp-db-new"),
        ),
        (
            "Ready without annotation (older object): its prefix",
            &ready,
            None,
            Some("myapp-db"),
        ),
        (
            "Ready, annotation stale: corrected",
            &ready,
            Some("old-name"),
            Some("myapp-db"),
        ),
        (
            "Ready, annotation right: no write",
            &ready,
            Some("myapp-db"),
            None,
        ),
        (
            "waiting on a known endpoint, no annotation: its prefix",
            &waiting,
            None,
            Some("myapp-db"),
        ),
        (
            "waiting during a rename: the annotation is kept",
            &waiting,
            Some("myapp-db-new"),
            None,
        ),
        (
            "waiting with nothing known",
            &Step::WaitForInstance { endpoint: None },
            None,
            None,
        ),
        ("stalled: nothing", &stall, None, None),
    ];
    for (name, step, annotated, want) in cases {
        assert_eq!(prefix_to_record(step, annotated).as_deref(), want, "{name}");
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
    let step = next_step(
        &s,
        own(None, Some("myapp-db")),
        &observed("Running", vec![ep]),
    );
    match step {
        Step::Modify { request, .. } => assert_eq!(request.pg_bouncer_port, Some(5432)),
        other => panic!("expected Modify, got {other:?}"),
    }
}

#[test]
fn after_duplicate_table() {
    let cases: Vec<(&str, RdsConnectionSpec, Ownership, Observed, &str)> = vec![
        (
            "duplicate and the endpoint we requested is on our instance: ours (an earlier attempt \
             succeeded)",
            spec("myapp-db", 3306),
            own(None, Some("myapp-db")),
            observed("DBInstanceNetTypeChanging", vec![public("myapp-db", 3306)]),
            "Wait myapp-db.mysql.rds.aliyuncs.com",
        ),
        (
            "duplicate and nothing on our instance: the prefix belongs to someone else",
            spec("myapp-db", 3306),
            own(None, Some("myapp-db")),
            observed("Running", vec![private("rm-test0001")]),
            "Stall ConnectionStringTaken",
        ),
        (
            "duplicate on a rename: the new prefix is taken elsewhere",
            spec("myapp-db-new", 3306),
            own(
                Some("myapp-db.mysql.rds.aliyuncs.com"),
                Some("myapp-db-new"),
            ),
            observed("Running", vec![public("myapp-db", 3306)]),
            "Stall ConnectionStringTaken",
        ),
        (
            "duplicate because a foreign endpoint exists: say so",
            spec("myapp-db", 3306),
            own(None, Some("myapp-db")),
            observed("Running", vec![public("other-one", 3306)]),
            "Stall EndpointExists",
        ),
    ];
    for (name, spec, owned, observed, want) in cases {
        assert_eq!(
            kind(&after_duplicate(&spec, owned, &observed)),
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

/// `fresh_for` (no cloud call yet) and `deferrable_check` (a due check that may yield to a
/// backed-up quota) over the same statuses: a Ready object's check is first not due, then due
/// and deferrable, then, overdue by a whole period, neither.
#[test]
fn fresh_for_and_deferrable_check_table() {
    let now = Timestamp::from_second(1_000).expect("valid");
    let resync = Duration::from_secs(300);
    let mut not_ready = ready_status(2, 900);
    not_ready.conditions[0].status = "False".into();
    let mut not_ready_due = ready_status(2, 500);
    not_ready_due.conditions[0].status = "False".into();
    let cases = [
        (
            "ready, same generation, synced 100 s ago",
            Some(ready_status(2, 900)),
            Some(2),
            Some(Duration::from_secs(200)),
            true,
        ),
        (
            "ready but the spec changed",
            Some(ready_status(1, 900)),
            Some(2),
            None,
            false,
        ),
        (
            "ready for an older generation, synced 400 s ago",
            Some(ready_status(1, 600)),
            Some(2),
            None,
            false,
        ),
        (
            "ready, synced longer ago than the resync period: its check is due",
            Some(ready_status(2, 600)),
            Some(2),
            None,
            true,
        ),
        (
            "ready, synced exactly one period ago",
            Some(ready_status(2, 700)),
            Some(2),
            None,
            true,
        ),
        (
            "ready, overdue by a whole period",
            Some(ready_status(2, 400)),
            Some(2),
            None,
            false,
        ),
        (
            "ready, overdue by more",
            Some(ready_status(2, 100)),
            Some(2),
            None,
            false,
        ),
        ("not ready", Some(not_ready), Some(2), None, false),
        (
            "not ready, synced 500 s ago",
            Some(not_ready_due),
            Some(2),
            None,
            false,
        ),
        ("no status yet", None, Some(1), None, false),
        ("no status", None, Some(2), None, false),
    ];
    for (name, status, generation, fresh, deferrable) in cases {
        assert_eq!(
            fresh_for(status.as_ref(), generation, now, resync),
            fresh,
            "fresh_for: {name}"
        );
        assert_eq!(
            deferrable_check(status.as_ref(), generation, now, resync),
            deferrable,
            "deferrable_check: {name}"
        );
    }
}

#[test]
fn a_check_yields_only_beyond_two_seconds_of_backlog() {
    assert_eq!(check_deferral(Duration::ZERO), None);
    assert_eq!(check_deferral(CHECK_YIELDS_BEYOND), None);
    let long = CHECK_YIELDS_BEYOND + Duration::from_millis(1);
    assert_eq!(check_deferral(long), Some(long));
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
    let released = |spec: &RdsConnectionSpec, owned: Ownership, net_info: &InstanceNetInfo| {
        endpoint_to_release(spec, owned, net_info).map(|e| e.connection_string.clone())
    };
    let ours = "myapp-db.mysql.rds.aliyuncs.com";
    let with_ours = net(vec![private("rm-x"), public("myapp-db", 3306)]);
    let foreign = net(vec![public("someone-else", 3306)]);
    let renamed = spec("myapp-db-new", 3306);
    let cases = [
        (
            "named by the status",
            &s,
            own(Some(ours), None),
            &with_ours,
            Some(ours),
        ),
        (
            "recorded in the annotation",
            &s,
            own(None, Some("myapp-db")),
            &with_ours,
            Some(ours),
        ),
        (
            "the spec's prefix alone, made by someone else: never released",
            &s,
            own(None, None),
            &with_ours,
            None,
        ),
        (
            "adopted",
            &adopting("myapp-db", 3306),
            own(None, None),
            &with_ours,
            Some(ours),
        ),
        (
            "adopted whatever its prefix",
            &adopting("myapp-db", 3306),
            own(None, None),
            &foreign,
            Some("someone-else.mysql.rds.aliyuncs.com"),
        ),
        (
            "a foreign endpoint",
            &s,
            own(None, Some("myapp-db")),
            &foreign,
            None,
        ),
        (
            "a pending rename still releases the endpoint status names",
            &renamed,
            own(Some(ours), Some("myapp-db-new")),
            &with_ours,
            Some(ours),
        ),
        (
            "nothing on the instance",
            &s,
            own(Some(ours), Some("myapp-db")),
            &net(vec![]),
            None,
        ),
    ];
    for (name, spec, owned, net_info, want) in cases {
        assert_eq!(released(spec, owned, net_info).as_deref(), want, "{name}");
    }
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

#[test]
fn a_locked_instance_stalls_a_due_change_but_not_a_ready_endpoint() {
    let mut locked = observed("Running", vec![]);
    locked.lock_mode = "LockByExpiration".into();
    assert!(matches!(
        next_step(&spec("myapp-db", 3306), own(None, None), &locked),
        Step::Stall { reason: Reason::InstanceLocked, message } if message.contains("LockByExpiration")
    ));
    let mut ready = observed("Running", vec![public("myapp-db", 3306)]);
    ready.lock_mode = "ManualLock".into();
    assert!(matches!(
        next_step(
            &spec("myapp-db", 3306),
            own(Some("myapp-db.mysql.rds.aliyuncs.com"), None),
            &ready
        ),
        Step::Ready { .. }
    ));
    ready.lock_mode = String::new();
    assert_eq!(ready.lock(), None, "no LockMode reported is no lock");
}
