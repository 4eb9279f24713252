//! Entry points for the `fuzz/` targets, kept in the library so the seed corpora also run as
//! ordinary tests (`tests/fuzz_corpus.rs`). Each must never panic, whatever the bytes.
#![doc(hidden)]

use crate::http::body::{ChunkedDecoder, Output};
use crate::http::head::{parse_request, Framing, Limits, RequestHead};

/// Request framing: parse a head, then decode the body the way the proxy would, in pieces
/// of varying size (the first byte picks the split), and check the decoder's invariants.
pub fn request_framing(data: &[u8]) {
    let (split, data) = match data.split_first() {
        Some((s, rest)) => (usize::from(*s).max(1), rest),
        None => return,
    };
    let mut head = RequestHead::default();
    let limits = Limits::default();
    let Ok(Some(())) = parse_request(data, &limits, &mut head) else {
        return;
    };
    assert!(head.head_len <= data.len());
    let body = &data[head.head_len..];
    match head.body_framing() {
        Framing::Length(n) => assert!(n < u64::MAX),
        Framing::Chunked => {
            let mut whole = ChunkedDecoder::new(Output::Raw, 0, 8192);
            let mut expect = Vec::new();
            let whole_res = whole.feed(body, &mut expect);
            // Feeding in pieces must give the same bytes and the same verdict.
            let mut pieces = ChunkedDecoder::new(Output::Raw, 0, 8192);
            let mut got = Vec::new();
            let mut at = 0;
            let mut piece_res = Ok(());
            while at < body.len() && !pieces.is_done() {
                let end = (at + split).min(body.len());
                match pieces.feed(&body[at..end], &mut got) {
                    Ok(p) => at += p.consumed,
                    Err(e) => {
                        piece_res = Err(e);
                        break;
                    }
                }
                if end == body.len() && !pieces.is_done() {
                    break;
                }
            }
            match whole_res {
                Ok(p) => {
                    assert!(piece_res.is_ok());
                    assert_eq!(p.done, pieces.is_done());
                    assert_eq!(expect, got);
                }
                Err(e) => assert_eq!(piece_res, Err(e)),
            }
            // Canonical output must decode to the same data.
            if whole.is_done() {
                let mut again = ChunkedDecoder::new(Output::Chunked, 0, 8192);
                let mut canon = Vec::new();
                let p = again.feed(body, &mut canon).expect("accepted once");
                assert!(p.done);
                let mut check = ChunkedDecoder::new(Output::Raw, 0, 8192);
                let mut raw = Vec::new();
                let p = check
                    .feed(&canon, &mut raw)
                    .expect("canonical form decodes");
                assert!(p.done && p.consumed == canon.len());
                assert_eq!(raw, expect);
            }
        }
        Framing::Close => panic!("a request is never close-delimited"),
    }
}
