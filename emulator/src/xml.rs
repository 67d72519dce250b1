//! XML rendering of the JSON response bodies, for requests that ask for neither JSON
//! (`Accept: application/json`) nor `Format=JSON`: XML is the documented default `Format` of
//! Alibaba's RPC APIs.
//!
//! The rendering follows the shape of Alibaba's XML samples: one root element, one child
//! element per field (in the order of the JSON map: sorted by name), a list repeated as
//! elements named after its field (`{"Items":{"BackupPlanDetail":[a,b]}}` →
//! `<Items><BackupPlanDetail>a</BackupPlanDetail><BackupPlanDetail>b</BackupPlanDetail>
//! </Items>`), scalars as text, `null` as an empty element.

use serde_json::Value;

/// `<?xml ...?><root>...</root>` for a JSON value (an object, normally).
pub fn render(root: &str, value: &Value) -> String {
    let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    element(&mut out, root, value);
    out
}

/// Appends `<name>value</name>`; an array becomes one element per item, all named `name`.
fn element(out: &mut String, name: &str, value: &Value) {
    let name = tag_name(name);
    match value {
        Value::Array(items) => {
            for item in items {
                element(out, &name, item);
            }
        }
        Value::Object(fields) => {
            out.push_str(&format!("<{name}>"));
            for (k, v) in fields {
                element(out, k, v);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::Null => out.push_str(&format!("<{name}/>")),
        Value::String(s) => out.push_str(&format!("<{name}>{}</{name}>", escape(s))),
        Value::Bool(_) | Value::Number(_) => {
            out.push_str(&format!("<{name}>{value}</{name}>"));
        }
    }
}

/// A field name usable as an XML tag: characters other than letters, digits, `_`, `-`, `.`
/// become `_`, and a name not starting with a letter or `_` gets a leading `_`.
fn tag_name(name: &str) -> String {
    let mut tag: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !tag.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        tag.insert(0, '_');
    }
    tag
}

/// Escapes `& < > " '` for element text.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn objects_nest_lists_repeat_and_text_is_escaped() {
        let body = json!({
            "RequestId": "R1",
            "Success": true,
            "TotalElements": 2,
            "Items": {"BackupPlanDetail": [{"BackupPlanId": "a"}, {"BackupPlanId": "b"}]},
            "ErrMessage": "x < y & \"z\"",
            "OrderId": null,
        });
        assert_eq!(
            render("DescribeBackupPlanListResponse", &body),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><DescribeBackupPlanListResponse>\
             <ErrMessage>x &lt; y &amp; &quot;z&quot;</ErrMessage>\
             <Items><BackupPlanDetail><BackupPlanId>a</BackupPlanId></BackupPlanDetail>\
             <BackupPlanDetail><BackupPlanId>b</BackupPlanId></BackupPlanDetail></Items>\
             <OrderId/><RequestId>R1</RequestId><Success>true</Success>\
             <TotalElements>2</TotalElements></DescribeBackupPlanListResponse>"
        );
    }

    #[test]
    fn odd_field_names_become_valid_tags() {
        assert_eq!(tag_name("1st field"), "_1st_field");
        assert_eq!(tag_name("Items"), "Items");
    }
}
