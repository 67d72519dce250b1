//! A hook through which the client reports every HTTP attempt and every rate-limiter wait, so
//! that the operator can count them (metrics) without this module knowing who listens.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Product;

/// Receives one report per HTTP attempt and per rate-limiter wait.
pub trait CallObserver: Send + Sync {
    /// One HTTP attempt of `action` finished after `elapsed`; `code` is `Success`, the cloud's
    /// error code, or the client's classification when no code came back (`Retryable`, ...).
    fn attempt(&self, product: Product, action: &str, code: &str, elapsed: Duration);

    /// The client-side rate limiter held a call of `action` for `waited` before it was sent.
    fn limiter_wait(&self, action: &str, waited: Duration);
}

/// The observer a client reports to, if any. Cheap to clone.
#[derive(Clone, Default)]
pub struct Observer(Option<Arc<dyn CallObserver>>);

impl Observer {
    /// Reports to `observer`.
    pub fn new(observer: Arc<dyn CallObserver>) -> Self {
        Self(Some(observer))
    }

    pub(crate) fn attempt(&self, product: Product, action: &str, code: &str, elapsed: Duration) {
        if let Some(o) = &self.0 {
            o.attempt(product, action, code, elapsed);
        }
    }

    pub(crate) fn limiter_wait(&self, action: &str, waited: Duration) {
        if let Some(o) = &self.0 {
            o.limiter_wait(action, waited);
        }
    }
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Observer(Some)"
        } else {
            "Observer(None)"
        })
    }
}
