//! `--generate`: the man page and shell completions of a binary, written from its clap
//! definition (as ripgrep does), so that they never drift from `--help`. The Debian package
//! (`scripts/package.sh`) runs each binary with the flag to build its files.

use std::io::{self, Write};

/// What `--generate` writes to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generate {
    /// The man page, in roff.
    Man,
    /// A bash completion script.
    CompleteBash,
    /// A zsh completion script (`_NAME`).
    CompleteZsh,
    /// A fish completion script.
    CompleteFish,
}

/// Writes `what` for the command `cmd` (its name is the binary's) to `out`.
pub fn write(mut cmd: clap::Command, what: Generate, out: &mut dyn Write) -> io::Result<()> {
    use clap_complete::Shell;
    let shell = match what {
        Generate::Man => return clap_mangen::Man::new(cmd).render(out),
        Generate::CompleteBash => Shell::Bash,
        Generate::CompleteZsh => Shell::Zsh,
        Generate::CompleteFish => Shell::Fish,
    };
    let name = cmd.get_name().to_owned();
    clap_complete::generate(shell, &mut cmd, name, out);
    Ok(())
}

/// Writes `what` to stdout; a closed stdout (`| head`) is not an error.
pub fn to_stdout(cmd: clap::Command, what: Generate) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match write(cmd, what, &mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}
