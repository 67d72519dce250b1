//! The HTTP server: RPC dispatch on `/` and the admin API under `/_emulator/`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::any;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::{self, AuthInput, Principal};
use crate::config::EmulatorConfig;
use crate::error::{ApiError, EmulatorError};
use crate::faults::{FaultDecision, Timeout};
use crate::snapshot::Snapshot;
use crate::state::{CallRecord, Shared, State};
use crate::wire::{self, Format, Params, Product};
use crate::{admin, dbs, rds, sts};

/// A running emulator bound to a local address.
pub struct Emulator {
    addr: SocketAddr,
    shared: Shared,
    shutdown_tx: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Emulator {
    /// Binds `config.listen`, spawns the server on the current tokio runtime
    /// and returns once it is accepting connections.
    pub async fn start(config: EmulatorConfig) -> Result<Emulator, EmulatorError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| EmulatorError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(EmulatorError::LocalAddr)?;
        let shared = Shared::new(State::from_config(&config));
        let app = router(shared.clone());
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = shutdown_rx.await;
            });
            if let Err(e) = server.await {
                tracing::error!(error = %e, "emulator server failed");
            }
        });
        Ok(Emulator {
            addr,
            shared,
            shutdown_tx,
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the emulator holds now: plans, instances and the call log.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.lock().snapshot(wire::now_ms())
    }

    /// Same JSON as `GET /_emulator/state`: [`Emulator::snapshot`] serialized.
    pub fn state(&self) -> serde_json::Value {
        serde_json::to_value(self.snapshot()).unwrap_or_default()
    }

    /// Stops accepting requests and waits (at most 5 s) for in-flight ones.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(());
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// Builds the router.
fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", any(rpc))
        .nest("/_emulator", admin::router())
        .with_state(shared)
}

/// First non-blank value of a header.
fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Whether the body is `application/x-www-form-urlencoded`.
fn is_form(headers: &HeaderMap) -> bool {
    header_value(headers, header::CONTENT_TYPE.as_str()).is_some_and(|ct| {
        ct.to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    })
}

/// Whether `action` exists for `product`.
fn known_action(product: Product, action: &str) -> bool {
    let list = match product {
        Product::Dbs => dbs::ACTIONS,
        Product::Rds => rds::ACTIONS,
        Product::Sts => sts::ACTIONS,
    };
    list.contains(&action)
}

/// Identity of a call for logging.
struct CallInfo {
    action: String,
    product: Product,
    access_key_id: String,
    user_agent: String,
    format: Format,
    query_params: Vec<String>,
    body_params: Vec<String>,
}

impl CallInfo {
    /// Records the call with its outcome.
    fn record(&self, state: &mut State, outcome: &str, status: StatusCode) {
        state.record(CallRecord {
            action: self.action.clone(),
            product: self.product.as_str().into(),
            time_ms: wire::now_ms(),
            access_key_id: self.access_key_id.clone(),
            outcome: outcome.to_string(),
            http_status: status.as_u16(),
            user_agent: self.user_agent.clone(),
            format: self.format.as_str().into(),
            query_params: self.query_params.clone(),
            body_params: self.body_params.clone(),
        });
    }
}

/// Auth, action lookup, quota and fault decision (under the lock).
fn admit(
    state: &mut State,
    call: &mut CallInfo,
    input: &AuthInput<'_>,
    now_ms: i64,
) -> Result<(Principal, FaultDecision), ApiError> {
    let anonymous = call.product == Product::Sts && sts::ANONYMOUS.contains(&call.action.as_str());
    let who = if anonymous {
        Principal {
            account_id: "anonymous".into(),
        }
    } else {
        if let Some(ak) = input
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::signature::parse_v3_authorization)
        {
            call.access_key_id = ak.access_key_id;
        } else if let Some((_, ak)) = input
            .all_pairs
            .iter()
            .rev()
            .find(|(k, _)| k == "AccessKeyId")
        {
            call.access_key_id = ak.clone();
        }
        auth::authenticate(state, input, now_ms)?
    };
    if !known_action(call.product, &call.action) {
        return Err(ApiError::bad_request(
            "InvalidAction.NotFound",
            format!(
                "Specified api {} is not found, please check your url and method.",
                call.action
            ),
        ));
    }
    if !state.quotas.admit(&who.account_id, &call.action, now_ms) {
        return Err(ApiError::bad_request(
            "Throttling.User",
            "Request was denied due to user flow control.",
        ));
    }
    let decision = state.faults.decide(&call.action, &who.account_id);
    Ok((who, decision))
}

/// Handles every RPC request on `/`.
async fn rpc(
    AxState(shared): AxState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = wire::request_id();
    let query = uri.query().map(wire::parse_pairs).unwrap_or_default();
    let form = if is_form(&headers) {
        wire::parse_pairs(&String::from_utf8_lossy(&body))
    } else {
        Vec::new()
    };
    let all_pairs: Vec<(String, String)> = query.iter().chain(form.iter()).cloned().collect();
    let params = Params::from_pairs(&all_pairs);
    let format = Format::requested(&headers, &params);
    if method != Method::GET && method != Method::POST {
        let err = ApiError::new(
            StatusCode::FORBIDDEN,
            "UnsupportedHTTPMethod",
            "This http method is not supported.",
        );
        return wire::error_response(&err, &request_id, None, format);
    }
    let v3 = header_value(&headers, "x-acs-action").is_some()
        || header_value(&headers, "x-acs-version").is_some();
    let (action, version) = if v3 {
        (
            header_value(&headers, "x-acs-action"),
            header_value(&headers, "x-acs-version"),
        )
    } else {
        (params.get("Action"), params.get("Version"))
    };
    let (action, version) = match (action, version) {
        (Some(a), Some(v)) => (a.to_string(), v.to_string()),
        (None, _) => {
            return wire::error_response(&ApiError::missing("Action"), &request_id, None, format);
        }
        (_, None) => {
            return wire::error_response(&ApiError::missing("Version"), &request_id, None, format);
        }
    };
    let Some(product) = Product::from_version(&version) else {
        let err = ApiError::invalid(format!("Specified Version {version} is not valid."));
        return wire::error_response(&err, &request_id, None, format);
    };
    let mut call = CallInfo {
        action,
        product,
        access_key_id: String::new(),
        user_agent: headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        format,
        query_params: query.iter().map(|(k, _)| k.clone()).collect(),
        body_params: form.iter().map(|(k, _)| k.clone()).collect(),
    };
    let input = AuthInput {
        method: method.as_str(),
        headers: &headers,
        query: &query,
        all_pairs: &all_pairs,
        body: &body,
        authority: uri.authority().map(axum::http::uri::Authority::as_str),
    };
    let admitted = {
        let mut state = shared.lock();
        let result = admit(&mut state, &mut call, &input, wire::now_ms());
        if let Err(e) = &result {
            call.record(&mut state, &e.code, e.status);
        }
        result
    };
    let (who, decision) = match admitted {
        Ok(v) => v,
        Err(e) => return wire::error_response(&e, &request_id, Some(product), format),
    };
    if decision.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(decision.latency_ms)).await;
    }
    if let Some(timeout) = decision.timeout {
        let e = Timeout::error();
        {
            let mut state = shared.lock();
            if timeout.after_work {
                // The work is done, its answer lost: the outcome is logged as the timeout.
                let _ = handle(&mut state, &who, &call, &params);
            }
            call.record(&mut state, &e.code, e.status);
        }
        tokio::time::sleep(Duration::from_millis(timeout.hold_ms)).await;
        return wire::error_response(&e, &request_id, Some(product), format);
    }
    let mut state = shared.lock();
    if let Some(e) = decision.error {
        call.record(&mut state, &e.code, e.status);
        return wire::error_response(&e, &request_id, Some(product), format);
    }
    let result = handle(&mut state, &who, &call, &params);
    match result {
        Ok((body, outcome, status)) => {
            call.record(&mut state, &outcome, status);
            tracing::debug!(action = %call.action, %outcome, "rpc");
            wire::fields_response(status, &request_id, body, format, &call.action)
        }
        Err(e) => {
            call.record(&mut state, &e.code, e.status);
            tracing::debug!(action = %call.action, code = %e.code, "rpc failed");
            wire::error_response(&e, &request_id, Some(product), format)
        }
    }
}

/// Runs the action's handler: the body, the call log's outcome and the status.
fn handle(
    state: &mut State,
    who: &Principal,
    call: &CallInfo,
    params: &Params,
) -> Result<
    (
        serde_json::Map<String, serde_json::Value>,
        String,
        StatusCode,
    ),
    ApiError,
> {
    let now = wire::now_ms();
    let action = call.action.as_str();
    match call.product {
        Product::Dbs => Ok(dbs::handle(state, who, action, params, now)),
        Product::Rds => rds::handle(state, action, params, now)
            .map(|b| (b, "Success".to_string(), StatusCode::OK)),
        Product::Sts => sts::handle(state, who, &call.access_key_id, action, params, now)
            .map(|b| (b, "Success".to_string(), StatusCode::OK)),
    }
}
