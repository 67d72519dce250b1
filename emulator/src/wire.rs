//! Wire helpers: parameter parsing, RFC 3986 encoding, response bodies (JSON or XML).

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// Characters percent-encoded by Alibaba signing: all but `A-Z a-z 0-9 - _ . ~`.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// RFC 3986 percent-encoding with upper-case hex (space -> `%20`).
pub fn rfc3986(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space).
fn decode_component(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// Splits `a=b&c=d` into decoded pairs, keeping order and duplicates.
pub fn parse_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode_component(k), decode_component(v)),
            None => (decode_component(p), String::new()),
        })
        .collect()
}

/// The API product a request is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    /// Database Backup, version 2019-03-06.
    Dbs,
    /// ApsaraDB RDS, version 2014-08-15.
    Rds,
    /// Security Token Service, version 2015-04-01.
    Sts,
}

impl Product {
    /// Maps an API version string to its product.
    pub fn from_version(version: &str) -> Option<Self> {
        match version {
            "2019-03-06" => Some(Self::Dbs),
            "2014-08-15" => Some(Self::Rds),
            "2015-04-01" => Some(Self::Sts),
            _ => None,
        }
    }

    /// Lower-case name used in the call log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dbs => "dbs",
            Self::Rds => "rds",
            Self::Sts => "sts",
        }
    }

    /// Host name echoed in `HostId` of error bodies.
    pub fn host(self) -> &'static str {
        match self {
            Self::Dbs => "dbs-api.cn-hangzhou.aliyuncs.com",
            Self::Rds => "rds.aliyuncs.com",
            Self::Sts => "sts.aliyuncs.com",
        }
    }
}

/// Merged request parameters (query string, then form body; last wins).
#[derive(Debug, Clone, Default)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Builds the parameter map from ordered pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = &'a (String, String)>) -> Self {
        Self(pairs.into_iter().cloned().collect())
    }

    /// Raw value, even if empty.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Value if present and not blank.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.raw(key).filter(|v| !v.trim().is_empty())
    }
}

/// `n` random ASCII letters and digits (ids, keys, tokens).
pub fn random_alphanumeric(n: usize) -> String {
    use rand::Rng as _;
    rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// A fresh request id in Alibaba's upper-case UUID style.
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

/// The body format a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `Accept` containing `application/json`, or the parameter `Format=JSON` (any case).
    Json,
    /// Anything else: XML is the documented default `Format` of Alibaba's RPC APIs.
    Xml,
}

impl Format {
    /// What the request asked for through its `Accept` header or its `Format` parameter.
    pub fn requested(headers: &HeaderMap, params: &Params) -> Self {
        let accept_json = headers.get_all(header::ACCEPT).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("application/json"))
        });
        let format_json = params
            .get("Format")
            .is_some_and(|f| f.trim().eq_ignore_ascii_case("json"));
        if accept_json || format_json {
            Self::Json
        } else {
            Self::Xml
        }
    }

    /// `json` or `xml`, as the call log shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Xml => "xml",
        }
    }
}

/// Renders the generic error body used for every non-2xx response.
pub fn error_response(
    err: &ApiError,
    request_id: &str,
    product: Option<Product>,
    format: Format,
) -> Response {
    let host = product.map_or("aliyuncs.com", Product::host);
    let body = json!({
        "RequestId": request_id,
        "HostId": host,
        "Code": err.code,
        "Message": err.message,
        "Recommend": format!("https://api.alibabacloud.com/troubleshoot?q={}", err.code),
    });
    render(err.status, request_id, &body, format, None)
}

/// Renders an action's response fields with `RequestId` added, under `status` (a DBS business
/// error in the `http-status` mode carries its 4xx status).
pub fn fields_response(
    status: StatusCode,
    request_id: &str,
    fields: Map<String, Value>,
    format: Format,
    action: &str,
) -> Response {
    let mut body = Map::new();
    body.insert("RequestId".into(), Value::String(request_id.to_string()));
    body.extend(fields);
    render(
        status,
        request_id,
        &Value::Object(body),
        format,
        Some(action),
    )
}

/// Serializes a body as JSON or XML, with the request-id header. The XML root is
/// `<{Action}Response>` for a 2xx answer, else `<Error>` (Alibaba's XML error samples).
fn render(
    status: StatusCode,
    request_id: &str,
    body: &Value,
    format: Format,
    action: Option<&str>,
) -> Response {
    let mut headers = HeaderMap::new();
    let text = match format {
        Format::Json => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json;charset=utf-8"),
            );
            body.to_string()
        }
        Format::Xml => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/xml;charset=utf-8"),
            );
            let root = match action {
                Some(action) if status.is_success() => format!("{action}Response"),
                _ => "Error".to_owned(),
            };
            crate::xml::render(&root, body)
        }
    };
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-acs-request-id", v);
    }
    (status, headers, text).into_response()
}

/// Current wall-clock time in epoch milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
