//! Writing a [`BenchResult`] out: a table for people, one JSON object for programs.
//! The caller chooses the writer (stdout in `upcase bench`), so the library never prints.

use std::io::{self, Write};

use super::result::{BenchResult, LoopMode, Transport};

/// Writes the result as one pretty-printed JSON object and a newline. The field names are
/// those of [`BenchResult`], documented in `docs/bench.md`.
pub fn write_json(result: &BenchResult, out: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, result)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Writes the result as a small table.
pub fn write_table(r: &BenchResult, out: &mut impl Write) -> io::Result<()> {
    let transport = match r.transport {
        Transport::Tcp => "tcp",
        Transport::Udp => "udp",
    };
    let load = match (r.mode, r.pipeline, r.rate) {
        (LoopMode::Open, _, Some(rate)) => format!("open loop, {rate} msgs/s scheduled"),
        (_, Some(k), _) => format!("closed loop, pipeline {k}"),
        _ => "closed loop".to_string(),
    };
    let text = match r.text {
        super::Text::Ascii => "ascii",
        super::Text::Unicode => "unicode",
    };
    writeln!(
        out,
        "upcase bench: {} ({}) over {transport}, {load}",
        r.target, r.peer
    )?;
    if let Some(tls) = &r.tls {
        writeln!(out, "  tls          {} {}", tls.version, tls.cipher_suite)?;
    }
    writeln!(
        out,
        "  connections  {} open of {}, {} B {text} messages",
        r.connections_open, r.connections, r.size
    )?;
    writeln!(
        out,
        "  window       {:.2} s after {:.2} s warm-up",
        r.duration_s, r.warmup_s
    )?;
    writeln!(
        out,
        "  throughput   {:.0} msgs/s  {:.2} MiB/s  ({} replies)",
        r.msgs_per_s, r.mib_per_s, r.messages
    )?;
    match &r.latency_us {
        Some(l) => {
            writeln!(
                out,
                "  latency µs   {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "min", "p50", "p90", "p99", "p99.9", "max"
            )?;
            writeln!(
                out,
                "               {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                l.min, l.p50, l.p90, l.p99, l.p999, l.max
            )?;
        }
        None => writeln!(out, "  latency      no reply completed in the window")?,
    }
    let e = &r.errors;
    writeln!(
        out,
        "  errors       {} wrong replies, {} resets, {} timeouts, {} connections failed to open",
        e.wrong_replies, e.resets, e.timeouts, e.connect_failures
    )?;
    out.flush()
}
