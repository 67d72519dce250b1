//! What the in-process controllers ask of the API server: a client layer that logs the method
//! and path of every request, so a test can show that a reconcile read or wrote nothing.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// The requests made through a client built with this layer, oldest first.
#[derive(Clone, Default)]
pub struct RequestLog(Arc<Mutex<Vec<(String, String)>>>);

impl RequestLog {
    /// How many requests were logged so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// `(method, path)` of the requests logged since the log held `mark` of them.
    pub fn since(&self, mark: usize) -> Vec<(String, String)> {
        self.lock().iter().skip(mark).cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, String)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<S> tower::Layer<S> for RequestLog {
    type Service = Logged<S>;

    fn layer(&self, inner: S) -> Logged<S> {
        Logged {
            inner,
            log: self.clone(),
        }
    }
}

/// A client service that logs each request in a [`RequestLog`].
#[derive(Clone)]
pub struct Logged<S> {
    inner: S,
    log: RequestLog,
}

impl<S, B> tower::Service<http::Request<B>> for Logged<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.log.lock().push((
            request.method().to_string(),
            request.uri().path().to_owned(),
        ));
        self.inner.call(request)
    }
}
