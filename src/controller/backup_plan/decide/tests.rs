//! Table tests of the pure decisions.

use super::*;
use crate::crd::{BackupMethod, BackupObject, Retention, SourceInstanceType, SubscriptionPeriod};

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(s).expect("valid timestamp")
}

fn spec() -> BackupPlanSpec {
    serde_json::from_value(serde_json::json!({
        "region": "cn-hangzhou",
        "databaseType": "MySQL",
        "instanceClass": "micro",
        "backupMethod": "logical",
        "source": {
            "instanceType": "RDS",
            "region": "cn-shanghai",
            "instanceId": "rm-abc",
            "userName": "backup",
        },
        "schedule": {"weekdays": ["Thursday", "Monday"], "startTime": "14:22"},
    }))
    .expect("a valid spec")
}

fn running() -> BackupPlanDetail {
    BackupPlanDetail {
        backup_plan_id: "dbsabc123".into(),
        backup_plan_name: "ns-bp".into(),
        backup_plan_status: PlanStatus::Running,
        backup_period: Some("Monday,Thursday".into()),
        backup_start_time: Some("14:22".into()),
        source_endpoint_instance_type: Some("RDS".into()),
        source_endpoint_instance_id: Some("rm-abc".into()),
        source_endpoint_region: Some("cn-shanghai".into()),
        source_endpoint_user_name: Some("backup".into()),
        ..Default::default()
    }
}

fn with_status(status: &str) -> Observation {
    Observation::Found(Box::new(BackupPlanDetail {
        backup_plan_status: PlanStatus::parse(status),
        ..running()
    }))
}

fn facts<'a>(spec: &'a BackupPlanSpec, observed: Option<&'a Observation>) -> Facts<'a> {
    Facts {
        spec,
        plan_name: "ns-bp",
        backup_plan_id: Some("dbsabc123"),
        recorded_plan_id: None,
        created_at: Some(ts(100)),
        observed,
        applied_password_version: None,
        current_password_version: None,
        applied_backup_log_interval_seconds: None,
        configure_delay: Duration::from_secs(5),
        precheck_started_at: None,
        create_conflict: None,
    }
}

#[test]
fn client_token_is_deterministic_ascii_and_short() {
    let uid = "0b6f1f3e-6c1a-4c55-9c7e-2f3b8c1d9e0a";
    assert_eq!(client_token(uid), client_token(uid));
    assert_eq!(client_token(uid), format!("bp-{uid}"));
    let long = client_token(&"x".repeat(200));
    assert!(long.len() <= 64 && long.is_ascii());
}

#[test]
fn pay_as_you_go_create_maps_regions_and_instance_type() {
    let req = create_request(&spec(), "tok");
    assert_eq!(req.pay_type, "postpay");
    assert_eq!(req.database_region.as_deref(), Some("cn-shanghai"));
    assert_eq!(req.storage_region.as_deref(), Some("cn-hangzhou"));
    assert_eq!(req.instance_type.as_deref(), Some("RDS"));
    assert_eq!(
        (
            req.instance_class.as_str(),
            req.database_type.as_str(),
            req.backup_method.as_str()
        ),
        ("micro", "MySQL", "logical")
    );
    assert_eq!(req.client_token.as_deref(), Some("tok"));
    let mut other = spec();
    other.source.instance_type = SourceInstanceType::ECS;
    other.source.region = None;
    let req = create_request(&other, "tok");
    assert_eq!(req.instance_type.as_deref(), Some("Other"));
    assert_eq!(req.database_region.as_deref(), Some("cn-hangzhou"));
}

#[test]
fn subscription_create_sends_prepay_with_period() {
    let mut s = spec();
    s.pay_type = PayType::Subscription;
    s.period = Some(SubscriptionPeriod::Month);
    s.used_time = Some(3);
    let req = create_request(&s, "tok");
    assert_eq!(req.pay_type, "prepay");
    assert_eq!(req.period.as_deref(), Some("Month"));
    assert_eq!(req.used_time, Some(3));
    assert_eq!(req.database_region, None);
}

#[test]
fn configure_maps_schedule_objects_storage_and_retention() {
    let mut s = spec();
    s.backup_objects = vec![BackupObject {
        database_name: "app".into(),
        schema_name: Some("public".into()),
        table_includes: vec!["orders".into()],
        table_excludes: vec!["tmp".into()],
    }];
    s.retention = Some(Retention::default());
    let req = configure_request(&s, "dbsabc123", "ns-bp", Some("pw".into()));
    assert_eq!(req.backup_strategy_type.as_deref(), Some("simple"));
    assert_eq!(req.backup_period.as_deref(), Some("Monday,Thursday"));
    assert_eq!(req.backup_start_time.as_deref(), Some("14:22"));
    assert_eq!(req.backup_storage_type.as_deref(), Some("system"));
    assert_eq!(req.backup_retention_period, Some(730));
    assert_eq!(req.source.password.as_deref(), Some("pw"));
    assert_eq!(
        req.backup_objects.as_deref(),
        Some(
            r#"[{"DBName":"app","SchemaName":"public","TableExcludes":[{"TableName":"tmp"}],"TableIncludes":[{"TableName":"orders"}]}]"#
        )
    );
    s.schedule = None;
    let req = configure_request(&s, "dbsabc123", "ns-bp", None);
    assert_eq!(req.backup_strategy_type.as_deref(), Some("manual"));
    assert_eq!(req.backup_period, None);
}

#[test]
fn decision_table() {
    let s = spec();
    let adopting = BackupPlanSpec {
        backup_plan_id: Some("dbsabc123".into()),
        ..spec()
    };
    let wait = with_status("wait");
    let init = with_status("init");
    let paused_plan = with_status("pause");
    let ready = with_status("running");
    let missing = Observation::Missing;
    let locked = with_status("locked");
    let drifted = Observation::Found(Box::new(BackupPlanDetail {
        backup_period: Some("Monday".into()),
        ..running()
    }));
    let renamed = Observation::Found(Box::new(BackupPlanDetail {
        backup_plan_name: "other".into(),
        ..running()
    }));
    let precheck = Observation::Found(Box::new(BackupPlanDetail {
        backup_plan_status: PlanStatus::Init,
        err_message: Some("can not connect".into()),
        ..running()
    }));
    let moved = Observation::Found(Box::new(BackupPlanDetail {
        source_endpoint_instance_id: Some("rm-old".into()),
        ..running()
    }));
    let lower_case = Observation::Found(Box::new(BackupPlanDetail {
        source_endpoint_instance_type: Some("rds".into()),
        backup_period: Some("THURSDAY,MONDAY".into()),
        ..running()
    }));

    type Case<'a> = (&'a str, Facts<'a>, Timestamp, fn(&Step) -> bool);
    let cases: Vec<Case<'_>> = vec![
        (
            "no plan id creates",
            Facts {
                backup_plan_id: None,
                ..facts(&s, None)
            },
            ts(0),
            |x| *x == Step::Create,
        ),
        (
            "a create refused for this generation is not repeated",
            Facts {
                backup_plan_id: None,
                create_conflict: Some("refused"),
                ..facts(&s, None)
            },
            ts(0),
            |x| matches!(x, Step::Stalled { reason: Reason::CreateConflict, message } if message == "refused"),
        ),
        ("known id is observed first", facts(&s, None), ts(0), |x| {
            *x == Step::Observe
        }),
        (
            "configure waits five seconds after create, and comes back a little early",
            facts(&s, Some(&wait)),
            ts(102),
            |x| *x == Step::WaitToConfigure(Duration::from_secs(3) - CONFIGURE_LEAD),
        ),
        (
            "configure goes ahead within its lead, and waits the rest before the call",
            facts(&s, Some(&wait)),
            Timestamp::from_millisecond(104_600).expect("valid"),
            |x| *x == Step::Configure,
        ),
        (
            "configure once five seconds passed",
            facts(&s, Some(&wait)),
            ts(105),
            |x| *x == Step::Configure,
        ),
        (
            "adopted unconfigured plan configures at once",
            Facts {
                created_at: None,
                ..facts(&s, Some(&wait))
            },
            ts(0),
            |x| *x == Step::Configure,
        ),
        (
            "configured plan starts",
            facts(&s, Some(&init)),
            ts(200),
            |x| *x == Step::Start,
        ),
        (
            "plan paused out of band is reported, not restarted",
            facts(&s, Some(&paused_plan)),
            ts(200),
            |x| {
                matches!(
                    x,
                    Step::Stalled {
                        reason: Reason::PlanNotRunning,
                        ..
                    }
                )
            },
        ),
        (
            "running matching plan is ready",
            facts(&s, Some(&ready)),
            ts(200),
            |x| *x == Step::Ready,
        ),
        (
            "lower-case type and upper-case weekdays are no drift",
            facts(&s, Some(&lower_case)),
            ts(200),
            |x| *x == Step::Ready,
        ),
        (
            "missing plan stalls without create",
            facts(&s, Some(&missing)),
            ts(200),
            |x| {
                matches!(
                    x,
                    Step::Stalled {
                        reason: Reason::CloudPlanMissing,
                        ..
                    }
                )
            },
        ),
        (
            "locked plan stalls",
            facts(&s, Some(&locked)),
            ts(200),
            |x| {
                matches!(
                    x,
                    Step::Stalled {
                        reason: Reason::CloudPlanLocked,
                        ..
                    }
                )
            },
        ),
        (
            "schedule drift modifies strategy",
            facts(&s, Some(&drifted)),
            ts(200),
            |x| matches!(x, Step::Modify(Modification::Strategy(m)) if m.backup_period == "Monday,Thursday" && m.backup_strategy_type.as_deref() == Some("simple")),
        ),
        (
            "name drift renames",
            facts(&s, Some(&renamed)),
            ts(200),
            |x| *x == Step::Modify(Modification::Name("ns-bp".into())),
        ),
        (
            "source drift modifies endpoint",
            facts(&s, Some(&moved)),
            ts(200),
            |x| *x == Step::Modify(Modification::SourceEndpoint(SourceEndpointChange::Drift)),
        ),
        (
            "rotated password is re-applied",
            Facts {
                applied_password_version: Some("u:1"),
                current_password_version: Some("u:2"),
                ..facts(&s, Some(&ready))
            },
            ts(200),
            |x| {
                *x == Step::Modify(Modification::SourceEndpoint(
                    SourceEndpointChange::PasswordRotated,
                ))
            },
        ),
        (
            "same password version is no change",
            Facts {
                applied_password_version: Some("u:1"),
                current_password_version: Some("u:1"),
                ..facts(&s, Some(&ready))
            },
            ts(200),
            |x| *x == Step::Ready,
        ),
        (
            "failed precheck stalls instead of restarting forever",
            facts(&s, Some(&precheck)),
            ts(200),
            |x| {
                matches!(
                    x,
                    Step::Stalled {
                        reason: Reason::PrecheckFailed,
                        ..
                    }
                )
            },
        ),
        (
            "spec.backupPlanId naming another plan than the one created stalls",
            Facts {
                recorded_plan_id: Some("dbsother1"),
                ..facts(&adopting, None)
            },
            ts(0),
            |x| {
                matches!(
                    x,
                    Step::Stalled {
                        reason: Reason::BackupPlanIdConflict,
                        ..
                    }
                )
            },
        ),
        (
            "spec.backupPlanId naming the plan created is no conflict",
            Facts {
                recorded_plan_id: Some("dbsabc123"),
                ..facts(&adopting, None)
            },
            ts(0),
            |x| *x == Step::Observe,
        ),
    ];
    for (name, f, now, check) in cases {
        let step = decide(&f, now);
        assert!(check(&step), "{name}: got {step:?}");
    }
}

#[test]
fn invalid_spec_stalls_before_any_call() {
    let mut s = spec();
    s.backup_objects = vec![BackupObject {
        database_name: "app".into(),
        schema_name: None,
        table_includes: vec![" ".into()],
        table_excludes: vec![],
    }];
    let f = Facts {
        backup_plan_id: None,
        ..facts(&s, None)
    };
    assert!(matches!(
        decide(&f, ts(0)),
        Step::Stalled {
            reason: Reason::InvalidSpec,
            ..
        }
    ));
    let long = "n".repeat(70);
    let plain = spec();
    let f = Facts {
        backup_plan_id: None,
        plan_name: &long,
        ..facts(&plain, None)
    };
    assert!(
        matches!(decide(&f, ts(0)), Step::Stalled { reason: Reason::InvalidSpec, message } if message.contains("spec.planName"))
    );
}

#[test]
fn retention_drift_modifies_storage() {
    let mut s = spec();
    s.retention = Some(Retention {
        backup_retention_days: 30,
        infrequent_access_days: 10,
        archive_days: 20,
    });
    let obs = Observation::Found(Box::new(BackupPlanDetail {
        backup_retention_period: Some(730),
        ..running()
    }));
    let step = decide(&facts(&s, Some(&obs)), ts(200));
    assert!(
        matches!(step, Step::Modify(Modification::Storage(m)) if m.backup_retention_period == 30 && m.duplication_archive_period == 20)
    );
}

#[test]
fn source_endpoint_change_always_sends_backup_objects() {
    let s = spec();
    let req = source_endpoint_request(
        &s,
        "dbsabc123",
        Some("pw".into()),
        Some(r#"[{"DBName":"app"}]"#),
    );
    assert_eq!(req.backup_objects.as_deref(), Some(r#"[{"DBName":"app"}]"#));
    assert_eq!(req.source.password.as_deref(), Some("pw"));
    let req = source_endpoint_request(&s, "dbsabc123", None, None);
    assert_eq!(req.backup_objects.as_deref(), Some("[]"));
    let mut agent = spec();
    agent.source.instance_type = SourceInstanceType::Agent;
    assert_eq!(
        source_endpoint_request(&agent, "dbsabc123", None, None).backup_objects,
        None
    );
}

#[test]
fn cleanup_table() {
    let mut s = spec();
    assert_eq!(
        cleanup(&s, Some("dbsabc123"), Some("bp-uid")),
        Cleanup::Release("dbsabc123".into())
    );
    assert!(matches!(
        cleanup(&s, None, None),
        Cleanup::Forget {
            reason: Reason::NothingToRelease,
            ..
        }
    ));
    s.deletion_policy = DeletionPolicy::Retain;
    assert!(matches!(
        cleanup(&s, Some("dbsabc123"), Some("bp-uid")),
        Cleanup::Forget {
            reason: Reason::PlanRetained,
            warning: false,
            ..
        }
    ));
    s.deletion_policy = DeletionPolicy::Delete;
    s.pay_type = PayType::Subscription;
    assert_eq!(
        cleanup(&s, Some("dbsabc123"), Some("bp-uid")),
        Cleanup::StopSubscription("dbsabc123".into())
    );
}

#[test]
fn deletion_after_a_lost_create_answer_looks_for_the_plan_and_never_creates() {
    let mut s = spec();
    assert_eq!(
        cleanup(&s, None, Some("bp-uid")),
        Cleanup::FindThenRelease("bp-uid".into()),
        "the plan is looked for by name, not created again"
    );
    s.pay_type = PayType::Subscription;
    assert_eq!(
        cleanup(&s, None, Some("bp-uid")),
        Cleanup::FindThenRelease("bp-uid".into()),
        "a subscription found by name is stopped; nothing is bought"
    );
    s.deletion_policy = DeletionPolicy::Retain;
    assert!(matches!(
        cleanup(&s, None, Some("bp-uid")),
        Cleanup::Forget {
            reason: Reason::PlanRetained,
            ..
        }
    ));
}

#[test]
fn only_one_plan_of_the_objects_name_and_source_is_taken_over() {
    let s = spec();
    let plan = |id: &str, name: &str, status: &str| BackupPlanDetail {
        backup_plan_id: id.into(),
        backup_plan_name: name.into(),
        backup_plan_status: PlanStatus::parse(status),
        ..running()
    };
    let ids = |r: Result<Option<&BackupPlanDetail>, Step>| match r {
        Ok(found) => Ok(found.map(|d| d.backup_plan_id.clone())),
        Err(Step::Stalled { reason, .. }) => Err(reason),
        Err(other) => panic!("unexpected {other:?}"),
    };
    assert_eq!(ids(own_plan(&s, "ns-bp", &[])), Ok(None), "none: create");
    let mine = plan("dbsmine1", "ns-bp", "running");
    assert_eq!(
        ids(own_plan(&s, "ns-bp", std::slice::from_ref(&mine))),
        Ok(Some("dbsmine1".into()))
    );
    let other_name = plan("dbsother", "ns-other", "running");
    let released = plan("dbsgone1", "ns-bp", "released");
    assert_eq!(
        ids(own_plan(&s, "ns-bp", &[other_name, released, mine.clone()])),
        Ok(Some("dbsmine1".into())),
        "other names (a fuzzy filter) and released plans do not count"
    );
    assert_eq!(
        ids(own_plan(
            &s,
            "ns-bp",
            &[mine.clone(), plan("dbsmine2", "ns-bp", "pause")]
        )),
        Err(Reason::AmbiguousPlanName)
    );
    let elsewhere = BackupPlanDetail {
        source_endpoint_instance_id: Some("rm-elsewhere".into()),
        ..mine.clone()
    };
    assert_eq!(
        ids(own_plan(&s, "ns-bp", &[elsewhere])),
        Err(Reason::PlanNameTaken),
        "the same name for another database is not this object's plan"
    );
    let engine = BackupPlanDetail {
        database_type: "Oracle".into(),
        ..mine
    };
    assert_eq!(
        ids(own_plan(&s, "ns-bp", &[engine])),
        Err(Reason::PlanNameTaken)
    );
}

#[test]
fn log_interval_change_modifies_strategy_once() {
    let mut s = spec();
    s.backup_method = BackupMethod::Physical;
    s.backup_log_interval_seconds = Some(600);
    let ready = with_status("running");
    let now = ts(1_000);
    let changed = Facts {
        applied_backup_log_interval_seconds: Some(300),
        ..facts(&s, Some(&ready))
    };
    match decide(&changed, now) {
        Step::Modify(Modification::Strategy(req)) => {
            assert_eq!(req.backup_log_interval_seconds, Some(600));
            assert_eq!(req.backup_period, "Monday,Thursday");
        }
        other => panic!("expected ModifyBackupStrategy, got {other:?}"),
    }
    let applied = Facts {
        applied_backup_log_interval_seconds: Some(600),
        ..facts(&s, Some(&ready))
    };
    assert_eq!(decide(&applied, now), Step::Ready);
    s.backup_log_interval_seconds = None;
    assert_eq!(decide(&facts(&s, Some(&ready)), now), Step::Ready);
}

#[test]
fn objects_added_to_a_plan_without_objects_modify_only_the_objects() {
    let mut s = spec();
    s.backup_objects = vec![BackupObject {
        database_name: "app".into(),
        schema_name: None,
        table_includes: vec![],
        table_excludes: vec![],
    }];
    let described = |objects: Option<&str>| {
        Observation::Found(Box::new(BackupPlanDetail {
            backup_objects: objects.map(str::to_owned),
            ..running()
        }))
    };
    let now = ts(1_000);
    let everything = described(Some(""));
    assert_eq!(
        decide(&facts(&s, Some(&everything)), now),
        Step::Modify(Modification::Objects(r#"[{"DBName":"app"}]"#.into())),
        "DBS describes a plan without objects as an empty string; only the objects change"
    );
    let same = described(Some(r#"[{"DBName":"app"}]"#));
    assert_eq!(decide(&facts(&s, Some(&same)), now), Step::Ready);
    let unreported = described(None);
    assert_eq!(decide(&facts(&s, Some(&unreported)), now), Step::Ready);
}

#[test]
fn a_started_plan_is_left_to_its_precheck_and_started_once() {
    let s = spec();
    let started = |status: &str, err: Option<&str>| {
        Observation::Found(Box::new(BackupPlanDetail {
            backup_plan_status: PlanStatus::parse(status),
            err_message: err.map(str::to_owned),
            ..running()
        }))
    };
    let init = started("init", None);
    let check_pass = started("check_pass", Some(""));
    let failed_init = started("init", Some("can not connect"));
    let failed_stop = started("stop", Some("access denied"));
    let stopped = started("stop", None);
    let after = |observed, started_at: Option<i64>| Facts {
        precheck_started_at: started_at.map(ts),
        ..facts(&s, Some(observed))
    };
    assert_eq!(decide(&after(&init, None), ts(500)), Step::Start);
    assert_eq!(
        decide(&after(&init, Some(500)), ts(501)),
        Step::Prechecking(Duration::from_secs(1)),
        "no second start while DBS prechecks"
    );
    assert_eq!(
        decide(&after(&check_pass, Some(500)), ts(600)),
        Step::Prechecking(Duration::from_secs(25)),
        "the interval grows with the precheck's age"
    );
    assert_eq!(
        decide(&after(&check_pass, None), ts(600)),
        Step::Prechecking(Duration::from_secs(1)),
        "a passed precheck is DBS's to finish, even for a plan this object did not start"
    );
    let late = 500 + i64::try_from(PRECHECK_TIMEOUT.as_secs()).expect("small");
    assert_eq!(
        decide(&after(&init, Some(500)), ts(late)),
        Step::Start,
        "a start that never reached DBS is sent again after the precheck timeout"
    );
    for failed in [&failed_init, &failed_stop] {
        assert!(matches!(
            decide(&after(failed, Some(500)), ts(510)),
            Step::Stalled { reason: Reason::PrecheckFailed, ref message } if message.contains("failed: ")
        ));
    }
    assert!(matches!(
        decide(&after(&stopped, None), ts(510)),
        Step::Stalled {
            reason: Reason::PlanNotRunning,
            ..
        }
    ));
    assert_eq!(
        decide(&after(&started("running", None), Some(500)), ts(510)),
        Step::Ready
    );
}

#[test]
fn precheck_polls_grow_from_one_to_thirty_seconds() {
    assert_eq!(precheck_poll(Duration::ZERO), Duration::from_secs(1));
    assert_eq!(
        precheck_poll(Duration::from_secs(6)),
        Duration::from_millis(1500)
    );
    assert_eq!(
        precheck_poll(Duration::from_secs(20)),
        Duration::from_secs(5)
    );
    assert_eq!(
        precheck_poll(Duration::from_secs(3600)),
        Duration::from_secs(30)
    );
}

#[test]
fn a_plan_just_created_and_not_listed_yet_is_waited_for() {
    let s = spec();
    let missing = Observation::Missing;
    let created_at = |t: Option<i64>| Facts {
        created_at: t.map(ts),
        ..facts(&s, Some(&missing))
    };
    assert_eq!(
        decide(&created_at(Some(100)), ts(101)),
        Step::WaitForPlan(Duration::from_secs(1))
    );
    let grace = i64::try_from(CREATE_VISIBILITY_GRACE.as_secs()).expect("small");
    for stale in [created_at(Some(100)), created_at(None)] {
        let at = if stale.created_at.is_some() {
            100 + grace
        } else {
            101
        };
        assert!(
            matches!(
                decide(&stale, ts(at)),
                Step::Stalled {
                    reason: Reason::CloudPlanMissing,
                    ..
                }
            ),
            "missing after the grace, or an adopted plan: {stale:?}"
        );
    }
}

#[test]
fn values_dbs_normalises_are_no_drift() {
    let mut s = spec();
    s.source.region = None;
    s.source.instance_type = SourceInstanceType::Other;
    s.source.instance_id = None;
    s.source.host = Some("db.example.com".into());
    s.source.port = Some(3306);
    s.backup_objects = vec![
        BackupObject {
            database_name: "app".into(),
            schema_name: None,
            table_includes: vec!["b".into(), "a".into()],
            table_excludes: vec![],
        },
        BackupObject {
            database_name: "logs".into(),
            schema_name: None,
            table_includes: vec![],
            table_excludes: vec![],
        },
    ];
    let described = |ip_port: &str, objects: &str| {
        Observation::Found(Box::new(BackupPlanDetail {
            source_endpoint_instance_type: Some("other".into()),
            source_endpoint_instance_id: Some(String::new()),
            // Filled in by DBS.
            source_endpoint_region: Some("cn-hangzhou".into()),
            source_endpoint_ip_port: Some(ip_port.into()),
            backup_objects: Some(objects.into()),
            ..running()
        }))
    };
    // The host resolved to an address; other field order, default fields, other list order.
    let normalised = described(
        "10.0.0.7:3306",
        r#"[{"TableExcludes":[],"SchemaName":"","DBName":"logs","TableIncludes":[]},
            {"TableIncludes":[{"TableName":"a"},{"TableName":"b"}],"DBName":"app"}]"#,
    );
    assert_eq!(
        decide(&facts(&s, Some(&normalised)), ts(1_000)),
        Step::Ready
    );
    let same_objects = r#"[{"DBName":"logs"},{"DBName":"app","TableIncludes":[{"TableName":"b"},{"TableName":"a"}]}]"#;
    let other_port = described("10.0.0.7:3307", same_objects);
    assert_eq!(
        decide(&facts(&s, Some(&other_port)), ts(1_000)),
        Step::Modify(Modification::SourceEndpoint(SourceEndpointChange::Drift))
    );
    let other_host = described("other.example.com:3306", same_objects);
    assert_eq!(
        decide(&facts(&s, Some(&other_host)), ts(1_000)),
        Step::Modify(Modification::SourceEndpoint(SourceEndpointChange::Drift))
    );
    let other_table = described(
        "DB.example.com:3306",
        r#"[{"DBName":"app","TableIncludes":[{"TableName":"a"}]},{"DBName":"logs"}]"#,
    );
    assert!(matches!(
        decide(&facts(&s, Some(&other_table)), ts(1_000)),
        Step::Modify(Modification::Objects(_))
    ));
}
