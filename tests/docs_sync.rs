//! Keeps the documents and the architecture honest: every wire command and error kind is
//! in docs/PROTOCOL.md, every config key in docs/CONFIG.md, README's test command is the
//! one .ci/run runs, and the pure core names no OS crate.

use dynsup::protocol::{Cmd, ErrorKind};
use std::path::{Path, PathBuf};

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()))
}

#[test]
fn protocol_doc_names_every_command_and_error_kind() {
    let doc = read("docs/PROTOCOL.md");
    for cmd in Cmd::ALL.map(Cmd::name) {
        assert!(
            doc.contains(&format!("### `{cmd}`")),
            "docs/PROTOCOL.md has no section for `{cmd}`"
        );
    }
    for kind in ErrorKind::ALL {
        assert!(
            doc.contains(&format!("| `{}` |", kind.as_str())),
            "docs/PROTOCOL.md does not document error kind `{}`",
            kind.as_str()
        );
    }
}

#[test]
fn config_doc_names_every_key() {
    let doc = read("docs/CONFIG.md");
    for key in dynsup::config::KEYS {
        let (section, field) = key.split_once('.').expect("section.key");
        let field = field.rsplit('.').next().expect("a field");
        let heading = match section {
            "supervisor" => "## `[supervisor]`",
            "templates" => "## `[templates.NAME]`",
            "children" => "## `[[children]]`",
            "cluster" => "## `[cluster]`",
            other => panic!("unknown section {other}"),
        };
        let start = doc
            .find(heading)
            .unwrap_or_else(|| panic!("docs/CONFIG.md lacks {heading}"));
        let rest = &doc[start + heading.len()..];
        let section_text = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
        assert!(
            section_text.contains(&format!("| `{field}` |")),
            "docs/CONFIG.md section {heading} does not document `{field}`"
        );
    }
}

#[test]
fn readme_test_command_is_what_ci_runs() {
    let readme = read("README.md");
    let ci = read(".ci/run");
    let script = read("scripts/test");
    let command = "scripts/test";
    assert!(
        readme.contains(&format!("```sh\n{command}\n```")),
        "README.md must show `{command}`"
    );
    assert!(
        ci.lines().any(|l| l.trim() == command),
        ".ci/run must run `{command}` exactly"
    );
    assert!(
        script
            .lines()
            .any(|l| l.trim().starts_with("exec cargo test --workspace")),
        "scripts/test must end by running `cargo test --workspace`"
    );
    assert!(readme.contains("target/release/dynsup daemon --config config/dynsup.toml"));
}

#[test]
fn the_core_makes_no_syscalls() {
    let forbidden = [
        "nix::",
        "mio::",
        "libc::",
        "signal_hook",
        "std::os",
        "std::fs",
        "std::process",
        "std::net",
        "std::thread",
        "Instant::now",
        "SystemTime::now",
    ];
    let mut files = Vec::new();
    collect_rs(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core"),
        &mut files,
    );
    assert!(
        files.len() >= 6,
        "expected the core's files, found {files:?}"
    );
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable source");
        for word in forbidden {
            assert!(
                !text.contains(word),
                "{} mentions `{word}`: the core must stay pure",
                file.display()
            );
        }
    }
}

/// Only the outermost layer knows the wire: inside the core, `replies.rs` alone names
/// `protocol` (its scenario tests read replies, so they may too).
#[test]
fn inside_the_core_only_replies_knows_the_wire() {
    let mut files = Vec::new();
    collect_rs(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core"),
        &mut files,
    );
    for file in files {
        let path = file.to_string_lossy();
        if path.ends_with("supervisor/replies.rs") || path.contains("supervisor/tests") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable source");
        assert!(
            !text.contains("protocol::"),
            "{} names the wire (`protocol::`); only supervisor/replies.rs may",
            file.display()
        );
    }
}

#[test]
fn unsafe_lives_only_in_spawn_and_is_justified() {
    let mut files = Vec::new();
    collect_rs(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable source");
        let has_unsafe_block = text.lines().any(|l| l.contains("unsafe {"));
        if file.ends_with("os/spawn.rs") {
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.contains("unsafe {"))
            {
                let before: Vec<&str> = text.lines().take(i).collect();
                let justified = before.iter().rev().take(12).any(|l| l.contains("SAFETY:"));
                assert!(
                    justified,
                    "os/spawn.rs:{}: unsafe block without a SAFETY: comment above it: {line}",
                    i + 1
                );
            }
        } else {
            assert!(
                !has_unsafe_block,
                "{} has an unsafe block; keep unsafe in os/spawn.rs",
                file.display()
            );
        }
    }
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
