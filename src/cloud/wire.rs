//! Wire formats shared by the products: lenient JSON scalars, the DBS envelope, the generic
//! error body, and the one function that gives the verdict on whether a response is a success.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::endpoints::Product;
use super::error::{CloudError, ErrorKind, classify};

/// A bool that may arrive as `true` or `"true"` (any case); anything else is `None`.
pub fn lenient_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        _ => None,
    }
}

/// An integer that may arrive as `42` or `"42"`; empty strings and anything else are `None`.
pub fn lenient_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A string that may arrive as a string or a number; `null` and empty strings are `None`.
pub fn lenient_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Serde adapter: `Option<bool>` from bool-or-string, missing → `None`.
pub fn de_opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(lenient_bool))
}

/// Serde adapter: `Option<i64>` from int-or-string, missing → `None`.
pub fn de_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(lenient_i64))
}

/// Serde adapter: `Option<String>` from string-or-number, missing/empty → `None`.
pub fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(lenient_string))
}

/// The envelope every DBS response carries.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DbsEnvelope {
    /// Whether the call succeeded (`true`, `"true"`, ...).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub success: Option<bool>,
    /// Error code; present on failures and, per the docs, sometimes on successes.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub err_code: Option<String>,
    /// Error text.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub err_message: Option<String>,
    /// HTTP status echoed in the body (number or string).
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub http_status_code: Option<i64>,
    /// Request id.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub request_id: Option<String>,
}

/// The generic error body of a non-2xx response (`Code`, `Message`, `RequestId`); DBS may use
/// `ErrCode`/`ErrMessage` instead, which are accepted as fallbacks.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorBody {
    /// Error code.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub code: Option<String>,
    /// Error text.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub message: Option<String>,
    /// Request id.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub request_id: Option<String>,
    /// DBS-style code.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub err_code: Option<String>,
    /// DBS-style text.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub err_message: Option<String>,
}

/// A string field of a response object, whatever JSON type the service sent it as.
pub fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(lenient_string)
}

/// `Wrapper.Inner[]` that may also arrive as a bare array or a single object.
pub fn wrapped_list<'a>(v: &'a Value, wrapper: &str, inner: &str) -> Vec<&'a Value> {
    let Some(w) = v.get(wrapper) else {
        return Vec::new();
    };
    let list = if w.is_array() {
        w
    } else {
        w.get(inner).unwrap_or(w)
    };
    match list {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![list],
        _ => Vec::new(),
    }
}

/// Decides success or failure of one response, in one place:
/// HTTP non-2xx → error from the body; DBS `Success == false` → error with `ErrCode`;
/// DBS `Success == true` → success (a present `ErrCode` is only logged at debug); other
/// products' 2xx → success. Returns the parsed body on success.
pub fn verdict(
    product: Product,
    action: &'static str,
    http_status: u16,
    body: &[u8],
) -> Result<Value, CloudError> {
    if !(200..300).contains(&http_status) {
        let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
        let code = parsed.code.or(parsed.err_code);
        let message = parsed
            .message
            .or(parsed.err_message)
            .unwrap_or_else(|| format!("HTTP {http_status} without an error body"));
        return Err(CloudError::from_response(
            action,
            code,
            message,
            parsed.request_id,
            Some(http_status),
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        let mut err = CloudError::local(
            action,
            ErrorKind::Retryable,
            format!("HTTP {http_status} with a body that is not JSON: {e}"),
        );
        err.http_status = Some(http_status);
        err
    })?;
    if product != Product::Dbs {
        return Ok(value);
    }
    let envelope: DbsEnvelope = serde_json::from_value(value.clone()).unwrap_or_default();
    let failed = match envelope.success {
        Some(success) => !success,
        // No verdict in the body: only an error code makes it a failure.
        None => envelope.err_code.is_some(),
    };
    if failed {
        let echoed = envelope
            .http_status_code
            .and_then(|s| u16::try_from(s).ok())
            .filter(|s| *s >= 100);
        let code = envelope.err_code;
        let mut err = CloudError::from_response(
            action,
            code.clone(),
            envelope
                .err_message
                .unwrap_or_else(|| "Success is false".to_owned()),
            envelope.request_id,
            Some(http_status),
        );
        // A body-echoed 5xx without a known code still means "try again".
        err.kind = classify(code.as_deref(), echoed.or(Some(http_status)));
        return Err(err);
    }
    if let Some(code) = &envelope.err_code {
        tracing::debug!(
            action,
            err_code = %code,
            request_id = envelope.request_id.as_deref().unwrap_or("-"),
            "DBS reported success together with an error code; treated as success"
        );
    }
    Ok(value)
}

/// The request id of a successful body, for logs.
pub fn request_id(value: &Value) -> Option<String> {
    value.get("RequestId").and_then(lenient_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_lists_accept_every_shape() {
        let v = serde_json::json!({"Items": {"BackupPlanDetail": [{"a": 1}, {"a": 2}]}});
        assert_eq!(wrapped_list(&v, "Items", "BackupPlanDetail").len(), 2);
        let v = serde_json::json!({"Items": [{"a": 1}]});
        assert_eq!(wrapped_list(&v, "Items", "BackupPlanDetail").len(), 1);
        let v = serde_json::json!({"Items": {"BackupPlanDetail": {"a": 1}}});
        assert_eq!(wrapped_list(&v, "Items", "BackupPlanDetail").len(), 1);
        let v = serde_json::json!({"Items": {"BackupPlanDetail": []}});
        assert!(wrapped_list(&v, "Items", "BackupPlanDetail").is_empty());
        assert!(wrapped_list(&serde_json::json!({}), "Items", "X").is_empty());
    }

    #[test]
    fn lenient_scalars_accept_strings_and_numbers() {
        let v: Value = serde_json::json!({"a": "true", "b": "FALSE", "c": true, "d": "x", "e": 1});
        assert_eq!(lenient_bool(&v["a"]), Some(true));
        assert_eq!(lenient_bool(&v["b"]), Some(false));
        assert_eq!(lenient_bool(&v["c"]), Some(true));
        assert_eq!(lenient_bool(&v["d"]), None);
        assert_eq!(lenient_bool(&v["e"]), Some(true));
        assert_eq!(lenient_bool(&v["missing"]), None);
        let n: Value = serde_json::json!({"a": "3306", "b": 3306, "c": "", "d": " 7 "});
        assert_eq!(lenient_i64(&n["a"]), Some(3306));
        assert_eq!(lenient_i64(&n["b"]), Some(3306));
        assert_eq!(lenient_i64(&n["c"]), None);
        assert_eq!(lenient_i64(&n["d"]), Some(7));
        assert_eq!(lenient_string(&n["b"]).as_deref(), Some("3306"));
        assert_eq!(lenient_string(&n["c"]), None);
    }

    #[test]
    fn envelope_accepts_strings_for_bool_and_status() {
        let e: DbsEnvelope = serde_json::from_str(
            r#"{"Success":"false","HttpStatusCode":"200","ErrCode":"Param.NotFound","RequestId":"r"}"#,
        )
        .unwrap();
        assert_eq!(e.success, Some(false));
        assert_eq!(e.http_status_code, Some(200));
        let e: DbsEnvelope = serde_json::from_str("{}").unwrap();
        assert_eq!(e.success, None);
    }

    #[test]
    fn dbs_success_false_on_http_200_is_an_error_with_err_code() {
        let body = br#"{"Success":false,"ErrCode":"InvalidJobId","ErrMessage":"gone","HttpStatusCode":200,"RequestId":"r1"}"#;
        let err = verdict(Product::Dbs, "ReleaseBackupPlan", 200, body).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(err.code.as_deref(), Some("InvalidJobId"));
        assert_eq!(err.request_id.as_deref(), Some("r1"));
        assert_eq!(err.message, "gone");
    }

    #[test]
    fn dbs_success_true_with_err_code_is_a_success() {
        let body = br#"{"Success":true,"ErrCode":"Param.NotFound","ErrMessage":"x","BackupPlanId":"dbs1"}"#;
        let v = verdict(Product::Dbs, "StartBackupPlan", 200, body).unwrap();
        assert_eq!(v["BackupPlanId"], "dbs1");
    }

    #[test]
    fn dbs_string_false_is_a_failure() {
        let body = br#"{"Success":"false","ErrCode":"Param.NotFound","HttpStatusCode":"200"}"#;
        let err = verdict(Product::Dbs, "ReleaseBackupPlan", 200, body).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Terminal);
    }

    #[test]
    fn dbs_transient_code_is_retryable() {
        let body = br#"{"Success":false,"ErrCode":"ServiceUnavailable","HttpStatusCode":503}"#;
        let err = verdict(Product::Dbs, "ConfigureBackupPlan", 200, body).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Retryable);
    }

    #[test]
    fn non_2xx_uses_the_generic_error_body() {
        let body = br#"{"RequestId":"r","HostId":"h","Code":"InvalidConnectionString.Duplicate","Message":"dup"}"#;
        let err = verdict(Product::Rds, "AllocateInstancePublicConnection", 404, body).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Terminal);
        assert_eq!(err.http_status, Some(404));
        assert!(err.has_code("InvalidConnectionString.Duplicate"));
    }

    #[test]
    fn non_2xx_without_json_is_classified_by_status() {
        let err = verdict(Product::Rds, "DescribeDBInstanceNetInfo", 502, b"<html>").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Retryable);
        assert_eq!(err.code, None);
        let err = verdict(Product::Rds, "DescribeDBInstanceNetInfo", 404, b"").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Terminal);
    }

    #[test]
    fn rds_2xx_is_success_without_envelope() {
        let v = verdict(
            Product::Rds,
            "ReleaseInstanceConnection",
            200,
            br#"{"RequestId":"x"}"#,
        )
        .unwrap();
        assert_eq!(request_id(&v).as_deref(), Some("x"));
    }
}
