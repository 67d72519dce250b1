//! Which Alibaba Cloud account a key belongs to, resolved once per key with STS
//! `GetCallerIdentity` and cached.
//!
//! Alibaba counts API quotas per operation and per account: two Secrets holding keys of two RAM
//! users of one account, or successive STS sessions of one role, share one quota. The client's
//! rate limiter and the plan inventory are therefore keyed by the account this module names, not
//! by the access key id.
//!
//! One lookup per key runs at a time; the callers of that key wait for it. A failed lookup (STS
//! unreachable, the key refused) is not repeated for [`RETRY_AFTER`]: meanwhile the key stands
//! for itself ([`Principal::Key`]), which is what the limiter did before accounts were known.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::CloudError;
use crate::sync::lock;

/// How long a failed lookup stands before a call of the same key tries again.
pub const RETRY_AFTER: Duration = Duration::from_secs(300);
/// Entries unused for this long are dropped once the map grows past [`PRUNE_THRESHOLD`]
/// (temporary keys rotate; each new key id is looked up once).
const IDLE_EVICTION: Duration = Duration::from_secs(3600);
/// Map size above which idle entries are pruned.
const PRUNE_THRESHOLD: usize = 1024;

/// Whose quota a call counts against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    /// The account (uid) the key belongs to, as STS named it.
    Account(String),
    /// The access key id itself: its account is not known (yet).
    Key(String),
}

impl Principal {
    /// A stable string for map keys: `account:<uid>` or `key:<access key id>`.
    pub fn key(&self) -> String {
        match self {
            Self::Account(uid) => format!("account:{uid}"),
            Self::Key(id) => format!("key:{id}"),
        }
    }
}

struct Entry {
    account: OnceCell<String>,
    failed_at: Mutex<Option<Instant>>,
    used: Mutex<Instant>,
}

/// Access key → account, looked up once per key. A key is its id and its secret (as a
/// fingerprint): a Secret holding a known key id with a wrong secret is no key of that account,
/// and a corrected secret is looked up at once rather than after [`RETRY_AFTER`].
#[derive(Default)]
pub struct Accounts {
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("keys", &lock(&self.entries).len())
            .finish()
    }
}

impl Accounts {
    /// The principal of the key `access_key_id` with `secret`: its cached account, else the
    /// account `lookup` names (run at most once at a time per key, and not again within
    /// [`RETRY_AFTER`] of a failure), else the key id itself.
    pub async fn principal<F, Fut>(&self, access_key_id: &str, secret: &str, lookup: F) -> Principal
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String, CloudError>>,
    {
        let now = Instant::now();
        let entry = {
            let mut entries = lock(&self.entries);
            if entries.len() > PRUNE_THRESHOLD {
                entries
                    .retain(|_, e| now.saturating_duration_since(*lock(&e.used)) < IDLE_EVICTION);
            }
            // Only a hash of the secret is kept, and never printed.
            let fingerprint = &super::signer::sha256_hex(secret.as_bytes())[..16];
            entries
                .entry(format!("{access_key_id}/{fingerprint}"))
                .or_insert_with(|| {
                    Arc::new(Entry {
                        account: OnceCell::new(),
                        failed_at: Mutex::new(None),
                        used: Mutex::new(now),
                    })
                })
                .clone()
        };
        *lock(&entry.used) = now;
        let recently_failed = || {
            lock(&entry.failed_at)
                .is_some_and(|t| Instant::now().saturating_duration_since(t) < RETRY_AFTER)
        };
        if entry.account.get().is_none() && recently_failed() {
            return Principal::Key(access_key_id.to_owned());
        }
        let resolved = entry
            .account
            .get_or_try_init(|| async {
                // Callers queued behind a lookup that just failed do not repeat it.
                if recently_failed() {
                    return Err(None);
                }
                lookup().await.map_err(Some)
            })
            .await;
        match resolved {
            Ok(account) => Principal::Account(account.clone()),
            Err(error) => {
                if let Some(error) = error {
                    tracing::warn!(
                        access_key_id,
                        error = %error,
                        retry_in_s = RETRY_AFTER.as_secs(),
                        "could not tell which account the access key belongs to; its calls are \
                         rate-limited as an account of their own meanwhile"
                    );
                    *lock(&entry.failed_at) = Some(Instant::now());
                }
                Principal::Key(access_key_id.to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::cloud::ErrorKind;

    #[tokio::test(start_paused = true)]
    async fn one_lookup_per_key_however_many_callers() {
        let accounts = Arc::new(Accounts::default());
        let lookups = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (accounts, lookups) = (accounts.clone(), lookups.clone());
            tasks.push(tokio::spawn(async move {
                accounts
                    .principal("LTAI1", "secret", || async {
                        lookups.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok("1001".to_owned())
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Principal::Account("1001".into()));
        }
        assert_eq!(lookups.load(Ordering::SeqCst), 1);
        let other = accounts
            .principal("LTAI2", "secret", || async { Ok("1001".to_owned()) })
            .await;
        assert_eq!(other.key(), "account:1001", "two keys, one account");
    }

    #[tokio::test(start_paused = true)]
    async fn a_known_key_id_with_another_secret_is_looked_up_on_its_own() {
        let accounts = Accounts::default();
        let good = accounts
            .principal("LTAI1", "secret", || async { Ok("1001".to_owned()) })
            .await;
        assert_eq!(good, Principal::Account("1001".into()));
        let refused = || async {
            Err(CloudError::local(
                "GetCallerIdentity",
                ErrorKind::Terminal,
                "SignatureDoesNotMatch",
            ))
        };
        assert_eq!(
            accounts.principal("LTAI1", "wrong", refused).await,
            Principal::Key("LTAI1".into()),
            "a wrong secret is not the account's key"
        );
        // The good key is still known, and a corrected secret needs no wait.
        assert_eq!(accounts.principal("LTAI1", "secret", refused).await, good);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_lookup_stands_for_a_while_then_is_tried_again() {
        let accounts = Accounts::default();
        let lookups = AtomicUsize::new(0);
        let failing = || async {
            lookups.fetch_add(1, Ordering::SeqCst);
            Err(CloudError::local(
                "GetCallerIdentity",
                ErrorKind::Retryable,
                "down",
            ))
        };
        assert_eq!(
            accounts.principal("LTAI1", "secret", failing).await,
            Principal::Key("LTAI1".into())
        );
        assert_eq!(
            accounts.principal("LTAI1", "secret", failing).await,
            Principal::Key("LTAI1".into())
        );
        assert_eq!(lookups.load(Ordering::SeqCst), 1, "not repeated at once");
        tokio::time::advance(RETRY_AFTER).await;
        let found = accounts
            .principal("LTAI1", "secret", || async { Ok("1001".to_owned()) })
            .await;
        assert_eq!(found, Principal::Account("1001".into()));
    }
}
