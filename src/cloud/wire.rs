//! Wire formats shared by the products: lenient JSON scalars, the DBS envelope, the generic
//! error body, and the one function that gives the verdict on whether a response is a success.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::endpoints::Product;
use super::error::{CloudError, classify};

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

/// A response as it arrived: status, `Content-Type` and body bytes.
#[derive(Clone, Copy, Debug)]
pub struct Body<'a> {
    /// HTTP status.
    pub http_status: u16,
    /// The `Content-Type` header, when sent.
    pub content_type: Option<&'a str>,
    /// The body.
    pub bytes: &'a [u8],
}

/// How much of an unexpected body an error message quotes.
const QUOTED_CHARS: usize = 200;

impl Body<'_> {
    /// The body as a JSON object, if it is one.
    fn json_object(&self) -> Option<Value> {
        serde_json::from_slice::<Value>(self.bytes)
            .ok()
            .filter(Value::is_object)
    }

    /// "HTTP 200 with content type text/xml, expected JSON: <?xml ...": what arrived instead
    /// of a JSON object (the caller scrubs secrets from it).
    fn unexpected(&self) -> String {
        let text = String::from_utf8_lossy(self.bytes);
        let text = text.trim();
        let quoted = if text.is_empty() {
            "empty body".to_owned()
        } else {
            let mut q: String = text.chars().take(QUOTED_CHARS).collect();
            if text.chars().count() > QUOTED_CHARS {
                q.push_str("...");
            }
            q
        };
        format!(
            "HTTP {} with content type {}, expected JSON: {quoted}",
            self.http_status,
            self.content_type.unwrap_or("(none)")
        )
    }
}

/// Decides success or failure of one response, in one place:
/// - a body that is not a JSON object → error naming the status and content type, classified
///   by the status alone: a 5xx (a proxy's error page) is retryable; a 2xx or 4xx (XML from a
///   service that was not asked for JSON, an HTML login page, an empty answer) is terminal,
///   because repeating the same request brings the same answer, and a write may have been
///   done: the reconcile's next pass reads the cloud again instead;
/// - HTTP non-2xx → error from the generic body (`Code`/`Message`), or DBS's
///   (`ErrCode`/`ErrMessage`) when that is all it carries;
/// - DBS 2xx with `Success == false` → error with `ErrCode`, classified with the status the
///   body echoes in `HttpStatusCode`, so that the same DBS error is the same [`CloudError`]
///   kind, code and message whether DBS sent it on HTTP 200 or with its 4xx status;
/// - DBS `Success == true` → success (a present `ErrCode` is only logged at debug); other
///   products' 2xx → success. Returns the parsed body on success.
pub fn verdict(
    product: Product,
    action: &'static str,
    body: &Body<'_>,
) -> Result<Value, CloudError> {
    let http_status = body.http_status;
    let Some(value) = body.json_object() else {
        return Err(CloudError::from_response(
            action,
            None,
            body.unexpected(),
            None,
            Some(http_status),
        ));
    };
    if !(200..300).contains(&http_status) {
        let parsed: ErrorBody = serde_json::from_value(value).unwrap_or_default();
        let code = parsed.code.or(parsed.err_code);
        let message = parsed
            .message
            .or(parsed.err_message)
            .unwrap_or_else(|| format!("HTTP {http_status} without an error message"));
        return Err(CloudError::from_response(
            action,
            code,
            message,
            parsed.request_id,
            Some(http_status),
        ));
    }
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
        // The status DBS says the error has (a body-echoed 5xx without a known code still
        // means "try again").
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
    use crate::cloud::ErrorKind;

    /// The verdict on a body sent as `application/json`.
    fn answer(
        product: Product,
        action: &'static str,
        http_status: u16,
        bytes: &[u8],
    ) -> Result<Value, CloudError> {
        let body = Body {
            http_status,
            content_type: Some("application/json;charset=utf-8"),
            bytes,
        };
        verdict(product, action, &body)
    }

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
        let err = answer(Product::Dbs, "ReleaseBackupPlan", 200, body).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(err.code.as_deref(), Some("InvalidJobId"));
        assert_eq!(err.request_id.as_deref(), Some("r1"));
        assert_eq!(err.message, "gone");
    }

    #[test]
    fn dbs_success_true_with_err_code_is_a_success() {
        let body = br#"{"Success":true,"ErrCode":"Param.NotFound","ErrMessage":"x","BackupPlanId":"dbs1"}"#;
        let v = answer(Product::Dbs, "StartBackupPlan", 200, body).unwrap();
        assert_eq!(v["BackupPlanId"], "dbs1");
    }

    #[test]
    fn dbs_string_false_is_a_failure() {
        let body = br#"{"Success":"false","ErrCode":"Param.NotFound","HttpStatusCode":"200"}"#;
        let err = answer(Product::Dbs, "ReleaseBackupPlan", 200, body).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Terminal);
    }

    #[test]
    fn dbs_transient_code_is_retryable() {
        let body = br#"{"Success":false,"ErrCode":"ServiceUnavailable","HttpStatusCode":503}"#;
        let err = answer(Product::Dbs, "ConfigureBackupPlan", 200, body).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Retryable);
    }

    #[test]
    fn non_2xx_uses_the_generic_error_body() {
        let body = br#"{"RequestId":"r","HostId":"h","Code":"InvalidConnectionString.Duplicate","Message":"dup"}"#;
        let err = answer(Product::Rds, "AllocateInstancePublicConnection", 404, body).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Terminal);
        assert_eq!(err.http_status, Some(404));
        assert!(err.has_code("InvalidConnectionString.Duplicate"));
    }

    #[test]
    fn non_2xx_without_json_is_classified_by_status() {
        let err = answer(Product::Rds, "DescribeDBInstanceNetInfo", 502, b"<html>").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Retryable);
        assert_eq!(err.code, None);
        let err = answer(Product::Rds, "DescribeDBInstanceNetInfo", 404, b"").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Terminal);
    }

    #[test]
    fn rds_2xx_is_success_without_envelope() {
        let v = answer(
            Product::Rds,
            "ReleaseInstanceConnection",
            200,
            br#"{"RequestId":"x"}"#,
        )
        .unwrap();
        assert_eq!(request_id(&v).as_deref(), Some("x"));
    }

    #[test]
    fn a_dbs_error_is_the_same_error_on_http_200_and_with_its_4xx_status() {
        let on_200 = br#"{"RequestId":"r1","Success":false,"ErrCode":"InvalidJobId","ErrMessage":"findValidDBSJob error","HttpStatusCode":404}"#;
        let on_404 = br#"{"RequestId":"r1","HostId":"dbs-api.cn-hangzhou.aliyuncs.com","Code":"InvalidJobId","Message":"findValidDBSJob error","Success":false,"ErrCode":"InvalidJobId","ErrMessage":"findValidDBSJob error","HttpStatusCode":404}"#;
        let err_code_only = br#"{"RequestId":"r1","Success":false,"ErrCode":"InvalidJobId","ErrMessage":"findValidDBSJob error","HttpStatusCode":404}"#;
        let a = answer(Product::Dbs, "ReleaseBackupPlan", 200, on_200).unwrap_err();
        let b = answer(Product::Dbs, "ReleaseBackupPlan", 404, on_404).unwrap_err();
        let c = answer(Product::Dbs, "ReleaseBackupPlan", 404, err_code_only).unwrap_err();
        for e in [&a, &b, &c] {
            assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
            assert!(e.has_code("InvalidJobId"), "{e}");
            assert_eq!(e.message, "findValidDBSJob error");
            assert_eq!(e.request_id.as_deref(), Some("r1"));
        }
        // A refused parameter: terminal on either transport.
        let on_200 = br#"{"Success":false,"ErrCode":"InvalidParameterValid","ErrMessage":"bad","HttpStatusCode":400}"#;
        let on_400 = br#"{"Code":"InvalidParameterValid","Message":"bad","Success":false,"ErrCode":"InvalidParameterValid","ErrMessage":"bad","HttpStatusCode":400}"#;
        for (status, body) in [(200, &on_200[..]), (400, &on_400[..])] {
            let e = answer(Product::Dbs, "DescribeBackupPlanList", status, body).unwrap_err();
            assert_eq!(
                (e.kind, e.code.as_deref(), e.message.as_str()),
                (ErrorKind::Terminal, Some("InvalidParameterValid"), "bad")
            );
        }
    }

    #[test]
    fn a_body_that_is_not_json_names_status_and_content_type() {
        let xml = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><DescribeBackupPlanListResponse><RequestId>R</RequestId></DescribeBackupPlanListResponse>";
        let body = Body {
            http_status: 200,
            content_type: Some("text/xml;charset=utf-8"),
            bytes: xml,
        };
        let err = verdict(Product::Dbs, "DescribeBackupPlanList", &body).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Terminal, "a 2xx is not retried");
        assert_eq!(err.code, None);
        assert_eq!(err.http_status, Some(200));
        assert!(
            err.message.starts_with(
                "HTTP 200 with content type text/xml;charset=utf-8, expected JSON: <?xml"
            ),
            "{}",
            err.message
        );
        assert!(
            err.to_string()
                .starts_with("DescribeBackupPlanList failed: -: HTTP 200 with content type"),
            "{err}"
        );

        let long = "x".repeat(1000);
        let body = Body {
            http_status: 200,
            content_type: None,
            bytes: long.as_bytes(),
        };
        let err = verdict(Product::Rds, "DescribeDBInstanceNetInfo", &body).unwrap_err();
        assert!(
            err.message.contains("content type (none)"),
            "{}",
            err.message
        );
        assert!(err.message.len() < 300, "quotes at most 200 characters");

        let body = Body {
            http_status: 200,
            content_type: Some("application/json"),
            bytes: b"",
        };
        let err = verdict(Product::Rds, "DescribeDBInstanceNetInfo", &body).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Terminal);
        assert!(
            err.message.ends_with("expected JSON: empty body"),
            "{}",
            err.message
        );

        let body = Body {
            http_status: 502,
            content_type: Some("text/html"),
            bytes: b"<html>Bad Gateway</html>",
        };
        let err = verdict(Product::Dbs, "StartBackupPlan", &body).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Retryable, "a proxy's 5xx page");
        assert!(
            err.message
                .starts_with("HTTP 502 with content type text/html, expected JSON: <html>"),
            "{}",
            err.message
        );
    }
}
