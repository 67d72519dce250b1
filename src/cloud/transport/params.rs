//! RPC parameters of one call, with a `Debug` that shows names only (values may be secret).

/// Parameters whose values are secret: never logged, scrubbed from error messages.
const SECRET_PARAMS: &[&str] = &["SourceEndpointPassword", "OIDCToken"];

/// Ordered RPC parameters (`key=value` pairs; where each travels is decided by `shape`).
#[derive(Clone, Default)]
pub(crate) struct Params(Vec<(&'static str, String)>);

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Params {
    /// Empty parameters.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds `key=value`.
    pub(crate) fn set(mut self, key: &'static str, value: impl ToString) -> Self {
        self.0.push((key, value.to_string()));
        self
    }

    /// Adds `key=value` when `value` is present and, for strings, not empty.
    pub(crate) fn opt<T: ToString>(self, key: &'static str, value: Option<T>) -> Self {
        match value.map(|v| v.to_string()).filter(|v| !v.is_empty()) {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    /// Adds `key=value` unless `value` is empty.
    pub(crate) fn non_empty(self, key: &'static str, value: &str) -> Self {
        self.opt(key, Some(value))
    }

    /// Whether a parameter named `key` is present.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| *k == key)
    }

    /// Values of secret parameters (for scrubbing them from anything the service echoes).
    pub(crate) fn secret_values(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(|(k, _)| SECRET_PARAMS.contains(k))
            .map(|(_, v)| v.as_str())
    }

    /// The pairs as owned strings, for signing and encoding.
    pub(crate) fn to_pairs(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }
}

impl From<Vec<(&'static str, String)>> for Params {
    fn from(v: Vec<(&'static str, String)>) -> Self {
        Self(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_names_not_values() {
        let p = Params::new()
            .set("SourceEndpointPassword", "hunter2")
            .opt("Port", Some(3306))
            .opt::<String>("Missing", None)
            .non_empty("Empty", "");
        let s = format!("{p:?}");
        assert_eq!(s, r#"["SourceEndpointPassword", "Port"]"#);
        assert!(p.has("Port"));
        assert!(!p.has("Empty"));
    }
}
