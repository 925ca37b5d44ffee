//! The deployment files in `deploy/` are valid for the programs that read them: each is
//! checked by that program's own validator where it is installed (`systemd-analyze verify`,
//! `haproxy -c`, `nginx -t`), and a copy with one deliberate mistake must be rejected, so a
//! validator that accepts anything cannot pass the test. Where a program is missing, the test
//! says "skipped: …" and passes (`.ci/run` installs them).
//!
//! The properties the deployment relies on (PROXY v2 to the backends, the ping check, the
//! readiness check on the admin port, ...) are asserted on the text as well, with or
//! without the programs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(deploy_file(name)).unwrap()
}

fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/bin", "/usr/sbin", "/bin", "/sbin"])
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
}

/// A fresh directory for one test's copies, removed by the caller.
fn scratch(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "upcase-deploy-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Lines that are not comments, trimmed.
fn directives(conf: &str) -> Vec<String> {
    conf.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn has(conf: &str, line: &str) -> bool {
    directives(conf).iter().any(|l| l == line)
}

// ---- systemd ------------------------------------------------------------------------------

const PACKAGED_EXEC: &str = "ExecStart=/usr/bin/upcased";

#[test]
fn the_service_is_a_sandboxed_notify_service() {
    let unit = read("upcased.service");
    for line in [
        "Type=notify",
        PACKAGED_EXEC,
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
        "LimitNOFILE=65536",
    ] {
        assert!(has(&unit, line), "upcased.service lacks `{line}`");
    }
    let socket = read("upcased.socket");
    for line in [
        "Accept=no",
        "ListenStream=127.0.0.1:2277",
        "FileDescriptorName=upcased",
    ] {
        assert!(has(&socket, line), "upcased.socket lacks `{line}`");
    }
}

/// Copies both units into `dir`, the service's `ExecStart=` pointing at the built binary
/// (verify checks that the program exists), with `edit` applied to the service.
fn units_in(dir: &Path, edit: impl Fn(String) -> String) -> [PathBuf; 2] {
    let service = read("upcased.service");
    assert!(service.contains(PACKAGED_EXEC));
    let service = service.replace(
        PACKAGED_EXEC,
        &format!("ExecStart={}", env!("CARGO_BIN_EXE_upcased")),
    );
    let (svc, sock) = (dir.join("upcased.service"), dir.join("upcased.socket"));
    std::fs::write(&svc, edit(service)).unwrap();
    std::fs::copy(deploy_file("upcased.socket"), &sock).unwrap();
    [sock, svc]
}

/// What `systemd-analyze verify` said about our two units. `--man=no`: the man page that
/// `Documentation=` names comes with the package, not with a checkout.
fn verify(tool: &Path, units: &[PathBuf]) -> (Output, Vec<String>) {
    let out = Command::new(tool)
        .args(["verify", "--man=no"])
        .args(units)
        .output()
        .unwrap();
    // Other units on the host may draw complaints of their own; only ours count.
    let ours = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("upcased."))
        .map(str::to_owned)
        .collect();
    (out, ours)
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let Some(tool) = find_program("systemd-analyze") else {
        eprintln!("skipped: systemd-analyze not found (apt-get install systemd)");
        return;
    };
    let dir = scratch("units");
    let good = units_in(&dir, |s| s);
    let (out, complaints) = verify(&tool, &good);
    assert!(
        out.status.success() && complaints.is_empty(),
        "{}",
        text(&out)
    );

    // The control: one misspelt value must be reported.
    let bad_dir = scratch("units-bad");
    let bad = units_in(&bad_dir, |s| s.replace("Type=notify", "Type=notfiy"));
    let (out, complaints) = verify(&tool, &bad);
    assert!(
        !complaints.is_empty(),
        "a bad Type= went unnoticed: {}",
        text(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&bad_dir).unwrap();
}

// ---- HAProxy ------------------------------------------------------------------------------

#[test]
fn haproxy_cfg_balances_by_leastconn_with_proxy_v2_and_two_step_checks() {
    let cfg = read("haproxy.cfg");
    for line in [
        "mode tcp",
        "balance leastconn",
        "option tcp-check",
        r#"tcp-check send "ping\n""#,
        "tcp-check expect string PING comment \"no PING for ping\"",
        r#"tcp-check send "GET /readyz HTTP/1.1\r\nHost: upcased\r\nConnection: close\r\n\r\n""#,
        "server upcased1 127.0.1.1:22771",
        "server upcased2 127.0.1.2:22771",
        "server upcased3 127.0.1.3:22771",
    ] {
        assert!(has(&cfg, line), "haproxy.cfg lacks `{line}`");
    }
    let defaults = directives(&cfg)
        .into_iter()
        .find(|l| l.starts_with("default-server "))
        .expect("a default-server line");
    for word in ["send-proxy-v2", "check", "check-send-proxy", "weight 100"] {
        assert!(
            defaults.contains(word),
            "default-server lacks `{word}`: {defaults}"
        );
    }
}

fn haproxy_check(tool: &Path, cfg: &Path) -> Output {
    Command::new(tool)
        .arg("-c")
        .arg("-f")
        .arg(cfg)
        .env("HAPROXY_STATS_SOCKET", cfg.with_extension("sock"))
        .output()
        .unwrap()
}

#[test]
fn haproxy_accepts_haproxy_cfg() {
    let Some(tool) = find_program("haproxy") else {
        eprintln!("skipped: haproxy not found (apt-get install haproxy)");
        return;
    };
    let dir = scratch("haproxy");
    let good = dir.join("haproxy.cfg");
    std::fs::copy(deploy_file("haproxy.cfg"), &good).unwrap();
    let out = haproxy_check(&tool, &good);
    assert!(out.status.success(), "{}", text(&out));

    let bad = dir.join("bad.cfg");
    std::fs::write(&bad, read("haproxy.cfg").replace("leastconn", "leastconnn")).unwrap();
    let out = haproxy_check(&tool, &bad);
    assert!(
        !out.status.success(),
        "a bad balance went unnoticed: {}",
        text(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- nginx ------------------------------------------------------------------------------

#[test]
fn nginx_stream_conf_sends_proxy_v1_and_keeps_half_closed_connections() {
    let conf = read("nginx-stream.conf");
    for line in [
        "stream {",
        "least_conn;",
        "proxy_protocol on;",
        "proxy_half_close on;",
        "proxy_pass upcased;",
    ] {
        assert!(has(&conf, line), "nginx-stream.conf lacks `{line}`");
    }
}

/// Where Debian's libnginx-mod-stream puts the module; a build with the stream module
/// compiled in needs no load_module.
const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// Runs `nginx -t` on a minimal nginx.conf that loads the stream module and includes
/// `stream_conf`, with every path nginx writes kept under `dir`.
fn nginx_check(tool: &Path, dir: &Path, stream_conf: &Path) -> Output {
    let load = if Path::new(STREAM_MODULE).exists() {
        format!("load_module {STREAM_MODULE};\n")
    } else {
        String::new()
    };
    let main = dir.join("nginx.conf");
    std::fs::write(
        &main,
        format!(
            "{load}pid {pid};\nerror_log stderr notice;\nevents {{}}\ninclude {conf};\n",
            pid = dir.join("nginx.pid").display(),
            conf = stream_conf.display()
        ),
    )
    .unwrap();
    Command::new(tool)
        .args(["-t", "-e", "stderr", "-p"])
        .arg(dir)
        .arg("-c")
        .arg(&main)
        .output()
        .unwrap()
}

#[test]
fn nginx_accepts_nginx_stream_conf() {
    let Some(tool) = find_program("nginx") else {
        eprintln!("skipped: nginx not found (apt-get install nginx-light libnginx-mod-stream)");
        return;
    };
    let dir = scratch("nginx");
    let out = nginx_check(&tool, &dir, &deploy_file("nginx-stream.conf"));
    assert!(out.status.success(), "{}", text(&out));

    let bad = dir.join("bad.conf");
    std::fs::write(
        &bad,
        read("nginx-stream.conf").replace("proxy_half_close on;", "proxy_half_close yes;"),
    )
    .unwrap();
    let out = nginx_check(&tool, &dir, &bad);
    assert!(
        !out.status.success(),
        "a bad flag went unnoticed: {}",
        text(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- the scale-out script -----------------------------------------------------------------

#[test]
fn the_scale_out_script_parses_and_explains_itself() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/scale-out.sh");
    let out = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = Command::new("bash")
        .arg(&script)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Pass means"), "{help}");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--balancer")
        .arg("traefik")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
