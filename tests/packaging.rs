//! What ships, read without building it (CI's scripts/package-check builds the .deb and
//! checks its contents; no docker here): the Dockerfile is a multi-stage build whose
//! runtime stage runs `dynsup daemon` as an exec-form ENTRYPOINT that the CLI accepts,
//! with the socket set explicitly, a HEALTHCHECK of `dynsup health`, a non-root user,
//! and every file it copies from the repository present; Cargo.toml's cargo-deb metadata
//! installs both binaries, the unit, the config as a conffile, and assets that exist or
//! that scripts/package makes; .ci/run runs the package check after the tests.

use clap::Parser;
use dynsup::cli::{Cli, Command};
use std::path::{Path, PathBuf};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    let full = repo().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()))
}

/// The Dockerfile's instructions: (keyword, rest), continuation lines joined, comments
/// and blank lines dropped.
fn instructions() -> Vec<(String, String)> {
    let text = read("Dockerfile");
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    joined
        .into_iter()
        .map(|line| {
            let (keyword, rest) = line.split_once(' ').unwrap_or((&line, ""));
            (keyword.to_ascii_uppercase(), rest.trim().to_string())
        })
        .collect()
}

/// An exec-form argument list (`["a", "b"]`).
fn exec_form(what: &str, rest: &str) -> Vec<String> {
    serde_json::from_str(rest)
        .unwrap_or_else(|e| panic!("{what} is not in exec form (a JSON array): {rest}: {e}"))
}

#[test]
fn dockerfile_builds_in_one_stage_and_runs_dynsup_in_a_slim_one() {
    let all = instructions();
    let froms: Vec<&String> = all
        .iter()
        .filter(|(k, _)| k == "FROM")
        .map(|(_, rest)| rest)
        .collect();
    assert_eq!(froms.len(), 2, "two stages: {froms:?}");
    let (builder, build_stage) = froms[0]
        .split_once(" AS ")
        .or_else(|| froms[0].split_once(" as "))
        .expect("the first stage is named (FROM image AS name)");
    assert!(
        builder.starts_with("rust:"),
        "built with a rust image: {builder}"
    );
    assert!(
        froms[1].starts_with("debian:bookworm-slim"),
        "runs on debian:bookworm-slim: {}",
        froms[1]
    );
    // The runtime stage: everything after the second FROM.
    let second = all.iter().rposition(|(k, _)| k == "FROM").expect("a FROM");
    let runtime = &all[second..];
    let copies_binaries = runtime.iter().any(|(k, rest)| {
        k == "COPY"
            && rest.starts_with(&format!("--from={build_stage} "))
            && rest.contains("dynsup-worker")
            && rest.contains("dynsup ")
    });
    assert!(
        copies_binaries,
        "the runtime stage copies both binaries from {build_stage}"
    );

    // Every file copied from the build context exists in the repository.
    let mut copied_to = Vec::new();
    for (k, rest) in &all {
        if k != "COPY" || rest.starts_with("--from=") {
            continue;
        }
        let parts: Vec<&str> = rest.split_whitespace().collect();
        let (dest, sources) = parts.split_last().expect("COPY SRC... DEST");
        for source in sources {
            assert!(
                repo().join(source).exists(),
                "the Dockerfile copies {source}, which is not in the repository"
            );
        }
        copied_to.push(dest.to_string());
    }

    let entrypoint = runtime
        .iter()
        .find(|(k, _)| k == "ENTRYPOINT")
        .map(|(_, rest)| exec_form("ENTRYPOINT", rest))
        .expect("an ENTRYPOINT");
    assert_eq!(entrypoint[..2], ["dynsup", "daemon"], "{entrypoint:?}");
    let cli = Cli::try_parse_from(&entrypoint)
        .unwrap_or_else(|e| panic!("the CLI refuses the ENTRYPOINT {entrypoint:?}: {e}"));
    let Some(Command::Daemon { .. }) = cli.command else {
        panic!("the ENTRYPOINT is not `dynsup daemon`");
    };
    let config = cli.config.expect("the ENTRYPOINT passes --config");
    assert!(
        copied_to.iter().any(|dest| Path::new(dest) == config),
        "{} is not copied into the image ({copied_to:?})",
        config.display()
    );
    let socket = cli.socket.expect("the ENTRYPOINT sets --socket explicitly");
    let env_socket = runtime
        .iter()
        .find_map(|(k, rest)| (k == "ENV").then(|| rest.strip_prefix("DYNSUP_SOCKET=")))
        .flatten()
        .expect("ENV DYNSUP_SOCKET=..., so `docker exec ... dynsup` finds the socket");
    assert_eq!(Path::new(env_socket), socket);

    let healthcheck = runtime
        .iter()
        .find(|(k, _)| k == "HEALTHCHECK")
        .map(|(_, rest)| rest.clone())
        .expect("a HEALTHCHECK");
    let (_, command) = healthcheck
        .split_once("CMD ")
        .expect("HEALTHCHECK ... CMD [...]");
    assert_eq!(exec_form("HEALTHCHECK CMD", command), ["dynsup", "health"]);

    let user = runtime
        .iter()
        .rfind(|(k, _)| k == "USER")
        .map(|(_, rest)| rest.as_str())
        .expect("a USER");
    assert!(user != "root" && user != "0", "runs as root: USER {user}");
}

#[test]
fn dockerignore_keeps_the_build_output_out_of_the_context() {
    let ignore = read(".dockerignore");
    assert!(ignore
        .lines()
        .any(|l| l.trim().trim_end_matches('/') == "target"));
}

/// `[package.metadata.deb]` of Cargo.toml.
fn deb_metadata() -> toml::Table {
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml parses");
    manifest["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]")
        .clone()
}

#[test]
fn the_deb_installs_both_binaries_the_unit_and_the_config_as_a_conffile() {
    let deb = deb_metadata();
    let script = read("scripts/package");
    let assets: Vec<(String, String)> = deb["assets"]
        .as_array()
        .expect("assets")
        .iter()
        .map(|a| {
            let a = a.as_array().expect("[source, dest, mode]");
            (
                a[0].as_str().expect("source").to_string(),
                a[1].as_str().expect("dest").to_string(),
            )
        })
        .collect();
    let installs = |source: &str, dest: &str| assets.iter().any(|(s, d)| s == source && d == dest);
    assert!(installs("target/release/dynsup", "usr/bin/"));
    assert!(installs("target/release/dynsup-worker", "usr/bin/"));
    assert!(installs("config/dynsup.toml", "etc/dynsup/dynsup.toml"));
    assert!(installs(
        "target/deb-assets/dynsup.service",
        "lib/systemd/system/dynsup.service"
    ));
    let conffiles: Vec<&str> = deb["conf-files"]
        .as_array()
        .expect("conf-files")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert_eq!(conffiles, ["/etc/dynsup/dynsup.toml"]);

    for (source, _) in &assets {
        if let Some(made) = source.strip_prefix("target/deb-assets/") {
            // Made by scripts/package: it names the file (or, for a glob, its folder).
            let named = made.split('*').next().unwrap_or(made);
            assert!(
                script.contains(&format!("$assets/{named}"))
                    || script.contains(&format!("$assets/{}", named.trim_end_matches('/'))),
                "scripts/package does not make {source}"
            );
        } else if let Some(bin) = source.strip_prefix("target/release/") {
            assert!(
                ["dynsup", "dynsup-worker"].contains(&bin),
                "{source} is not a binary the workspace builds"
            );
        } else if let Some((dir, suffix)) = source.split_once('*') {
            let found = std::fs::read_dir(repo().join(dir))
                .unwrap_or_else(|e| panic!("{dir}: {e}"))
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(suffix));
            assert!(found, "{source} matches no file");
        } else {
            assert!(
                repo().join(source).exists(),
                "{source} is not in the repository"
            );
        }
    }
}

#[test]
fn ci_checks_the_package_after_the_tests() {
    let ci = read(".ci/run");
    let lines: Vec<&str> = ci.lines().map(str::trim).collect();
    let tests = lines.iter().position(|l| *l == "scripts/test");
    let package = lines.iter().position(|l| *l == "scripts/package-check");
    assert!(
        matches!((tests, package), (Some(t), Some(p)) if t < p),
        ".ci/run must run scripts/package-check after scripts/test"
    );
    for script in ["scripts/package", "scripts/package-check"] {
        let path: PathBuf = repo().join(script);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).expect(script).permissions(),
        );
        assert!(mode & 0o111 != 0, "{script} is not executable");
    }
}
