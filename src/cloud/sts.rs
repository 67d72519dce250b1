//! STS 2015-04-01: `AssumeRoleWithOIDC` trades the pod's projected service-account token (RRSA)
//! for temporary credentials (the call is anonymous: the OIDC token is the credential), and
//! `GetCallerIdentity` names the account a key belongs to (the client keys its rate limiter by
//! account, since Alibaba counts API quotas per account).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::wire::lenient_string;
use super::{CloudError, Credentials, ErrorKind};

/// Action name of the exchange.
pub const ASSUME_ROLE_WITH_OIDC: &str = "AssumeRoleWithOIDC";
/// Action name of the identity lookup.
pub const GET_CALLER_IDENTITY: &str = "GetCallerIdentity";

/// The STS call RRSA needs; [`super::AlibabaCloud`] implements it over HTTP.
#[async_trait]
pub trait StsApi: Send + Sync {
    /// `AssumeRoleWithOIDC`: temporary credentials for `req.role_arn`.
    async fn assume_role_with_oidc(
        &self,
        req: &AssumeRoleWithOidc,
    ) -> Result<StsCredentials, CloudError>;
}

/// Parameters of `AssumeRoleWithOIDC`. `Debug` never prints the token.
#[derive(Clone, PartialEq, Eq)]
pub struct AssumeRoleWithOidc {
    /// `acs:ram::<uid>:role/<name>`.
    pub role_arn: String,
    /// `acs:ram::<uid>:oidc-provider/<name>`.
    pub oidc_provider_arn: String,
    /// The raw JWT read from the token file.
    pub oidc_token: String,
    /// 2..64 characters: letters, digits, `. @ - _`.
    pub role_session_name: String,
    /// Requested lifetime (STS default 3600, minimum 900).
    pub duration_seconds: Option<u32>,
}

impl std::fmt::Debug for AssumeRoleWithOidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssumeRoleWithOidc")
            .field("role_arn", &self.role_arn)
            .field("oidc_provider_arn", &self.oidc_provider_arn)
            .field("oidc_token", &"***")
            .field("role_session_name", &self.role_session_name)
            .field("duration_seconds", &self.duration_seconds)
            .finish()
    }
}

impl AssumeRoleWithOidc {
    /// The RPC parameters of the call.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut p = vec![
            ("RoleArn", self.role_arn.clone()),
            ("OIDCProviderArn", self.oidc_provider_arn.clone()),
            ("OIDCToken", self.oidc_token.clone()),
            ("RoleSessionName", self.role_session_name.clone()),
        ];
        if let Some(d) = self.duration_seconds {
            p.push(("DurationSeconds", d.to_string()));
        }
        p
    }
}

/// Who signed a `GetCallerIdentity` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    /// `AccountId`: the Alibaba Cloud account (uid) owning the key, the RAM user or the role.
    pub account_id: String,
    /// `IdentityType`: `Account`, `RAMUser` or `AssumedRoleUser`.
    pub identity_type: String,
    /// `Arn`, e.g. `acs:ram::<uid>:user/<name>`.
    pub arn: String,
}

/// Reads `AccountId` (required), `IdentityType` and `Arn` from a successful `GetCallerIdentity`
/// body.
pub fn parse_caller_identity(body: &Value) -> Result<CallerIdentity, CloudError> {
    let text = |name: &str| body.get(name).and_then(lenient_string);
    let account_id = text("AccountId").ok_or_else(|| {
        CloudError::local(
            GET_CALLER_IDENTITY,
            ErrorKind::Retryable,
            "STS response without AccountId",
        )
    })?;
    Ok(CallerIdentity {
        account_id,
        identity_type: text("IdentityType").unwrap_or_default(),
        arn: text("Arn").unwrap_or_default(),
    })
}

/// Temporary credentials and when they stop working.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StsCredentials {
    /// Access key id, secret and security token.
    pub credentials: Credentials,
    /// `Expiration` (UTC).
    pub expiration: DateTime<Utc>,
}

/// Reads `Credentials{AccessKeyId, AccessKeySecret, SecurityToken, Expiration}` from a
/// successful `AssumeRoleWithOIDC` body.
pub fn parse_response(body: &Value) -> Result<StsCredentials, CloudError> {
    let bad = |what: &str| {
        CloudError::local(
            ASSUME_ROLE_WITH_OIDC,
            ErrorKind::Retryable,
            format!("STS response without {what}"),
        )
    };
    let c = body.get("Credentials").ok_or_else(|| bad("Credentials"))?;
    let field = |name: &str| {
        c.get(name)
            .and_then(lenient_string)
            .ok_or_else(|| bad(name))
    };
    let expiration = field("Expiration")?;
    let expiration = DateTime::parse_from_rfc3339(&expiration)
        .map_err(|_| bad("a valid Expiration"))?
        .with_timezone(&Utc);
    Ok(StsCredentials {
        credentials: Credentials {
            access_key_id: field("AccessKeyId")?,
            access_key_secret: field("AccessKeySecret")?,
            security_token: Some(field("SecurityToken")?),
        },
        expiration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_response() {
        let body = serde_json::json!({
            "RequestId": "r",
            "Credentials": {
                "AccessKeyId": "STS.NUgYrLnoC37mZZCNnAbez****",
                "AccessKeySecret": "CVwjCkNzTMupZ8NbTCxCBRq3K16jtcWFTJAyBEv2****",
                "SecurityToken": "CAIS****",
                "Expiration": "2021-10-20T04:27:09Z"
            },
            "AssumedRoleUser": {"Arn": "acs:ram::1:role/x", "AssumedRoleId": "1"}
        });
        let c = parse_response(&body).unwrap();
        assert_eq!(c.credentials.access_key_id, "STS.NUgYrLnoC37mZZCNnAbez****");
        assert_eq!(c.credentials.security_token.as_deref(), Some("CAIS****"));
        assert_eq!(c.expiration.to_rfc3339(), "2021-10-20T04:27:09+00:00");
    }

    #[test]
    fn parses_the_caller_identity() {
        let body = serde_json::json!({
            "IdentityType": "RAMUser",
            "RequestId": "r",
            "AccountId": "1234567890123456",
            "PrincipalId": "2034****",
            "UserId": "2034****",
            "Arn": "acs:ram::1234567890123456:user/operator"
        });
        let id = parse_caller_identity(&body).unwrap();
        assert_eq!(id.account_id, "1234567890123456");
        assert_eq!(id.identity_type, "RAMUser");
        assert_eq!(id.arn, "acs:ram::1234567890123456:user/operator");
        // Some gateways send numbers as JSON numbers.
        let id = parse_caller_identity(&serde_json::json!({"AccountId": 42})).unwrap();
        assert_eq!(id.account_id, "42");
        assert!(parse_caller_identity(&serde_json::json!({"AccountId": ""})).is_err());
        assert!(parse_caller_identity(&serde_json::json!({})).is_err());
    }

    #[test]
    fn missing_fields_are_errors() {
        let body = serde_json::json!({"Credentials": {"AccessKeyId": "a"}});
        assert!(parse_response(&body).is_err());
        assert!(parse_response(&serde_json::json!({})).is_err());
    }

    #[test]
    fn debug_hides_the_oidc_token() {
        let req = AssumeRoleWithOidc {
            role_arn: "acs:ram::1:role/r".into(),
            oidc_provider_arn: "acs:ram::1:oidc-provider/p".into(),
            oidc_token: "eyJhbGciOi.secret-payload.sig".into(),
            role_session_name: "s".into(),
            duration_seconds: Some(900),
        };
        assert!(!format!("{req:?}").contains("secret-payload"));
        assert!(
            req.params()
                .iter()
                .any(|(k, v)| *k == "DurationSeconds" && v == "900")
        );
    }
}
