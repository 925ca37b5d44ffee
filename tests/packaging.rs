//! What the package ships that the binaries write themselves: `--version`, and the man
//! pages and completions from `--generate` (the same clap definitions as `--help`).

use std::process::Command;

fn run(bin: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const BINS: [(&str, &str); 2] = [
    ("upcased", env!("CARGO_BIN_EXE_upcased")),
    ("upcase", env!("CARGO_BIN_EXE_upcase")),
];

#[test]
fn version_prints_the_crate_version() {
    for (name, bin) in BINS {
        let (code, out, _) = run(bin, &["--version"]);
        assert_eq!(code, 0);
        assert_eq!(out, format!("{name} {}\n", env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn the_man_page_is_roff_for_the_binary_with_its_flags() {
    for (name, bin, flag) in [
        ("upcased", BINS[0].1, r"\-\-reuse\-port"),
        ("upcase", BINS[1].1, r"\-\-connect"),
    ] {
        let (code, out, err) = run(bin, &["--generate", "man"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(&format!(".TH {name} 1")), "{out}");
        assert!(out.contains(flag), "{name}'s page lacks {flag}");
        assert!(
            !out.contains("generate"),
            "the hidden flag stays out of the page"
        );
    }
}

#[test]
fn completions_are_written_for_bash_zsh_and_fish() {
    for (name, bin) in BINS {
        for (shell, marker) in [
            ("bash", format!("complete -F _{name}")),
            ("zsh", format!("#compdef {name}")),
            ("fish", format!("complete -c {name}")),
        ] {
            let (code, out, err) = run(bin, &["--generate", &format!("complete-{shell}")]);
            assert_eq!(code, 0, "{err}");
            assert!(out.contains(&marker), "{name} {shell}: no {marker:?}");
            assert!(out.contains("verbose"), "{name} {shell}: flags missing");
        }
    }
}

#[test]
fn generate_is_hidden_and_stands_alone() {
    for (_, bin) in BINS {
        let (_, help, _) = run(bin, &["--help"]);
        assert!(!help.contains("--generate"));
        let (code, _, err) = run(bin, &["--generate", "man", "--verbose"]);
        assert_eq!(code, 2, "{err}");
        let (code, _, err) = run(bin, &["--generate", "pdf"]);
        assert_eq!(code, 2, "{err}");
    }
}
