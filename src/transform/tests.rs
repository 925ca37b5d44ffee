use super::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Runs a property on the kernel that `fast::drive` picks (AVX2 where the CPU has it), then
/// with the portable kernel forced, the one production runs on every other CPU (aarch64,
/// say); a failure says which.
fn on_both_kernels(check: impl Fn() -> Result<(), TestCaseError>) -> Result<(), TestCaseError> {
    check().map_err(|e| TestCaseError::fail(format!("default kernel: {e}")))?;
    fast::portable_only(check).map_err(|e| TestCaseError::fail(format!("portable kernel: {e}")))
}

#[test]
fn portable_only_hides_avx2_and_restores_it() {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        let has = std::arch::is_x86_feature_detected!("avx2");
        assert_eq!(fast::Avx2::detect().is_some(), has);
        assert!(fast::portable_only(fast::Avx2::detect).is_none());
        assert!(fast::portable_only(|| {
            fast::portable_only(|| ());
            fast::Avx2::detect().is_none()
        }));
        assert_eq!(fast::Avx2::detect().is_some(), has);
        if !has {
            eprintln!("skipped: no AVX2, so only the portable kernel runs here");
        }
    }
}

fn up(s: &str) -> String {
    String::from_utf8(upcase(s.as_bytes(), Mode::Unicode)).unwrap()
}

#[test]
fn examples_from_the_protocol() {
    assert_eq!(up("straße"), "STRASSE");
    assert_eq!(up("ﬁ"), "FI");
    assert_eq!(up("ǆ"), "Ǆ");
    assert_eq!(up("ı"), "I");
    assert_eq!(up("\u{0390}"), "\u{0399}\u{0308}\u{0301}");
    assert_eq!(up("hello, world\n"), "HELLO, WORLD\n");
}

#[test]
fn non_letters_pass_unchanged() {
    let all: Vec<u8> = (0u8..=0x7f).filter(|b| !b.is_ascii_lowercase()).collect();
    assert_eq!(upcase(&all, Mode::Unicode), all);
    assert_eq!(upcase(b"\r\n\0 1-2", Mode::Unicode), b"\r\n\0 1-2");
}

#[test]
fn invalid_bytes_pass_unchanged_never_replaced() {
    let input = b"ok \xff\xfe caf\xc3 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf end";
    assert_eq!(
        upcase(input, Mode::Unicode),
        b"OK \xff\xfe CAF\xc3 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf END"
    );
}

#[test]
fn split_character_is_held_back() {
    let mut u = Upcaser::new(Mode::Unicode);
    let mut out = Vec::new();
    let s = "é".as_bytes(); // C3 A9
    u.push(&s[..1], &mut out);
    assert!(out.is_empty());
    assert_eq!(u.held_back(), &s[..1]);
    u.push(&s[1..], &mut out);
    assert_eq!(out, "É".as_bytes());
    assert!(u.held_back().is_empty());
}

#[test]
fn four_byte_character_split_into_single_bytes() {
    let s = "x\u{10428}y".as_bytes(); // Deseret small letter: upper-cases to U+10400
    let mut u = Upcaser::new(Mode::Unicode);
    let mut out = Vec::new();
    for b in s {
        u.push(std::slice::from_ref(b), &mut out);
        assert!(u.held_back().len() <= MAX_HELD_BACK);
    }
    u.finish(&mut out);
    assert_eq!(out, "X\u{10400}Y".as_bytes());
}

#[test]
fn incomplete_sequence_at_end_is_flushed_unchanged() {
    let mut u = Upcaser::new(Mode::Unicode);
    let mut out = Vec::new();
    u.push(b"ab\xf0\x9f\x98", &mut out);
    assert_eq!(out, b"AB");
    u.finish(&mut out);
    assert_eq!(out, b"AB\xf0\x9f\x98");
}

#[test]
fn held_prefix_broken_by_next_chunk() {
    let mut u = Upcaser::new(Mode::Unicode);
    let mut out = Vec::new();
    u.push(b"\xe2\x82", &mut out);
    u.push(b"a\xc3", &mut out);
    u.push(b"\xa9", &mut out);
    u.finish(&mut out);
    assert_eq!(out, [&b"\xe2\x82A"[..], "É".as_bytes()].concat());
}

#[test]
fn ascii_mode_is_c_toupper() {
    let all: Vec<u8> = (0..=255).collect();
    let expected: Vec<u8> = all
        .iter()
        .map(|&b| if b.is_ascii_lowercase() { b - 32 } else { b })
        .collect();
    assert_eq!(upcase(&all, Mode::Ascii), expected);
    assert_eq!(
        upcase("straße".as_bytes(), Mode::Ascii),
        "STRAßE".as_bytes()
    );
}

#[test]
fn in_place_matches_push() {
    for input in [&b"plain ascii\n"[..], "grüße\n".as_bytes(), b"\xff bad\n"] {
        let mut buf = input.to_vec();
        let mut spill = Vec::new();
        let mut u = Upcaser::new(Mode::Unicode);
        let got = u.push_in_place(&mut buf, &mut spill).to_vec();
        assert_eq!(got, upcase(input, Mode::Unicode));
    }
}

#[test]
fn short_ascii_is_upper_cased_in_place_on_either_side_of_the_short_path() {
    // Every ASCII byte (controls and DEL included) at every length up to past `SHORT`: the
    // one-pass short path below it and the block kernel above it give the same bytes, in
    // the buffer, and hold nothing back.
    for len in 0..=SHORT + 40 {
        let input: Vec<u8> = (0..len).map(|i| ((i * 37 + len) % 128) as u8).collect();
        let mut buf = input.clone();
        let ptr = buf.as_ptr();
        let mut spill = Vec::new();
        let mut u = Upcaser::new(Mode::Unicode);
        let out = u.push_in_place(&mut buf, &mut spill);
        assert_eq!(out, input.to_ascii_uppercase().as_slice(), "length {len}");
        assert!(
            len == 0 || out.as_ptr() == ptr,
            "length {len} left the buffer"
        );
        assert!(u.held_back().is_empty());
    }
    // A non-ASCII character in a short message takes it off the short path.
    let mut buf = "abcédef".as_bytes().to_vec();
    let mut spill = Vec::new();
    let out = Upcaser::new(Mode::Unicode)
        .push_in_place(&mut buf, &mut spill)
        .to_vec();
    assert_eq!(out, "ABCÉDEF".as_bytes());
    // So does one whose letters the short path has already upper-cased: a character that
    // grows (the rest is built in the spill buffer) and an incomplete one at the end (held
    // back), with ASCII letters before, between and after.
    let mut buf = b"ab\xC3\x9Fcd\xC3".to_vec(); // "abßcd" and half of a 2-byte character
    let mut u = Upcaser::new(Mode::Unicode);
    let out = u.push_in_place(&mut buf, &mut spill).to_vec();
    assert_eq!(out, b"ABSSCD");
    assert_eq!(u.held_back(), b"\xC3");
}

/// Bytes that are mostly UTF-8 with a fair share of broken sequences, so that splits land
/// inside characters and inside invalid runs.
fn messy_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        any::<char>().prop_map(|c| c.to_string().into_bytes()),
        "[a-zß-ÿα-ωа-я ]{0,8}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..4),
        prop::collection::vec(0x80u8..0xC0, 0..3),
        Just(vec![0xF0, 0x9F]),
        Just(vec![0xE2, 0x82]),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn one_pass_equals_std_reference(input in messy_bytes()) {
        let whole = reference_upcase(&input, Mode::Unicode);
        on_both_kernels(|| {
            prop_assert_eq!(upcase(&input, Mode::Unicode), whole.clone());
            Ok(())
        })?;
    }

    #[test]
    fn every_split_point_gives_the_same_output(input in messy_bytes()) {
        let whole = reference_upcase(&input, Mode::Unicode);
        on_both_kernels(|| {
            for at in 0..=input.len() {
                let mut u = Upcaser::new(Mode::Unicode);
                let mut out = Vec::new();
                u.push(&input[..at], &mut out);
                u.push(&input[at..], &mut out);
                u.finish(&mut out);
                prop_assert_eq!(&out, &whole, "split at {}", at);
            }
            Ok(())
        })?;
    }

    #[test]
    fn random_chunking_gives_the_same_output(
        input in messy_bytes(),
        sizes in prop::collection::vec(1usize..7, 1..64),
    ) {
        let whole = reference_upcase(&input, Mode::Unicode);
        on_both_kernels(|| {
            let (out, most_held) = pushed_chunked(&input, &sizes);
            prop_assert!(most_held <= MAX_HELD_BACK);
            prop_assert_eq!(&out, &whole);
            Ok(())
        })?;
    }

    #[test]
    fn output_never_grows_beyond_max_expansion(input in messy_bytes()) {
        on_both_kernels(|| {
            prop_assert!(upcase(&input, Mode::Unicode).len() <= input.len() * MAX_EXPANSION);
            Ok(())
        })?;
    }
}

/// Upper-cases `input` through `push` in chunks of the given sizes (cycled), and returns
/// everything it produced and the most bytes it held back between chunks.
fn pushed_chunked(input: &[u8], sizes: &[usize]) -> (Vec<u8>, usize) {
    let mut u = Upcaser::new(Mode::Unicode);
    let mut out = Vec::new();
    let mut most_held = 0;
    let mut rest = input;
    for n in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (a, b) = rest.split_at((*n).min(rest.len()));
        u.push(a, &mut out);
        most_held = most_held.max(u.held_back().len());
        rest = b;
    }
    u.finish(&mut out);
    (out, most_held)
}

/// Upper-cases `input` through `push_in_place` in chunks of the given sizes (cycled), the
/// way the server does, and returns everything it produced.
fn in_place_chunked(input: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut u = Upcaser::new(Mode::Unicode);
    let mut out = Vec::new();
    let mut spill = Vec::new();
    let mut rest = input;
    for n in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (a, b) = rest.split_at((*n).min(rest.len()));
        let mut buf = a.to_vec();
        out.extend_from_slice(u.push_in_place(&mut buf, &mut spill));
        rest = b;
    }
    u.finish(&mut out);
    out
}

#[test]
#[cfg_attr(miri, ignore = "every BMP scalar value: too slow under Miri")]
fn tables_match_char_to_uppercase_on_the_whole_bmp() {
    for c in (0..0x10000u32).filter_map(char::from_u32) {
        let mut buf = [0u8; 4];
        let enc = c.encode_utf8(&mut buf).as_bytes();
        let table::Decoded::Step(s) = table::step(enc) else {
            panic!("U+{:04X} decoded as truncated", c as u32);
        };
        let expected: String = c.to_uppercase().collect();
        assert_eq!(s.in_len, enc.len(), "U+{:04X}", c as u32);
        assert_eq!(
            &s.bytes()[..s.out_len],
            expected.as_bytes(),
            "U+{:04X}",
            c as u32
        );
    }
}

#[test]
#[cfg_attr(miri, ignore = "1.1 million scalar values: hours under Miri")]
fn every_scalar_value_matches_char_to_uppercase() {
    every_scalar_value_between_ascii();
}

#[test]
#[cfg_attr(miri, ignore = "1.1 million scalar values: hours under Miri")]
fn every_scalar_value_matches_char_to_uppercase_on_the_portable_kernel() {
    fast::portable_only(every_scalar_value_between_ascii);
}

/// Every scalar value between two ASCII letters.
fn every_scalar_value_between_ascii() {
    let mut out = Vec::new();
    let mut expected = String::new();
    for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
        let mut buf = [0u8; 4];
        let input = format!("a{}z", c.encode_utf8(&mut buf));
        out.clear();
        let mut u = Upcaser::new(Mode::Unicode);
        u.push(input.as_bytes(), &mut out);
        u.finish(&mut out);
        expected.clear();
        expected.push('A');
        expected.extend(c.to_uppercase());
        expected.push('Z');
        assert_eq!(out, expected.as_bytes(), "U+{:04X}", c as u32);
    }
}

#[test]
#[cfg_attr(miri, ignore = "1.1 million scalar values: hours under Miri")]
fn every_scalar_value_alone_matches_char_to_uppercase() {
    every_scalar_value_alone();
}

#[test]
#[cfg_attr(miri, ignore = "1.1 million scalar values: hours under Miri")]
fn every_scalar_value_alone_matches_char_to_uppercase_on_the_portable_kernel() {
    fast::portable_only(every_scalar_value_alone);
}

/// Every scalar value as a whole stream of its own.
fn every_scalar_value_alone() {
    for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
        let mut buf = [0u8; 4];
        let expected: String = c.to_uppercase().collect();
        let got = upcase(c.encode_utf8(&mut buf).as_bytes(), Mode::Unicode);
        assert_eq!(got, expected.as_bytes(), "U+{:04X}", c as u32);
    }
}

#[test]
#[cfg_attr(miri, ignore = "1.1 million scalar values: hours under Miri")]
fn every_scalar_value_in_long_streams_matches_char_to_uppercase() {
    every_scalar_value_in_long_streams();
}

#[test]
#[cfg_attr(miri, ignore = "1.1 million scalar values: hours under Miri")]
fn every_scalar_value_in_long_streams_matches_char_to_uppercase_on_the_portable_kernel() {
    fast::portable_only(every_scalar_value_in_long_streams);
}

/// Every scalar value in one long stream, so that each goes through the block kernel, at
/// every offset within a block over the variants, beside ASCII and beside the non-ASCII
/// letters the kernel handles itself; in one call, in place, and in odd-sized chunks.
fn every_scalar_value_in_long_streams() {
    let neighbours: [(&str, &str); 4] = [("a", "z"), ("я", "ß"), ("ἀ", "ω"), ("中", "ÿ")];
    for (shift, (before, after)) in neighbours.iter().enumerate() {
        for pad in 0..3 {
            let mut input = "x".repeat(shift * 3 + pad);
            let mut expected = input.to_uppercase();
            for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
                input.push_str(before);
                input.push(c);
                input.push_str(after);
                expected.push_str(&before.to_uppercase());
                expected.extend(c.to_uppercase());
                expected.push_str(&after.to_uppercase());
            }
            let check = |got: &[u8], how: &str| {
                if got != expected.as_bytes() {
                    let at = got
                        .iter()
                        .zip(expected.as_bytes())
                        .position(|(a, b)| a != b)
                        .unwrap_or(got.len().min(expected.len()));
                    let from = at.saturating_sub(16);
                    panic!(
                        "{how}, neighbours {before:?} {after:?}, pad {pad}: first difference at \
                         byte {at}: got {:02X?}, expected {:02X?}",
                        &got[from..(at + 16).min(got.len())],
                        &expected.as_bytes()[from..(at + 16).min(expected.len())]
                    );
                }
            };
            check(&upcase(input.as_bytes(), Mode::Unicode), "push");
            check(&in_place_chunked(input.as_bytes(), &[65536]), "in place");
            check(
                &in_place_chunked(input.as_bytes(), &[997, 61, 4093]),
                "chunks",
            );
        }
    }
}

#[test]
fn one_to_three_expansions() {
    // alone, and repeated in text long enough for the block kernel
    for (c, upper) in [
        ('\u{0390}', "\u{0399}\u{0308}\u{0301}"),
        ('\u{03B0}', "\u{03A5}\u{0308}\u{0301}"),
        ('\u{1F52}', "\u{03A5}\u{0313}\u{0300}"),
        ('\u{1FB7}', "\u{0391}\u{0342}\u{0399}"),
    ] {
        assert_eq!(up(&c.to_string()), upper);
        let text: String = format!("λόγος {c} ").repeat(20);
        let expected: String = format!("ΛΌΓΟΣ {upper} ").repeat(20);
        assert_eq!(up(&text), expected);
        assert_eq!(
            in_place_chunked(text.as_bytes(), &[7, 64, 3]),
            expected.as_bytes()
        );
    }
}

#[test]
fn shrinking_mappings() {
    assert_eq!(up("\u{FB01}"), "FI"); // 3 bytes -> 2
    assert_eq!(up("ı"), "I"); // 2 bytes -> 1
    assert_eq!(up("ſ"), "S");
    let text = "ﬁne ﬁsh, ıi ſ ".repeat(20);
    let expected = "FINE FISH, II S ".repeat(20);
    assert_eq!(up(&text), expected);
    assert_eq!(
        in_place_chunked(text.as_bytes(), &[5, 100]),
        expected.as_bytes()
    );
}

#[test]
fn same_length_text_stays_in_place() {
    let samples = [
        "Die Straße führt über Köln nach Düsseldorf. ",
        "Съешь же ещё этих мягких французских булок. ",
        "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία, ς. ",
        "東京で会いましょう 🎉😀 서울 ",
        "à é î õ ü ÿ þ ",
        "plain ascii text ",
    ];
    for s in samples {
        let text = s.repeat(50);
        let mut buf = text.clone().into_bytes();
        let ptr = buf.as_ptr();
        let mut spill = Vec::new();
        let mut u = Upcaser::new(Mode::Unicode);
        let out = u.push_in_place(&mut buf, &mut spill);
        assert_eq!(out.as_ptr(), ptr, "{s:?} left the buffer");
        assert_eq!(out, up(&text).as_bytes());
    }
}

#[test]
fn in_place_holds_back_a_split_character_without_copying() {
    let text = "привет мир ".repeat(10);
    let bytes = text.as_bytes();
    let cut = bytes.len() - 2; // inside the final "р" ... the last letter before " "
    let cut = (0..cut).rev().find(|&i| bytes[i] & 0xC0 == 0x80).unwrap(); // a cont byte
    let mut buf = bytes[..cut].to_vec();
    let ptr = buf.as_ptr();
    let mut spill = Vec::new();
    let mut u = Upcaser::new(Mode::Unicode);
    let first = u.push_in_place(&mut buf, &mut spill).to_vec();
    assert_eq!(first.len(), cut - 1);
    assert_eq!(u.held_back(), &bytes[cut - 1..cut]);
    let mut out = first;
    let mut buf2 = bytes[cut..].to_vec();
    out.extend_from_slice(u.push_in_place(&mut buf2, &mut spill));
    u.finish(&mut out);
    assert_eq!(out, up(&text).as_bytes());
    assert_eq!(buf.as_ptr(), ptr);
}

/// Text like the benchmark samples, with invalid and truncated sequences mixed in, long
/// enough to span many blocks.
fn long_messy_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => "[a-zA-Z ,.]{1,40}".prop_map(String::into_bytes),
        2 => "[а-яёА-Я ]{1,20}".prop_map(String::into_bytes),
        2 => r"[α-ωάέήίόύώΐΰ\x{1F00}-\x{1F07}\x{1F50}-\x{1F57}\x{1F70}-\x{1F7D}\x{1F80}-\x{1FB7}\x{1FC2}-\x{1FD7}\x{1FE2}-\x{1FF7} ]{1,20}".prop_map(String::into_bytes),
        2 => "[ß-ÿäöüµ ]{1,20}".prop_map(String::into_bytes),
        2 => "[一-龥ぁ-んア-ン😀-🙏가-힣 ]{1,12}".prop_map(String::into_bytes),
        1 => any::<char>().prop_map(|c| c.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..6),
        1 => prop::collection::vec(0x80u8..0xC0, 0..3),
        1 => prop_oneof![Just(vec![0xF0, 0x9F]), Just(vec![0xE1, 0xBC]), Just(vec![0xD0]), Just(vec![0xCF])],
    ];
    prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn long_streams_split_anywhere_equal_the_reference(
        input in long_messy_bytes(),
        sizes in prop::collection::vec(1usize..200, 1..16),
    ) {
        let whole = reference_upcase(&input, Mode::Unicode);
        on_both_kernels(|| {
            prop_assert_eq!(&upcase(&input, Mode::Unicode), &whole);
            prop_assert_eq!(&pushed_chunked(&input, &sizes).0, &whole);
            prop_assert_eq!(&in_place_chunked(&input, &sizes), &whole);
            Ok(())
        })?;
    }

    #[test]
    fn in_place_equals_the_reference(input in messy_bytes(), sizes in prop::collection::vec(1usize..7, 1..64)) {
        let whole = reference_upcase(&input, Mode::Unicode);
        on_both_kernels(|| {
            prop_assert_eq!(&in_place_chunked(&input, &sizes), &whole);
            Ok(())
        })?;
    }
}
