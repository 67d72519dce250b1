//! Reads by id, batched: the plans that reconciles ask to read by id (just created, configured,
//! started, prechecking) within [`GATHER`] of each other, for one access key and region, are
//! described by one `DescribeBackupPlanList` naming them all (`BackupPlanId` takes several ids,
//! comma-separated; at most [`MAX_IDS`], one page). 1,000 plans created at once then cost a few
//! dozen describes per step instead of one each, and leave the describe quota to the rest.
//!
//! One task per (key, region) runs while ids wait: it gathers for [`GATHER`], describes the ids
//! gathered, answers each waiting reconcile, and repeats until none waits. A reconcile whose
//! batch task is gone (a panic) describes its plan alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::Observation;
use super::inventory::{ListPlans, copy, describe_one, observation};
use crate::cloud::dbs::DescribeBackupPlanList;
use crate::cloud::{CloudError, Scope};
use crate::sync::lock;

/// How long a batch gathers ids before its describe.
pub const GATHER: Duration = Duration::from_millis(100);
/// Most ids in one describe (the largest page DBS serves).
pub const MAX_IDS: usize = 100;

type Answer = Result<Observation, CloudError>;

/// Whose plans a batch reads: an access key id in a region.
type BatchKey = (String, String);

#[derive(Default)]
struct Queue {
    waiting: Vec<(String, oneshot::Sender<Answer>)>,
    running: bool,
}

/// The batches of every (access key id, region).
#[derive(Default)]
pub struct ByIdReads {
    queues: Mutex<HashMap<BatchKey, Arc<Mutex<Queue>>>>,
}

impl ByIdReads {
    /// The plan `id` as DBS describes it now (`Missing` when not listed), read in a batch.
    pub async fn describe<D: ListPlans + ?Sized + 'static>(
        &self,
        dbs: &Arc<D>,
        scope: &Scope,
        id: &str,
    ) -> Answer {
        let key = (
            scope.credentials.access_key_id.clone(),
            scope.region.clone(),
        );
        let queue = lock(&self.queues).entry(key).or_default().clone();
        let (tell, answer) = oneshot::channel();
        let start = {
            let mut q = lock(&queue);
            q.waiting.push((id.to_owned(), tell));
            !std::mem::replace(&mut q.running, true)
        };
        if start {
            tokio::spawn(run(dbs.clone(), scope.clone(), queue));
        }
        match answer.await {
            Ok(answer) => answer,
            Err(_) => describe_one(&**dbs, scope, id).await,
        }
    }
}

/// Describes the waiting ids, a batch at a time, until none waits.
async fn run<D: ListPlans + ?Sized>(dbs: Arc<D>, scope: Scope, queue: Arc<Mutex<Queue>>) {
    loop {
        tokio::time::sleep(GATHER).await;
        let batch: Vec<(String, oneshot::Sender<Answer>)> = {
            let mut q = lock(&queue);
            if q.waiting.is_empty() {
                q.running = false;
                return;
            }
            let mut ids: Vec<&str> = Vec::new();
            let mut taken = 0;
            for (id, _) in &q.waiting {
                if !ids.contains(&id.as_str()) {
                    if ids.len() == MAX_IDS {
                        break;
                    }
                    ids.push(id);
                }
                taken += 1;
            }
            q.waiting.drain(..taken).collect()
        };
        let mut ids: Vec<&str> = batch.iter().map(|(id, _)| id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let described = describe_many(&*dbs, &scope, &ids).await;
        for (id, tell) in batch {
            let answer = match &described {
                Ok(found) => Ok(found.get(&id).cloned().unwrap_or(Observation::Missing)),
                Err(e) => Err(copy(e)),
            };
            let _ = tell.send(answer);
        }
    }
}

/// The plans among `ids` DBS lists, by id (a released plan as `Missing`). An id DBS refuses as
/// a parameter makes the whole batch be read one id at a time.
async fn describe_many<D: ListPlans + ?Sized>(
    dbs: &D,
    scope: &Scope,
    ids: &[&str],
) -> Result<HashMap<String, Observation>, CloudError> {
    if let [id] = ids {
        let one = describe_one(dbs, scope, id).await?;
        return Ok(HashMap::from([((*id).to_owned(), one)]));
    }
    let req = DescribeBackupPlanList {
        backup_plan_id: Some(ids.join(",")),
        page_num: 0,
        page_size: u32::try_from(MAX_IDS).unwrap_or(100),
        ..Default::default()
    };
    match dbs.list_plans(scope, &req).await {
        Ok(page) => Ok(page
            .items
            .into_iter()
            .filter(|d| ids.contains(&d.backup_plan_id.as_str()))
            .map(|d| (d.backup_plan_id.clone(), observation(d)))
            .collect()),
        Err(e) if e.is_not_found() || e.has_code("InvalidParameterValid") => {
            let mut found = HashMap::new();
            for id in ids {
                found.insert((*id).to_owned(), describe_one(dbs, scope, id).await?);
            }
            Ok(found)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::cloud::Credentials;
    use crate::cloud::dbs::{BackupPlanDetail, BackupPlanPage, PlanStatus};

    /// A DBS holding plans `dbs0`..`dbs{n}`; counts its listings and the ids each one named.
    #[derive(Default)]
    struct Plans {
        n: usize,
        lists: AtomicUsize,
        refuse_several: bool,
    }

    #[async_trait]
    impl ListPlans for Plans {
        async fn principal(&self, credentials: &Credentials) -> crate::cloud::Principal {
            crate::cloud::Principal::Key(credentials.access_key_id.clone())
        }

        async fn list_plans(
            &self,
            _scope: &Scope,
            req: &DescribeBackupPlanList,
        ) -> Result<BackupPlanPage, CloudError> {
            self.lists.fetch_add(1, Ordering::SeqCst);
            let ids = req.backup_plan_id.clone().unwrap_or_default();
            if self.refuse_several && ids.contains(',') {
                return Err(CloudError {
                    code: Some("InvalidParameterValid".into()),
                    ..CloudError::local(
                        "DescribeBackupPlanList",
                        crate::cloud::ErrorKind::Terminal,
                        "bad id",
                    )
                });
            }
            let items = (0..self.n)
                .map(|i| format!("dbs{i}"))
                .filter(|id| ids.split(',').any(|asked| asked == id))
                .map(|id| BackupPlanDetail {
                    backup_plan_id: id,
                    backup_plan_status: PlanStatus::Running,
                    ..Default::default()
                })
                .collect();
            Ok(BackupPlanPage {
                total_pages: 1,
                items,
                ..Default::default()
            })
        }
    }

    fn scope() -> Scope {
        Scope {
            credentials: Credentials::new("ak", "secret"),
            region: "cn-hangzhou".into(),
        }
    }

    /// Reads `count` ids (`dbs0`.., some beyond what DBS holds) at the same time.
    async fn read_at_once(dbs: &Arc<Plans>, count: usize) -> Vec<Answer> {
        let reads = Arc::new(ByIdReads::default());
        let tasks: Vec<_> = (0..count)
            .map(|i| {
                let (dbs, reads) = (dbs.clone(), reads.clone());
                tokio::spawn(
                    async move { reads.describe(&dbs, &scope(), &format!("dbs{i}")).await },
                )
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.expect("the read does not panic"));
        }
        answers
    }

    #[tokio::test(start_paused = true)]
    async fn reads_at_the_same_time_share_one_describe_per_hundred_ids() {
        let dbs = Arc::new(Plans {
            n: 200,
            ..Default::default()
        });
        let answers = read_at_once(&dbs, 250).await;
        assert_eq!(dbs.lists.load(Ordering::SeqCst), 3, "100 ids per describe");
        for (i, answer) in answers.into_iter().enumerate() {
            let observation = answer.expect("described");
            match observation {
                Observation::Found(d) => assert_eq!(d.backup_plan_id, format!("dbs{i}")),
                Observation::Missing => assert!(i >= 200, "dbs{i} exists"),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_batch_is_read_one_id_at_a_time() {
        let dbs = Arc::new(Plans {
            n: 3,
            refuse_several: true,
            ..Default::default()
        });
        let answers = read_at_once(&dbs, 4).await;
        assert_eq!(dbs.lists.load(Ordering::SeqCst), 1 + 4);
        let found = answers
            .iter()
            .filter(|a| matches!(a, Ok(Observation::Found(_))))
            .count();
        assert_eq!(found, 3);
    }
}
