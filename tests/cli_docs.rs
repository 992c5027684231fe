//! The docs' commands and clap's are the same: every visible subcommand clap knows
//! (walked from `Cli::command()`) is a row of README's "Commands" table and has its
//! page in the man pages; every row names one; and every `dynsup COMMAND` the docs show
//! (README.md and docs/*.md, in code) is a command clap knows. A command added to
//! src/cli.rs fails here until the docs have it.

use clap::CommandFactory;
use dynsup::cli::Cli;
use std::collections::BTreeSet;
use std::path::Path;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()))
}

/// Every subcommand a user can type (clap's own `help` and hidden ones left out).
fn clap_commands() -> BTreeSet<String> {
    let mut cmd = Cli::command();
    cmd.build();
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .map(|s| s.get_name().to_string())
        .collect()
}

/// The command of each row of README's `## Commands` table (`| \`dynsup NAME ...\` |`).
fn readme_table_commands() -> BTreeSet<String> {
    let readme = read("README.md");
    let start = readme
        .find("\n## Commands\n")
        .expect("README.md has a `## Commands` section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `dynsup "))
        .map(|rest| {
            rest.split([' ', '`'])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn readme_lists_exactly_the_commands_clap_knows() {
    let clap = clap_commands();
    let readme = readme_table_commands();
    let missing: Vec<_> = clap.difference(&readme).collect();
    let unknown: Vec<_> = readme.difference(&clap).collect();
    assert!(
        missing.is_empty(),
        "README.md's `## Commands` table lacks {missing:?} (clap has them)"
    );
    assert!(
        unknown.is_empty(),
        "README.md's `## Commands` table lists {unknown:?}, which clap does not know"
    );
}

#[test]
fn the_man_pages_have_every_command() {
    let clap = clap_commands();
    let main = String::from_utf8(dynsup::manpage::main_page().expect("render dynsup(1)"))
        .expect("roff is text");
    for name in &clap {
        let reference = format!("dynsup\\-{}(1)", name.replace('-', "\\-"));
        assert!(
            main.contains(&reference),
            "dynsup(1) does not list {reference}"
        );
    }
    let files: BTreeSet<String> = dynsup::manpage::pages()
        .expect("render the pages")
        .into_iter()
        .map(|(file, _)| file)
        .collect();
    let mut want: BTreeSet<String> = clap.iter().map(|c| format!("dynsup-{c}.1")).collect();
    want.insert("dynsup.1".to_string());
    assert_eq!(files, want);
}

/// `(file, command)` for every `dynsup COMMAND` in code in the docs: in inline code spans
/// and fenced blocks, the word after a `dynsup` (or `.../dynsup`) token, unless it is an
/// option or not a word. "There is no `dynsup X`" is allowed to name what is not there.
fn commands_in_docs() -> Vec<(String, String)> {
    let mut files = vec!["README.md".to_string()];
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    for entry in std::fs::read_dir(&docs).expect("docs/").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") {
            files.push(format!("docs/{name}"));
        }
    }
    let mut found = Vec::new();
    for file in files {
        let text = read(&file);
        // (snippet, whether `dynsup` may be anywhere in it or only where a shell runs it)
        let mut code = Vec::new();
        for (i, block) in text.split("```").enumerate() {
            if i % 2 == 1 {
                // A fenced block, without its comments.
                for line in block.lines() {
                    let line = line.split(" #").next().unwrap_or_default();
                    if !line.trim_start().starts_with('#') {
                        code.push((line.to_string(), true));
                    }
                }
                continue;
            }
            let spans = block.split('`').collect::<Vec<_>>();
            for (j, span) in spans.iter().enumerate().skip(1).step_by(2) {
                if spans[j - 1].ends_with("no ") {
                    continue; // "There is no `dynsup ps`"
                }
                code.push((span.to_string(), false));
            }
        }
        for (snippet, anywhere) in code {
            let tokens: Vec<&str> = snippet.split_whitespace().collect();
            for (k, pair) in tokens.windows(2).enumerate() {
                let is_dynsup = pair[0] == "dynsup" || pair[0].ends_with("/dynsup");
                // In prose's inline code (log lines, messages), only a command: first,
                // or after what runs one.
                let runs = anywhere
                    || k == 0
                    || ["sudo", "exec", "$", "$(", "&&", "||", "|", ";"].contains(&tokens[k - 1]);
                let word = pair[1];
                if is_dynsup
                    && runs
                    && word.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                    && !word.starts_with('-')
                {
                    found.push((file.clone(), word.to_string()));
                }
            }
        }
    }
    found
}

#[test]
fn every_command_the_docs_show_exists() {
    let clap = clap_commands();
    let found = commands_in_docs();
    assert!(
        found.len() > 20,
        "the scan found too few commands to be working: {found:?}"
    );
    let unknown: Vec<_> = found.iter().filter(|(_, c)| !clap.contains(c)).collect();
    assert!(
        unknown.is_empty(),
        "the docs show commands clap does not know: {unknown:?}"
    );
}
