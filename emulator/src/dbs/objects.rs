//! `BackupObjects` as DescribeBackupPlanList returns it: re-serialised by DBS, not echoed.

use serde_json::Value;

/// Keys of a backup object in the order DBS's documentation writes them.
const KEY_ORDER: &[&str] = &["DBName", "SchemaName", "TableIncludes", "TableExcludes"];
/// Keys DBS fills in with an empty list when the caller left them out (our choice: the
/// documented Describe sample always shows both).
const EMPTY_LIST_DEFAULTS: &[&str] = &["TableIncludes", "TableExcludes"];

/// Re-serialises a `BackupObjects` JSON array: compact, each object's keys in DBS's order
/// (other keys after them, sorted), missing `TableIncludes`/`TableExcludes` added as `[]`.
/// A value that is not a JSON array is returned unchanged.
pub fn normalise(raw: &str) -> String {
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(raw) else {
        return raw.to_string();
    };
    let rendered: Vec<String> = items.iter().map(object).collect();
    format!("[{}]", rendered.join(","))
}

/// One backup object, re-serialised.
fn object(item: &Value) -> String {
    let Value::Object(fields) = item else {
        return item.to_string();
    };
    let empty = Value::Array(Vec::new());
    let mut parts = Vec::new();
    for key in KEY_ORDER {
        match fields.get(*key) {
            Some(v) => parts.push(field(key, v)),
            None if EMPTY_LIST_DEFAULTS.contains(key) => parts.push(field(key, &empty)),
            None => {}
        }
    }
    for (key, v) in fields {
        if !KEY_ORDER.contains(&key.as_str()) {
            parts.push(field(key, v));
        }
    }
    format!("{{{}}}", parts.join(","))
}

/// `"key":value`, compact.
fn field(key: &str, value: &Value) -> String {
    format!("{}:{value}", Value::String(key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn backup_objects_are_described_in_dbs_order_with_empty_table_lists() {
        let cases = [
            (
                r#"[{"DBName":"app"}]"#,
                r#"[{"DBName":"app","TableIncludes":[],"TableExcludes":[]}]"#,
            ),
            (
                r#"[ {"TableExcludes": [{"TableName":"tmp"}], "DBName": "app"} ]"#,
                r#"[{"DBName":"app","TableIncludes":[],"TableExcludes":[{"TableName":"tmp"}]}]"#,
            ),
            (
                r#"[{"TableIncludes":[{"TableName":"t"}],"SchemaName":"dbo","DBName":"crm","NewDBName":"x"}]"#,
                r#"[{"DBName":"crm","SchemaName":"dbo","TableIncludes":[{"TableName":"t"}],"TableExcludes":[],"NewDBName":"x"}]"#,
            ),
            ("[]", "[]"),
            ("not json", "not json"),
        ];
        for (sent, described) in cases {
            assert_eq!(normalise(sent), described, "{sent}");
        }
    }
}
