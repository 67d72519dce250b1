//! The committed CRD YAML must be exactly what the Rust types generate.

use std::path::Path;

use alicloud_db_operator::crd::{all_crds, crd_file_name, crd_yaml};

#[test]
fn committed_crds_match_the_rust_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("crds")];
    let chart = root.join("charts/alicloud-db-operator");
    if chart.join("Chart.yaml").exists() {
        // The chart renders these as templates (templates/crds.yaml); `cargo xtask crds` writes both.
        dirs.push(chart.join("files/crds"));
    }
    for dir in dirs {
        for crd in all_crds() {
            let path = dir.join(crd_file_name(&crd));
            let committed = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask crds`", path.display()));
            let generated = crd_yaml(&crd).expect("CRD serialises");
            assert!(
                committed == generated,
                "{} differs from the CRD generated from src/crd/; run `cargo xtask crds`",
                path.display()
            );
        }
    }
}

#[test]
fn crds_have_the_documented_names_and_printer_columns() {
    for crd in all_crds() {
        let names = &crd.spec.names;
        assert_eq!(crd.spec.group, "db.alicloud.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(
            names.categories.as_deref(),
            Some(&["alicloud".to_string()][..])
        );
        let short = names.short_names.clone().unwrap_or_default();
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
        let columns: Vec<String> = version
            .additional_printer_columns
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.name)
            .collect();
        for expected in ["Ready", "Reason", "Age"] {
            assert!(
                columns.contains(&expected.to_string()),
                "{} lacks column {expected}",
                names.kind
            );
        }
        match names.kind.as_str() {
            "BackupPlan" => {
                assert_eq!(short, ["bp"]);
                assert!(columns.contains(&"Plan ID".to_string()));
            }
            "RdsConnection" => {
                assert_eq!(short, ["rdsconn"]);
                assert!(columns.contains(&"Endpoint".to_string()));
            }
            other => panic!("unexpected kind {other}"),
        }
    }
}

/// Every field of every schema has a description, so `kubectl explain` helps.
#[test]
fn every_schema_field_is_documented() {
    fn walk(path: &str, schema: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
            for (name, sub) in props {
                let p = format!("{path}.{name}");
                if p != ".apiVersion"
                    && p != ".kind"
                    && p != ".metadata"
                    && sub.get("description").is_none()
                {
                    missing.push(p.clone());
                }
                // Conditions are the standard meta/v1 type; they document themselves upstream.
                if !p.ends_with(".conditions") {
                    walk(&p, sub, missing);
                }
            }
        }
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    for crd in all_crds() {
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).expect("schema serialises");
        let mut missing = Vec::new();
        walk("", &schema["openAPIV3Schema"], &mut missing);
        assert!(
            missing.is_empty(),
            "{}: fields without description: {missing:?}",
            crd.spec.names.kind
        );
    }
}
