//! Request signing: V3 `ACS3-HMAC-SHA256` (the default) and the classic V2 `HMAC-SHA1`.
//!
//! Everything here is a pure function of its inputs: the caller passes the time and the nonce,
//! so the official worked examples can be reproduced byte for byte.
//!
//! The emulator verifies signatures with its own, independent reading of the same documents
//! (`emulator/src/signature.rs`); the two share no code on purpose.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

use super::Credentials;

/// Name of the V3 algorithm, first word of the `Authorization` header.
pub const V3_ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// Content type of an RPC form body.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// Media type of JSON, the `Accept` of every request.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// Which signature scheme requests use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SignatureVersion {
    /// `ACS3-HMAC-SHA256` with `x-acs-*` headers (default).
    #[default]
    V3,
    /// Classic RPC `HMAC-SHA1` with `Signature*` parameters (discontinued by Alibaba, kept for
    /// endpoints that still need it).
    V2,
}

/// RFC 3986 unreserved characters (`A-Z a-z 0-9 - _ . ~`) stay, everything else is encoded.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes per reference §3.1: UTF-8, upper-case hex, space as `%20`, `*` as `%2A`,
/// `~` kept.
pub fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

/// `k=v&k=v` with both sides percent-encoded and pairs sorted by encoded key, then value.
/// Used for the canonical query string and for form bodies alike.
pub fn canonical_query(params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Lower-case hex SHA-256 of `data` (the `x-acs-content-sha256` value).
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `yyyy-MM-ddTHH:mm:ssZ`, the format of `x-acs-date` and the V2 `Timestamp`.
pub fn format_timestamp(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A fresh random nonce (32 lower-case hex characters).
pub fn new_nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// One RPC request as the V3 signer sees it.
#[derive(Clone, Debug)]
pub struct V3Request<'a> {
    /// Upper-case HTTP method, `POST` for our calls.
    pub method: &'a str,
    /// The `host` header exactly as sent (with `:port` when the URL has one).
    pub host: &'a str,
    /// `x-acs-action`.
    pub action: &'a str,
    /// `x-acs-version`.
    pub version: &'a str,
    /// Query parameters (unencoded).
    pub query: &'a [(String, String)],
    /// Body bytes exactly as sent (empty for none).
    pub body: &'a [u8],
    /// `content-type` of the body; `None` when there is no body.
    pub content_type: Option<&'a str>,
    /// Request time (`x-acs-date`).
    pub now: DateTime<Utc>,
    /// `x-acs-signature-nonce`.
    pub nonce: &'a str,
}

/// The result of V3 signing: the headers to send plus the intermediate values (for tests and
/// diagnostics; none of them contains the secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V3Signature {
    /// The canonical request that was hashed.
    pub canonical_request: String,
    /// Lower-case hex SHA-256 of the canonical request.
    pub hashed_canonical_request: String,
    /// Lower-case hex HMAC-SHA256 signature.
    pub signature: String,
    /// `Authorization` header value.
    pub authorization: String,
    /// Every header to send, lower-case names, sorted, `authorization` last.
    pub headers: Vec<(String, String)>,
}

/// Signs `req` with `credentials` per reference §3.3 (adds `x-acs-security-token` for STS
/// credentials).
pub fn sign_v3(req: &V3Request<'_>, credentials: &Credentials) -> V3Signature {
    let content_sha256 = sha256_hex(req.body);
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), req.host.trim().to_owned()),
        ("x-acs-action".into(), req.action.trim().to_owned()),
        ("x-acs-version".into(), req.version.trim().to_owned()),
        ("x-acs-date".into(), format_timestamp(req.now)),
        ("x-acs-signature-nonce".into(), req.nonce.trim().to_owned()),
        ("x-acs-content-sha256".into(), content_sha256.clone()),
    ];
    if let Some(token) = &credentials.security_token {
        headers.push(("x-acs-security-token".into(), token.trim().to_owned()));
    }
    if let Some(ct) = req.content_type {
        headers.push(("content-type".into(), ct.trim().to_owned()));
    }
    headers.sort();

    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = [
        req.method.to_ascii_uppercase().as_str(),
        "/",
        &canonical_query(req.query),
        &canonical_headers,
        &signed_headers,
        &content_sha256,
    ]
    .join("\n");
    let hashed_canonical_request = sha256_hex(canonical_request.as_bytes());
    let string_to_sign = format!("{V3_ALGORITHM}\n{hashed_canonical_request}");
    let signature = hex::encode(hmac_sha256(
        credentials.access_key_secret.as_bytes(),
        string_to_sign.as_bytes(),
    ));
    let authorization = format!(
        "{V3_ALGORITHM} Credential={},SignedHeaders={signed_headers},Signature={signature}",
        credentials.access_key_id
    );
    headers.push(("authorization".into(), authorization.clone()));
    V3Signature {
        canonical_request,
        hashed_canonical_request,
        signature,
        authorization,
        headers,
    }
}

/// The common V2 parameters of a request (everything except `Signature`), including
/// `SecurityToken` for STS credentials.
pub fn v2_common_params(
    action: &str,
    version: &str,
    credentials: &Credentials,
    now: DateTime<Utc>,
    nonce: &str,
) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = vec![
        ("Action".into(), action.into()),
        ("Version".into(), version.into()),
        ("Format".into(), "JSON".into()),
        ("AccessKeyId".into(), credentials.access_key_id.clone()),
        ("SignatureMethod".into(), "HMAC-SHA1".into()),
        ("SignatureVersion".into(), "1.0".into()),
        ("SignatureNonce".into(), nonce.into()),
        ("Timestamp".into(), format_timestamp(now)),
    ];
    if let Some(token) = &credentials.security_token {
        params.push(("SecurityToken".into(), token.clone()));
    }
    params
}

/// V2 `StringToSign` over all parameters (query and form alike), per reference §3.2.
pub fn v2_string_to_sign(method: &str, params: &[(String, String)]) -> String {
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        percent_encode("/"),
        percent_encode(&canonical_query(params))
    )
}

/// V2 signature: Base64(HMAC-SHA1(secret + "&", StringToSign)); the value of `Signature`.
pub fn sign_v2(method: &str, params: &[(String, String)], access_key_secret: &str) -> String {
    let string_to_sign = v2_string_to_sign(method, params);
    let key = format!("{access_key_secret}&");
    // HMAC accepts keys of any length; the `else` cannot run.
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; the `else` cannot run.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn creds(id: &str, secret: &str) -> Credentials {
        Credentials {
            access_key_id: id.into(),
            access_key_secret: secret.into(),
            security_token: None,
        }
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn percent_encoding_follows_rfc3986_with_upper_hex() {
        assert_eq!(percent_encode("a b*c~d/e:f+g"), "a%20b%2Ac~d%2Fe%3Af%2Bg");
        assert_eq!(percent_encode("AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(percent_encode("é"), "%C3%A9");
        assert_eq!(
            percent_encode("[{\"DBName\":\"x\"}]"),
            "%5B%7B%22DBName%22%3A%22x%22%7D%5D"
        );
    }

    #[test]
    fn canonical_query_sorts_by_encoded_key() {
        let q = pairs(&[("b", "2"), ("a", "x y"), ("A", "1")]);
        assert_eq!(canonical_query(&q), "A=1&a=x%20y&b=2");
        assert_eq!(canonical_query(&[]), "");
    }

    #[test]
    fn v3_reproduces_the_official_worked_example() {
        let query = pairs(&[
            (
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ),
            ("RegionId", "cn-shanghai"),
        ]);
        let req = V3Request {
            method: "POST",
            host: "ecs.cn-shanghai.aliyuncs.com",
            action: "RunInstances",
            version: "2014-05-26",
            query: &query,
            body: b"",
            content_type: None,
            now: Utc.with_ymd_and_hms(2023, 10, 26, 10, 22, 32).unwrap(),
            nonce: "3156853299f313e23d1673dc12e1703d",
        };
        let signed = sign_v3(&req, &creds("YourAccessKeyId", "YourAccessKeySecret"));
        let expected_canonical = "POST\n/\n\
ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\n\
host:ecs.cn-shanghai.aliyuncs.com\n\
x-acs-action:RunInstances\n\
x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
x-acs-date:2023-10-26T10:22:32Z\n\
x-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\n\
x-acs-version:2014-05-26\n\
\n\
host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n\
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(signed.canonical_request, expected_canonical);
        assert_eq!(
            signed.hashed_canonical_request,
            "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        assert_eq!(
            signed.signature,
            "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
        assert_eq!(
            signed.authorization,
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;\
x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,\
Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
        assert_eq!(
            signed.headers.last().map(|h| h.0.as_str()),
            Some("authorization")
        );
    }

    #[test]
    fn v3_signs_security_token_and_content_type_when_present() {
        let body = b"BackupPlanId=dbs1&Region=cn-hangzhou";
        let mut c = creds("STS.id", "secret");
        c.security_token = Some("tok".into());
        let req = V3Request {
            method: "POST",
            host: "127.0.0.1:8080",
            action: "StartBackupPlan",
            version: "2019-03-06",
            query: &[],
            body,
            content_type: Some(FORM_CONTENT_TYPE),
            now: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            nonce: "n",
        };
        let signed = sign_v3(&req, &c);
        assert!(signed.authorization.contains(
            "SignedHeaders=content-type;host;x-acs-action;x-acs-content-sha256;x-acs-date;\
x-acs-security-token;x-acs-signature-nonce;x-acs-version,"
        ));
        assert!(
            signed
                .canonical_request
                .contains(&format!("x-acs-content-sha256:{}\n", sha256_hex(body)))
        );
        assert!(!signed.canonical_request.contains("secret"));
    }

    #[test]
    fn v2_reproduces_the_official_worked_example() {
        let mut params = v2_common_params(
            "DescribeDedicatedHosts",
            "2014-05-26",
            &creds("testid", "testsecret"),
            Utc.with_ymd_and_hms(2023, 3, 13, 8, 34, 30).unwrap(),
            "edb2b34af0af9a6d14deaf7c1a5315eb",
        );
        params.push(("RegionId".into(), "cn-beijing".into()));
        assert_eq!(
            canonical_query(&params),
            "AccessKeyId=testid&Action=DescribeDedicatedHosts&Format=JSON&RegionId=cn-beijing&\
SignatureMethod=HMAC-SHA1&SignatureNonce=edb2b34af0af9a6d14deaf7c1a5315eb&SignatureVersion=1.0&\
Timestamp=2023-03-13T08%3A34%3A30Z&Version=2014-05-26"
        );
        assert_eq!(
            v2_string_to_sign("GET", &params),
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeDedicatedHosts%26Format%3DJSON%26\
RegionId%3Dcn-beijing%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D\
edb2b34af0af9a6d14deaf7c1a5315eb%26SignatureVersion%3D1.0%26Timestamp%3D\
2023-03-13T08%253A34%253A30Z%26Version%3D2014-05-26"
        );
        let sig = sign_v2("GET", &params, "testsecret");
        assert_eq!(sig, "9NaGiOspFP5UPcwX8Iwt2YJXXuk=");
        assert_eq!(percent_encode(&sig), "9NaGiOspFP5UPcwX8Iwt2YJXXuk%3D");
    }

    #[test]
    fn nonces_are_unique_hex() {
        let a = new_nonce();
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_nonce());
    }
}
