//! Test support: a tiny, independent V3/V2 request signer and HTTP helpers.

use std::time::Duration;

use alicloud_emulator::{Emulator, EmulatorConfig};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const AK: &str = "test-ak";
pub const SECRET: &str = "test-secret";
pub const DBS: &str = "2019-03-06";
pub const RDS: &str = "2014-08-15";
pub const STS: &str = "2015-04-01";

/// RFC 3986 encoding written independently of the emulator.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sorted encoded `k=v&...`.
pub fn canonical(pairs: &[(String, String)]) -> String {
    let mut v: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    v.sort();
    v.join("&")
}

pub fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// V3 signature (hex HMAC-SHA256) over a canonical request built here.
pub fn v3_sign(
    secret: &str,
    method: &str,
    query: &str,
    headers: &[(String, String)],
    payload_hash: &str,
) -> (String, String) {
    let mut h: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_lowercase(), v.trim().to_string()))
        .collect();
    h.sort();
    let mut cr = format!("{method}\n/\n{query}\n");
    for (k, v) in &h {
        cr.push_str(&format!("{k}:{v}\n"));
    }
    let signed: Vec<&str> = h.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    cr.push_str(&format!("\n{signed}\n{payload_hash}"));
    let sts = format!("ACS3-HMAC-SHA256\n{}", sha256_hex(cr.as_bytes()));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(sts.as_bytes());
    (hex::encode(mac.finalize().into_bytes()), signed)
}

/// V2 signature (base64 HMAC-SHA1, key secret&).
pub fn v2_sign(secret: &str, method: &str, pairs: &[(String, String)]) -> String {
    let sts = format!("{method}&{}&{}", enc("/"), enc(&canonical(pairs)));
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(format!("{secret}&").as_bytes()).expect("hmac key");
    mac.update(sts.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub fn now_iso() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Starts an emulator with the test account and short delays.
pub async fn start_with(mut config: EmulatorConfig) -> Emulator {
    config.accounts.push((AK.into(), SECRET.into()));
    Emulator::start(config).await.expect("emulator starts")
}

/// [`start`], and a client of the test account.
pub async fn start_client() -> (Emulator, Client) {
    let emu = start().await;
    let client = Client::new(&emu);
    (emu, client)
}

pub async fn start() -> Emulator {
    start_with(EmulatorConfig {
        configure_delay: Duration::from_millis(0),
        instance_busy: Duration::from_millis(1000),
        precheck: Duration::ZERO,
        rds_instances: vec![
            ("cn-hangzhou".into(), "rm-test1".into()),
            ("cn-hangzhou".into(), "rm-test2".into()),
        ],
        ..EmulatorConfig::default()
    })
    .await
}

/// A signing client.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub host: String,
    pub ak: String,
    pub secret: String,
    pub token: Option<String>,
}

pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["Code"]
            .as_str()
            .or_else(|| self.body["ErrCode"].as_str())
            .unwrap_or("")
    }

    /// Panics unless the answer is HTTP `status` with the error `code`.
    pub fn assert_code(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.code()), (status, code), "{}", self.body);
    }

    /// Panics unless the answer is a DBS error in the default `http-status` mode: a 4xx status
    /// echoed in `HttpStatusCode`, `Success` false, `Code` and `ErrCode` `code`.
    pub fn assert_dbs_error(&self, code: &str) {
        assert!((400..500).contains(&self.status), "{}", self.body);
        assert_eq!(self.body["HttpStatusCode"], self.status, "{}", self.body);
        assert_eq!(self.body["Success"], false, "{}", self.body);
        assert_eq!(self.body["ErrCode"], code, "{}", self.body);
        assert_eq!(self.body["Code"], code, "{}", self.body);
    }

    /// Panics unless the answer is a DBS error in the `success-false` mode: HTTP 200,
    /// `Success` false, `ErrCode` `code` and no generic `Code`.
    pub fn assert_dbs_success_false(&self, code: &str) {
        assert_eq!(self.status, 200, "{}", self.body);
        assert_eq!(self.body["Success"], false, "{}", self.body);
        assert_eq!(self.body["ErrCode"], code, "{}", self.body);
        assert!(self.body.get("Code").is_none(), "{}", self.body);
    }
}

impl Client {
    pub fn new(emu: &Emulator) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: emu.url(),
            host: emu.addr().to_string(),
            ak: AK.into(),
            secret: SECRET.into(),
            token: None,
        }
    }

    pub fn with_key(&self, ak: &str, secret: &str, token: Option<&str>) -> Self {
        Self {
            ak: ak.into(),
            secret: secret.into(),
            token: token.map(str::to_string),
            ..self.clone()
        }
    }

    /// V3 headers for a request; returns (headers, authorization).
    pub fn v3_headers(
        &self,
        method: &str,
        version: &str,
        action: &str,
        query: &str,
        body: &[u8],
        form: bool,
    ) -> Vec<(String, String)> {
        let hash = sha256_hex(body);
        let mut headers = owned(&[
            ("host", &self.host),
            ("x-acs-action", action),
            ("x-acs-version", version),
            ("x-acs-date", &now_iso()),
            ("x-acs-signature-nonce", &nonce()),
            ("x-acs-content-sha256", &hash),
        ]);
        if form {
            headers.push((
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        if let Some(t) = &self.token {
            headers.push(("x-acs-security-token".into(), t.clone()));
        }
        let (sig, signed) = v3_sign(&self.secret, method, query, &headers, &hash);
        headers.push((
            "authorization".into(),
            format!(
                "ACS3-HMAC-SHA256 Credential={},SignedHeaders={signed},Signature={sig}",
                self.ak
            ),
        ));
        headers
    }

    /// Sends a request; asks for JSON (`Accept: application/json`, as the official SDKs do)
    /// unless `headers` name an `accept` of their own.
    pub async fn send(
        &self,
        method: &str,
        query: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Resp {
        let mut headers = headers.to_vec();
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
        {
            headers.push(("accept".into(), "application/json".into()));
        }
        self.send_raw(method, query, &headers, body).await
    }

    /// Sends a request with exactly `headers` (reqwest adds `accept: */*` when none is given);
    /// a body that is not JSON is kept as a string.
    pub async fn send_raw(
        &self,
        method: &str,
        query: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Resp {
        let url = if query.is_empty() {
            format!("{}/", self.base)
        } else {
            format!("{}/?{query}", self.base)
        };
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, url).body(body);
        for (k, v) in headers {
            if k != "host" {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp {
            status,
            content_type,
            body,
        }
    }

    /// V3 POST with the parameters as a form body (the SDK style).
    pub async fn call(&self, version: &str, action: &str, params: &[(&str, &str)]) -> Resp {
        let body = canonical(&owned(params)).into_bytes();
        let headers = self.v3_headers("POST", version, action, "", &body, true);
        self.send("POST", "", &headers, body).await
    }

    /// V3 GET with the parameters in the query string.
    pub async fn call_get(&self, version: &str, action: &str, params: &[(&str, &str)]) -> Resp {
        let query = canonical(&owned(params));
        let headers = self.v3_headers("GET", version, action, &query, b"", false);
        self.send("GET", &query, &headers, Vec::new()).await
    }

    /// V2 POST with every parameter in the form body.
    pub async fn call_v2(&self, version: &str, action: &str, params: &[(&str, &str)]) -> Resp {
        let mut pairs = owned(params);
        let ts = now_iso();
        let n = nonce();
        pairs.extend(owned(&[
            ("Action", action),
            ("Version", version),
            ("Format", "JSON"),
            ("AccessKeyId", &self.ak),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("SignatureNonce", &n),
            ("Timestamp", &ts),
        ]));
        if let Some(t) = &self.token {
            pairs.push(("SecurityToken".into(), t.clone()));
        }
        let sig = v2_sign(&self.secret, "POST", &pairs);
        pairs.push(("Signature".into(), sig));
        let body = canonical(&pairs).into_bytes();
        let headers = owned(&[("content-type", "application/x-www-form-urlencoded")]);
        self.send("POST", "", &headers, body).await
    }

    pub async fn dbs(&self, action: &str, params: &[(&str, &str)]) -> Resp {
        self.call(DBS, action, params).await
    }

    pub async fn rds(&self, action: &str, params: &[(&str, &str)]) -> Resp {
        self.call(RDS, action, params).await
    }

    /// DescribeBackupPlanList of the plan `id`.
    pub async fn describe_plan(&self, id: &str) -> Resp {
        self.dbs("DescribeBackupPlanList", &[("BackupPlanId", id)])
            .await
    }

    /// DescribeDBInstanceNetInfo of the instance `id`.
    pub async fn net_info(&self, id: &str) -> Resp {
        self.rds("DescribeDBInstanceNetInfo", &[("DBInstanceId", id)])
            .await
    }
}

/// Admin API call with an optional JSON body.
pub async fn admin(emu: &Emulator, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = reqwest::Client::new().request(m, format!("{}/_emulator{path}", emu.url()));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("admin request");
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Admin API call that must answer 200; returns the body.
pub async fn admin_ok(emu: &Emulator, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, body) = admin(emu, method, path, body).await;
    assert_eq!(status, 200, "{method} {path}: {body}");
    body
}

/// `base` with each of `extra` replacing the parameter of its name, or added.
pub fn merged<'a>(
    base: &[(&'a str, &'a str)],
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut params: Vec<_> = base
        .iter()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .copied()
        .collect();
    params.extend_from_slice(extra);
    params
}

/// `base` without the parameters named `keys`.
pub fn without<'a>(base: &[(&'a str, &'a str)], keys: &[&str]) -> Vec<(&'a str, &'a str)> {
    base.iter()
        .filter(|(k, _)| !keys.contains(k))
        .copied()
        .collect()
}

/// The parameters of a one-month prepay CreateBackupPlan.
pub const PREPAY_PLAN: &[(&str, &str)] = &[
    ("Region", "cn-hangzhou"),
    ("InstanceClass", "micro"),
    ("DatabaseType", "MySQL"),
    ("BackupMethod", "logical"),
    ("Period", "Month"),
    ("UsedTime", "1"),
];

/// The parameters of a postpay CreateBackupPlan.
pub const POSTPAY_PLAN: &[(&str, &str)] = &[
    ("Region", "cn-hangzhou"),
    ("InstanceClass", "small"),
    ("DatabaseType", "MySQL"),
    ("BackupMethod", "logical"),
    ("PayType", "postpay"),
    ("DatabaseRegion", "cn-hangzhou"),
    ("StorageRegion", "cn-hangzhou"),
    ("InstanceType", "RDS"),
];

/// Creates a postpay plan and returns its id.
pub async fn create_plan(c: &Client, extra: &[(&str, &str)]) -> String {
    let r = c
        .dbs("CreateBackupPlan", &merged(POSTPAY_PLAN, extra))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["Success"], true, "{}", r.body);
    r.body["BackupPlanId"]
        .as_str()
        .expect("plan id")
        .to_string()
}

/// Configures a plan with an RDS source.
pub async fn configure_plan(c: &Client, id: &str, extra: &[(&str, &str)]) -> Resp {
    let params = [
        ("BackupPlanId", id),
        ("BackupPlanName", "nightly"),
        ("SourceEndpointInstanceType", "RDS"),
        ("SourceEndpointRegion", "cn-hangzhou"),
        ("SourceEndpointInstanceID", "rm-test1"),
        ("SourceEndpointUserName", "backup"),
        ("SourceEndpointPassword", "s3cret-pw"),
        ("BackupObjects", r#"[{"DBName":"app"}]"#),
        ("BackupPeriod", "Monday,Thursday"),
        ("BackupStartTime", "14:22"),
    ];
    c.dbs("ConfigureBackupPlan", &merged(&params, extra)).await
}
