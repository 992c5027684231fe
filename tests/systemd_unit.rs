//! The shipped systemd unit: it says what the docs promise, and `systemd-analyze
//! verify` accepts it (with ExecStart pointing at the binary under test, since the
//! installed path does not exist here).

use std::path::Path;
use std::process::Command;

fn unit() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dynsup.service");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn unit_has_the_promised_settings() {
    let unit = unit();
    for line in [
        "Type=notify",
        "ExecStart=/usr/local/bin/dynsup daemon --config /etc/dynsup/dynsup.toml --socket /run/dynsup/dynsup.sock",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartPreventExitStatus=2",
        "KillMode=mixed",
        // The daemon raises its soft limit to this hard limit; workers keep 1024.
        "LimitNOFILE=1024:524288",
        "RuntimeDirectory=dynsup",
        "NoNewPrivileges=yes",
        "ProtectSystem=full",
        "Delegate=yes",
    ] {
        assert!(
            unit.lines().any(|l| l.trim() == line),
            "config/dynsup.service lacks `{line}`"
        );
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("systemd-analyze is missing: install the `systemd` package (.ci/run does)");
    let dir = std::env::temp_dir().join(format!("dynsup-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let unit = unit().replace("/usr/local/bin/dynsup", env!("CARGO_BIN_EXE_dynsup"));
    let path = dir.join("dynsup.service");
    std::fs::write(&path, unit).expect("write the unit copy");
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .current_dir(&dir)
        .output()
        .expect("run systemd-analyze");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("dynsup.service"),
        "systemd-analyze verify failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        stderr
    );
}
