use super::*;
use proptest::prelude::*;

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
fn every_scalar_value_matches_char_to_uppercase() {
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
        prop_assert_eq!(upcase(&input, Mode::Unicode), reference_upcase(&input, Mode::Unicode));
    }

    #[test]
    fn every_split_point_gives_the_same_output(input in messy_bytes()) {
        let whole = reference_upcase(&input, Mode::Unicode);
        for at in 0..=input.len() {
            let mut u = Upcaser::new(Mode::Unicode);
            let mut out = Vec::new();
            u.push(&input[..at], &mut out);
            u.push(&input[at..], &mut out);
            u.finish(&mut out);
            prop_assert_eq!(&out, &whole, "split at {}", at);
        }
    }

    #[test]
    fn random_chunking_gives_the_same_output(
        input in messy_bytes(),
        sizes in prop::collection::vec(1usize..7, 1..64),
    ) {
        let whole = reference_upcase(&input, Mode::Unicode);
        let mut u = Upcaser::new(Mode::Unicode);
        let mut out = Vec::new();
        let mut rest = &input[..];
        for n in sizes.iter().cycle() {
            if rest.is_empty() { break; }
            let (a, b) = rest.split_at((*n).min(rest.len()));
            u.push(a, &mut out);
            prop_assert!(u.held_back().len() <= MAX_HELD_BACK);
            rest = b;
        }
        u.finish(&mut out);
        prop_assert_eq!(out, whole);
    }

    #[test]
    fn output_never_grows_beyond_max_expansion(input in messy_bytes()) {
        prop_assert!(upcase(&input, Mode::Unicode).len() <= input.len() * MAX_EXPANSION);
    }
}
