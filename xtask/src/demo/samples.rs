//! What the demo reads from `examples/`: the account the credentials Secret holds, the RDS
//! instances the objects name (the emulator is seeded with both), and the objects to wait for.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// A `BackupPlan` or `RdsConnection` of the samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleObject {
    /// `BackupPlan` or `RdsConnection`.
    pub kind: String,
    /// Namespace, `default` when the sample names none (the kubeconfig's namespace).
    pub namespace: String,
    /// Object name.
    pub name: String,
}

/// Everything the demo needs to know about `examples/`.
#[derive(Debug)]
pub struct Samples {
    /// The folder applied with `kubectl apply -f`.
    pub dir: PathBuf,
    /// AccessKey ID of the credentials Secret.
    pub access_key_id: String,
    /// AccessKey secret of the credentials Secret.
    pub access_key_secret: String,
    /// `(region, instance id)` of every RDS instance the samples use.
    pub rds_instances: Vec<(String, String)>,
    /// The custom resources, in file order.
    pub objects: Vec<SampleObject>,
    /// The Secrets (credentials, passwords), in file order.
    pub secrets: Vec<SampleObject>,
}

impl Samples {
    /// Reads every `*.yaml` in `dir`.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("read {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        let mut docs = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("read {}", file.display()))?;
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value: Value = serde::Deserialize::deserialize(doc)
                    .with_context(|| format!("parse {}", file.display()))?;
                if !value.is_null() {
                    docs.push(value);
                }
            }
        }
        Self::from_documents(dir, &docs)
    }

    fn from_documents(dir: &Path, docs: &[Value]) -> anyhow::Result<Self> {
        let text =
            |v: &Value, path: &str| v.pointer(path).and_then(Value::as_str).map(str::to_owned);
        let mut keys = None;
        let mut rds_instances = Vec::new();
        let mut objects = Vec::new();
        let mut secrets = Vec::new();
        for doc in docs {
            let kind = text(doc, "/kind").unwrap_or_default();
            let object = SampleObject {
                kind: kind.clone(),
                namespace: text(doc, "/metadata/namespace").unwrap_or_else(|| "default".into()),
                name: text(doc, "/metadata/name").unwrap_or_default(),
            };
            match kind.as_str() {
                "Secret" => {
                    secrets.push(object);
                    let id = secret_value(doc, "accessKeyId");
                    let secret = secret_value(doc, "accessKeySecret");
                    if let (Some(id), Some(secret)) = (id, secret) {
                        keys.get_or_insert((id, secret));
                    }
                }
                "BackupPlan" | "RdsConnection" => {
                    let instance = if kind == "RdsConnection" {
                        text(doc, "/spec/region").zip(text(doc, "/spec/dbInstanceId"))
                    } else if text(doc, "/spec/source/instanceType").as_deref() == Some("RDS") {
                        text(doc, "/spec/source/region").zip(text(doc, "/spec/source/instanceId"))
                    } else {
                        None
                    };
                    if let Some(instance) = instance.filter(|i| !rds_instances.contains(i)) {
                        rds_instances.push(instance);
                    }
                    objects.push(object);
                }
                _ => {}
            }
        }
        let Some((access_key_id, access_key_secret)) = keys else {
            bail!(
                "no Secret with accessKeyId and accessKeySecret in {}",
                dir.display()
            );
        };
        if objects.is_empty() {
            bail!("no BackupPlan or RdsConnection in {}", dir.display());
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            access_key_id,
            access_key_secret,
            rds_instances,
            objects,
            secrets,
        })
    }
}

/// A key of a Secret manifest, from `stringData` or (base64) `data`.
fn secret_value(doc: &Value, key: &str) -> Option<String> {
    if let Some(v) = doc
        .pointer(&format!("/stringData/{key}"))
        .and_then(Value::as_str)
    {
        return Some(v.to_owned());
    }
    use base64::Engine as _;
    let encoded = doc
        .pointer(&format!("/data/{key}"))
        .and_then(Value::as_str)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_samples_name_one_account_one_instance_and_three_objects() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let samples = Samples::read(&dir).expect("examples/ parse");
        assert_eq!(samples.access_key_id, "LTAI-example-id");
        assert_eq!(samples.access_key_secret, "example-secret");
        assert_eq!(
            samples.rds_instances,
            vec![("cn-hangzhou".to_owned(), "rm-bp1orders0001".to_owned())]
        );
        let names: Vec<&str> = samples.objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.contains(&"analytics-pg") && names.contains(&"orders-db-public"));
        assert!(samples.objects.iter().all(|o| o.namespace == "default"));
    }

    #[test]
    fn base64_data_is_read_like_string_data() {
        let docs = vec![
            serde_json::json!({"kind": "Secret", "data": {
                "accessKeyId": "YWs=", "accessKeySecret": "c2VjcmV0"}}),
            serde_json::json!({"kind": "RdsConnection", "metadata": {"name": "c", "namespace": "ns"},
                "spec": {"region": "r", "dbInstanceId": "rm-1"}}),
        ];
        let samples = Samples::from_documents(Path::new("x"), &docs).expect("valid");
        assert_eq!(
            (
                samples.access_key_id.as_str(),
                samples.access_key_secret.as_str()
            ),
            ("ak", "secret")
        );
        assert_eq!(samples.objects[0].namespace, "ns");
    }
}
