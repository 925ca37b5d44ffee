//! The interactive session's history between sessions: where the file lives, and reading
//! and writing it with a cap on its size.
//!
//! The file is plain text, one entry a line, newest last, as shells keep theirs. It lives
//! in the user's state directory (the XDG base directory specification's place for
//! history): `$XDG_STATE_HOME/upcase/history`, or `~/.local/state/upcase/history`.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::limits::{HISTORY_MAX_ENTRIES, HISTORY_MAX_LINE};

/// The history file for this user, from the environment; `None` when neither
/// `XDG_STATE_HOME` nor `HOME` says where it would go.
pub fn default_path() -> Option<PathBuf> {
    path_from(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
}

/// [`default_path`] with the two variables given. A relative `XDG_STATE_HOME` is ignored,
/// as the specification says.
pub fn path_from(xdg_state_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let state = xdg_state_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            home.map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|h| h.join(".local").join("state"))
        })?;
    Some(state.join("upcase").join("history"))
}

/// The entries of a history file, at most [`HISTORY_MAX_ENTRIES`], newest last.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct History {
    entries: VecDeque<String>,
}

impl History {
    /// Reads the file at `path`; a missing file is an empty history. Only the newest
    /// [`HISTORY_MAX_ENTRIES`] entries are kept, and lines that could not have been
    /// written (too long, not UTF-8) are skipped.
    pub fn load(path: &Path) -> io::Result<History> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(History::default()),
            Err(e) => return Err(e),
        };
        let mut h = History::default();
        for line in bytes.split(|&b| b == b'\n') {
            if let Ok(s) = std::str::from_utf8(line) {
                h.add(s);
            }
        }
        Ok(h)
    }

    /// Adds a line, unless it is blank, longer than [`HISTORY_MAX_LINE`] or the same as
    /// the newest entry; drops the oldest beyond the cap. Returns whether it was added.
    pub fn add(&mut self, line: &str) -> bool {
        if line.trim().is_empty()
            || line.len() > HISTORY_MAX_LINE
            || line.contains(['\n', '\r'])
            || self.entries.back().is_some_and(|l| l == line)
        {
            return false;
        }
        if self.entries.len() == HISTORY_MAX_ENTRIES {
            self.entries.pop_front();
        }
        self.entries.push_back(line.to_string());
        true
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(String::as_str)
    }

    /// Writes the history to `path`, creating its directory (private to the user): to a
    /// temporary file first, then renamed over the old one, so that a crash or a second
    /// session never leaves half a file.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if let Some(dir) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut text = String::new();
        for e in &self.entries {
            text.push_str(e);
            text.push('\n');
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        drop(f);
        fs::rename(&tmp, path).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_directory_comes_first_then_home() {
        let p = path_from(Some("/s".into()), Some("/h".into())).unwrap();
        assert_eq!(p, Path::new("/s/upcase/history"));
        let p = path_from(None, Some("/h".into())).unwrap();
        assert_eq!(p, Path::new("/h/.local/state/upcase/history"));
        let p = path_from(Some("relative".into()), Some("/h".into())).unwrap();
        assert_eq!(p, Path::new("/h/.local/state/upcase/history"));
        assert_eq!(path_from(None, None), None);
    }

    #[test]
    fn the_history_is_capped_and_skips_blanks_and_repeats() {
        let mut h = History::default();
        assert!(!h.add("  "));
        assert!(h.add("a"));
        assert!(!h.add("a"));
        assert!(!h.add(&"x".repeat(HISTORY_MAX_LINE + 1)));
        for i in 0..HISTORY_MAX_ENTRIES + 5 {
            h.add(&format!("line {i}"));
        }
        assert_eq!(h.entries().count(), HISTORY_MAX_ENTRIES);
        assert_eq!(h.entries().next(), Some("line 5"));
    }

    #[test]
    fn a_saved_history_loads_back() {
        let dir = std::env::temp_dir().join(format!("upcase-history-{}", std::process::id()));
        let path = dir.join("sub").join("history");
        let mut h = History::default();
        h.add("first");
        h.add("grüße");
        h.save(&path).unwrap();
        assert_eq!(History::load(&path).unwrap(), h);
        assert_eq!(
            History::load(&dir.join("none")).unwrap(),
            History::default()
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
