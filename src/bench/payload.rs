//! The message every connection sends, and the reply it must get back.
//!
//! Both are built once per run and shared by all connections. The expected reply comes from
//! [`crate::transform::upcase`], the same transform the server runs, so a server is graded
//! against the service's definition of upper-casing, not against a second copy of it.

use super::options::Text;
use crate::textgen;
use crate::transform::{self, Mode};

/// Lower-case words whose upper-case has the same UTF-8 length (`ß` → `SS` is 2 → 2 bytes),
/// so that every reply is exactly as long as its message and replies can be framed by
/// length. The same words as `loadgen.c -u`: Cyrillic, German, Greek, CJK, ASCII.
const UNICODE_WORDS: [&str; 9] = [
    "привет",
    "straße",
    "über",
    "ωμέγα",
    "東京",
    "hello",
    "ёлка",
    "grüße",
    "мир",
];

/// A message and the reply a correct capitalisation server sends for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// What is sent: `size - 1` bytes of text, then LF.
    pub message: Vec<u8>,
    /// What must come back, byte for byte: the message upper-cased. Same length.
    pub expected: Vec<u8>,
}

impl Payload {
    /// Builds a message of exactly `size` bytes (at least 1) of the given text.
    pub fn new(size: usize, text: Text) -> Payload {
        let size = size.max(1);
        let mut message = Vec::with_capacity(size);
        match text {
            Text::Ascii => {
                // Varied letters, the same message on every run.
                message = textgen::text(size - 1, b"abcdefghijklmnopqrstuvwxyz");
            }
            Text::Unicode => {
                let mut w: usize = 0;
                loop {
                    let word = UNICODE_WORDS[w % UNICODE_WORDS.len()].as_bytes();
                    // the word, a space, and room for the final LF
                    if message.len() + word.len() + 2 > size {
                        break;
                    }
                    message.extend_from_slice(word);
                    message.push(b' ');
                    w = w.wrapping_mul(7).wrapping_add(3);
                }
                message.resize(size - 1, b'x');
            }
        }
        message.push(b'\n');
        let expected = transform::upcase(&message, Mode::Unicode);
        Payload { message, expected }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_as_long_as_messages_for_every_size() {
        for text in [Text::Ascii, Text::Unicode] {
            for size in 1..400 {
                let p = Payload::new(size, text);
                assert_eq!(p.message.len(), size, "{text:?} {size}");
                assert_eq!(p.expected.len(), size, "{text:?} {size}");
                assert_eq!(p.message.last(), Some(&b'\n'));
                assert!(std::str::from_utf8(&p.message).is_ok());
            }
        }
    }

    #[test]
    fn unicode_text_is_not_ascii_and_changes_when_upper_cased() {
        let p = Payload::new(200, Text::Unicode);
        assert!(!p.message.is_ascii());
        assert_ne!(p.message, p.expected);
        let reply = String::from_utf8(p.expected).unwrap();
        assert!(reply.contains("ПРИВЕТ") || reply.contains("STRASSE") || reply.contains("ΩΜΈΓΑ"));
    }

    #[test]
    fn ascii_text_is_lower_case_letters_then_lf() {
        let p = Payload::new(64, Text::Ascii);
        assert!(p.message[..63].iter().all(u8::is_ascii_lowercase));
        assert_eq!(p.expected, p.message.to_ascii_uppercase());
    }
}
