//! Pure signing primitives for V2 (HMAC-SHA1) and V3 (ACS3-HMAC-SHA256).
//!
//! The emulator only verifies; computing helpers exist for verification and
//! for the unit tests against the official vectors.
//!
//! This is deliberately a second, independent reading of Alibaba's signing documents: it
//! shares no code with the operator's `src/cloud/signer.rs`, so a misreading in one shows up
//! as a rejected signature in the tests instead of being agreed on by both. Where the two look
//! alike (canonical query, SHA-256 hex) it is because the documents leave one way to do it.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::wire::rfc3986;

/// Name of the V3 algorithm (prefix of `Authorization`).
pub const V3_ALGORITHM: &str = "ACS3-HMAC-SHA256";

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Sorted, RFC 3986 encoded `k=v&...` (V2 and V3 canonical query string).
pub fn canonical_query(pairs: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (rfc3986(k), rfc3986(v)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Parsed `Authorization: ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Authorization {
    /// AccessKeyId from `Credential`.
    pub access_key_id: String,
    /// Lower-case signed header names in the order given.
    pub signed_headers: Vec<String>,
    /// Lower-case hex signature.
    pub signature: String,
}

/// Parses a V3 Authorization header; `None` when it is not in that format.
pub fn parse_v3_authorization(value: &str) -> Option<V3Authorization> {
    let rest = value.trim().strip_prefix(V3_ALGORITHM)?;
    if !rest.starts_with(' ') {
        return None;
    }
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k.trim() {
            "Credential" => cred = Some(v.trim().to_string()),
            "SignedHeaders" => signed = Some(v.trim().to_string()),
            "Signature" => sig = Some(v.trim().to_string()),
            _ => {}
        }
    }
    let (cred, signed, sig) = (cred?, signed?, sig?);
    if cred.is_empty() || signed.is_empty() || sig.is_empty() {
        return None;
    }
    Some(V3Authorization {
        access_key_id: cred,
        signed_headers: signed
            .split(';')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
        signature: sig,
    })
}

/// Builds the V3 canonical request. `headers` are (lower-case name, trimmed
/// value) pairs of the signed headers.
pub fn v3_canonical_request(
    method: &str,
    canonical_query: &str,
    headers: &[(String, String)],
    payload_hash: &str,
) -> String {
    let mut sorted: Vec<&(String, String)> = headers.iter().collect();
    sorted.sort();
    let canonical_headers: String = sorted.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed: Vec<&str> = sorted.iter().map(|(k, _)| k.as_str()).collect();
    format!(
        "{}\n/\n{}\n{}\n{}\n{}",
        method.to_ascii_uppercase(),
        canonical_query,
        canonical_headers,
        signed.join(";"),
        payload_hash
    )
}

/// `ACS3-HMAC-SHA256\n` + hex(SHA256(canonical request)).
pub fn v3_string_to_sign(canonical_request: &str) -> String {
    format!(
        "{V3_ALGORITHM}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// Builds the keyed V3 MAC over the string to sign.
fn v3_mac(secret: &str, string_to_sign: &str) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so new_from_slice cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(string_to_sign.as_bytes());
    mac
}

/// Lower-case hex HMAC-SHA256 with the raw secret.
#[cfg(test)]
pub fn v3_signature(secret: &str, string_to_sign: &str) -> String {
    hex::encode(v3_mac(secret, string_to_sign).finalize().into_bytes())
}

/// Constant-time check of a hex V3 signature.
pub fn v3_verify(secret: &str, string_to_sign: &str, provided_hex: &str) -> bool {
    match hex::decode(provided_hex.trim()) {
        Ok(bytes) => v3_mac(secret, string_to_sign).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

/// V2 string to sign: `METHOD&%2F&enc(canonical query)` (pairs exclude `Signature`).
pub fn v2_string_to_sign(method: &str, pairs: &[(String, String)]) -> String {
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        rfc3986("/"),
        rfc3986(&canonical_query(pairs))
    )
}

/// Builds the keyed V2 MAC (key = secret + "&").
fn v2_mac(secret: &str, string_to_sign: &str) -> Hmac<Sha1> {
    let key = format!("{secret}&");
    // HMAC accepts keys of any length, so new_from_slice cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(string_to_sign.as_bytes());
    mac
}

/// Base64 HMAC-SHA1 with key `secret&`.
#[cfg(test)]
pub fn v2_signature(secret: &str, string_to_sign: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(v2_mac(secret, string_to_sign).finalize().into_bytes())
}

/// Constant-time check of a base64 V2 signature.
pub fn v2_verify(secret: &str, string_to_sign: &str, provided_b64: &str) -> bool {
    match base64::engine::general_purpose::STANDARD.decode(provided_b64.trim()) {
        Ok(bytes) => v2_mac(secret, string_to_sign).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn v3_official_vector_matches() {
        let query = canonical_query(&[
            s("RegionId", "cn-shanghai"),
            s(
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            ),
        ]);
        let empty = sha256_hex(b"");
        assert_eq!(
            empty,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let headers = vec![
            s("x-acs-version", "2014-05-26"),
            s("host", "ecs.cn-shanghai.aliyuncs.com"),
            s("x-acs-action", "RunInstances"),
            s("x-acs-content-sha256", &empty),
            s("x-acs-date", "2023-10-26T10:22:32Z"),
            s("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
        ];
        let cr = v3_canonical_request("POST", &query, &headers, &empty);
        let expected = "POST\n/\nImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai\nhost:ecs.cn-shanghai.aliyuncs.com\nx-acs-action:RunInstances\nx-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\nx-acs-date:2023-10-26T10:22:32Z\nx-acs-signature-nonce:3156853299f313e23d1673dc12e1703d\nx-acs-version:2014-05-26\n\nhost;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(cr, expected);
        let sts = v3_string_to_sign(&cr);
        assert_eq!(
            sts,
            "ACS3-HMAC-SHA256\n7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        let sig = "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0";
        assert_eq!(v3_signature("YourAccessKeySecret", &sts), sig);
        assert!(v3_verify("YourAccessKeySecret", &sts, sig));
        assert!(!v3_verify("OtherSecret", &sts, sig));
        assert!(!v3_verify("YourAccessKeySecret", &sts, "zz"));
    }

    #[test]
    fn v3_authorization_header_parses() {
        let auth = parse_v3_authorization(
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action,Signature=abc",
        )
        .expect("valid header");
        assert_eq!(auth.access_key_id, "YourAccessKeyId");
        assert_eq!(auth.signed_headers, vec!["host", "x-acs-action"]);
        assert_eq!(auth.signature, "abc");
        assert!(parse_v3_authorization("ACS3-HMAC-SHA256 Credential=a").is_none());
        assert!(parse_v3_authorization("Bearer x").is_none());
    }

    #[test]
    fn v2_official_vector_matches() {
        let pairs = vec![
            s("Action", "DescribeDedicatedHosts"),
            s("Version", "2014-05-26"),
            s("Format", "JSON"),
            s("AccessKeyId", "testid"),
            s("SignatureMethod", "HMAC-SHA1"),
            s("SignatureVersion", "1.0"),
            s("SignatureNonce", "edb2b34af0af9a6d14deaf7c1a5315eb"),
            s("Timestamp", "2023-03-13T08:34:30Z"),
            s("RegionId", "cn-beijing"),
        ];
        assert_eq!(
            canonical_query(&pairs),
            "AccessKeyId=testid&Action=DescribeDedicatedHosts&Format=JSON&RegionId=cn-beijing&SignatureMethod=HMAC-SHA1&SignatureNonce=edb2b34af0af9a6d14deaf7c1a5315eb&SignatureVersion=1.0&Timestamp=2023-03-13T08%3A34%3A30Z&Version=2014-05-26"
        );
        let sts = v2_string_to_sign("GET", &pairs);
        assert_eq!(
            sts,
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeDedicatedHosts%26Format%3DJSON%26RegionId%3Dcn-beijing%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3Dedb2b34af0af9a6d14deaf7c1a5315eb%26SignatureVersion%3D1.0%26Timestamp%3D2023-03-13T08%253A34%253A30Z%26Version%3D2014-05-26"
        );
        assert_eq!(
            v2_signature("testsecret", &sts),
            "9NaGiOspFP5UPcwX8Iwt2YJXXuk="
        );
        assert!(v2_verify(
            "testsecret",
            &sts,
            "9NaGiOspFP5UPcwX8Iwt2YJXXuk="
        ));
        assert!(!v2_verify("testsecret", &sts, "AAAA"));
    }

    #[test]
    fn rfc3986_encoding_uses_upper_hex_and_percent20() {
        assert_eq!(rfc3986("a b*~/:"), "a%20b%2A~%2F%3A");
    }
}
