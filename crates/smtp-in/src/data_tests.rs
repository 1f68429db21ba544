use super::*;

/// Feeds `input` in pieces of `step` bytes; returns the stored bytes and what was left.
fn unstuff(input: &[u8], step: usize) -> Option<(Vec<u8>, usize, bool)> {
    let mut reader = DotReader::new();
    let mut stored = Vec::new();
    let mut offset = 0;
    let mut false_end = false;
    while offset < input.len() {
        let end = (offset + step).min(input.len());
        let mut piece = &input[offset..end];
        while !piece.is_empty() {
            let (consumed, ended) = reader.feed(piece);
            false_end |= reader.take_false_end();
            stored.extend_from_slice(reader.ready(ended));
            reader.release(ended);
            offset += consumed;
            piece = &piece[consumed..];
            if ended {
                return Some((stored, input.len() - offset, false_end));
            }
        }
    }
    None
}

#[test]
fn every_read_boundary_gives_the_same_message() {
    let input = b"a\r\n..b\r\n.\r\nNEXT";
    for step in 1..=input.len() {
        assert_eq!(
            unstuff(input, step),
            Some((b"a\r\n.b\r\n".to_vec(), 4, false)),
            "step {step}"
        );
    }
}

#[test]
fn an_empty_message_and_a_stuffed_first_line() {
    assert_eq!(unstuff(b".\r\n", 1), Some((Vec::new(), 0, false)));
    assert_eq!(
        unstuff(b"..x\r\n.\r\n", 2),
        Some((b".x\r\n".to_vec(), 0, false))
    );
}

#[test]
fn only_crlf_dot_crlf_ends_the_data() {
    for vector in [
        &b"\n.\n"[..],
        b"\n.\r\n",
        b"\r.\r\n",
        b"\r\n.\rX",
        b"\r\n.\0\r\n",
        b"\r\n\0.\r\n",
    ] {
        let mut input = b"x".to_vec();
        input.extend_from_slice(vector);
        input.extend_from_slice(b"y\r\n.\r\n");
        let (_, left, false_end) = unstuff(&input, 3).expect("ends");
        assert_eq!((left, false_end), (0, false), "{vector:?}");
    }
}

#[test]
fn crlf_dot_cr_cr_lf_is_not_an_end() {
    let (stored, left, false_end) = unstuff(b"x\r\n.\r\r\nMAIL\r\n.\r\n", 4).expect("ends");
    assert_eq!((left, false_end), (0, true));
    assert!(
        stored
            .windows(2)
            .any(|pair| pair[0] == b'\r' && pair[1] != b'\n'),
        "the stored bytes keep the bare CR for the message policy to refuse"
    );
}
