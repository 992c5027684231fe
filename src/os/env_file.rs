//! A template's `env_file`s: systemd's `EnvironmentFile=` syntax, read by the daemon
//! each time a worker (or its health check) starts, so that a changed file applies at
//! the next start or restart.
//!
//! Read in the daemon, before the clone (the child shares the daemon's memory until it
//! execs and must not allocate), as a small local read in the loop, as systemd reads
//! them: only a regular file (a symlink to one is followed), checked with `stat` before
//! it is opened and `fstat` after, opened with `O_NONBLOCK` (a FIFO swapped in cannot
//! block the loop), and at most [`MAX_BYTES`] read.
//!
//! The syntax ([`parse`]), one assignment per line:
//!
//! - `KEY=VALUE`; whitespace around the key and around an unquoted value is dropped;
//!   an optional `export ` before the key is accepted (so a file shell scripts `source`
//!   works too);
//! - the key: a letter or `_`, then letters, digits and `_`;
//! - a value in single quotes is taken as written; in double quotes, `\"`, `\\`, `\$`
//!   and `` \` `` stand for the character after the backslash (any other backslash is
//!   kept); a quoted value ends on its line, nothing may follow the closing quote;
//! - lines that are empty or whose first non-blank character is `#` or `;` are
//!   comments; a `#` later in a line is part of the value;
//! - anything else (no `=`, a bad key, an unclosed quote, a NUL byte, text that is not
//!   UTF-8) is an error naming the file and line.

use super::small_file::{self, Unreadable};
use crate::core::EnvFile;
use std::path::Path;

/// The largest env file read: 1 MiB. A larger one is refused.
pub const MAX_BYTES: u64 = 1 << 20;

/// The variables of `files`, in order (a later assignment of a key wins). An optional
/// file (`-/path`) that does not exist adds nothing. The error names the file, and the
/// line for a syntax error: `/etc/dynsup/game.env:3: ...`.
pub fn read_all(files: &[EnvFile]) -> Result<Vec<(String, String)>, String> {
    let mut vars = Vec::new();
    for file in files {
        let path = Path::new(&file.path);
        match read_bounded(path) {
            Ok(text) => vars.extend(parse(&text, &file.path)?),
            Err(Unreadable::Missing) if file.optional => {}
            Err(Unreadable::Missing) => {
                return Err(format!(
                    "env_file {}: no such file (write -{} to make it optional)",
                    file.path, file.path
                ))
            }
            Err(Unreadable::Why(why)) => return Err(format!("env_file {}: {why}", file.path)),
        }
    }
    Ok(vars)
}

/// Parse the text of an env file; `file` names it in errors (`FILE:LINE: what`).
pub fn parse(text: &[u8], file: &str) -> Result<Vec<(String, String)>, String> {
    let mut vars = Vec::new();
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        let at = |what: String| format!("{file}:{}: {what}", index + 1);
        if line.contains(&0) {
            return Err(at("contains a NUL byte".to_string()));
        }
        let line = std::str::from_utf8(line).map_err(|_| at("is not UTF-8 text".to_string()))?;
        let line = line.strip_suffix('\r').unwrap_or(line).trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(at(format!("expected KEY=VALUE, found {line:?}")));
        };
        let key = key.trim();
        let key = key.strip_prefix("export ").map_or(key, str::trim_start);
        if !is_variable_name(key) {
            return Err(at(format!(
                "{key:?} is not a variable name (a letter or _, then letters, digits and _)"
            )));
        }
        let value = unquote(value.trim()).map_err(at)?;
        vars.push((key.to_string(), value));
    }
    Ok(vars)
}

fn is_variable_name(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A value as written after `=` (trimmed): quoted in `'...'` or `"..."`, or bare.
fn unquote(value: &str) -> Result<String, String> {
    let quote = match value.chars().next() {
        Some(q @ ('\'' | '"')) => q,
        _ => return Ok(value.to_string()),
    };
    let mut out = String::with_capacity(value.len());
    let mut chars = value[1..].chars();
    loop {
        match chars.next() {
            None => {
                return Err(format!(
                    "the value has no closing {quote} on this line (a quoted value is one line)"
                ))
            }
            Some(c) if c == quote => break,
            Some('\\') if quote == '"' => match chars.next() {
                Some(c @ ('"' | '\\' | '$' | '`')) => out.push(c),
                Some(c) => {
                    out.push('\\');
                    out.push(c);
                }
                None => out.push('\\'),
            },
            Some(c) => out.push(c),
        }
    }
    let rest = chars.as_str().trim();
    if !rest.is_empty() {
        return Err(format!(
            "{rest:?} follows the closing {quote}; quote the whole value"
        ));
    }
    Ok(out)
}

/// The env file at `path`, at most [`MAX_BYTES`] ([`small_file::read`]).
fn read_bounded(path: &Path) -> Result<Vec<u8>, Unreadable> {
    small_file::read(path, MAX_BYTES, "an env file")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn vars(text: &str) -> Vec<(String, String)> {
        parse(text.as_bytes(), "t.env").unwrap_or_else(|e| panic!("{e}"))
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn assignments_comments_and_blank_lines() {
        let text = "# a comment\n; another\n\n  A=1\nB = two words \nexport C=3\r\nD=\nE=x#y\n";
        assert_eq!(
            vars(text),
            [
                pair("A", "1"),
                pair("B", "two words"),
                pair("C", "3"),
                pair("D", ""),
                pair("E", "x#y")
            ]
        );
    }

    #[test]
    fn quotes() {
        let text =
            "A='single $HOME \\n'\nB=\"dq \\\"in\\\" \\\\ \\$x \\n\"\nC=\"\"\nD=' spaced '\n";
        assert_eq!(
            vars(text),
            [
                pair("A", "single $HOME \\n"),
                pair("B", "dq \"in\" \\ $x \\n"),
                pair("C", ""),
                pair("D", " spaced "),
            ]
        );
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let bad = |text: &str| parse(text.as_bytes(), "/etc/x.env").unwrap_err();
        let e = bad("A=1\n\noops\n");
        assert_eq!(e, "/etc/x.env:3: expected KEY=VALUE, found \"oops\"");
        let e = bad("1A=1\n");
        assert!(
            e.starts_with("/etc/x.env:1: \"1A\" is not a variable name"),
            "{e}"
        );
        let e = bad("=1\n");
        assert!(
            e.starts_with("/etc/x.env:1: \"\" is not a variable name"),
            "{e}"
        );
        let e = bad("A=1\nB=\"open\n");
        assert!(
            e.starts_with("/etc/x.env:2: the value has no closing \""),
            "{e}"
        );
        let e = bad("B='a' b\n");
        assert!(
            e.starts_with("/etc/x.env:1: \"b\" follows the closing '"),
            "{e}"
        );
        let e = bad("A=a\0b\n");
        assert_eq!(e, "/etc/x.env:1: contains a NUL byte");
        let e = parse(b"A=\xff\n", "f").unwrap_err();
        assert_eq!(e, "f:1: is not UTF-8 text");
    }

    #[test]
    fn missing_files_are_fine_only_when_optional() {
        let missing = |optional| EnvFile {
            path: "/nonexistent/dynsup-test.env".to_string(),
            optional,
        };
        assert_eq!(read_all(&[missing(true)]), Ok(Vec::new()));
        let e = read_all(&[missing(false)]).unwrap_err();
        assert!(
            e.starts_with("env_file /nonexistent/dynsup-test.env: no such file"),
            "{e}"
        );
    }

    #[test]
    fn a_directory_is_refused_and_files_apply_in_order() {
        let dir = std::env::temp_dir().join(format!("dynsup-env-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.env");
        let b = dir.join("b.env");
        fs::write(&a, "X=1\nY=1\n").unwrap();
        fs::write(&b, "Y=2\n").unwrap();
        let file = |p: &Path| EnvFile {
            path: p.display().to_string(),
            optional: false,
        };
        assert_eq!(
            read_all(&[file(&a), file(&b)]),
            Ok(vec![pair("X", "1"), pair("Y", "1"), pair("Y", "2")])
        );
        let e = read_all(&[file(&dir)]).unwrap_err();
        assert!(e.contains("is not a regular file (a directory)"), "{e}");
        fs::write(&a, vec![b'#'; MAX_BYTES as usize + 1]).unwrap();
        let e = read_all(&[file(&a)]).unwrap_err();
        assert!(e.contains("is larger than 1 MiB"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
