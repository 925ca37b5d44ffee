//! Writing a [`BenchResult`] out: a table for people, one JSON object for programs.
//! The caller chooses the writer (stdout in `upcase bench`), so the library never prints.

use std::io::{self, Write};

use super::result::{BenchResult, LoopMode, Transport, MAX_SCHEDULE_SLIP};
use crate::check::report::escape;

/// Banners the table lists, most connections first; `--json` has them all.
pub const BANNER_LINES: usize = 10;

/// Writes the result as one pretty-printed JSON object and a newline. The field names are
/// those of [`BenchResult`], documented in `docs/bench.md#json-output`.
pub fn write_json(result: &BenchResult, out: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, result)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Writes the result as a small table, then one line per reason the run failed.
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
        writeln!(
            out,
            "  tls          {} {}, every handshake before the warm-up",
            tls.version, tls.cipher_suite
        )?;
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
    if let Some(s) = &r.schedule {
        writeln!(
            out,
            "  schedule     asked {} msgs/s, sent {:.0} msgs/s; {} due, {} late, {} never sent",
            s.asked_per_s, s.sent_per_s, s.due, s.late, s.never_sent
        )?;
    }
    writeln!(
        out,
        "  outstanding  {} replies owed when the window closed",
        r.replies_outstanding
    )?;
    if r.reconnects > 0 {
        writeln!(
            out,
            "  reconnects   {} reconnects: connections the server closed cleanly between \
             messages, opened again; {} messages it closed without answering sent again",
            r.reconnects, r.retried
        )?;
    }
    let e = &r.errors;
    writeln!(
        out,
        "  errors       {} wrong replies, {} resets, {} timeouts, {} connections failed to open, \
         {} refused, {} silent",
        e.wrong_replies, e.resets, e.timeouts, e.connect_failures, e.refused, e.silent
    )?;
    if let Some(banners) = &r.banners {
        let mut by_count: Vec<_> = banners.iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        writeln!(
            out,
            "  banners      {} distinct over {} connections",
            banners.len(),
            banners.values().sum::<u64>()
        )?;
        for (banner, count) in by_count.iter().take(BANNER_LINES) {
            writeln!(out, "    {count:>8}  \"{}\"", escape(banner.as_bytes()))?;
        }
        if by_count.len() > BANNER_LINES {
            writeln!(
                out,
                "    … and {} more (all in --json)",
                by_count.len() - BANNER_LINES
            )?;
        }
    }
    if let Some(d) = &r.first_wrong_reply {
        writeln!(out, "  first wrong reply")?;
        writeln!(out, "    sent       {}", d.sent)?;
        writeln!(out, "    expected   {}", d.expected)?;
        writeln!(out, "    got        {}", d.got)?;
    }
    for line in verdict(r) {
        writeln!(out, "{line}")?;
    }
    out.flush()
}

/// The lines that say why a run did not pass, or that it was interrupted; none for a
/// run that passed.
pub fn verdict(r: &BenchResult) -> Vec<String> {
    let mut lines = Vec::new();
    let e = &r.errors;
    let say = |s: String| format!("upcase bench: {s}");
    if r.interrupted {
        lines.push(say(
            "interrupted: the figures are those up to Ctrl-C".to_string()
        ));
    }
    if e.connect_failures > 0 {
        lines.push(say(format!(
            "{} of {} connections failed to open ({})",
            e.connect_failures,
            r.connections,
            r.first_connect_error
                .as_deref()
                .unwrap_or("no reason given")
        )));
    }
    if e.refused > 0 {
        lines.push(say(format!(
            "{} connections were closed by the server right after opening, before any reply: \
             they never opened for service (is the server at its connection limit?)",
            e.refused
        )));
    }
    if e.silent > 0 {
        lines.push(say(format!(
            "{} connections received nothing at all (does the server answer each line, or \
             hold replies until the client closes?)",
            e.silent
        )));
    }
    if e.timeouts > 0 {
        lines.push(say(format!(
            "{} replies did not come within --timeout",
            e.timeouts
        )));
    }
    if e.wrong_replies > 0 {
        lines.push(say(format!("{} replies were wrong", e.wrong_replies)));
    }
    if e.resets > 0 {
        lines.push(say(format!(
            "{} connections were reset or closed by the server during the run",
            e.resets
        )));
    }
    if let Some(s) = r.schedule.filter(|s| s.slipped) {
        lines.push(say(format!(
            "warning: the schedule slipped: {:.1}% of the messages due were late or never sent \
             (the bound is {:.0}%); the load offered was not the rate asked",
            s.slip * 100.0,
            MAX_SCHEDULE_SLIP * 100.0
        )));
    }
    lines
}
