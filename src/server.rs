//! The operator's HTTP server: `/metrics` (Prometheus text), `/healthz` (the process serves)
//! and `/readyz` (the caches are synced and, with leader election, leadership is known).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::controller::WatchSync;
use crate::metrics::Metrics;

/// Where this replica stands with respect to the leader-election Lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Leadership {
    /// Leader election is on and the Lease has not been read yet.
    Unknown = 0,
    /// Another replica holds the Lease: this one serves health and metrics only.
    Follower = 1,
    /// This replica holds the Lease and runs the controllers.
    Leader = 2,
    /// Leader election is off: this replica runs the controllers.
    NotElecting = 3,
}

/// What `/readyz` answers from.
#[derive(Debug)]
pub struct Readiness {
    leadership: AtomicU8,
    watches: Arc<WatchSync>,
}

impl Readiness {
    /// Readiness that waits for `watches` and for [`Readiness::set_leadership`].
    pub fn new(watches: Arc<WatchSync>) -> Self {
        Self {
            leadership: AtomicU8::new(Leadership::Unknown as u8),
            watches,
        }
    }

    /// Records where this replica stands.
    pub fn set_leadership(&self, l: Leadership) {
        self.leadership.store(l as u8, Ordering::Release);
    }

    /// Where this replica stands.
    pub fn leadership(&self) -> Leadership {
        match self.leadership.load(Ordering::Acquire) {
            1 => Leadership::Follower,
            2 => Leadership::Leader,
            3 => Leadership::NotElecting,
            _ => Leadership::Unknown,
        }
    }

    /// `Ok` with a short description when ready, else `Err` saying what is awaited.
    pub fn check(&self) -> Result<String, String> {
        match self.leadership() {
            Leadership::Unknown => Err("leadership not known yet".into()),
            Leadership::Follower => Ok("follower: waiting for the leader-election Lease".into()),
            Leadership::Leader | Leadership::NotElecting => {
                let pending = self.watches.pending();
                if pending.is_empty() {
                    Ok("caches synced".into())
                } else {
                    Err(format!("waiting for the caches of {}", pending.join(", ")))
                }
            }
        }
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

/// The router of the three endpoints.
pub fn router(metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz_handler))
        .with_state(AppState { metrics, readiness })
}

/// Binds `addr` and serves [`router`] until the task is dropped; returns the bound address
/// (port 0 picks a free one).
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(metrics, readiness);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics and health server stopped");
        }
    });
    Ok((bound, task))
}

async fn metrics_handler(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn readyz_handler(State(state): State<AppState>) -> impl IntoResponse {
    match state.readiness.check() {
        Ok(msg) => (StatusCode::OK, format!("ok: {msg}\n")),
        Err(msg) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {msg}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_once_leadership_is_known_and_caches_are_synced() {
        let watches = Arc::new(WatchSync::default());
        watches.expect("BackupPlan");
        let r = Readiness::new(watches.clone());
        assert!(r.check().is_err(), "unknown leadership");
        r.set_leadership(Leadership::Follower);
        assert!(
            r.check().is_ok(),
            "a follower is ready: it knows it follows"
        );
        r.set_leadership(Leadership::Leader);
        let err = r.check().expect_err("leader with an unsynced cache");
        assert!(err.contains("BackupPlan"), "{err}");
        watches.synced("BackupPlan");
        assert!(r.check().is_ok());
    }
}
