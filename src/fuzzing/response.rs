//! Upstream response heads: parsed, and the relayed head the client would get checked.

use crate::http::head::Framing;
use crate::http::name_is;
use crate::http::response::{parse_response, ResponseHead};

// ---------------------------------------------------------------------------------------
// response_head

/// Upstream response heads.
///
/// Layout: one settings byte (bit 0: the request was HEAD; bits 1-2: head limit 16384, 64,
/// 512, 4096), then the response bytes.
pub fn response_head(data: &[u8]) {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let is_head = flags & 1 != 0;
    let max_head = [16384, 64, 512, 4096][usize::from((flags >> 1) & 3)];
    let mut r = ResponseHead::default();
    let Ok(Some(())) = parse_response(data, max_head, is_head, &mut r) else {
        return;
    };
    let n = r.head_len;
    assert!(n <= data.len() && n <= max_head);
    assert!(r.minor <= 1 && r.code <= 999);
    let in_head = |span: (u32, u32)| span.0 <= span.1 && span.1 as usize <= n;
    assert!(in_head(r.reason));
    let mut cl = None;
    for f in &r.fields {
        assert!(in_head(f.name) && in_head(f.value));
        let name = f.name(data);
        for hop in [
            &b"content-length"[..],
            b"transfer-encoding",
            b"connection",
            b"keep-alive",
            b"upgrade",
            b"trailer",
            b"te",
        ] {
            if name_is(name, hop) {
                assert!(f.hop, "{} forwarded", String::from_utf8_lossy(name));
            }
        }
        if name_is(name, b"content-length") {
            cl = Some(f.value(data));
        }
    }
    assert_eq!(
        r.content_length,
        cl.map(|v| std::str::from_utf8(v).unwrap().parse::<u64>().unwrap())
    );
    let bodiless = is_head || (100..200).contains(&r.code) || matches!(r.code, 204 | 304);
    match r.framing() {
        Framing::Length(len) if !bodiless => assert_eq!(r.content_length, Some(len)),
        Framing::Length(len) => assert_eq!(len, 0),
        Framing::Chunked | Framing::Close => assert!(!bodiless),
    }
    if r.framing() == Framing::Close {
        assert!(!r.reusable);
    }
    if r.framing() == Framing::Chunked {
        // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
        assert_eq!(r.minor, 1);
    }

    // Trailing bytes, a reused head, and arrival in pieces change nothing.
    let mut reused = ResponseHead::default();
    let earlier: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, x\r\nX: 1\r\n\r\n";
    assert_eq!(
        parse_response(earlier, 16384, false, &mut reused),
        Ok(Some(()))
    );
    assert_eq!(
        parse_response(&data[..n], max_head, is_head, &mut reused),
        Ok(Some(()))
    );
    assert_eq!(
        (r.head_len, r.code, r.reason, r.minor),
        (reused.head_len, reused.code, reused.reason, reused.minor)
    );
    assert_eq!(r.fields, reused.fields);
    assert_eq!(
        (r.framing, r.content_length, r.reusable),
        (reused.framing, reused.content_length, reused.reusable)
    );
    for cut in [n - 1, n / 2] {
        assert_eq!(
            parse_response(&data[..cut], max_head, is_head, &mut reused),
            Ok(None),
            "prefix of {cut} of an accepted head"
        );
    }
}
