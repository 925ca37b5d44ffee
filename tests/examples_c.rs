//! The model answers in `examples/c/`: compiled with the system's `cc` (skipped, and said
//! so, where there is none) and graded as a teacher would grade them: the server with
//! `upcase check --ascii --server-cmd`, the client with `upcase check-client`. Every
//! counted case must pass.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles `examples/c/NAME.c` into a temporary folder; `None` when there is no `cc`.
fn build(name: &str) -> Option<PathBuf> {
    if Command::new("cc").arg("--version").output().is_err() {
        eprintln!("skipped: no cc (the C model answers were not compiled or graded)");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("upcase-examples-c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/c")
        .join(format!("{name}.c"));
    let out = dir.join(name);
    let status = Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap();
    assert!(status.success(), "cc failed on {}", src.display());
    Some(out)
}

fn upcase() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_upcase"));
    cmd.env_remove("UPCASE_ADDR").env_remove("RUST_LOG");
    cmd
}

#[test]
fn the_c_server_passes_every_case_with_ascii() {
    let Some(server) = build("upcase_server") else {
        return;
    };
    let out = upcase()
        .args([
            "check",
            "--ascii",
            "--json",
            "--timeout",
            "3s",
            "--server-cmd",
        ])
        .arg(format!("'{}' {{port}}", server.display()))
        .output()
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["failed"], 0);
    assert_eq!(v["passed"], upcase::check::CASES.len() - 3);
    assert_eq!(v["informational"], 3);
    assert!(v["server_exit"].is_null(), "{v:#}");
}

#[test]
fn the_c_client_passes_every_case() {
    let Some(client) = build("upcase_client") else {
        return;
    };
    let out = upcase()
        .args(["check-client", "--json", "--timeout", "3s", "--"])
        .arg(&client)
        .args(["{host}", "{port}"])
        .output()
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["failed"], 0);
    // It handles every line, so the informational case passes too.
    let several = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "several-lines")
        .unwrap();
    assert_eq!(several["status"], "pass");
}

#[test]
fn the_model_answers_are_short_enough_to_read() {
    for name in ["upcase_server.c", "upcase_client.c"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/c")
            .join(name);
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < 200, "{name}: {lines} lines");
    }
}
