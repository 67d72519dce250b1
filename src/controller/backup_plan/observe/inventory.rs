//! The plan inventory: one batched `DescribeBackupPlanList` sweep (pages of 100) per
//! (account, region) and resync period feeds the status of every object, instead of one
//! describe per object. A plan the controller has just changed is read once by id, in a batch
//! with the other plans read by id at the same time (see `batch`).
//!
//! Sweeps are lazy, and never run inside a reconcile: the first reconcile that needs a plan of a
//! stale (account, region) starts the sweep in a task of its own, and the reconciles of that account wait
//! for it until [`SWEEP_WAIT`] after it started, no longer. A sweep that takes longer (a slow or
//! unreachable account, up to [`MAX_PAGES`] pages with the client's retries) holds no reconcile
//! slot meanwhile: the reconcile goes on with the plan's previous sighting, or hears that the plan
//! is not observed yet and looks again soon; reconciles arriving later do not wait at all. One
//! slow account therefore costs the controller's concurrency slots at most [`SWEEP_WAIT`] per
//! waiting reconcile and sweep, and never starves the objects of the other accounts, nor
//! deletions, which describe by id and never wait for a sweep.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Observation;
use super::batch::ByIdReads;
use async_trait::async_trait;

use crate::cloud::dbs::{BackupPlanDetail, BackupPlanPage, DescribeBackupPlanList, PlanStatus};
use crate::cloud::{CloudError, Credentials, DbsApi, Principal, Scope};
use crate::controller::cache;
use crate::sync::{ShrinkIfSparse as _, lock};

/// Largest page `DescribeBackupPlanList` serves.
const PAGE_SIZE: u32 = 100;
/// A sweep stops after this many pages even if DBS reports more.
const MAX_PAGES: u32 = 1000;
/// An (account, region) cache unused for this many sweep periods is dropped (its objects are gone,
/// or its key's account could not be told for a while and the key stood for itself).
const IDLE_SWEEP_PERIODS: u32 = 3;
/// How long after a sweep started reconciles wait for it before they go on without it.
pub const SWEEP_WAIT: Duration = Duration::from_secs(2);

/// The DBS call the inventory makes, and whose account a key is; every [`DbsApi`] answers both.
#[async_trait]
pub trait ListPlans: Send + Sync {
    /// `DescribeBackupPlanList`.
    async fn list_plans(
        &self,
        scope: &Scope,
        req: &DescribeBackupPlanList,
    ) -> Result<BackupPlanPage, CloudError>;

    /// The account `credentials` belong to ([`DbsApi::principal`]): sweeps are per account,
    /// since every key of an account lists the same plans.
    async fn principal(&self, credentials: &Credentials) -> Principal;
}

#[async_trait]
impl<T: DbsApi + ?Sized> ListPlans for T {
    async fn list_plans(
        &self,
        scope: &Scope,
        req: &DescribeBackupPlanList,
    ) -> Result<BackupPlanPage, CloudError> {
        self.describe_backup_plan_list(scope, req).await
    }

    async fn principal(&self, credentials: &Credentials) -> Principal {
        DbsApi::principal(self, credentials).await
    }
}

/// Whose plans a sweep lists: an account ([`Principal::key`]) in a region.
type SweepKey = (String, String);

/// How a sweep ended, as the reconciles that wait for it see it: `None` while it runs.
type SweepEnd = Option<Result<(), CloudError>>;

/// A plan as last seen, and when.
#[derive(Clone, Debug)]
pub struct Sighting {
    /// `Found` or `Missing`.
    pub observation: Observation,
    /// When DBS described it (the status' `lastSyncTime`).
    pub observed_at: Timestamp,
    seen: Instant,
}

/// A plan as the inventory keeps it: a [`Sighting`] with the plan's detail packed against a
/// typical detail (about 150 bytes instead of 1.3 KiB, see `controller::cache`), and its name at
/// hand for the lookups by name and the orphan report.
struct Kept {
    /// The plan's name and its whole detail, packed; `None`: `Missing`.
    plan: Option<(Box<str>, Box<[u8]>)>,
    observed_at: Timestamp,
    seen: Instant,
}

impl Kept {
    fn new(observation: &Observation, observed_at: Timestamp, seen: Instant) -> Self {
        let plan = match observation {
            Observation::Found(d) => Some((
                d.backup_plan_name.as_str().into(),
                cache::pack(&**d, detail_dictionary()),
            )),
            Observation::Missing => None,
        };
        Self {
            plan,
            observed_at,
            seen,
        }
    }

    /// The plan's detail, unpacked.
    fn detail(&self) -> Option<BackupPlanDetail> {
        let (name, packed) = self.plan.as_ref()?;
        match cache::unpack(packed, detail_dictionary()) {
            Ok(detail) => Some(detail),
            Err(e) => {
                tracing::error!(plan_name = %name, error = %e, "kept plan unreadable");
                None
            }
        }
    }

    /// The sighting; `None` only if the packed detail does not unpack (a bug), which the caller
    /// takes as "not observed yet".
    fn sighting(&self) -> Option<Sighting> {
        let observation = match &self.plan {
            Some(_) => Observation::Found(Box::new(self.detail()?)),
            None => Observation::Missing,
        };
        Some(Sighting {
            observation,
            observed_at: self.observed_at,
            seen: self.seen,
        })
    }

    fn name(&self) -> Option<&str> {
        self.plan.as_ref().map(|(name, _)| &**name)
    }
}

/// What details are packed against: a plan as the operator configures it.
fn detail_dictionary() -> &'static [u8] {
    static DICTIONARY: OnceLock<Vec<u8>> = OnceLock::new();
    DICTIONARY.get_or_init(|| {
        let typical = BackupPlanDetail {
            backup_plan_id: "dbs00000000000".into(),
            backup_plan_name: "default-orders-00000".into(),
            backup_plan_status: PlanStatus::Running,
            backup_plan_create_time: Some(1_767_225_600_000),
            backup_method: "logical".into(),
            database_type: "MySQL".into(),
            instance_class: "small".into(),
            backup_objects: Some(r#"[{"DBName":"orders"}]"#.into()),
            backup_period: Some("Monday,Thursday".into()),
            backup_start_time: Some("02:30".into()),
            backup_retention_period: Some(30),
            duplication_infrequent_access_period: Some(7),
            duplication_archive_period: Some(14),
            backup_storage_type: Some("system".into()),
            oss_bucket_name: None,
            enable_backup_log: Some(false),
            source_endpoint_instance_type: Some("RDS".into()),
            source_endpoint_instance_id: Some("rm-0000000000000".into()),
            source_endpoint_region: Some("cn-hangzhou".into()),
            source_endpoint_ip_port: None,
            source_endpoint_database_name: None,
            source_endpoint_user_name: Some("backup".into()),
            source_endpoint_oracle_sid: None,
            backup_gateway_id: None,
            err_message: None,
        };
        serde_json::to_vec(&typical).unwrap_or_default()
    })
}

/// A plan a sweep listed, as the orphan report sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// `BackupPlanId`.
    pub backup_plan_id: String,
    /// `BackupPlanName`.
    pub backup_plan_name: String,
}

#[derive(Default)]
struct RegionPlans {
    last_sweep: Option<Instant>,
    /// The last sweep listed every page (it stops at [`MAX_PAGES`]).
    complete: bool,
    /// The names this process gave plans (Configure, ModifyBackupPlanName) and when, since the
    /// last sweep started: a sweep may not show them yet.
    named: HashMap<String, Instant>,
    last_used: Option<Instant>,
    /// The sweep running now, if any: until when reconciles wait for it, and how it ended,
    /// once it has.
    running: Option<(Instant, watch::Receiver<SweepEnd>)>,
    plans: HashMap<String, Kept>,
}

#[derive(Default)]
struct Region {
    plans: Mutex<RegionPlans>,
}

/// Shared cache of every plan the controller's accounts own, per region.
#[derive(Default)]
pub struct PlanInventory {
    regions: Mutex<HashMap<SweepKey, Arc<Region>>>,
    changed: Mutex<HashSet<String>>,
    by_id: ByIdReads,
}

impl PlanInventory {
    /// Marks a plan as changed by the controller: its next observation reads it by id.
    pub fn mark_changed(&self, backup_plan_id: &str) {
        lock(&self.changed).insert(backup_plan_id.to_owned());
    }

    /// Every plan the sweeps found (released ones excepted), over every account and region the
    /// controller has swept: what the orphan report compares with the live objects.
    pub fn swept(&self) -> Vec<Listed> {
        let regions: Vec<Arc<Region>> = lock(&self.regions).values().cloned().collect();
        regions
            .iter()
            .flat_map(|region| {
                let plans = lock(&region.plans);
                if plans.last_sweep.is_none() {
                    return Vec::new();
                }
                plans
                    .plans
                    .iter()
                    .filter_map(|(id, kept)| {
                        Some(Listed {
                            backup_plan_id: id.clone(),
                            backup_plan_name: kept.name()?.to_owned(),
                        })
                    })
                    .collect()
            })
            .collect()
    }

    /// Marks `name` as given to a plan of the scope's account and region by this process: until
    /// a sweep that started after now, [`PlanInventory::plans_named`] does not answer for it.
    /// Called before the call that names the plan, whatever its outcome.
    pub async fn mark_named<D: ListPlans + ?Sized>(&self, dbs: &D, scope: &Scope, name: &str) {
        let account = dbs.principal(&scope.credentials).await;
        let key = (account.key(), scope.region.clone());
        let region = lock(&self.regions).entry(key).or_default().clone();
        lock(&region.plans)
            .named
            .insert(name.to_owned(), Instant::now());
    }

    /// The plans of the scope's account and region named `name`, from the sweeps instead of a
    /// `DescribeBackupPlanList` by name per object: the lookup before every create.
    ///
    /// A complete sweep of this process lists every plan named before the process started (a
    /// previous process' plans, the plans a restored or re-applied object had); the plans this
    /// process read by id since are in the cache with their names, and a name this process gave
    /// a plan after the last sweep started ([`PlanInventory::mark_named`]) is not answered from
    /// the cache. An older sweep answers as well as a newer one: what matters is that it started
    /// after this process did. `None` when the cache cannot answer: no sweep has listed every
    /// page yet (one is started and waited for until [`SWEEP_WAIT`] after it started), or the
    /// name was given since the last sweep started; the caller then asks DBS by name.
    ///
    /// A plan named outside the operator (console, another tool) after the last sweep started is
    /// not seen until the next sweep (a resync period at most).
    pub async fn plans_named<D: ListPlans + ?Sized + 'static>(
        &self,
        dbs: &Arc<D>,
        scope: &Scope,
        name: &str,
        max_age: Duration,
    ) -> Option<Vec<BackupPlanDetail>> {
        let account = dbs.principal(&scope.credentials).await;
        let region = self.region(&account, scope, max_age);
        if lock(&region.plans).last_sweep.is_none() {
            let (deadline, mut end) = start_sweep(dbs, scope, &region, max_age)?;
            match tokio::time::timeout_at(deadline, end.wait_for(Option::is_some)).await {
                Ok(Ok(ended)) if matches!(&*ended, Some(Ok(()))) => {}
                _ => return None,
            }
        }
        let plans = lock(&region.plans);
        if plans.last_sweep.is_none() || !plans.complete || plans.named.contains_key(name) {
            return None;
        }
        Some(
            plans
                .plans
                .values()
                .filter(|kept| kept.name() == Some(name))
                .filter_map(Kept::detail)
                .collect(),
        )
    }

    /// Drops what is known of a plan (after its release).
    pub fn forget(&self, backup_plan_id: &str) {
        lock(&self.changed).remove(backup_plan_id);
        for region in lock(&self.regions).values() {
            lock(&region.plans).plans.remove(backup_plan_id);
        }
    }

    /// The plan as DBS has it: from a sweep at most `max_age` old, or read by id when the
    /// controller just changed it or the sweep did not list it (a plan absent from both is
    /// `Missing`).
    ///
    /// When the cache is stale, the sweep (started here unless one runs) is waited for until
    /// [`SWEEP_WAIT`] after it started; if it is not done by then, the answer is the plan's
    /// previous sighting, or `None` (not observed yet: look again soon) when there is none. Reconciles that waited
    /// for a sweep that failed share its error instead of each repeating the whole listing
    /// (10,000 objects would mean 10,000 sweeps).
    pub async fn observe<D: ListPlans + ?Sized + 'static>(
        &self,
        dbs: &Arc<D>,
        scope: &Scope,
        backup_plan_id: &str,
        max_age: Duration,
    ) -> Result<Option<Sighting>, CloudError> {
        let account = dbs.principal(&scope.credentials).await;
        let region = self.region(&account, scope, max_age);
        let changed = {
            let mut marked = lock(&self.changed);
            let changed = marked.remove(backup_plan_id);
            marked.shrink_if_sparse();
            changed
        };
        if !changed {
            if let Some(s) = fresh(&region, backup_plan_id, max_age) {
                return Ok(Some(s));
            }
            match start_sweep(dbs, scope, &region, max_age) {
                // A sweep ended within `max_age` and did not list the plan.
                None => {}
                Some((deadline, mut end)) => {
                    let waited = tokio::time::timeout_at(deadline, end.wait_for(Option::is_some));
                    match waited.await {
                        Ok(Ok(ended)) => {
                            if let Some(Err(e)) = &*ended {
                                return Err(copy(e));
                            }
                            // What the sweep listed (or a describe by id learnt since) is as new
                            // as DBS can tell, even when the sweep itself took over `max_age`.
                            if let Some(s) = sighted(&region, backup_plan_id) {
                                return Ok(Some(s));
                            }
                        }
                        // Still sweeping (or the sweep's task is gone): go on without it.
                        Ok(Err(_)) | Err(_) => return Ok(sighted(&region, backup_plan_id)),
                    }
                }
            }
        }
        let result = self.by_id.describe(dbs, scope, backup_plan_id).await;
        if result.is_err() && changed {
            self.mark_changed(backup_plan_id);
        }
        let sighting = Sighting {
            observation: result?,
            observed_at: Timestamp::now(),
            seen: Instant::now(),
        };
        let kept = Kept::new(&sighting.observation, sighting.observed_at, sighting.seen);
        lock(&region.plans)
            .plans
            .insert(backup_plan_id.to_owned(), kept);
        Ok(Some(sighting))
    }

    /// The cache of the (account, region); drops the caches of accounts no longer used.
    fn region(&self, account: &Principal, scope: &Scope, max_age: Duration) -> Arc<Region> {
        let key = (account.key(), scope.region.clone());
        let idle = max_age.saturating_mul(IDLE_SWEEP_PERIODS);
        let mut regions = lock(&self.regions);
        regions.retain(|k, r| {
            *k == key || lock(&r.plans).last_used.is_none_or(|t| t.elapsed() < idle)
        });
        let region = regions.entry(key).or_default().clone();
        lock(&region.plans).last_used = Some(Instant::now());
        region
    }
}

/// Until when to wait for the region's sweep, and its end: the sweep running, or one started now
/// in a task of its own. `None` when a sweep ended less than `max_age` ago.
fn start_sweep<D: ListPlans + ?Sized + 'static>(
    dbs: &Arc<D>,
    scope: &Scope,
    region: &Arc<Region>,
    max_age: Duration,
) -> Option<(Instant, watch::Receiver<SweepEnd>)> {
    let mut plans = lock(&region.plans);
    if plans.last_sweep.is_some_and(|t| t.elapsed() < max_age) {
        return None;
    }
    // A closed channel: the sweep's task ended without a word (it panicked); start another.
    if let Some(running) = plans
        .running
        .as_ref()
        .filter(|(_, e)| e.has_changed().is_ok())
    {
        return Some(running.clone());
    }
    let (tell, end) = watch::channel(None);
    let running = (Instant::now() + SWEEP_WAIT, end);
    plans.running = Some(running.clone());
    drop(plans);
    let (dbs, scope, region) = (dbs.clone(), scope.clone(), region.clone());
    tokio::spawn(async move {
        let ended = sweep(&*dbs, &scope, &region).await;
        if let Err(e) = &ended {
            tracing::debug!(region = %scope.region, error = %e, "sweeping DBS backup plans failed");
        }
        lock(&region.plans).running = None;
        tell.send_replace(Some(ended));
    });
    Some(running)
}

/// A copy of a sweep's error for another reconcile that waited for that sweep.
pub(super) fn copy(e: &CloudError) -> CloudError {
    CloudError {
        kind: e.kind,
        action: e.action,
        code: e.code.clone(),
        message: e.message.clone(),
        request_id: e.request_id.clone(),
        http_status: e.http_status,
        retry_after: e.retry_after,
    }
}

/// A sighting of `id` younger than `max_age`; a `Missing` one only counts when it comes from a
/// describe by id, never from its mere absence in a sweep.
fn fresh(region: &Region, id: &str, max_age: Duration) -> Option<Sighting> {
    lock(&region.plans)
        .plans
        .get(id)
        .filter(|s| s.seen.elapsed() < max_age)
        .and_then(Kept::sighting)
}

/// The plan's latest sighting, however old.
fn sighted(region: &Region, id: &str) -> Option<Sighting> {
    lock(&region.plans).plans.get(id).and_then(Kept::sighting)
}

/// Lists every page of plans of the scope's account and region into the cache. Each page goes
/// into the cache as it arrives (a second map of every plan until the end would double the
/// inventory's memory during each sweep); a plan read by id since the sweep started keeps that
/// newer sighting, and what the sweep did not list goes once it has listed every page.
async fn sweep<D: ListPlans + ?Sized>(
    dbs: &D,
    scope: &Scope,
    region: &Region,
) -> Result<(), CloudError> {
    let started = Instant::now();
    let mut listed = 0usize;
    let mut page_num = 0;
    let complete = loop {
        let req = DescribeBackupPlanList {
            page_num,
            page_size: PAGE_SIZE,
            ..Default::default()
        };
        let page = dbs.list_plans(scope, &req).await?;
        let now = Timestamp::now();
        let empty = page.items.is_empty();
        listed += page.items.len();
        let mut plans = lock(&region.plans);
        for detail in page.items {
            let id = detail.backup_plan_id.clone();
            let kept = Kept::new(&observation(detail), now, started);
            match plans.plans.entry(id) {
                Entry::Occupied(read_by_id) if read_by_id.get().seen > started => {}
                Entry::Occupied(mut older) => {
                    older.insert(kept);
                }
                Entry::Vacant(new) => {
                    new.insert(kept);
                }
            }
        }
        drop(plans);
        page_num += 1;
        if empty || page_num >= page.total_pages {
            break true;
        }
        if page_num >= MAX_PAGES {
            break false;
        }
    };
    tracing::debug!(region = %scope.region, plans = listed, "swept DBS backup plans");
    let mut plans = lock(&region.plans);
    // Plans absent from the sweep are dropped; a later observe confirms them by id.
    plans.plans.retain(|_, s| s.seen >= started);
    plans.last_sweep = Some(started);
    plans.complete = complete;
    plans.named.retain(|_, at| *at >= started);
    Ok(())
}

/// `DescribeBackupPlanList` for one id. Not found: no item with that id, or `InvalidParameterValid`.
pub async fn describe_one<D: ListPlans + ?Sized>(
    dbs: &D,
    scope: &Scope,
    id: &str,
) -> Result<Observation, CloudError> {
    let req = DescribeBackupPlanList {
        backup_plan_id: Some(id.to_owned()),
        page_num: 0,
        page_size: 10,
        ..Default::default()
    };
    match dbs.list_plans(scope, &req).await {
        Ok(page) => Ok(page
            .items
            .into_iter()
            .find(|d| d.backup_plan_id == id)
            .map_or(Observation::Missing, observation)),
        Err(e) if e.is_not_found() || e.has_code("InvalidParameterValid") => {
            Ok(Observation::Missing)
        }
        Err(e) => Err(e),
    }
}

/// A released plan is as good as gone.
pub(super) fn observation(detail: BackupPlanDetail) -> Observation {
    if detail.backup_plan_status == PlanStatus::Released {
        Observation::Missing
    } else {
        Observation::Found(Box::new(detail))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Notify;

    use super::*;
    use crate::cloud::Credentials;

    /// A DBS that only describes: one page per plan; a listing may be held at page 1.
    #[derive(Default)]
    struct Listing {
        plans: Mutex<Vec<BackupPlanDetail>>,
        hold_page_one: bool,
        page_one_requested: Notify,
        release_page_one: Notify,
        lists: AtomicUsize,
        fail_lists: bool,
        /// The listings of this access key never end.
        stuck_key: Option<&'static str>,
    }

    impl Listing {
        fn with(plans: &[(&str, &str)], hold_page_one: bool) -> Self {
            let plans = plans
                .iter()
                .map(|(id, period)| BackupPlanDetail {
                    backup_plan_id: (*id).into(),
                    backup_plan_status: PlanStatus::Running,
                    backup_period: Some((*period).into()),
                    ..Default::default()
                })
                .collect();
            Self {
                plans: Mutex::new(plans),
                hold_page_one,
                ..Default::default()
            }
        }

        fn set_period(&self, id: &str, period: &str) {
            for p in lock(&self.plans)
                .iter_mut()
                .filter(|p| p.backup_plan_id == id)
            {
                p.backup_period = Some(period.into());
            }
        }
    }

    #[async_trait]
    impl ListPlans for Listing {
        async fn principal(&self, credentials: &Credentials) -> Principal {
            Principal::Key(credentials.access_key_id.clone())
        }

        async fn list_plans(
            &self,
            scope: &Scope,
            req: &DescribeBackupPlanList,
        ) -> Result<BackupPlanPage, CloudError> {
            if let Some(ids) = &req.backup_plan_id {
                let items = lock(&self.plans)
                    .iter()
                    .filter(|p| ids.split(',').any(|id| p.backup_plan_id == id))
                    .cloned()
                    .collect();
                return Ok(BackupPlanPage {
                    total_pages: 1,
                    items,
                    ..Default::default()
                });
            }
            self.lists.fetch_add(1, Ordering::SeqCst);
            if self.stuck_key == Some(scope.credentials.access_key_id.as_str()) {
                std::future::pending::<()>().await;
            }
            if self.fail_lists {
                tokio::time::sleep(Duration::from_millis(10)).await;
                return Err(CloudError {
                    code: Some("Forbidden.RAM".into()),
                    ..CloudError::local(
                        "DescribeBackupPlanList",
                        crate::cloud::ErrorKind::Terminal,
                        "not allowed",
                    )
                });
            }
            // Page n holds plan n, as DBS had it when the page was requested.
            let snapshot = lock(&self.plans).get(req.page_num as usize).cloned();
            let total_pages = u32::try_from(lock(&self.plans).len()).unwrap_or(u32::MAX);
            if req.page_num == 1 && self.hold_page_one {
                self.page_one_requested.notify_one();
                self.release_page_one.notified().await;
            }
            Ok(BackupPlanPage {
                page_num: req.page_num,
                total_pages,
                items: snapshot.into_iter().collect(),
                ..Default::default()
            })
        }
    }

    fn scope(access_key_id: &str) -> Scope {
        Scope {
            credentials: Credentials::new(access_key_id, "secret"),
            region: "cn-hangzhou".into(),
        }
    }

    const MAX_AGE: Duration = Duration::from_secs(60);

    /// Waits until no sweep runs.
    async fn sweeps_end(inventory: &PlanInventory) {
        while lock(&inventory.regions)
            .values()
            .any(|r| lock(&r.plans).running.is_some())
        {
            tokio::task::yield_now().await;
        }
    }

    fn period(s: &Sighting) -> Option<String> {
        match &s.observation {
            Observation::Found(d) => d.backup_period.clone(),
            Observation::Missing => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_sweep_in_flight_does_not_overwrite_a_newer_read_by_id() {
        let dbs = Arc::new(Listing::with(
            &[("dbsaaaa", "MONDAY"), ("dbsbbbb", "MONDAY")],
            true,
        ));
        let inventory = Arc::new(PlanInventory::default());
        // A reconcile of another object starts a sweep; it has read page 0 (plan a: Monday).
        let sweeping = {
            let (dbs, inventory) = (dbs.clone(), inventory.clone());
            tokio::spawn(async move {
                inventory
                    .observe(&dbs, &scope("ak"), "dbsbbbb", MAX_AGE)
                    .await
            })
        };
        dbs.page_one_requested.notified().await;
        tokio::time::advance(Duration::from_millis(10)).await;
        // Meanwhile the controller modifies plan a and reads it back by id.
        dbs.set_period("dbsaaaa", "TUESDAY");
        inventory.mark_changed("dbsaaaa");
        let read = inventory
            .observe(&dbs, &scope("ak"), "dbsaaaa", MAX_AGE)
            .await
            .expect("observe")
            .expect("read by id");
        assert_eq!(period(&read).as_deref(), Some("TUESDAY"));
        // The sweep finishes with its older page 0.
        dbs.release_page_one.notify_one();
        sweeping.await.expect("join").expect("sweep");

        let next = inventory
            .observe(&dbs, &scope("ak"), "dbsaaaa", MAX_AGE)
            .await
            .expect("observe")
            .expect("swept");
        assert_eq!(
            period(&next).as_deref(),
            Some("TUESDAY"),
            "the sweep's older page replaced the newer read by id"
        );
    }

    fn ids(plans: Option<Vec<BackupPlanDetail>>) -> Option<Vec<String>> {
        plans.map(|p| p.into_iter().map(|d| d.backup_plan_id).collect())
    }

    #[tokio::test(start_paused = true)]
    async fn the_lookup_by_name_answers_from_the_sweeps_except_for_names_given_since() {
        let dbs = Arc::new(Listing::with(
            &[("dbsaaaa", "MONDAY"), ("dbsbbbb", "MONDAY")],
            false,
        ));
        let name = |id: &str, name: &str| {
            for p in lock(&dbs.plans)
                .iter_mut()
                .filter(|p| p.backup_plan_id == id)
            {
                p.backup_plan_name = name.into();
            }
        };
        name("dbsaaaa", "ns-a");
        let inventory = PlanInventory::default();
        let ak = scope("ak");
        let lookup = |n: &'static str| inventory.plans_named(&dbs, &ak, n, MAX_AGE);

        // The first lookup sweeps (two pages); the next ones answer from that sweep.
        assert_eq!(ids(lookup("ns-a").await), Some(vec!["dbsaaaa".to_owned()]));
        assert_eq!(ids(lookup("ns-c").await), Some(vec![]));
        assert_eq!(
            dbs.lists.load(Ordering::SeqCst),
            2,
            "one sweep of two pages"
        );

        // This process names plan b "ns-c": the sweep cannot tell, DBS is asked by name.
        inventory.mark_named(&*dbs, &scope("ak"), "ns-c").await;
        name("dbsbbbb", "ns-c");
        assert_eq!(ids(lookup("ns-c").await), None);
        assert_eq!(ids(lookup("ns-a").await), Some(vec!["dbsaaaa".to_owned()]));

        // A sweep that started after the naming lists it under its name.
        tokio::time::advance(MAX_AGE).await;
        inventory
            .observe(&dbs, &scope("ak"), "dbsaaaa", MAX_AGE)
            .await
            .expect("sweep");
        sweeps_end(&inventory).await;
        assert_eq!(dbs.lists.load(Ordering::SeqCst), 4, "a second sweep");
        assert_eq!(ids(lookup("ns-c").await), Some(vec!["dbsbbbb".to_owned()]));

        // A released plan is no plan of that name.
        lock(&dbs.plans)[0].backup_plan_status = PlanStatus::Released;
        inventory.mark_changed("dbsaaaa");
        inventory
            .observe(&dbs, &scope("ak"), "dbsaaaa", MAX_AGE)
            .await
            .expect("read by id");
        assert_eq!(ids(lookup("ns-a").await), Some(vec![]));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_complete_sweep_the_lookup_by_name_asks_dbs() {
        let failing = Arc::new(Listing {
            fail_lists: true,
            ..Listing::with(&[("dbsaaaa", "MONDAY")], false)
        });
        let inventory = PlanInventory::default();
        assert_eq!(
            ids(inventory
                .plans_named(&failing, &scope("ak"), "ns-a", MAX_AGE)
                .await),
            None
        );
        // A sweep that outlasts the wait.
        let stuck = Arc::new(Listing {
            stuck_key: Some("stuck"),
            ..Listing::with(&[("dbsaaaa", "MONDAY")], false)
        });
        assert_eq!(
            ids(inventory
                .plans_named(&stuck, &scope("stuck"), "ns-a", MAX_AGE)
                .await),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reconciles_waiting_for_a_failed_sweep_share_its_error() {
        let dbs = Arc::new(Listing {
            fail_lists: true,
            ..Listing::with(&[("dbsaaaa", "MONDAY")], false)
        });
        let inventory = Arc::new(PlanInventory::default());
        let observers: Vec<_> = ["dbs0001", "dbs0002", "dbs0003", "dbs0004"]
            .into_iter()
            .map(|id| {
                let (dbs, inventory) = (dbs.clone(), inventory.clone());
                tokio::spawn(
                    async move { inventory.observe(&dbs, &scope("ak"), id, MAX_AGE).await },
                )
            })
            .collect();
        for o in observers {
            let e = o.await.expect("join").expect_err("the sweep fails");
            assert_eq!(e.code.as_deref(), Some("Forbidden.RAM"));
        }
        assert_eq!(
            dbs.lists.load(Ordering::SeqCst),
            1,
            "one failed sweep, not one per object"
        );

        // A later reconcile tries again.
        let again = inventory
            .observe(&dbs, &scope("ak"), "dbs0001", MAX_AGE)
            .await;
        assert!(again.is_err());
        assert_eq!(dbs.lists.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn caches_of_rotated_keys_are_dropped() {
        let dbs = Arc::new(Listing::with(&[("dbsaaaa", "MONDAY")], false));
        let inventory = PlanInventory::default();
        // Temporary credentials: every refresh brings a new access key id.
        for key in ["STS.one", "STS.two", "STS.three", "STS.four"] {
            inventory
                .observe(&dbs, &scope(key), "dbsaaaa", MAX_AGE)
                .await
                .expect("observe")
                .expect("swept");
            tokio::time::advance(MAX_AGE * 4).await;
        }
        assert_eq!(dbs.lists.load(Ordering::SeqCst), 4, "one sweep per key");
        assert_eq!(
            lock(&inventory.regions).len(),
            1,
            "only the key in use keeps a cache"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_sweep_holds_a_reconcile_no_longer_than_the_bound() {
        // One plan per page: dbsaaaa on page 0, dbsbbbb on page 1 (where the listing hangs),
        // dbscccc on page 2.
        let dbs = Arc::new(Listing::with(
            &[
                ("dbsaaaa", "MONDAY"),
                ("dbsbbbb", "MONDAY"),
                ("dbscccc", "MONDAY"),
            ],
            true,
        ));
        let inventory = PlanInventory::default();
        // The first sweep hangs at page 1: nothing was ever seen of the plan.
        let started = Instant::now();
        let first = inventory
            .observe(&dbs, &scope("ak"), "dbsbbbb", MAX_AGE)
            .await
            .expect("no error");
        assert!(first.is_none(), "a plan never seen is not observed yet");
        assert!(
            started.elapsed() <= SWEEP_WAIT,
            "waited {:?}",
            started.elapsed()
        );
        // Past the bound, a reconcile of another plan of that key does not wait at all (the
        // clock is paused: no time passes unless something waits).
        let started = Instant::now();
        let other = inventory
            .observe(&dbs, &scope("ak"), "dbscccc", MAX_AGE)
            .await
            .expect("no error");
        assert!(other.is_none(), "not observed yet");
        assert!(
            started.elapsed().is_zero(),
            "waited {:?}",
            started.elapsed()
        );
        // Each page goes into the cache as it arrives: the plan of page 0 is there already.
        let listed = inventory
            .observe(&dbs, &scope("ak"), "dbsaaaa", MAX_AGE)
            .await
            .expect("no error")
            .expect("listed on page 0");
        assert_eq!(period(&listed).as_deref(), Some("MONDAY"));
        assert!(started.elapsed().is_zero(), "fresh: no wait");

        // The sweep goes on without any reconcile, and a reconcile after it finds the plan.
        dbs.release_page_one.notify_one();
        sweeps_end(&inventory).await;
        let swept = inventory
            .observe(&dbs, &scope("ak"), "dbsbbbb", MAX_AGE)
            .await
            .expect("no error")
            .expect("swept");
        assert_eq!(period(&swept).as_deref(), Some("MONDAY"));

        // The cache goes stale, DBS changes, and the next sweep hangs again: the reconcile
        // goes on with the previous sighting, within the bound.
        tokio::time::advance(MAX_AGE).await;
        dbs.set_period("dbsbbbb", "TUESDAY");
        let started = Instant::now();
        let previous = inventory
            .observe(&dbs, &scope("ak"), "dbsbbbb", MAX_AGE)
            .await
            .expect("no error")
            .expect("the previous sighting");
        assert!(
            started.elapsed() <= SWEEP_WAIT,
            "waited {:?}",
            started.elapsed()
        );
        assert_eq!(period(&previous).as_deref(), Some("MONDAY"));
        assert_eq!(
            previous.observed_at, swept.observed_at,
            "not claimed as new"
        );

        dbs.release_page_one.notify_one();
        sweeps_end(&inventory).await;
        let next = inventory
            .observe(&dbs, &scope("ak"), "dbsbbbb", MAX_AGE)
            .await
            .expect("no error")
            .expect("swept");
        assert_eq!(period(&next).as_deref(), Some("TUESDAY"));
        assert_eq!(
            dbs.lists.load(Ordering::SeqCst),
            6,
            "two sweeps of three pages: the waiting reconciles joined the sweep in flight"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_keys_stuck_sweep_does_not_hold_another_keys_reconciles() {
        let dbs = Arc::new(Listing {
            stuck_key: Some("slow"),
            ..Listing::with(&[("dbsaaaa", "MONDAY")], false)
        });
        let inventory = Arc::new(PlanInventory::default());
        let slow = {
            let (dbs, inventory) = (dbs.clone(), inventory.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let seen = inventory
                    .observe(&dbs, &scope("slow"), "dbsaaaa", MAX_AGE)
                    .await;
                (seen, started.elapsed())
            })
        };
        while dbs.lists.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }

        let started = Instant::now();
        let fast = inventory
            .observe(&dbs, &scope("fast"), "dbsaaaa", MAX_AGE)
            .await
            .expect("no error")
            .expect("swept");
        assert_eq!(period(&fast).as_deref(), Some("MONDAY"));
        assert!(
            started.elapsed() < SWEEP_WAIT,
            "the other key's sweep held this one for {:?}",
            started.elapsed()
        );

        let (seen, waited) = slow.await.expect("join");
        assert!(seen.expect("no error").is_none(), "not observed yet");
        assert!(waited <= SWEEP_WAIT, "waited {waited:?}");
    }

    #[test]
    fn a_kept_plan_unpacks_to_what_was_seen_and_a_missing_one_stays_missing() {
        let detail = BackupPlanDetail {
            backup_plan_id: "dbsq1w2e3r4t5y6".into(),
            backup_plan_name: "team-b-payments".into(),
            backup_plan_status: PlanStatus::Other("unheard_of".into()),
            backup_plan_create_time: Some(1_790_000_000_123),
            backup_method: "physical".into(),
            database_type: "PostgreSQL".into(),
            instance_class: "large".into(),
            backup_period: Some("Sunday".into()),
            err_message: Some("precheck failed: user lacks REPLICATION".into()),
            backup_gateway_id: Some(42),
            ..BackupPlanDetail::default()
        };
        let (at, seen) = (
            Timestamp::from_second(1_790_000_000).expect("valid"),
            Instant::now(),
        );
        let kept = Kept::new(&Observation::Found(Box::new(detail.clone())), at, seen);
        assert_eq!(kept.name(), Some("team-b-payments"));
        let sighting = kept.sighting().expect("unpacks");
        assert!(matches!(sighting.observation, Observation::Found(d) if *d == detail));
        assert_eq!((sighting.observed_at, sighting.seen), (at, seen));

        let missing = Kept::new(&Observation::Missing, at, seen);
        assert_eq!(missing.name(), None);
        assert!(matches!(
            missing.sighting().expect("nothing to unpack").observation,
            Observation::Missing
        ));
    }
}
