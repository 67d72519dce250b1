//! `cargo` as a child of xtask, with the environment a shell would give it.

use std::process::Command;

/// `cargo` (the one that runs this xtask, else the one on `PATH`) without the variables that
/// `cargo run` and `cargo test` set for xtask itself (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`,
/// ...). Build scripts watch some of them (`ring` does), so a build started from xtask would
/// otherwise rebuild them, and every crate above them, and so would the next build from a shell.
pub fn command() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if set_for_xtask_itself(key) {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Whether cargo sets `key` for the crate it builds, runs or tests (not configuration).
fn set_for_xtask_itself(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || key.starts_with("CARGO_MANIFEST_")
        || key.starts_with("CARGO_BIN_EXE_")
        || matches!(
            key,
            "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "OUT_DIR"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_cargo_sets_for_the_crate_is_removed() {
        for key in [
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "CARGO_BIN_EXE_xtask",
            "OUT_DIR",
        ] {
            assert!(set_for_xtask_itself(key), "{key}");
        }
        for key in [
            "CARGO_TARGET_DIR",
            "CARGO_HOME",
            "CARGO_TERM_COLOR",
            "CARGO",
            "RUSTFLAGS",
        ] {
            assert!(!set_for_xtask_itself(key), "{key}");
        }
    }
}
