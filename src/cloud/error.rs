//! The one error type of the cloud client, classified once.

use std::time::Duration;

/// How a caller should treat a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Transient: 5xx, timeouts, transport errors, `ServiceUnavailable`, a busy instance.
    Retryable,
    /// The cloud's rate limit said no (`Throttling*`).
    Throttled,
    /// The resource the call names does not exist.
    NotFound,
    /// The access key is unknown, disabled or its signature/token is wrong or expired.
    InvalidCredentials,
    /// Repeating the same call cannot succeed: bad parameters, missing permission, conflicts.
    Terminal,
}

impl ErrorKind {
    /// Stable CamelCase name, used as condition reason, Event reason and metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Retryable => "CloudUnavailable",
            Self::Throttled => "CloudThrottled",
            Self::NotFound => "CloudNotFound",
            Self::InvalidCredentials => "InvalidCredentials",
            Self::Terminal => "CloudRejected",
        }
    }
}

/// A failed call to Alibaba Cloud, with what a user needs to act on it.
#[derive(Debug, thiserror::Error)]
#[error("{action} failed: {code}: {message} (request id {request_id})", code = code.as_deref().unwrap_or("-"), request_id = request_id.as_deref().unwrap_or("-"))]
pub struct CloudError {
    /// Classification that decides retries and conditions.
    pub kind: ErrorKind,
    /// API action, e.g. `CreateBackupPlan`.
    pub action: &'static str,
    /// Alibaba error code (`Code` or DBS `ErrCode`), when the service sent one.
    pub code: Option<String>,
    /// Human-readable message; never contains secrets.
    pub message: String,
    /// Request id from the response, for support tickets.
    pub request_id: Option<String>,
    /// HTTP status, when a response arrived.
    pub http_status: Option<u16>,
    /// How long the service asked us to wait, if it said.
    pub retry_after: Option<Duration>,
}

impl CloudError {
    /// Whether the error means the named resource is gone.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// Whether the error carries exactly this Alibaba error code.
    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// Whether the call was refused because the instance is busy with another change: worth
    /// waiting for, unlike an outage or a rejected request.
    pub fn is_busy(&self) -> bool {
        self.code
            .as_deref()
            .is_some_and(|c| BUSY_CODES.contains(&c))
    }
}

/// RDS codes meaning "the instance is busy with another change; try again later".
const BUSY_CODES: &[&str] = &[
    "OperationDenied.DBInstanceStatus",
    "IncorrectDBInstanceState",
    "InvalideStatus.Format",
    "LockTimeout",
    "ConcurrentTaskExceeded",
    "TimeoutRetryLater",
];

/// Transient service-side codes.
const TRANSIENT_CODES: &[&str] = &["ServiceUnavailable", "InternalError", "OperationConflict"];

/// Codes naming a resource that does not exist. `InvalidConnectionString.Duplicate` (sent with
/// HTTP 404) is deliberately absent: the prefix exists, possibly as our own earlier allocation.
const NOT_FOUND_CODES: &[&str] = &[
    "InvalidJobId",
    "InvalidDBInstanceId.NotFound",
    "InvalidDBInstanceName.NotFound",
    "Endpoint.NotFound",
    "InvalidCurrentConnectionString.NotFound",
    "InvalidConnectionString.NotFound",
];

/// Codes about the caller's identity (unknown, disabled or mis-signed key, bad STS token).
const CREDENTIAL_CODES: &[&str] = &[
    "InvalidAccessKeyId",
    "InvalidAccessKeyId.NotFound",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "Forbidden.AccessKeyDisabled",
];

/// Classifies a failed call: the one place that turns an error code, an HTTP status and "no
/// response at all" into an [`ErrorKind`].
///
/// `http_status == None` means no response arrived (connect error, timeout, broken
/// connection): retryable. The code wins over the status; the status alone only ever yields
/// Retryable (5xx, 408), Throttled (429) or Terminal, never NotFound.
pub fn classify(code: Option<&str>, http_status: Option<u16>) -> ErrorKind {
    let Some(status) = http_status else {
        return ErrorKind::Retryable;
    };
    if let Some(code) = code.filter(|c| !c.is_empty()) {
        if code.contains("Throttling") {
            return ErrorKind::Throttled;
        }
        if CREDENTIAL_CODES.contains(&code)
            || code.starts_with("InvalidSecurityToken")
            || code.starts_with("AuthenticationFail")
        {
            return ErrorKind::InvalidCredentials;
        }
        if NOT_FOUND_CODES.contains(&code) {
            return ErrorKind::NotFound;
        }
        if BUSY_CODES.contains(&code) || TRANSIENT_CODES.contains(&code) {
            return ErrorKind::Retryable;
        }
    }
    match status {
        500..=599 | 408 => ErrorKind::Retryable,
        429 => ErrorKind::Throttled,
        _ => ErrorKind::Terminal,
    }
}

impl CloudError {
    /// Whether the service answered that it did not carry the call out: any answer but a
    /// server error (5xx) or a timeout (408), which may come after the work was done. A call
    /// that got no answer at all may have been carried out too.
    pub fn is_rejection(&self) -> bool {
        self.http_status
            .is_some_and(|status| status < 500 && status != 408)
    }

    /// An error from a response (or its absence), classified by [`classify`].
    pub fn from_response(
        action: &'static str,
        code: Option<String>,
        message: impl Into<String>,
        request_id: Option<String>,
        http_status: Option<u16>,
    ) -> Self {
        Self {
            kind: classify(code.as_deref(), http_status),
            action,
            code,
            message: message.into(),
            request_id,
            http_status,
            retry_after: None,
        }
    }

    /// An error of a known kind raised by the client itself (no usable response).
    pub fn local(action: &'static str, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            action,
            code: None,
            message: message.into(),
            request_id: None,
            http_status: None,
            retry_after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorKind::*;

    #[test]
    fn classification_table() {
        let cases: &[(Option<&str>, Option<u16>, ErrorKind)] = &[
            // No response at all.
            (None, None, Retryable),
            (Some("InvalidParameter"), None, Retryable),
            // Status alone.
            (None, Some(500), Retryable),
            (None, Some(503), Retryable),
            (None, Some(408), Retryable),
            (None, Some(429), Throttled),
            (None, Some(404), Terminal),
            (None, Some(400), Terminal),
            (Some(""), Some(404), Terminal),
            (Some("ExternalFailure"), Some(500), Retryable),
            // Transient codes.
            (Some("ServiceUnavailable"), Some(503), Retryable),
            (Some("InternalError"), Some(500), Retryable),
            (Some("OperationConflict"), Some(409), Retryable),
            (
                Some("OperationDenied.DBInstanceStatus"),
                Some(400),
                Retryable,
            ),
            (Some("IncorrectDBInstanceState"), Some(403), Retryable),
            (Some("InvalideStatus.Format"), Some(400), Retryable),
            (Some("LockTimeout"), Some(400), Retryable),
            (Some("ConcurrentTaskExceeded"), Some(400), Retryable),
            (Some("TimeoutRetryLater"), Some(400), Retryable),
            // Throttling.
            (Some("Throttling"), Some(400), Throttled),
            (Some("Throttling.User"), Some(400), Throttled),
            (Some("Rejected.Throttling"), Some(503), Throttled),
            (Some("Throttling.Api"), Some(400), Throttled),
            // Not found.
            (Some("InvalidJobId"), Some(200), NotFound),
            (Some("InvalidDBInstanceId.NotFound"), Some(400), NotFound),
            (Some("InvalidDBInstanceName.NotFound"), Some(400), NotFound),
            (Some("Endpoint.NotFound"), Some(404), NotFound),
            (
                Some("InvalidCurrentConnectionString.NotFound"),
                Some(400),
                NotFound,
            ),
            (
                Some("InvalidConnectionString.NotFound"),
                Some(400),
                NotFound,
            ),
            // The 404 that is not "not found".
            (
                Some("InvalidConnectionString.Duplicate"),
                Some(404),
                Terminal,
            ),
            (Some("Request.NotFound"), Some(404), Terminal),
            // Credentials.
            (
                Some("InvalidAccessKeyId.NotFound"),
                Some(404),
                InvalidCredentials,
            ),
            (Some("InvalidAccessKeyId"), Some(400), InvalidCredentials),
            (Some("SignatureDoesNotMatch"), Some(403), InvalidCredentials),
            (Some("IncompleteSignature"), Some(400), InvalidCredentials),
            (
                Some("InvalidSecurityToken.Expired"),
                Some(400),
                InvalidCredentials,
            ),
            (
                Some("InvalidSecurityToken.Malformed"),
                Some(400),
                InvalidCredentials,
            ),
            (
                Some("Forbidden.AccessKeyDisabled"),
                Some(403),
                InvalidCredentials,
            ),
            (
                Some("AuthenticationFail.OIDCToken.Expired"),
                Some(400),
                InvalidCredentials,
            ),
            // Terminal.
            (Some("InvalidParameter"), Some(400), Terminal),
            (Some("InvalidParameterValid"), Some(200), Terminal),
            (Some("Forbidden.RAM"), Some(403), Terminal),
            (Some("Request.Forbidden"), Some(403), Terminal),
            (Some("OtherEndpoint.Exist"), Some(400), Terminal),
            (Some("MissingParameter"), Some(400), Terminal),
        ];
        for (code, status, want) in cases {
            assert_eq!(
                classify(*code, *status),
                *want,
                "code {code:?} status {status:?}"
            );
        }
    }

    #[test]
    fn duplicate_prefix_keeps_its_code_for_adoption_checks() {
        let e = CloudError::from_response(
            "AllocateInstancePublicConnection",
            Some("InvalidConnectionString.Duplicate".into()),
            "exists",
            Some("req-1".into()),
            Some(404),
        );
        assert!(!e.is_not_found());
        assert!(e.has_code("InvalidConnectionString.Duplicate"));
        assert_eq!(e.kind, Terminal);
        assert_eq!(
            e.to_string(),
            "AllocateInstancePublicConnection failed: InvalidConnectionString.Duplicate: exists (request id req-1)"
        );
    }
}
