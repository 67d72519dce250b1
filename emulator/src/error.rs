//! Error types: start-up errors and API errors sent on the wire.

use axum::http::StatusCode;

/// Error returned when the emulator cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The listen address could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// Address that was requested.
        addr: std::net::SocketAddr,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The bound socket's address could not be read.
    #[error("cannot read the bound address: {0}")]
    LocalAddr(std::io::Error),
}

/// An API failure rendered as the generic (non-2xx) Alibaba error body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// HTTP status of the response.
    pub status: StatusCode,
    /// Alibaba error code (`Code`).
    pub code: String,
    /// Human readable message (`Message`).
    pub message: String,
}

impl ApiError {
    /// Builds an error with an explicit status.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// 400 with the given code.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 400 `MissingParameter` naming the parameter.
    pub fn missing(name: &str) -> Self {
        Self::bad_request(
            "MissingParameter",
            format!(
                "The input parameter \"{name}\" that is mandatory for processing this request is not supplied."
            ),
        )
    }

    /// 400 `InvalidParameter` with a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::bad_request("InvalidParameter", message)
    }
}
