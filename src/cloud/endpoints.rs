//! Endpoint hosts per product and region, and their overrides.

/// The Alibaba Cloud products the client talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Product {
    /// Database Backup, API 2019-03-06.
    Dbs,
    /// ApsaraDB RDS, API 2014-08-15.
    Rds,
    /// Security Token Service, API 2015-04-01.
    Sts,
}

impl Product {
    /// Lower-case product code (`dbs`, `rds`, `sts`), as in metrics labels and endpoint hosts.
    pub fn code(self) -> &'static str {
        match self {
            Self::Dbs => "dbs",
            Self::Rds => "rds",
            Self::Sts => "sts",
        }
    }

    /// The API version sent as `x-acs-version`.
    pub fn version(self) -> &'static str {
        match self {
            Self::Dbs => "2019-03-06",
            Self::Rds => "2014-08-15",
            Self::Sts => "2015-04-01",
        }
    }
}

/// DBS regions the official SDK endpoint map routes to the Hangzhou host.
const DBS_HANGZHOU_REGIONS: &[&str] = &[
    "cn-qingdao",
    "cn-beijing",
    "cn-zhangjiakou",
    "cn-hangzhou",
    "cn-shanghai",
    "cn-shenzhen",
    "cn-hongkong",
    "us-west-1",
    "us-east-1",
    "cn-hangzhou-finance",
    "cn-shanghai-finance-1",
    "cn-shenzhen-finance-1",
];

/// RDS regions served by the central endpoint `rds.aliyuncs.com` per the SDK map.
const RDS_CENTRAL_REGIONS: &[&str] = &[
    "cn-qingdao",
    "cn-beijing",
    "cn-hangzhou",
    "cn-shanghai",
    "cn-shenzhen",
    "cn-heyuan",
    "cn-hongkong",
    "ap-southeast-1",
    "us-west-1",
    "us-east-1",
    "cn-hangzhou-finance",
    "cn-shanghai-finance-1",
    "cn-shenzhen-finance-1",
    "cn-north-2-gov-1",
];

/// Default DBS host for a region (reference §1.1).
pub fn dbs_host(region: &str) -> String {
    if DBS_HANGZHOU_REGIONS.contains(&region) {
        "dbs-api.cn-hangzhou.aliyuncs.com".to_owned()
    } else {
        format!("dbs-api.{region}.aliyuncs.com")
    }
}

/// Default RDS host for a region (reference §2.1).
pub fn rds_host(region: &str) -> String {
    if RDS_CENTRAL_REGIONS.contains(&region) {
        "rds.aliyuncs.com".to_owned()
    } else {
        format!("rds.{region}.aliyuncs.com")
    }
}

/// Endpoint overrides: a full base URL (`http://127.0.0.1:8090`) or a bare host per product.
/// Unset products use the default host for the region over https.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// DBS override (`ALICLOUD_DBS_ENDPOINT`).
    pub dbs: Option<String>,
    /// RDS override (`ALICLOUD_RDS_ENDPOINT`).
    pub rds: Option<String>,
    /// STS override (`ALICLOUD_STS_ENDPOINT`, else `ALIBABA_CLOUD_STS_ENDPOINT`, else the
    /// regional/VPC host from `ALIBABA_CLOUD_STS_REGION` and
    /// `ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED`).
    pub sts: Option<String>,
}

impl Endpoints {
    /// Overrides from the process environment (see [`Endpoints::from_lookup`]).
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Overrides from a variable lookup, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let sts = get("ALICLOUD_STS_ENDPOINT")
            .or_else(|| get("ALIBABA_CLOUD_STS_ENDPOINT"))
            .or_else(|| {
                let region = get("ALIBABA_CLOUD_STS_REGION")?;
                let vpc = get("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
                Some(if vpc {
                    format!("sts-vpc.{region}.aliyuncs.com")
                } else {
                    format!("sts.{region}.aliyuncs.com")
                })
            });
        Self {
            dbs: get("ALICLOUD_DBS_ENDPOINT"),
            rds: get("ALICLOUD_RDS_ENDPOINT"),
            sts,
        }
    }

    /// Every product on one base URL (the emulator's shape).
    pub fn all(base_url: impl Into<String>) -> Self {
        let url = base_url.into();
        Self {
            dbs: Some(url.clone()),
            rds: Some(url.clone()),
            sts: Some(url),
        }
    }

    /// Base URL (scheme, host, optional port; no trailing slash) for `product` in `region`.
    pub fn base_url(&self, product: Product, region: &str) -> String {
        let (over, default_host) = match product {
            Product::Dbs => (&self.dbs, dbs_host(region)),
            Product::Rds => (&self.rds, rds_host(region)),
            Product::Sts => (&self.sts, "sts.aliyuncs.com".to_owned()),
        };
        match over {
            Some(o) if o.contains("://") => o.trim_end_matches('/').to_owned(),
            Some(host) => format!("https://{}", host.trim_end_matches('/')),
            None => format!("https://{default_host}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn dbs_hosts_follow_the_sdk_map() {
        assert_eq!(dbs_host("cn-beijing"), "dbs-api.cn-hangzhou.aliyuncs.com");
        assert_eq!(dbs_host("us-east-1"), "dbs-api.cn-hangzhou.aliyuncs.com");
        assert_eq!(dbs_host("cn-hangzhou"), "dbs-api.cn-hangzhou.aliyuncs.com");
        assert_eq!(
            dbs_host("ap-southeast-1"),
            "dbs-api.ap-southeast-1.aliyuncs.com"
        );
        assert_eq!(dbs_host("cn-chengdu"), "dbs-api.cn-chengdu.aliyuncs.com");
        assert_eq!(dbs_host("xx-new-1"), "dbs-api.xx-new-1.aliyuncs.com");
    }

    #[test]
    fn rds_hosts_are_central_for_listed_regions_else_regional() {
        assert_eq!(rds_host("cn-hangzhou"), "rds.aliyuncs.com");
        assert_eq!(rds_host("ap-southeast-1"), "rds.aliyuncs.com");
        assert_eq!(
            rds_host("cn-zhangjiakou"),
            "rds.cn-zhangjiakou.aliyuncs.com"
        );
        assert_eq!(rds_host("eu-central-1"), "rds.eu-central-1.aliyuncs.com");
    }

    #[test]
    fn defaults_are_https_and_overrides_may_be_http() {
        let e = Endpoints::default();
        assert_eq!(
            e.base_url(Product::Dbs, "cn-beijing"),
            "https://dbs-api.cn-hangzhou.aliyuncs.com"
        );
        assert_eq!(
            e.base_url(Product::Sts, "cn-beijing"),
            "https://sts.aliyuncs.com"
        );
        let e = Endpoints::all("http://127.0.0.1:8090/");
        assert_eq!(
            e.base_url(Product::Rds, "cn-hangzhou"),
            "http://127.0.0.1:8090"
        );
        let e = Endpoints {
            dbs: Some("dbs-vpc.cn-hangzhou.aliyuncs.com".into()),
            ..Default::default()
        };
        assert_eq!(
            e.base_url(Product::Dbs, "x"),
            "https://dbs-vpc.cn-hangzhou.aliyuncs.com"
        );
    }

    #[test]
    fn env_lookup_reads_overrides_and_sts_region() {
        let vars: HashMap<&str, &str> = [
            ("ALICLOUD_DBS_ENDPOINT", "http://127.0.0.1:1"),
            ("ALICLOUD_RDS_ENDPOINT", " "),
            ("ALIBABA_CLOUD_STS_REGION", "cn-shanghai"),
            ("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED", "true"),
        ]
        .into();
        let e = Endpoints::from_lookup(|k| vars.get(k).map(std::string::ToString::to_string));
        assert_eq!(e.dbs.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(e.rds, None);
        assert_eq!(e.sts.as_deref(), Some("sts-vpc.cn-shanghai.aliyuncs.com"));
        let vars: HashMap<&str, &str> = [
            ("ALICLOUD_STS_ENDPOINT", "http://sts.local"),
            ("ALIBABA_CLOUD_STS_ENDPOINT", "sts.cn-beijing.aliyuncs.com"),
        ]
        .into();
        let e = Endpoints::from_lookup(|k| vars.get(k).map(std::string::ToString::to_string));
        assert_eq!(e.sts.as_deref(), Some("http://sts.local"));
    }
}
