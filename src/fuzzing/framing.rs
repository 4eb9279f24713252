//! Request framing and chunked decoding: heads parsed and bodies decoded the way the
//! proxy does, whole and piecewise, with the results compared.

use crate::http::body::{BodyError, ChunkedDecoder, Output, Progress};
use crate::http::head::{parse_request, Framing, Limits, RequestHead};
use crate::http::{is_tchar, name_is};

// ---------------------------------------------------------------------------------------
// request_framing

/// Tight limits, so the limit paths are reached with small inputs.
const SMALL_LIMITS: Limits = Limits {
    max_head_bytes: 256,
    max_headers: 8,
    max_uri_bytes: 64,
};

/// Request framing: parse a head, then decode the body the way the proxy would.
///
/// Layout: one settings byte (low 7 bits: the piece size for piecewise feeding; high bit:
/// `SMALL_LIMITS` instead of the defaults), then the request bytes.
pub fn request_framing(data: &[u8]) {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let split = usize::from(flags & 0x7f).max(1);
    let limits = if flags & 0x80 != 0 {
        SMALL_LIMITS
    } else {
        Limits::default()
    };
    let mut head = RequestHead::default();
    let Ok(Some(())) = parse_request(data, &limits, &mut head) else {
        return;
    };
    check_request_head(data, &head, &limits);

    // The verdict depends on the head's bytes only, not on what follows it, and a head
    // reused from an earlier request (as a keep-alive connection does) gives the same.
    let mut reused = dirty_request_head();
    let own = &data[..head.head_len];
    assert_eq!(parse_request(own, &limits, &mut reused), Ok(Some(())));
    assert_same_request_head(&head, &reused);
    // A slow client sends the same head in pieces: every prefix must ask for more bytes,
    // never be refused (the proxy would answer 400 to what it accepts whole).
    for cut in [
        head.head_len - 1,
        head.head_len - 2,
        head.head_len / 2,
        split,
    ] {
        if cut < head.head_len {
            let r = parse_request(&data[..cut], &limits, &mut reused);
            assert_eq!(r, Ok(None), "prefix of {cut} of an accepted head");
        }
    }

    let body = &data[head.head_len..];
    match head.body_framing() {
        Framing::Length(n) => assert!(n < 10u64.pow(19)),
        Framing::Chunked => check_chunked(body, 0, 8192, u32::from(flags)),
        Framing::Close => panic!("a request is never close-delimited"),
    }
}

/// Facts about an accepted head that the proxy relies on when it forwards it.
fn check_request_head(data: &[u8], head: &RequestHead, limits: &Limits) {
    let n = head.head_len;
    assert!(n <= data.len() && n <= limits.max_head_bytes);
    assert!(data[..n].ends_with(b"\r\n\r\n"));
    let in_head = |span: (u32, u32)| span.0 <= span.1 && span.1 as usize <= n;
    assert!(in_head(head.method) && in_head(head.target));
    let method = head.method(data);
    assert!(!method.is_empty() && method.iter().all(|&b| is_tchar(b)));
    let target = head.target(data);
    assert!(target.starts_with(b"/") && target.len() <= limits.max_uri_bytes);
    assert!(target.iter().all(|b| (0x21..=0x7e).contains(b)));
    assert!(head.minor <= 1);
    assert!(head.fields.len() <= limits.max_headers);
    let (mut cl, mut te, mut auth) = (0, 0, 0);
    for f in &head.fields {
        assert!(in_head(f.name) && in_head(f.value));
        let (name, value) = (f.name(data), f.value(data));
        assert!(!name.is_empty() && name.iter().all(|&b| is_tchar(b)));
        assert!(!value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)));
        // Whatever frames or names the connection is never forwarded as received.
        for hop in [
            &b"content-length"[..],
            b"transfer-encoding",
            b"connection",
            b"host",
            b"upgrade",
            b"expect",
            b"te",
            b"trailer",
            b"keep-alive",
            b"proxy-connection",
            b"forwarded",
            b"x-real-ip",
        ] {
            if name_is(name, hop) {
                assert!(f.hop, "{} forwarded", String::from_utf8_lossy(name));
            }
        }
        let lower = name.to_ascii_lowercase();
        if lower.starts_with(b"x-forwarded-") {
            assert!(f.hop, "{} forwarded", String::from_utf8_lossy(name));
        }
        // A look-alike of one of those (`Transfer_Encoding`, `Content--Length`) is refused,
        // or is itself a forwarding field that is dropped; never forwarded.
        let normal = normal_form(name);
        if normal != lower && names_special_field(&normal) {
            assert!(
                f.hop,
                "look-alike {} forwarded",
                String::from_utf8_lossy(name)
            );
        }
        cl += usize::from(name_is(name, b"content-length"));
        te += usize::from(name_is(name, b"transfer-encoding"));
        auth += usize::from(name_is(name, b"authorization"));
    }
    assert!(auth <= 1, "several Authorization fields accepted");
    if let Some(i) = head.host {
        assert!(name_is(head.fields[i].name(data), b"host"));
    }
    if head.minor == 1 {
        assert!(head.host.is_some());
    }
    assert!(cl <= 1 && te <= 1 && cl + te <= 1);
    match head.body_framing() {
        Framing::Chunked => assert!(te == 1 && head.minor == 1),
        Framing::Length(_) => assert_eq!(te, 0),
        Framing::Close => {}
    }
    if head.websocket {
        assert!(method == b"GET" && head.minor == 1);
    }
    // A GET or HEAD with a body ends both connections after its exchange.
    let has_body = matches!(head.body_framing(), Framing::Chunked | Framing::Length(1..));
    let ambiguous = (method == b"GET" || method == b"HEAD") && has_body;
    assert_eq!(head.ambiguous, ambiguous);
    if ambiguous {
        assert!(!head.keep_alive);
    }
    if head.expect_continue {
        assert_eq!(head.minor, 1);
    }
}

/// The names the head judgment treats specially, whose look-alikes it must not forward.
const SPECIAL_FIELDS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "forwarded",
    "x-real-ip",
];

/// Lower case, `_` as `-`, runs of `-` as one: how lenient backends read a field name.
fn normal_form(name: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(name.len());
    for b in name.to_ascii_lowercase() {
        let b = if b == b'_' { b'-' } else { b };
        if !(b == b'-' && out.last() == Some(&b'-')) {
            out.push(b);
        }
    }
    out
}

fn names_special_field(normal: &[u8]) -> bool {
    normal.starts_with(b"x-forwarded-") || SPECIAL_FIELDS.iter().any(|f| f.as_bytes() == normal)
}

/// A head left over from an earlier, very different request.
fn dirty_request_head() -> RequestHead {
    let mut h = RequestHead::default();
    let earlier: &[u8] = b"GET /ws?x HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, keep-alive\r\n\
        Upgrade: websocket\r\nExpect: 100-continue\r\nX-Forwarded-For: 1.2.3.4\r\n\
        Authorization: Basic YTpi\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(
        parse_request(earlier, &Limits::default(), &mut h),
        Ok(Some(()))
    );
    h
}

fn assert_same_request_head(a: &RequestHead, b: &RequestHead) {
    assert_eq!(a.head_len, b.head_len);
    assert_eq!((a.method, a.target, a.minor), (b.method, b.target, b.minor));
    assert_eq!(a.fields, b.fields);
    assert_eq!(
        (a.host, a.framing, a.forwarded_for),
        (b.host, b.framing, b.forwarded_for)
    );
    assert_eq!(
        (a.keep_alive, a.expect_continue, a.websocket, a.ambiguous),
        (b.keep_alive, b.expect_continue, b.websocket, b.ambiguous)
    );
}

// ---------------------------------------------------------------------------------------
// chunked_decoding

/// Chunked body decoding under limits.
///
/// Layout: one settings byte (bits 0-1: body limit 0 = none, 1, 64, 4096; bits 2-3: trailer
/// limit 0, 8, 64, 8192; bits 4-7: how piecewise feeding cuts the input), then the body.
pub fn chunked_decoding(data: &[u8]) {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let max_body = [0, 1, 64, 4096][usize::from(flags & 3)];
    let max_trailer = [0, 8, 64, 8192][usize::from((flags >> 2) & 3)];
    check_chunked(body, max_body, max_trailer, u32::from(flags >> 4));
}

/// What one complete decode gave.
struct Decoded {
    result: Result<Progress, BodyError>,
    out: Vec<u8>,
    total: u64,
    trailer_len: usize,
}

fn decode_whole(body: &[u8], output: Output, max_body: u64, max_trailer: usize) -> Decoded {
    let mut d = ChunkedDecoder::new(output, max_body, max_trailer);
    let mut out = Vec::new();
    let result = d.feed(body, &mut out);
    if let Ok(p) = result {
        // `consumed` never exceeds the input and only stops short at the end of the body.
        assert!(p.consumed <= body.len());
        assert_eq!(p.done, d.is_done());
        if !p.done {
            assert_eq!(p.consumed, body.len());
        }
    }
    Decoded {
        result,
        out,
        total: d.total(),
        trailer_len: d.trailer_len(),
    }
}

/// Feeds `body` in pieces whose sizes follow `seed`; the progress is summed over the pieces.
fn decode_pieces(
    body: &[u8],
    output: Output,
    max_body: u64,
    max_trailer: usize,
    seed: u32,
) -> Decoded {
    let mut d = ChunkedDecoder::new(output, max_body, max_trailer);
    let mut out = Vec::new();
    let mut rng = seed.wrapping_mul(0x9E37_79B9) | 1;
    let mut at = 0;
    let mut result = Ok(Progress {
        consumed: 0,
        done: false,
    });
    while at < body.len() {
        // xorshift32: small pieces mostly, so every state boundary gets split somewhere.
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        let size = 1 + (rng as usize) % if seed & 8 != 0 { 64 } else { 4 };
        let end = (at + size).min(body.len());
        let piece = end - at;
        match d.feed(&body[at..end], &mut out) {
            Ok(p) => {
                assert!(p.consumed <= piece);
                at += p.consumed;
                result = Ok(Progress {
                    consumed: at,
                    done: p.done,
                });
                if p.done {
                    break;
                }
                assert_eq!(p.consumed, piece, "stopped short of a piece, not done");
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    Decoded {
        result,
        out,
        total: d.total(),
        trailer_len: d.trailer_len(),
    }
}

/// The decoder's invariants on one body: whole and piecewise feeding agree, the canonical
/// re-encoding is canonical and decodes to the same bytes, and the limits hold exactly.
fn check_chunked(body: &[u8], max_body: u64, max_trailer: usize, seed: u32) {
    let whole = decode_whole(body, Output::Raw, max_body, max_trailer);
    let pieces = decode_pieces(body, Output::Raw, max_body, max_trailer, seed);
    assert_eq!(whole.result, pieces.result);
    if whole.result.is_ok() {
        assert_eq!(whole.out, pieces.out);
        assert_eq!(whole.total, pieces.total);
        // Sizes are counted when a size line ends; the data may still be on its way.
        assert!(whole.out.len() as u64 <= whole.total);
        if max_body != 0 {
            assert!(whole.total <= max_body);
        }
    }
    let done = matches!(whole.result, Ok(Progress { done: true, .. }));
    if done {
        assert_eq!(whole.out.len() as u64, whole.total);
    }

    // The same without limits: the limited run differs only by refusing, and exactly when
    // a limit is crossed.
    let free = decode_whole(body, Output::Chunked, 0, usize::MAX);
    match &free.result {
        Ok(p) => {
            let trailer_bytes = if p.done {
                let raw = decode_whole(body, Output::Raw, 0, usize::MAX).out;
                check_canonical(&free.out, &raw);
                check_size_lines(&body[..p.consumed]);
                Some(free.trailer_len)
            } else {
                None
            };
            let over_body = max_body != 0 && free.total > max_body;
            let over_trailer = trailer_bytes.is_some_and(|t| t > max_trailer);
            match whole.result {
                Ok(q) => {
                    assert!(!over_body, "body limit not honoured");
                    assert_eq!(&q, p);
                    assert!(!over_trailer, "trailer limit not honoured");
                }
                Err(BodyError::TooLarge) => assert!(over_body),
                Err(BodyError::Malformed("trailer section too large")) => {
                    assert!(!p.done || over_trailer)
                }
                Err(e) => panic!("{e:?} only with a limit"),
            }
        }
        Err(_) => assert!(whole.result.is_err()),
    }

    if done {
        let consumed = whole.result.map(|p| p.consumed).unwrap_or_default();
        // The body ends where it ends, whatever comes after it (pipelined requests).
        let alone = decode_whole(&body[..consumed], Output::Raw, max_body, max_trailer);
        assert_eq!(
            alone.result,
            Ok(Progress {
                consumed,
                done: true
            })
        );
        assert_eq!(alone.out, whole.out);
        // Piecewise canonical output has other chunk boundaries but the same data.
        let pieces = decode_pieces(body, Output::Chunked, max_body, max_trailer, seed);
        assert_eq!(pieces.result, whole.result);
        let back = decode_whole(&pieces.out, Output::Raw, 0, usize::MAX);
        assert!(
            matches!(back.result, Ok(Progress { done: true, consumed }) if consumed == pieces.out.len())
        );
        assert_eq!(back.out, whole.out);
    }
}

/// Checks the shape of a canonical encoding (lower-case hex sizes without leading zeros or
/// extensions, no empty data chunk, no trailers: they are dropped), that decoding it gives
/// `raw` and that it is a fixed point of re-encoding.
fn check_canonical(canon: &[u8], raw: &[u8]) {
    let mut at = 0;
    let mut data = Vec::new();
    loop {
        let line_end = find_crlf(canon, at).expect("size line ends in CRLF");
        let size = &canon[at..line_end];
        assert!(!size.is_empty() && size.len() <= 16);
        assert!(size
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)));
        assert!(
            size == b"0" || size[0] != b'0',
            "leading zero in chunk size"
        );
        let n = usize::from_str_radix(std::str::from_utf8(size).expect("hex"), 16).expect("fits");
        at = line_end + 2;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&canon[at..at + n]);
        assert_eq!(&canon[at + n..at + n + 2], b"\r\n");
        at += n + 2;
    }
    assert_eq!(data, raw);
    assert_eq!(
        &canon[at..],
        b"\r\n",
        "trailers or bytes after the last chunk"
    );
    let again = decode_whole(canon, Output::Chunked, 0, usize::MAX);
    assert_eq!(
        again.result,
        Ok(Progress {
            consumed: canon.len(),
            done: true
        })
    );
    assert_eq!(again.out, canon, "canonical form is not a fixed point");
}

/// Walks an accepted body's size lines as received and checks each one's extensions against
/// a restatement of RFC 9112 §7.1.1 (so a quoted string closes before the CRLF), and that
/// each trailer line is a field line.
fn check_size_lines(body: &[u8]) {
    let mut at = 0;
    loop {
        let line_end = find_crlf(body, at).expect("size line ends in CRLF");
        let line = &body[at..line_end];
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        assert!(
            extensions_are_valid(&line[digits..]),
            "accepted chunk extensions {:?}",
            String::from_utf8_lossy(&line[digits..])
        );
        let size = u64::from_str_radix(std::str::from_utf8(&line[..digits]).expect("hex"), 16)
            .expect("size fits");
        at = line_end + 2;
        if size == 0 {
            break;
        }
        at += size as usize + 2;
    }
    loop {
        let line_end = find_crlf(body, at).expect("trailer line ends in CRLF");
        if line_end == at {
            assert_eq!(line_end + 2, body.len());
            return;
        }
        let line = &body[at..line_end];
        let colon = line.iter().position(|&b| b == b':').expect("field line");
        assert!(colon > 0 && line[..colon].iter().all(|&b| is_tchar(b)));
        at = line_end + 2;
    }
}

/// `*( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] ) BWS`.
fn extensions_are_valid(mut e: &[u8]) -> bool {
    fn bws(e: &[u8]) -> &[u8] {
        let n = e.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
        &e[n..]
    }
    fn token(e: &[u8]) -> Option<&[u8]> {
        let n = e.iter().take_while(|&&b| is_tchar(b)).count();
        (n > 0).then(|| &e[n..])
    }
    fn quoted(mut q: &[u8]) -> Option<&[u8]> {
        let text = |b: u8| b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80;
        loop {
            match q {
                [b'"', rest @ ..] => return Some(rest),
                [b'\\', c, rest @ ..] if text(*c) => q = rest,
                [c, rest @ ..] if text(*c) && *c != b'\\' => q = rest,
                _ => return None,
            }
        }
    }
    loop {
        e = bws(e);
        if e.is_empty() {
            return true;
        }
        let Some(rest) = e.strip_prefix(b";") else {
            return false;
        };
        let Some(rest) = token(bws(rest)) else {
            return false;
        };
        e = bws(rest);
        if let Some(rest) = e.strip_prefix(b"=") {
            let v = bws(rest);
            let after = match v.strip_prefix(b"\"") {
                Some(q) => quoted(q),
                None => token(v),
            };
            let Some(after) = after else {
                return false;
            };
            e = after;
        }
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}
