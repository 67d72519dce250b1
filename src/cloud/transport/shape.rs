//! How each action's request is shaped, as the official SDK models shape it: which parameter
//! carries the region (if the action takes one) and which parameters travel in a form body
//! instead of the query string. The one place for these per-action decisions.
//!
//! Source: the generated clients of `alibabacloud_dbs20190306`, `alibabacloud_rds20140815` and
//! `alibabacloud_sts20150401` (Python, pinned in `tests/sdk_compat/requirements.txt`; the Go
//! models `dbs-20190306`, `rds-20140815`, `sts-20150401` agree): every action below builds its
//! request with `query = OpenApiUtilClient.query(query)` and no body. Of them, only DBS
//! `CreateBackupPlan` and `DescribeBackupPlanList` have a `Region` parameter; none of the RDS
//! actions has `RegionId` (the RDS endpoint already names the region).

use crate::cloud::endpoints::Product;

/// The request shape of one action.
struct ActionShape {
    product: Product,
    action: &'static str,
    /// The parameter that carries the scope's region, when the action takes one.
    region: Option<&'static str>,
    /// Parameters the SDK sends in a form body; every other parameter goes in the query.
    body: &'static [&'static str],
}

const fn shape(
    product: Product,
    action: &'static str,
    region: Option<&'static str>,
) -> ActionShape {
    ActionShape {
        product,
        action,
        region,
        body: &[],
    }
}

/// Every action the client calls.
const SHAPES: &[ActionShape] = &[
    shape(Product::Dbs, "CreateBackupPlan", Some("Region")),
    shape(Product::Dbs, "DescribeBackupPlanList", Some("Region")),
    shape(Product::Dbs, "ConfigureBackupPlan", None),
    shape(Product::Dbs, "StartBackupPlan", None),
    shape(Product::Dbs, "StopBackupPlan", None),
    shape(Product::Dbs, "ModifyBackupStrategy", None),
    shape(Product::Dbs, "ModifyStorageStrategy", None),
    shape(Product::Dbs, "ModifyBackupSourceEndpoint", None),
    shape(Product::Dbs, "ModifyBackupObjects", None),
    shape(Product::Dbs, "ModifyBackupPlanName", None),
    shape(Product::Dbs, "ReleaseBackupPlan", None),
    shape(Product::Dbs, "DescribeBackupPlanBilling", None),
    shape(Product::Rds, "AllocateInstancePublicConnection", None),
    shape(Product::Rds, "ModifyDBInstanceConnectionString", None),
    shape(Product::Rds, "ReleaseInstanceConnection", None),
    shape(Product::Rds, "ReleaseInstancePublicConnection", None),
    shape(Product::Rds, "DescribeDBInstanceNetInfo", None),
    shape(Product::Rds, "DescribeDBInstanceAttribute", None),
    shape(Product::Sts, "AssumeRoleWithOIDC", None),
];

fn find(product: Product, action: &str) -> Option<&'static ActionShape> {
    SHAPES
        .iter()
        .find(|s| s.product == product && s.action == action)
}

/// The parameter that carries the region for `action`, if the action takes one (an action
/// missing from the table takes none).
pub(crate) fn region_param(product: Product, action: &str) -> Option<&'static str> {
    find(product, action).and_then(|s| s.region)
}

/// Whether the SDK sends parameter `name` of `action` in a form body (else in the query).
pub(crate) fn in_body(product: Product, action: &str, name: &str) -> bool {
    find(product, action).is_some_and(|s| s.body.contains(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_dbs_actions_with_a_region_parameter_get_one() {
        assert_eq!(
            region_param(Product::Dbs, "CreateBackupPlan"),
            Some("Region")
        );
        assert_eq!(
            region_param(Product::Dbs, "DescribeBackupPlanList"),
            Some("Region")
        );
        for action in [
            "ConfigureBackupPlan",
            "StartBackupPlan",
            "ReleaseBackupPlan",
        ] {
            assert_eq!(region_param(Product::Dbs, action), None, "{action}");
        }
        for action in [
            "AllocateInstancePublicConnection",
            "DescribeDBInstanceNetInfo",
            "DescribeDBInstanceAttribute",
        ] {
            assert_eq!(region_param(Product::Rds, action), None, "{action}");
        }
        assert_eq!(region_param(Product::Dbs, "UnknownAction"), None);
    }

    #[test]
    fn every_parameter_goes_in_the_query() {
        for s in SHAPES {
            assert!(s.body.is_empty(), "{}", s.action);
        }
        assert!(!in_body(
            Product::Dbs,
            "ConfigureBackupPlan",
            "SourceEndpointPassword"
        ));
    }

    #[test]
    fn each_action_appears_once() {
        for (i, a) in SHAPES.iter().enumerate() {
            assert!(
                SHAPES[i + 1..]
                    .iter()
                    .all(|b| (b.product, b.action) != (a.product, a.action)),
                "{}",
                a.action
            );
        }
    }
}
