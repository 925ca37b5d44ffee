//! Any bytes, split anywhere, through `push` and `push_in_place`, must equal the std-based
//! reference: the streaming transform is exact whatever the input and the chunking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upcase::transform::{reference_upcase, Mode, Upcaser};

fuzz_target!(|data: &[u8]| {
    // The first bytes choose the chunk sizes (1..=256, cycled); the rest is the stream.
    let (sizes, input) = data.split_at(data.len().min(4));
    let sizes: Vec<usize> = if sizes.is_empty() {
        vec![usize::MAX]
    } else {
        sizes.iter().map(|&s| usize::from(s) + 1).collect()
    };
    let expected = reference_upcase(input, Mode::Unicode);

    let mut up = Upcaser::new(Mode::Unicode);
    let mut out = Vec::new();
    let mut in_place = Upcaser::new(Mode::Unicode);
    let mut out2 = Vec::new();
    let mut spill = Vec::new();
    let mut rest = input;
    for &n in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        up.push(chunk, &mut out);
        let mut buf = chunk.to_vec();
        out2.extend_from_slice(in_place.push_in_place(&mut buf, &mut spill));
        rest = tail;
    }
    up.finish(&mut out);
    in_place.finish(&mut out2);
    assert_eq!(out, expected, "push");
    assert_eq!(out2, expected, "push_in_place");
});
