//! Request authentication: V3 (ACS3-HMAC-SHA256) and V2 (HMAC-SHA1)
//! signatures, timestamps, nonces and STS security tokens.

use axum::http::{HeaderMap, StatusCode};

use crate::error::ApiError;
use crate::signature as sig;
use crate::state::State;

/// Allowed clock skew for V3 `x-acs-date` (documented: 15 minutes).
const V3_SKEW_MS: i64 = 15 * 60 * 1000;
/// Allowed clock skew for V2 `Timestamp` (documented: valid 31 minutes).
const V2_SKEW_MS: i64 = 31 * 60 * 1000;

/// V3 headers that must be covered by `SignedHeaders`.
const V3_REQUIRED_SIGNED: [&str; 6] = [
    "host",
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
];

/// Who made an authenticated request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Owning account: the configured account of a RAM user's static key, else the AccessKeyId
    /// for static keys; the role's uid for STS.
    pub account_id: String,
}

/// The parts of a request that authentication looks at.
pub struct AuthInput<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Query string pairs (V3 canonical query).
    pub query: &'a [(String, String)],
    /// Query and form pairs (V2 string to sign).
    pub all_pairs: &'a [(String, String)],
    /// Raw body bytes.
    pub body: &'a [u8],
    /// URI authority, used as `host` when no Host header was sent (HTTP/2).
    pub authority: Option<&'a str>,
}

impl AuthInput<'_> {
    /// Header value (multiple values joined by `,`), trimmed.
    fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .collect();
        if values.is_empty() {
            return (name == "host")
                .then(|| self.authority.map(str::to_string))
                .flatten();
        }
        Some(values.join(","))
    }

    /// Last value of a query/form parameter.
    fn param(&self, name: &str) -> Option<&str> {
        self.all_pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Verifies the request signature and returns the caller.
pub fn authenticate(
    state: &mut State,
    input: &AuthInput<'_>,
    now_ms: i64,
) -> Result<Principal, ApiError> {
    if let Some(auth) = input.header("authorization") {
        return authenticate_v3(state, input, &auth, now_ms);
    }
    if input.param("Signature").is_some() || input.param("AccessKeyId").is_some() {
        return authenticate_v2(state, input, now_ms);
    }
    if input.header("x-acs-action").is_some() {
        Err(ApiError::missing("Authorization"))
    } else {
        Err(ApiError::missing("AccessKeyId"))
    }
}

/// Parses `yyyy-MM-ddTHH:mm:ssZ` and checks it against `now_ms`.
fn check_timestamp(value: &str, skew_ms: i64, now_ms: i64) -> Result<(), ApiError> {
    let ts = chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%SZ").map_err(|_| {
        ApiError::bad_request(
            "IllegalTimestamp",
            format!("The input parameter \"Timestamp\" that is mandatory for processing this request is not supplied or is not in the format yyyy-MM-ddTHH:mm:ssZ: {value}"),
        )
    })?;
    let ts_ms = ts.and_utc().timestamp_millis();
    if (now_ms - ts_ms).abs() > skew_ms {
        return Err(ApiError::bad_request(
            "InvalidTimeStamp.Expired",
            format!("Specified time stamp or date value is expired: {value}"),
        ));
    }
    Ok(())
}

/// Secret and account of an AccessKeyId, after STS token checks.
fn lookup_key(
    state: &State,
    access_key_id: &str,
    token: Option<&str>,
    now_ms: i64,
) -> Result<(String, String), ApiError> {
    if let Some(secret) = state.accounts.get(access_key_id) {
        let account = state
            .key_accounts
            .get(access_key_id)
            .map_or(access_key_id, String::as_str);
        return Ok((secret.clone(), account.to_string()));
    }
    let Some(cred) = state.sts_credentials.get(access_key_id) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        ));
    };
    if now_ms >= cred.expires_at_ms {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "InvalidSecurityToken.Expired",
            "Specified SecurityToken is expired.",
        ));
    }
    match token {
        None => Err(ApiError::bad_request(
            "InvalidSecurityToken.Malformed",
            "Specified SecurityToken is malformed: an STS AccessKeyId requires a security token.",
        )),
        Some(t) if t != cred.security_token => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "InvalidSecurityToken.Mismatch",
            "Specified SecurityToken mismatch with the AccessKey.",
        )),
        Some(_) => Ok((cred.secret.clone(), cred.account_id.clone())),
    }
}

/// 400 `SignatureDoesNotMatch` showing the server's string to sign.
fn mismatch(server_string: &str) -> ApiError {
    ApiError::bad_request(
        "SignatureDoesNotMatch",
        format!(
            "Specified signature does not match our calculation. server string to sign is:{server_string}"
        ),
    )
}

/// Records the nonce; 400 `SignatureNonceUsed` on reuse.
fn use_nonce(state: &mut State, nonce: &str, now_ms: i64) -> Result<(), ApiError> {
    if state.nonces.insert(nonce, now_ms) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        ))
    }
}

/// V3 verification per the ACS3-HMAC-SHA256 documentation.
fn authenticate_v3(
    state: &mut State,
    input: &AuthInput<'_>,
    header: &str,
    now_ms: i64,
) -> Result<Principal, ApiError> {
    let auth = sig::parse_v3_authorization(header).ok_or_else(|| {
        ApiError::bad_request(
            "IncompleteSignature",
            "The request signature does not conform to Aliyun standards: expected `ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..`.",
        )
    })?;
    let mut required: Vec<&str> = V3_REQUIRED_SIGNED.to_vec();
    if input.header("x-acs-security-token").is_some() {
        required.push("x-acs-security-token");
    }
    for name in required {
        if !auth.signed_headers.iter().any(|h| h == name) {
            return Err(ApiError::bad_request(
                "IncompleteSignature",
                format!(
                    "The request signature does not conform to Aliyun standards: header {name} must be signed."
                ),
            ));
        }
    }
    let mut signed = Vec::new();
    for name in &auth.signed_headers {
        let value = input.header(name).ok_or_else(|| {
            ApiError::bad_request(
                "IncompleteSignature",
                format!("The request signature does not conform to Aliyun standards: signed header {name} is missing."),
            )
        })?;
        signed.push((name.clone(), value));
    }
    let date = input.header("x-acs-date").unwrap_or_default();
    check_timestamp(&date, V3_SKEW_MS, now_ms)?;
    let token = input.header("x-acs-security-token");
    let (secret, account_id) = lookup_key(state, &auth.access_key_id, token.as_deref(), now_ms)?;
    let payload_hash = input.header("x-acs-content-sha256").unwrap_or_default();
    if payload_hash != sig::sha256_hex(input.body) {
        return Err(ApiError::bad_request(
            "SignatureDoesNotMatch",
            "Specified signature does not match our calculation: x-acs-content-sha256 is not the SHA-256 of the body.",
        ));
    }
    let canonical = sig::v3_canonical_request(
        input.method,
        &sig::canonical_query(input.query),
        &signed,
        &payload_hash,
    );
    let to_sign = sig::v3_string_to_sign(&canonical);
    if !sig::v3_verify(&secret, &to_sign, &auth.signature) {
        return Err(mismatch(&canonical));
    }
    use_nonce(
        state,
        &input.header("x-acs-signature-nonce").unwrap_or_default(),
        now_ms,
    )?;
    Ok(Principal { account_id })
}

/// V2 verification per the classic RPC signature documentation.
fn authenticate_v2(
    state: &mut State,
    input: &AuthInput<'_>,
    now_ms: i64,
) -> Result<Principal, ApiError> {
    let need = |name: &str| -> Result<String, ApiError> {
        input
            .param(name)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or_else(|| ApiError::missing(name))
    };
    let access_key_id = need("AccessKeyId")?;
    let signature = need("Signature")?;
    let method = need("SignatureMethod")?;
    let version = need("SignatureVersion")?;
    let nonce = need("SignatureNonce")?;
    let timestamp = need("Timestamp")?;
    if method != "HMAC-SHA1" || version != "1.0" {
        return Err(ApiError::bad_request(
            "IncompleteSignature",
            "The request signature does not conform to Aliyun standards: SignatureMethod must be HMAC-SHA1 and SignatureVersion 1.0.",
        ));
    }
    check_timestamp(&timestamp, V2_SKEW_MS, now_ms)?;
    let token = input.param("SecurityToken").filter(|t| !t.is_empty());
    let (secret, account_id) = lookup_key(state, &access_key_id, token, now_ms)?;
    let pairs: Vec<(String, String)> = input
        .all_pairs
        .iter()
        .filter(|(k, _)| k != "Signature")
        .cloned()
        .collect();
    let to_sign = sig::v2_string_to_sign(input.method, &pairs);
    if !sig::v2_verify(&secret, &to_sign, &signature) {
        return Err(mismatch(&to_sign));
    }
    use_nonce(state, &nonce, now_ms)?;
    Ok(Principal { account_id })
}
