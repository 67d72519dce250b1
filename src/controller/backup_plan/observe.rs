//! Observe: the credentials, the source password and the plan as DBS has it, into plain facts.
//! Steady-state observations come from the shared [`PlanInventory`], filled by one batched
//! listing per account, region and resync period.

mod batch;
mod inventory;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

pub use self::inventory::{Listed, PlanInventory, Sighting, describe_one};
use crate::cloud::Scope;
use crate::cloud::dbs::BackupPlanDetail;
use crate::controller::Error;
use crate::controller::runtime::Runtime;
use crate::crd::{BackupPlan, BackupPlanStatus};

/// How soon a reconcile looks again when its plan is not observed yet (its account's sweep
/// is still running).
pub const NOT_OBSERVED_REQUEUE: std::time::Duration = std::time::Duration::from_secs(3);

/// How old a sighting of a plan may be for a reconcile to use it (and how long after a sweep of
/// an account the next one may start): one resync period. A Ready plan's resync then finds the
/// last sweep's sighting, or starts the next sweep, which serves every plan of its account and
/// region: one sweep per resync period. With 0.9 of the period (before), sweeps came every
/// 0.9 period plus the sweep's own time, 1.1 per period, and a measured period held two of them
/// now and then (`cargo xtask bench`: 2.00 DescribeBackupPlanList per 100 plans in one 60 s
/// window at 1,000 plans, 1.77 at 10,000).
pub fn max_age(resync_period: std::time::Duration) -> std::time::Duration {
    resync_period
}

/// What the cloud said about a plan the object refers to.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// The plan exists; the detail is as DBS described it (enum case normalised by the client).
    Found(Box<BackupPlanDetail>),
    /// Neither a complete sweep nor a describe by id found the plan (or it is released).
    Missing,
}

/// What one reconcile learnt from the cluster and the cloud.
pub struct Observed {
    /// Whom the calls are made as, and where.
    pub scope: Scope,
    /// The source password Secret's version, and the password when it was read, when the spec
    /// names one.
    pub password: Option<Password>,
    /// The plan as last seen, when the object has one.
    pub sighting: Option<Sighting>,
}

/// The source password Secret as this reconcile knows it.
pub struct Password {
    /// The Secret's version (`<uid>/<resourceVersion>`).
    pub version: String,
    /// The password, when the Secret was read (see [`Observed::read_password`]).
    value: Option<String>,
}

impl Observed {
    /// The source password, when the spec names one and it was read.
    pub fn password(&self) -> Option<String> {
        self.password.as_ref().and_then(|p| p.value.clone())
    }

    /// When the plan was created: the status' `createdAt`, else what DBS says
    /// (`BackupPlanCreateTime`), when it was described. A plan with an id and no `createdAt`
    /// has a status older than the write that recorded both (seen at 10,000 plans: the
    /// reconcile of the annotation's update started from it), or lost; DBS's own creation time
    /// keeps ConfigureBackupPlan from going early, and a refusal within the grace waited out.
    pub fn created_at(&self, status: &BackupPlanStatus) -> Option<Timestamp> {
        if let Some(t) = &status.created_at {
            return Some(t.0);
        }
        match &self.sighting.as_ref()?.observation {
            Observation::Found(d) => Timestamp::from_millisecond(d.backup_plan_create_time?).ok(),
            Observation::Missing => None,
        }
    }

    /// Version of the password Secret now.
    pub fn password_version(&self) -> Option<&str> {
        self.password.as_ref().map(|p| p.version.as_str())
    }

    /// Reads the password (and its version with it) if it was not read yet: before a call that
    /// sends it.
    pub async fn read_password(
        &mut self,
        rt: &Runtime<BackupPlan>,
        obj: &BackupPlan,
    ) -> Result<(), Error> {
        let Some(key_ref) = &obj.spec.source.password_secret_ref else {
            return Ok(());
        };
        if self.password.as_ref().is_some_and(|p| p.value.is_some()) {
            return Ok(());
        }
        let ns = obj.namespace().unwrap_or_default();
        let (value, version) = rt.ctx.secret_value_versioned(&ns, key_ref).await?;
        self.password = Some(Password {
            version,
            value: Some(value),
        });
        Ok(())
    }
}

/// Resolves the object's credentials (marking their Secret in use): whom its calls are made as,
/// and where.
pub async fn scope(rt: &Runtime<BackupPlan>, obj: &BackupPlan) -> Result<Scope, Error> {
    let spec = &obj.spec;
    rt.ctx
        .scope_protecting_credentials(
            &obj.namespace().unwrap_or_default(),
            spec.credentials_ref.as_ref(),
            &spec.region,
        )
        .await
}

/// Reads the password (see [`scope`] for `scope`) and observes plan `id`; `None` when the plan
/// is not observed yet (see [`PlanInventory::observe`]).
pub async fn observe(
    rt: &Runtime<BackupPlan>,
    inventory: &PlanInventory,
    obj: &BackupPlan,
    scope: Scope,
    id: Option<&str>,
) -> Result<Option<Observed>, Error> {
    let ctx = &rt.ctx;
    let spec = &obj.spec;
    let ns = obj.namespace().unwrap_or_default();
    // Once the plan exists, the password Secret's version comes from the watch and the password
    // is read only by a call that sends it (see `Observed::read_password`). Before the create it
    // is read: a missing Secret or key stops the object before any plan is bought.
    let password = match &spec.source.password_secret_ref {
        Some(r) => match ctx.secret_version(&ns, &r.name) {
            Some(version) if id.is_some() => Some(Password {
                version,
                value: None,
            }),
            _ => {
                let (value, version) = ctx.secret_value_versioned(&ns, r).await?;
                Some(Password {
                    version,
                    value: Some(value),
                })
            }
        },
        None => None,
    };
    let sighting = match id {
        Some(id) => {
            let max_age = max_age(ctx.config.resync_period);
            match inventory.observe(&ctx.dbs, &scope, id, max_age).await? {
                Some(s) => Some(s),
                None => return Ok(None),
            }
        }
        None => None,
    };
    Ok(Some(Observed {
        scope,
        password,
        sighting,
    }))
}
