//! STS (2015-04-01): anonymous AssumeRoleWithOIDC issuing temporary keys, and GetCallerIdentity
//! naming the account of the signing key.

use base64::Engine as _;
use rand::Rng as _;
use serde_json::{Map, Value, json};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::{State, StsCredential};
use crate::wire::{Params, random_alphanumeric};

/// Actions implemented for STS.
pub const ACTIONS: &[&str] = &["AssumeRoleWithOIDC", "GetCallerIdentity"];

/// Actions that are called without a signature.
pub const ANONYMOUS: &[&str] = &["AssumeRoleWithOIDC"];

/// Splits `acs:ram::<uid>:<kind>/<name>` into (uid, name).
fn parse_arn<'a>(arn: &'a str, kind: &str) -> Option<(&'a str, &'a str)> {
    let rest = arn.strip_prefix("acs:ram::")?;
    let (uid, tail) = rest.split_once(':')?;
    let name = tail.strip_prefix(kind)?.strip_prefix('/')?;
    let uid_ok = !uid.is_empty() && uid.bytes().all(|b| b.is_ascii_digit());
    (uid_ok && !name.is_empty()).then_some((uid, name))
}

/// The decoded JWT payload (the signature is not verified).
fn jwt_payload(token: &str) -> Option<Map<String, Value>> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let bytes = engine.decode(parts[1].trim_end_matches('=')).ok()?;
    engine.decode(parts[0].trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// 400 with an `InvalidParameter.*` code.
fn bad(code: &str, message: &str) -> ApiError {
    ApiError::bad_request(code, message)
}

/// Formats epoch seconds as `YYYY-MM-DDTHH:MM:SSZ`.
fn iso(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// Runs an STS action; `access_key_id` signed it (empty for anonymous calls).
pub fn handle(
    state: &mut State,
    who: &Principal,
    access_key_id: &str,
    action: &str,
    p: &Params,
    now_ms: i64,
) -> Result<Map<String, Value>, ApiError> {
    match action {
        "GetCallerIdentity" => Ok(caller_identity(state, who, access_key_id)),
        _ => assume_role_with_oidc(state, p, now_ms),
    }
}

/// GetCallerIdentity: `IdentityType` is `AssumedRoleUser` for STS keys, `RAMUser` for a static key
/// configured with an account, `Account` for a key that is its own account (its root key).
fn caller_identity(state: &State, who: &Principal, access_key_id: &str) -> Map<String, Value> {
    let uid = who.account_id.as_str();
    let (identity_type, arn, principal_id) =
        if let Some(c) = state.sts_credentials.get(access_key_id) {
            let session = c.arn.rsplit('/').next().unwrap_or_default();
            ("AssumedRoleUser", c.arn.clone(), format!("{uid}:{session}"))
        } else if state.key_accounts.contains_key(access_key_id) {
            (
                "RAMUser",
                format!("acs:ram::{uid}:user/{access_key_id}"),
                access_key_id.to_string(),
            )
        } else {
            ("Account", format!("acs:ram::{uid}:root"), uid.to_string())
        };
    let body = json!({
        "IdentityType": identity_type,
        "AccountId": uid,
        "PrincipalId": principal_id,
        "UserId": principal_id,
        "Arn": arn,
        "RoleId": "",
    });
    match body {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// AssumeRoleWithOIDC.
pub fn assume_role_with_oidc(
    state: &mut State,
    p: &Params,
    now_ms: i64,
) -> Result<Map<String, Value>, ApiError> {
    let role_arn = p
        .get("RoleArn")
        .ok_or_else(|| ApiError::missing("RoleArn"))?;
    let provider_arn = p
        .get("OIDCProviderArn")
        .ok_or_else(|| ApiError::missing("OIDCProviderArn"))?;
    let token = p
        .get("OIDCToken")
        .ok_or_else(|| ApiError::missing("OIDCToken"))?;
    let (uid, role_name) = parse_arn(role_arn, "role").ok_or_else(|| {
        bad(
            "InvalidParameter.RoleArn",
            "The parameter RoleArn is wrongly formed.",
        )
    })?;
    let (provider_uid, _) = parse_arn(provider_arn, "oidc-provider").ok_or_else(|| {
        bad(
            "InvalidParameter.OIDCProviderArn",
            "The parameter OIDCProviderArn is wrongly formed.",
        )
    })?;
    if provider_uid != uid {
        return Err(bad(
            "InvalidParameter.OIDCProviderArn",
            "The OIDC provider must belong to the account of the role.",
        ));
    }
    if !(4..=20_000).contains(&token.len()) {
        return Err(bad(
            "InvalidParameter.OIDCToken",
            "The parameter OIDCToken is wrongly formed.",
        ));
    }
    let claims = jwt_payload(token).ok_or_else(|| {
        bad(
            "InvalidParameter.OIDCToken",
            "The parameter OIDCToken is not a valid JWT.",
        )
    })?;
    let now_s = now_ms.div_euclid(1000);
    if let Some(exp) = claims.get("exp").and_then(Value::as_i64)
        && exp <= now_s
    {
        return Err(bad(
            "AuthenticationFail.OIDCToken.Expired",
            "The OIDCToken is expired.",
        ));
    }
    let session = p
        .get("RoleSessionName")
        .unwrap_or("alicloud-emulator-session");
    let session_ok = (2..=64).contains(&session.len())
        && session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'));
    if !session_ok {
        return Err(bad(
            "InvalidParameter.RoleSessionName",
            "The parameter RoleSessionName is wrongly formed.",
        ));
    }
    let duration = match p.get("DurationSeconds") {
        None => 3600,
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|d| (900..=43_200).contains(d))
            .ok_or_else(|| {
                bad(
                    "InvalidParameter.DurationSeconds",
                    "DurationSeconds must be 900..43200.",
                )
            })?,
    };
    let lifetime = state
        .settings
        .sts_max_duration_s
        .map_or(duration, |max| duration.min(max));
    let expires_s = now_s + lifetime;
    let access_key_id = format!("STS.{}", random_alphanumeric(24));
    let secret = random_alphanumeric(40);
    let security_token = format!("CAIS{}", random_alphanumeric(120));
    state
        .sts_credentials
        .retain(|_, c| c.expires_at_ms + 3_600_000 > now_ms);
    state.sts_credentials.insert(
        access_key_id.clone(),
        StsCredential {
            secret: secret.clone(),
            security_token: security_token.clone(),
            account_id: uid.to_string(),
            arn: format!("acs:ram::{uid}:assumed-role/{role_name}/{session}"),
            expires_at_ms: expires_s * 1000,
        },
    );
    let client_ids = match claims.get("aud") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    };
    let claim = |k: &str| {
        claims
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let role_id = rand::rng().random_range(100_000_000_000_000_000u64..999_999_999_999_999_999);
    let body = json!({
        "Credentials": {
            "AccessKeyId": access_key_id,
            "AccessKeySecret": secret,
            "SecurityToken": security_token,
            "Expiration": iso(expires_s),
        },
        "AssumedRoleUser": {
            "Arn": format!("acs:ram::{uid}:assumed-role/{role_name}/{session}"),
            "AssumedRoleId": format!("{role_id}:{session}"),
        },
        "OIDCTokenInfo": {
            "Subject": claim("sub"),
            "Issuer": claim("iss"),
            "ClientIds": client_ids,
            "ExpirationTime": claims.get("exp").and_then(Value::as_i64).map(iso).unwrap_or_default(),
            "IssuanceTime": claims.get("iat").and_then(Value::as_i64).map(iso).unwrap_or_default(),
        },
        "SourceIdentity": "",
    });
    match body {
        Value::Object(m) => Ok(m),
        _ => Ok(Map::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_parsing_requires_numeric_uid_and_kind() {
        assert_eq!(parse_arn("acs:ram::123:role/r", "role"), Some(("123", "r")));
        assert_eq!(parse_arn("acs:ram::abc:role/r", "role"), None);
        assert_eq!(parse_arn("acs:ram::123:oidc-provider/p", "role"), None);
    }

    #[test]
    fn jwt_payload_is_decoded_and_garbage_rejected() {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let t = format!(
            "{}.{}.sig",
            engine.encode("{}"),
            engine.encode(r#"{"sub":"x"}"#)
        );
        assert_eq!(
            jwt_payload(&t).and_then(|m| m.get("sub").cloned()),
            Some(json!("x"))
        );
        assert!(jwt_payload("a.b").is_none());
        assert!(jwt_payload("!!.!!.!!").is_none());
    }
}
