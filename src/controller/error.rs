//! The controllers' error type.

use crate::cloud::CloudError;

/// Why a reconcile did not finish; `reason()` is a stable CamelCase word used as condition
/// reason, Event reason and metric label.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to Alibaba Cloud failed.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// The controller's cache holds an object it cannot read back (a bug).
    #[error(transparent)]
    Cache(#[from] super::cache::CacheError),
    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A Secret the spec names is missing or lacks a key.
    #[error("{0}")]
    Secret(String),
    /// The spec asks for something that cannot be done; fixing the spec is the only way on.
    #[error("{0}")]
    InvalidSpec(String),
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// A deletion cannot confirm that nothing is left in the cloud, and will not guess.
    #[error("{0}")]
    ReleaseUnconfirmed(String),
}

/// A failed cloud call as conditions and Events show it: action, code and the service's
/// message, without what changes from one attempt to the next (the request id; the string to
/// sign that Alibaba echoes in signature errors, which carries the request's date and nonce), so
/// a repeated failure writes the same status and does not retrigger itself.
pub fn cloud_message(e: &CloudError) -> String {
    let lower = e.message.to_ascii_lowercase();
    let cut = ["server string to sign", "stringtosign", "canonical request"]
        .iter()
        .filter_map(|marker| lower.find(marker))
        .min()
        .unwrap_or(e.message.len());
    format!(
        "{} failed: {}: {}",
        e.action,
        e.code.as_deref().unwrap_or("-"),
        e.message[..cut].trim_end()
    )
}

impl Error {
    /// The message conditions and Events show for this error; the same for the same failure.
    pub fn user_message(&self) -> String {
        match self {
            Self::Cloud(e) => cloud_message(e),
            other => other.to_string(),
        }
    }

    /// Stable CamelCase reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Cloud(e) => e.kind.reason(),
            Self::Kube(_) => "KubernetesApiError",
            Self::Secret(_) => "SecretNotUsable",
            Self::InvalidSpec(_) => "InvalidSpec",
            Self::Finalizer(_) => "FinalizerError",
            Self::Cache(_) => "CacheUnreadable",
            Self::ReleaseUnconfirmed(_) => "ReleaseUnconfirmed",
        }
    }

    /// Whether the credentials cannot be used: their Secret is missing or incomplete, or the
    /// cloud rejects the key.
    pub fn credentials_unusable(&self) -> bool {
        match self {
            Self::Secret(_) => true,
            Self::Cloud(e) => e.kind == crate::cloud::ErrorKind::InvalidCredentials,
            _ => false,
        }
    }

    /// Whether only a change of the spec (or of a referenced Secret) can fix this.
    pub fn is_stalled(&self) -> bool {
        match self {
            Self::Cloud(e) => matches!(
                e.kind,
                crate::cloud::ErrorKind::Terminal | crate::cloud::ErrorKind::InvalidCredentials
            ),
            Self::Secret(_) | Self::InvalidSpec(_) | Self::ReleaseUnconfirmed(_) => true,
            Self::Kube(_) | Self::Finalizer(_) | Self::Cache(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::ErrorKind;

    fn signature_error(nonce: &str, request_id: &str) -> Error {
        Error::Cloud(CloudError {
            kind: ErrorKind::InvalidCredentials,
            action: "DescribeBackupPlanList",
            code: Some("SignatureDoesNotMatch".into()),
            message: format!(
                "Specified signature does not match our calculation. server string to sign \
                 is:ACS3-HMAC-SHA256\nx-acs-signature-nonce:{nonce}"
            ),
            request_id: Some(request_id.into()),
            http_status: Some(400),
            retry_after: None,
        })
    }

    #[test]
    fn repeated_signature_errors_give_the_same_message() {
        let first = signature_error("aaa", "req-1").user_message();
        let second = signature_error("bbb", "req-2").user_message();
        assert_eq!(first, second);
        assert_eq!(
            first,
            "DescribeBackupPlanList failed: SignatureDoesNotMatch: Specified signature does not \
             match our calculation."
        );
    }
}
