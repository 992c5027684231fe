//! Config text for the daemon: TOML literals, and snippets shared by several test files.

/// A TOML string literal for a path or any other text.
pub fn toml_str(s: &str) -> String {
    format!("{s:?}")
}
