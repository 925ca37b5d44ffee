//! Throughput of the transform on 64 KiB samples of real-looking text, beside std's
//! `str::to_uppercase` and `make_ascii_uppercase` (the speed of plain ASCII upper-casing,
//! which does not handle anything else). Run with `cargo bench --bench transform`;
//! `BENCHMARKS.md` records the figures.

// `criterion_group!` defines a `pub fn` that cannot carry a doc comment.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use upcase::transform::{Mode, Upcaser};

/// Bytes per sample: one server read.
const SAMPLE: usize = 64 * 1024;

const GERMAN: &str = "Der Fuchs schläft noch, während draußen die Straßenbahn über die \
    Brücke fährt. Müde Bürger öffnen die Läden, grüßen einander und trinken süßen Kaffee \
    in der Bäckerei am Fluss. Über Nacht hat es geschneit; die Gärten liegen weiß und still, \
    und nur die Vögel hüpfen über den Zaun. Ärger gibt es heute keinen, die Größe der \
    Aufgabe ist überschaubar, und um fünf Uhr schließt das Büro. ";

const RUSSIAN: &str = "Мороз и солнце; день чудесный! Ещё ты дремлешь, друг прелестный, \
    пора, красавица, проснись: открой сомкнуты негой взоры навстречу северной Авроры, \
    звездою севера явись! Вечор, ты помнишь, вьюга злилась, на мутном небе мгла носилась; \
    луна, как бледное пятно, сквозь тучи мрачные желтела, и ты печальная сидела. ";

const CJK_EMOJI: &str =
    "今日は良い天気ですね🌞。東京の桜が咲きました🌸！我们明天去北京吃烤鸭吧😋，\
    好不好？서울의 봄은 아름답습니다🌷. 会議は午後三時から始まります📅。这个周末我想去爬山⛰️，\
    你要一起来吗🙂？ 新しいプロジェクトの準備ができました🚀。";

const GREEK: &str = "Μῆνιν ἄειδε θεὰ Πηληϊάδεω Ἀχιλῆος οὐλομένην, ἣ μυρί᾽ Ἀχαιοῖς ἄλγε᾽ \
    ἔθηκε, πολλὰς δ᾽ ἰφθίμους ψυχὰς Ἄϊδι προΐαψεν ἡρώων, αὐτοὺς δὲ ἑλώρια τεῦχε κύνεσσιν \
    οἰωνοῖσί τε πᾶσι· Διὸς δ᾽ ἐτελείετο βουλή, ἐξ οὗ δὴ τὰ πρῶτα διαστήτην ἐρίσαντε \
    Ἀτρεΐδης τε ἄναξ ἀνδρῶν καὶ δῖος Ἀχιλλεύς. Ἐν ἀρχῇ ἦν ὁ λόγος, καὶ ὁ λόγος ἦν πρὸς \
    τὸν θεόν, καὶ θεὸς ἦν ὁ λόγος. ";

/// The words of `../shared/bench/loadgen.c -u`, in its order: scripts change every word,
/// so most blocks mix them.
const MIXED: &str = "hello 東京 привет ёлка über ёлка grüße мир hello ωμέγα ωμέγα мир grüße \
    ωμέγα über привет ωμέγα ёлка привет straße straße ёлка ёлка über мир über hello мир über \
    über über 東京 hello grüße straße grüße привет hello hello hello мир grüße straße мир ёлка \
    hello 東京 über ";

const ASCII: &str = "The quick brown fox jumps over the lazy dog, while the server echoes \
    every byte it receives in upper case and the client checks each reply. Throughput is \
    measured in bytes per second on a single core of a shared machine. ";

/// `text` repeated to just under `SAMPLE` bytes, cut at a character boundary.
fn sample(text: &str) -> String {
    let mut s = text.repeat(SAMPLE / text.len() + 1);
    let mut cut = SAMPLE;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s
}

fn bench(c: &mut Criterion) {
    let samples = [
        ("german", GERMAN),
        ("russian", RUSSIAN),
        ("cjk_emoji", CJK_EMOJI),
        ("greek_polytonic", GREEK),
        ("mixed_scripts", MIXED),
        ("ascii", ASCII),
    ];
    for (name, text) in samples {
        let text = sample(text);
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(text.len() as u64));

        let mut out = Vec::with_capacity(4 * SAMPLE);
        g.bench_function("upcase_push", |b| {
            b.iter(|| {
                out.clear();
                let mut up = Upcaser::new(Mode::Unicode);
                up.push(black_box(text.as_bytes()), &mut out);
                up.finish(&mut out);
                black_box(&out);
            })
        });
        // In place, as the server does it: the buffer is refilled from the sample each time
        // (a 64 KiB copy, included in the figure), then upper-cased where it lies.
        let mut spill = Vec::with_capacity(4 * SAMPLE);
        let mut buf = text.clone().into_bytes();
        g.bench_function("upcase_in_place", |b| {
            b.iter(|| {
                buf.copy_from_slice(black_box(text.as_bytes()));
                let mut up = Upcaser::new(Mode::Unicode);
                black_box(up.push_in_place(&mut buf, &mut spill).len());
            })
        });
        g.bench_function("std_to_uppercase", |b| {
            b.iter(|| black_box(black_box(text.as_str()).to_uppercase()))
        });
        let mut buf = text.clone().into_bytes();
        g.bench_function("make_ascii_uppercase", |b| {
            b.iter(|| black_box(&mut buf[..]).make_ascii_uppercase())
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
