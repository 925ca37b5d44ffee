//! `--banner TEMPLATE`: one line the server sends on each TCP connection before any reply.
//!
//! The template is parsed once at startup ([`Template::parse`]; an unknown placeholder is a
//! usage error), bound to the instance id and host name ([`Template::bind`]), and rendered per
//! connection with the listener's and the client's addresses ([`Banner::render`]).
//!
//! Placeholders: `{id}` (`--instance-id`, default the host name), `{server}` (the listener's
//! own address, even behind a balancer: it says which instance served), `{client}` (the client's address: the PROXY header's source when
//! there is one), `{hostname}`. `{{` and `}}` stand for literal braces. The line is the
//! template with these filled in, then LF; a template with a CR or LF of its own is refused,
//! so a banner is always exactly one line.

use std::net::SocketAddr;

use crate::limits::MAX_BANNER;

/// A `--banner` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BannerError {
    /// A `{name}` that is not one of the four.
    #[error("unknown placeholder {{{0}}} in the banner: use {{id}}, {{server}}, {{client}} or {{hostname}}, and {{{{ or }}}} for a literal brace")]
    UnknownPlaceholder(String),
    /// A `{` with no `}` after it.
    #[error("unclosed {{ in the banner at byte {0}: write {{{{ for a literal brace")]
    Unclosed(usize),
    /// A `}` that closes nothing.
    #[error("stray }} in the banner at byte {0}: write }}}} for a literal brace")]
    StrayClose(usize),
    /// A CR or LF in the template, instance id or host name: the banner is one line.
    #[error("the banner's {0} contains a CR or LF; a banner is one line")]
    LineBreak(&'static str),
    /// An empty template.
    #[error("the banner template is empty")]
    Empty,
    /// The line, with `{id}` and `{hostname}` filled in, is over the limit.
    #[error("the banner is {0} bytes with {{id}} and {{hostname}} filled in, over the {MAX_BANNER}-byte limit")]
    TooLong(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Id,
    Server,
    Client,
    Hostname,
}

/// A parsed `--banner` template: checked, not yet bound to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses and checks a template. Usable as clap's `value_parser`, so a bad one is a usage
    /// error (exit status 2) before anything starts.
    pub fn parse(template: &str) -> Result<Template, BannerError> {
        if template.is_empty() {
            return Err(BannerError::Empty);
        }
        if template.contains(['\r', '\n']) {
            return Err(BannerError::LineBreak("template"));
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = template.char_indices().peekable();
        while let Some((at, c)) = rest.next() {
            match c {
                '{' if rest.next_if(|&(_, c)| c == '{').is_some() => text.push('{'),
                '}' if rest.next_if(|&(_, c)| c == '}').is_some() => text.push('}'),
                '}' => return Err(BannerError::StrayClose(at)),
                '{' => {
                    let name_start = at + 1;
                    let Some(end) = template[name_start..].find('}') else {
                        return Err(BannerError::Unclosed(at));
                    };
                    let name = &template[name_start..name_start + end];
                    let part = match name {
                        "id" => Part::Id,
                        "server" => Part::Server,
                        "client" => Part::Client,
                        "hostname" => Part::Hostname,
                        _ => return Err(BannerError::UnknownPlaceholder(name.to_owned())),
                    };
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(part);
                    while rest.next_if(|&(i, _)| i <= name_start + end).is_some() {}
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template { parts })
    }

    /// Fills in what is fixed for the process: the instance id and the host name.
    pub fn bind(&self, instance_id: &str, hostname: &str) -> Result<Banner, BannerError> {
        if instance_id.contains(['\r', '\n']) {
            return Err(BannerError::LineBreak("instance id"));
        }
        if hostname.contains(['\r', '\n']) {
            return Err(BannerError::LineBreak("host name"));
        }
        let mut parts: Vec<Part> = Vec::new();
        let mut fixed = 1; // the LF
        for part in &self.parts {
            let text = match part {
                Part::Text(t) => t.as_str(),
                Part::Id => instance_id,
                Part::Hostname => hostname,
                Part::Server | Part::Client => {
                    parts.push(part.clone());
                    continue;
                }
            };
            fixed += text.len();
            match parts.last_mut() {
                Some(Part::Text(last)) => last.push_str(text),
                _ => parts.push(Part::Text(text.to_owned())),
            }
        }
        if fixed > MAX_BANNER {
            return Err(BannerError::TooLong(fixed));
        }
        Ok(Banner { parts })
    }
}

impl std::str::FromStr for Template {
    type Err = BannerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::parse(s)
    }
}

/// A template bound to this instance: what each connection's line is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banner {
    /// Only `Text`, `Server` and `Client` remain.
    parts: Vec<Part>,
}

impl Banner {
    /// The line for one connection, LF included. `server` is the listener's own (local)
    /// address; `client` the client's, from the PROXY header where there is one.
    pub fn render(&self, server: SocketAddr, client: SocketAddr) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.render_into(server, client, &mut out);
        out
    }

    /// Appends the line to `out`, so a driver can put it straight into its write buffer.
    pub fn render_into(&self, server: SocketAddr, client: SocketAddr, out: &mut Vec<u8>) {
        use std::io::Write as _;
        for part in &self.parts {
            // Writing to a Vec cannot fail.
            let _ = match part {
                Part::Text(t) => out.write_all(t.as_bytes()),
                Part::Server => write!(out, "{server}"),
                Part::Client => write!(out, "{client}"),
                Part::Id | Part::Hostname => Ok(()),
            };
        }
        out.push(b'\n');
    }
}

/// This machine's host name (`gethostname(2)`), the default `--instance-id`.
pub fn hostname() -> std::io::Result<String> {
    // POSIX caps host names at 255 bytes; one more guarantees a terminating NUL.
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is valid for writes of `buf.len() - 1` bytes for the whole call, and
    // gethostname writes at most that many; the last byte stays 0, so the result is
    // NUL-terminated even if the name was truncated.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..len]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn line(template: &str) -> String {
        let banner = Template::parse(template)
            .unwrap()
            .bind("pod-7", "host.example")
            .unwrap();
        String::from_utf8(banner.render(addr("10.0.0.2:2277"), addr("[2001:db8::1]:40000")))
            .unwrap()
    }

    #[test]
    fn placeholders_are_filled_and_the_line_ends_in_lf() {
        assert_eq!(
            line("{id} on {hostname}: {server} saw {client}"),
            "pod-7 on host.example: 10.0.0.2:2277 saw [2001:db8::1]:40000\n"
        );
        assert_eq!(
            line("{client}{client}"),
            "[2001:db8::1]:40000[2001:db8::1]:40000\n"
        );
        assert_eq!(line("plain"), "plain\n");
        assert_eq!(line("ünïcode {id}"), "ünïcode pod-7\n");
    }

    #[test]
    fn doubled_braces_are_literal() {
        assert_eq!(line("{{id}} is {id}"), "{id} is pod-7\n");
        assert_eq!(line("}}{{"), "}{\n");
        assert_eq!(line("{{{id}}}"), "{pod-7}\n");
    }

    #[test]
    fn an_unknown_placeholder_is_refused() {
        let err = Template::parse("{id} {ip}").unwrap_err();
        assert_eq!(err, BannerError::UnknownPlaceholder("ip".into()));
        assert!(err.to_string().contains("{ip}"), "{err}");
        assert_eq!(
            Template::parse("{}"),
            Err(BannerError::UnknownPlaceholder(String::new()))
        );
        assert_eq!(
            Template::parse("{ID}"),
            Err(BannerError::UnknownPlaceholder("ID".into()))
        );
    }

    #[test]
    fn unbalanced_braces_are_refused() {
        assert_eq!(Template::parse("a {id"), Err(BannerError::Unclosed(2)));
        assert_eq!(Template::parse("a } b"), Err(BannerError::StrayClose(2)));
        assert_eq!(Template::parse("{"), Err(BannerError::Unclosed(0)));
    }

    #[test]
    fn a_banner_is_one_line() {
        for t in ["a\nb", "a\r", "\r\n"] {
            assert_eq!(Template::parse(t), Err(BannerError::LineBreak("template")));
        }
        let t = Template::parse("{id}").unwrap();
        assert_eq!(
            t.bind("a\nb", "h"),
            Err(BannerError::LineBreak("instance id"))
        );
        assert_eq!(t.bind("a", "h\r"), Err(BannerError::LineBreak("host name")));
        assert_eq!(Template::parse(""), Err(BannerError::Empty));
    }

    #[test]
    fn an_overlong_banner_is_refused() {
        let t = Template::parse("{id}").unwrap();
        assert!(t.bind(&"x".repeat(MAX_BANNER - 1), "h").is_ok());
        assert_eq!(
            t.bind(&"x".repeat(MAX_BANNER), "h"),
            Err(BannerError::TooLong(MAX_BANNER + 1))
        );
    }

    #[test]
    fn render_into_appends() {
        let b = Template::parse("hi {client}")
            .unwrap()
            .bind("i", "h")
            .unwrap();
        let mut out = b"before ".to_vec();
        b.render_into(addr("1.2.3.4:1"), addr("5.6.7.8:9"), &mut out);
        assert_eq!(out, b"before hi 5.6.7.8:9\n");
    }

    #[test]
    fn the_host_name_is_the_kernels() {
        let name = hostname().unwrap();
        assert!(!name.is_empty());
        let mut uname: libc::utsname = unsafe_zeroed_utsname();
        // SAFETY: `uname` is a valid, writable utsname for the call.
        assert_eq!(unsafe { libc::uname(&mut uname) }, 0);
        // SAFETY: uname(2) NUL-terminates `nodename` within the array.
        let node = unsafe { std::ffi::CStr::from_ptr(uname.nodename.as_ptr()) };
        assert_eq!(name, node.to_string_lossy());
    }

    fn unsafe_zeroed_utsname() -> libc::utsname {
        // SAFETY: utsname is plain C arrays of `c_char`, for which all-zero is valid.
        unsafe { std::mem::zeroed() }
    }
}
