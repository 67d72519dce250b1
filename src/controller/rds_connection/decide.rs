//! Pure decisions of the RdsConnection controller: given the spec, what the object remembers
//! and what RDS reports, what happens next. No I/O here; time is an argument.
//!
//! Which public endpoint is ours ([`Ownership`]), in order:
//! 1. the public endpoint named by `status.connectionString` (the one we allocated or adopted;
//!    after a prefix change in the spec it still carries the old prefix and is modified);
//! 2. the public endpoint whose prefix the annotation `db.alicloud.dev/connection-string-prefix`
//!    records: the controller writes it before each Allocate and Modify with the prefix about to
//!    be requested, so an endpoint made by a call whose answer never reached the status (a
//!    crash, a lost write, an object restored without its status) is still found;
//! 3. with `spec.adopt` only: the public endpoint with `spec.connectionStringPrefix`, else the
//!    instance's public endpoint whatever its prefix (renamed to the spec's like our own).
//!
//! A public endpoint that is none of these is not ours, whatever its prefix: the controller
//! never renames or releases an endpoint it did not create or adopt, because whoever made it
//! (by hand, Terraform, another object) may be using it. It stalls with `EndpointExists`;
//! `adopt: true` takes the endpoint over.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::observe::Observed;
use super::report::Reason;
use super::requests;
use crate::cloud::rds::{
    AllocatePublicConnection, InstanceNetInfo, ModifyConnectionString, NetInfoEndpoint,
};
use crate::controller::conditions::READY;
use crate::crd::{RdsConnectionSpec, RdsConnectionStatus};

/// Shortest prefix `ModifyDBInstanceConnectionString` accepts (Allocate accepts 5).
pub const MODIFY_MIN_PREFIX_LEN: usize = 8;

/// `IPType` of a public endpoint in `DescribeDBInstanceNetInfo`.
const PUBLIC: &str = "Public";

/// The one thing the controller does next for a live object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The endpoint matches the spec and the instance is `Running`: nothing to do.
    Ready {
        /// Our endpoint as RDS reports it.
        endpoint: NetInfoEndpoint,
    },
    /// Something is due or in progress but the instance is not `Running`: look again later.
    WaitForInstance {
        /// Our endpoint, if it already exists.
        endpoint: Option<NetInfoEndpoint>,
    },
    /// The instance has no endpoint of ours: allocate one.
    Allocate(AllocatePublicConnection),
    /// Our endpoint differs from the spec in prefix or ports: modify it.
    Modify {
        /// Our endpoint as RDS reports it.
        endpoint: NetInfoEndpoint,
        /// The modification to request.
        request: ModifyConnectionString,
    },
    /// Nothing can be done until the user changes something.
    Stall {
        /// Condition reason.
        reason: Reason,
        /// What the user should know and do.
        message: String,
    },
}

/// What to do for an object being deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// Remove the finalizer without calling Alibaba Cloud; the endpoint stays.
    Forget {
        /// Event reason.
        reason: Reason,
        /// Event note.
        message: String,
    },
    /// Find our endpoint on the instance, then release it.
    Release,
}

/// Checks the spec for mistakes the CRD schema cannot express. `Err` carries the message
/// shown in the `Stalled` condition; no cloud call is made for such a spec.
pub fn validate(spec: &RdsConnectionSpec) -> Result<(), String> {
    let ports = [
        ("port", Some(spec.port)),
        ("babelfishPort", spec.babelfish_port),
        ("pgBouncerPort", spec.pg_bouncer_port),
    ];
    for (i, (name_a, a)) in ports.iter().enumerate() {
        for (name_b, b) in &ports[i + 1..] {
            if a.is_some() && a == b {
                return Err(format!(
                    "{name_a} and {name_b} must differ, both are {}",
                    a.unwrap_or_default()
                ));
            }
        }
    }
    if spec.connection_string_prefix.contains("--") {
        return Err(format!(
            "connectionStringPrefix {:?} must not contain consecutive hyphens",
            spec.connection_string_prefix
        ));
    }
    if let (Some(secret), Some(creds)) =
        (&spec.write_connection_secret_to_ref, &spec.credentials_ref)
        && secret.name == creds.name
    {
        return Err(format!(
            "writeConnectionSecretToRef and credentialsRef both name Secret {:?}; the endpoint \
             Secret would overwrite the credentials",
            secret.name
        ));
    }
    Ok(())
}

/// How long until the next look at the cloud is due, if the object is `Ready` for its current
/// generation and was synced less than `resync_period` ago; `None` when RDS must be read now.
pub fn fresh_for(
    status: Option<&RdsConnectionStatus>,
    generation: Option<i64>,
    now: Timestamp,
    resync_period: Duration,
) -> Option<Duration> {
    let age = synced_ago(status, generation, now)?;
    resync_period.checked_sub(age).filter(|d| !d.is_zero())
}

/// How long ago RDS was last read for an object `Ready` for its current generation; `None`
/// when it is not.
fn synced_ago(
    status: Option<&RdsConnectionStatus>,
    generation: Option<i64>,
    now: Timestamp,
) -> Option<Duration> {
    let status = status?;
    let ready_for_this_generation = status
        .conditions
        .iter()
        .any(|c| c.type_ == READY && c.status == "True" && c.observed_generation == generation);
    if !ready_for_this_generation {
        return None;
    }
    let synced = status.last_sync_time.as_ref()?.0;
    Duration::try_from(now.duration_since(synced)).ok()
}

/// A periodic check yields when the reads it would make wait longer than this for their turn
/// under the account's quota ([`check_deferral`]).
pub const CHECK_YIELDS_BEYOND: Duration = Duration::from_secs(2);

/// Whether the reads this reconcile is about to make are only the periodic check of an object
/// `Ready` for its current generation: its resync period has passed, but not twice over. Such a
/// check may yield to other objects' work ([`check_deferral`]); a check overdue by a whole
/// period never does.
pub fn deferrable_check(
    status: Option<&RdsConnectionStatus>,
    generation: Option<i64>,
    now: Timestamp,
    resync_period: Duration,
) -> bool {
    synced_ago(status, generation, now).is_some_and(|age| age < resync_period * 2)
}

/// How long to put off a periodic check whose reads would wait `backlog` for their turn: the
/// backlog itself when it is longer than [`CHECK_YIELDS_BEYOND`], else `None` (read now).
///
/// RDS has no read of many instances' endpoints at once: each connection's check costs one
/// `DescribeDBInstanceAttribute` and one `DescribeDBInstanceNetInfo`, paced under the account's
/// quota with every other read. When many connections are created at once, the checks of
/// those Ready since (each resync period) took a share of the quota the new ones needed to
/// converge: at 1,000 connections with a 60 s resync, 1.3 of the 3.3 reads of each per
/// connection were such checks (`cargo xtask bench`). A check is a drift check of an object
/// that works; it comes back once the queue ahead of it has gone.
pub fn check_deferral(backlog: Duration) -> Option<Duration> {
    (backlog > CHECK_YIELDS_BEYOND).then_some(backlog)
}

/// The prefix of a full connection string: the part before the first dot.
pub fn prefix_of(connection_string: &str) -> &str {
    connection_string
        .split('.')
        .next()
        .unwrap_or(connection_string)
}

/// What the object remembers of its endpoint, besides the spec: the inputs of the ownership
/// rule (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ownership<'a> {
    /// `status.connectionString`: the endpoint last reported as ours.
    pub managed: Option<&'a str>,
    /// The prefix recorded in the annotation `db.alicloud.dev/connection-string-prefix`.
    pub annotated: Option<&'a str>,
}

/// Our endpoint on the instance, per the module's ownership rule.
pub fn our_endpoint<'a>(
    spec: &RdsConnectionSpec,
    owned: Ownership<'_>,
    net_info: &'a InstanceNetInfo,
) -> Option<&'a NetInfoEndpoint> {
    let public = || net_info.endpoints.iter().filter(|e| e.ip_type == PUBLIC);
    let by_status = || {
        let managed = owned.managed?;
        public().find(|e| e.connection_string == managed)
    };
    let by_annotation = || net_info.public_endpoint(owned.annotated?);
    let adopted = || {
        if !spec.adopt {
            return None;
        }
        net_info
            .public_endpoint(&spec.connection_string_prefix)
            .or_else(|| public().next())
    };
    by_status().or_else(by_annotation).or_else(adopted)
}

/// The prefix to record in the annotation before `step` is acted on, when the annotation
/// (`annotated`) does not say it already: the prefix an Allocate or Modify is about to request
/// (intent persisted before acting), the prefix of the endpoint a Ready object uses, or that of
/// a known endpoint of an object that has no annotation yet (made before the annotation
/// existed). While the instance is busy an annotation is never overwritten: it may name a
/// rename in progress.
pub fn prefix_to_record(step: &Step, annotated: Option<&str>) -> Option<String> {
    let wanted = match step {
        Step::Allocate(request) => request.connection_string_prefix.as_str(),
        Step::Modify { request, .. } => request.connection_string_prefix.as_str(),
        Step::Ready { endpoint } => prefix_of(&endpoint.connection_string),
        Step::WaitForInstance {
            endpoint: Some(endpoint),
        } if annotated.is_none() => prefix_of(&endpoint.connection_string),
        Step::WaitForInstance { .. } | Step::Stall { .. } => return None,
    };
    (annotated != Some(wanted)).then(|| wanted.to_owned())
}

/// Whether `endpoint` already is what the spec asks for. Optional ports are compared only
/// when both the spec sets them and RDS reports them: a port RDS never echoes (an engine
/// without Babelfish or PgBouncer) cannot be verified, and modifying it again on every
/// reconcile would never converge.
pub fn matches_spec(spec: &RdsConnectionSpec, endpoint: &NetInfoEndpoint) -> bool {
    let optional_matches =
        |want: Option<i32>, have: Option<i32>| want.is_none() || have.is_none() || want == have;
    prefix_of(&endpoint.connection_string) == spec.connection_string_prefix
        && endpoint.port == Some(spec.port)
        && optional_matches(spec.babelfish_port, endpoint.babelfish_port)
        && optional_matches(spec.pg_bouncer_port, endpoint.pg_bouncer_port)
}

/// The next step for a live object. A change due on a locked instance stalls: RDS refuses it
/// until the instance is unlocked, which only the account owner can do.
pub fn next_step(spec: &RdsConnectionSpec, owned: Ownership<'_>, observed: &Observed) -> Step {
    let step = step_ignoring_locks(spec, owned, observed);
    match (&step, observed.lock()) {
        (Step::Allocate(_) | Step::Modify { .. }, Some(mode)) => Step::Stall {
            reason: Reason::InstanceLocked,
            message: format!(
                "instance {} is locked (LockMode {mode}); RDS refuses endpoint changes until it                  is unlocked: settle an overdue payment or free disk space, see the RDS console",
                spec.db_instance_id
            ),
        },
        _ => step,
    }
}

/// [`next_step`] as if the instance were not locked.
fn step_ignoring_locks(
    spec: &RdsConnectionSpec,
    owned: Ownership<'_>,
    observed: &Observed,
) -> Step {
    let running = observed.is_running();
    match our_endpoint(spec, owned, &observed.net_info) {
        Some(endpoint) if matches_spec(spec, endpoint) => {
            if running {
                Step::Ready {
                    endpoint: endpoint.clone(),
                }
            } else {
                Step::WaitForInstance {
                    endpoint: Some(endpoint.clone()),
                }
            }
        }
        Some(endpoint) => {
            let renames = prefix_of(&endpoint.connection_string) != spec.connection_string_prefix;
            if renames && spec.connection_string_prefix.len() < MODIFY_MIN_PREFIX_LEN {
                return Step::Stall {
                    reason: Reason::InvalidSpec,
                    message: format!(
                        "renaming {} needs a connectionStringPrefix of at least {MODIFY_MIN_PREFIX_LEN} \
                         characters, {:?} has {}",
                        endpoint.connection_string,
                        spec.connection_string_prefix,
                        spec.connection_string_prefix.len()
                    ),
                };
            }
            if !running {
                return Step::WaitForInstance {
                    endpoint: Some(endpoint.clone()),
                };
            }
            Step::Modify {
                endpoint: endpoint.clone(),
                request: requests::modify(spec, endpoint),
            }
        }
        // A busy instance may be half-way through our own change (an endpoint renamed but not
        // yet reported under its new name): never judge foreign endpoints before it settles.
        None if !running => Step::WaitForInstance { endpoint: None },
        None => match observed
            .net_info
            .endpoints
            .iter()
            .find(|e| e.ip_type == PUBLIC)
        {
            Some(other) => Step::Stall {
                reason: Reason::EndpointExists,
                message: format!(
                    "instance {} already has the public endpoint {}, which this object did not \
                     create; set adopt: true to take it over (it is then renamed to this spec \
                     and released when this object is deleted with deletionPolicy Delete), or \
                     release it",
                    spec.db_instance_id, other.connection_string
                ),
            },
            None => Step::Allocate(requests::allocate(spec)),
        },
    }
}

/// The next step after Allocate or Modify failed with `InvalidConnectionString.Duplicate`
/// (HTTP 404, which does not mean "not found") and NetInfo was read again. The annotation
/// already records the prefix just requested, so an endpoint with it on our instance is ours
/// (an earlier attempt succeeded); if the same call would be made again, the prefix belongs to
/// another instance.
pub fn after_duplicate(
    spec: &RdsConnectionSpec,
    owned: Ownership<'_>,
    observed: &Observed,
) -> Step {
    match next_step(spec, owned, observed) {
        Step::Allocate(_) | Step::Modify { .. } => Step::Stall {
            reason: Reason::ConnectionStringTaken,
            message: format!(
                "the endpoint prefix {:?} is already used by another RDS instance; choose another \
                 connectionStringPrefix",
                spec.connection_string_prefix
            ),
        },
        step => step,
    }
}

/// What to do for an object being deleted, before any cloud call. A paused or abandoned
/// object never gets here (the runtime handles both).
pub fn cleanup(spec: &RdsConnectionSpec, managed: Option<&str>) -> Cleanup {
    let endpoint = managed.unwrap_or("the public endpoint");
    if spec.deletion_policy == crate::crd::DeletionPolicy::Retain {
        return Cleanup::Forget {
            reason: Reason::Retained,
            message: format!(
                "deletionPolicy Retain: {endpoint} of instance {} was left in place",
                spec.db_instance_id
            ),
        };
    }
    Cleanup::Release
}

/// The endpoint to release on deletion: ours per the ownership rule (status, annotation or
/// adoption), `None` when the instance has none of ours (never allocated, already released, or
/// only an endpoint someone else made, which is never released).
pub fn endpoint_to_release<'a>(
    spec: &RdsConnectionSpec,
    owned: Ownership<'_>,
    net_info: &'a InstanceNetInfo,
) -> Option<&'a NetInfoEndpoint> {
    our_endpoint(spec, owned, net_info)
}

#[cfg(test)]
mod tests;
