//! Entry points for the `fuzz/` targets, kept in the library so the seed corpora also run as
//! ordinary tests (`tests/fuzz_corpus.rs`). Each must never panic, whatever the bytes; the
//! `assert!`s below are the invariants a run checks, and a failing one is a finding.
//!
//! Most targets read a leading byte or two as settings (a split size, a limit, a mode) and
//! the rest as the input proper; `fuzz/README.md` lists each layout and its invariants.
#![doc(hidden)]
#![forbid(unsafe_code)]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::backchannel::{self, LogoutError, Policy, ReplayGuard};
use crate::config::{Config, ConfigError};
use crate::http::body::{BodyError, ChunkedDecoder, Output, Progress};
use crate::http::head::{parse_request, Framing, Limits, RequestHead};
use crate::http::response::{parse_response, ResponseHead};
use crate::http::{is_tchar, name_is};
use crate::jwt::claims::Claims;
use crate::jwt::{self, Alg, JwkSet, JwtError, KeyKind, Validation};
use crate::session::id::{SessionId, COOKIE_LEN, ID_LEN};

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
/// [`SMALL_LIMITS`] instead of the defaults), then the request bytes.
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
    assert!(head.minor <= 1);
    assert!(head.fields.len() <= limits.max_headers);
    let (mut cl, mut te) = (0, 0);
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
            b"x-forwarded-for",
            b"x-forwarded-host",
            b"x-forwarded-proto",
        ] {
            if name_is(name, hop) {
                assert!(f.hop, "{} forwarded", String::from_utf8_lossy(name));
            }
        }
        cl += usize::from(name_is(name, b"content-length"));
        te += usize::from(name_is(name, b"transfer-encoding"));
    }
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
    if head.expect_continue {
        assert_eq!(head.minor, 1);
    }
}

/// A head left over from an earlier, very different request.
fn dirty_request_head() -> RequestHead {
    let mut h = RequestHead::default();
    let earlier: &[u8] = b"GET /ws?x HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, keep-alive\r\n\
        Upgrade: websocket\r\nExpect: 100-continue\r\nX-Forwarded-For: 1.2.3.4\r\n\
        Transfer-Encoding: chunked\r\n\r\n";
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
        (a.keep_alive, a.expect_continue, a.websocket),
        (b.keep_alive, b.expect_continue, b.websocket)
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
                Some(check_canonical(&free.out, &raw))
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
/// extensions, no empty data chunk, validated trailers), that decoding it gives `raw` and
/// that it is a fixed point of re-encoding. Returns the trailer bytes (CRLFs not counted).
fn check_canonical(canon: &[u8], raw: &[u8]) -> usize {
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
    let mut trailer_bytes = 0;
    loop {
        let line_end = find_crlf(canon, at).expect("trailer line ends in CRLF");
        if line_end == at {
            assert_eq!(line_end + 2, canon.len(), "bytes after the last CRLF");
            break;
        }
        let line = &canon[at..line_end];
        let colon = line.iter().position(|&b| b == b':').expect("field line");
        assert!(colon > 0 && line[..colon].iter().all(|&b| is_tchar(b)));
        trailer_bytes += line.len();
        at = line_end + 2;
    }
    let again = decode_whole(canon, Output::Chunked, 0, usize::MAX);
    assert_eq!(
        again.result,
        Ok(Progress {
            consumed: canon.len(),
            done: true
        })
    );
    assert_eq!(again.out, canon, "canonical form is not a fixed point");
    trailer_bytes
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

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

// ---------------------------------------------------------------------------------------
// cookie_parsing

/// The SESSION cookie: found in a request head, then parsed as a session id.
///
/// Layout: the bytes after `Cookie: ` in a request head (they may add more fields).
pub fn cookie_parsing(data: &[u8]) {
    let mut buf = Vec::with_capacity(data.len() + 64);
    buf.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\nCookie: ");
    buf.extend_from_slice(data);
    buf.extend_from_slice(b"\r\n\r\n");
    let mut head = RequestHead::default();
    if let Ok(Some(())) = parse_request(&buf, &Limits::default(), &mut head) {
        let found = crate::gate::session_cookie(&head, &buf);
        assert_eq!(found, first_session_pair(&head, &buf));
        if let Some(v) = found {
            assert!(!v.contains(&b';'));
            assert!(!v.ends_with(b" ") && !v.ends_with(b"\t"));
            check_session_id(v);
        }
    }
    // The parser alone, on the raw bytes and on each cookie pair's value.
    check_session_id(data);
    for pair in data.split(|&b| b == b';') {
        if let Some(eq) = pair.iter().position(|&b| b == b'=') {
            check_session_id(&pair[eq + 1..]);
        }
    }
    // And the other way: any 17 bytes encode to a value that parses back to them.
    if let Some(bytes) = data.get(..ID_LEN) {
        let id = SessionId::from_bytes(bytes.try_into().expect("ID_LEN bytes"));
        let enc = id.encode();
        assert_eq!(enc.as_bytes().len(), COOKIE_LEN);
        assert!(enc
            .as_bytes()
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(SessionId::parse(enc.as_bytes()), Some(id));
        assert_eq!(id.owner(), bytes[0]);
        assert!(
            !format!("{id:?}").contains(enc.as_str()),
            "Debug leaks the id"
        );
    }
}

/// A plain restatement of how the first SESSION pair is found, for comparison.
fn first_session_pair<'a>(head: &RequestHead, buf: &'a [u8]) -> Option<&'a [u8]> {
    for f in &head.fields {
        if !f.name(buf).eq_ignore_ascii_case(b"cookie") {
            continue;
        }
        for pair in f.value(buf).split(|&b| b == b';') {
            let pair = crate::http::trim_ows(pair);
            if let Some(v) = pair.strip_prefix(b"SESSION=") {
                return Some(v);
            }
        }
    }
    None
}

/// Accepted values are exactly the canonical encodings: parse then encode is the identity.
fn check_session_id(value: &[u8]) {
    if let Some(id) = SessionId::parse(value) {
        assert_eq!(value.len(), COOKIE_LEN);
        assert_eq!(id.encode().as_bytes(), value);
        assert_eq!(id.as_bytes()[0], id.owner());
    }
}

// ---------------------------------------------------------------------------------------
// jwt_logout_token

/// The fixture's issuer, client id and reference time.
const ISSUER: &str = "https://idp.example/realms/fuzz";
const CLIENT_ID: &str = "gateway";
pub const NOW: u64 = 1_750_000_000;
const LEEWAY: u64 = 60;
const MAX_AGE: u64 = 120;

/// The key set every token is checked against: an EC P-256 key and an Ed25519 key, as a
/// provider would publish them.
const JWKS: &str = r#"{"keys":[
  {"kty":"EC","crv":"P-256","use":"sig","alg":"ES256","kid":"fuzz-p256",
   "x":"HUyre5RrUWzh_owctfG_4NxPdtFScRwZDflklRCi3cE",
   "y":"uOUE5FtksNrW74rC-RJ1PBfU3i0sNjcq-JTIJPi9j38"},
  {"kty":"OKP","crv":"Ed25519","use":"sig","kid":"fuzz-ed",
   "x":"XEtjKAIbeycNdNYgKR3wm-nobR8FCUASg3EiiLzsczs"}
]}"#;

/// The private halves, so the target can sign claims the fuzzer writes and reach the checks
/// behind the signature. Made for this fixture only; they sign nothing else anywhere.
const P256_PKCS8: &str =
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgST7Q2CNx-BItaPHX0T75oXfFm\
    nNj46OWvvTcBU603M6hRANCAAQdTKt7lGtRbOH-jBy18b_g3E920VJxHBkN-WSVEKLdwbjlBORbZLDa1u-KwvkSdTwX1\
    N4tLDY3KviUyCT4vY9_";
const ED25519_SEED: &str = "9Df966AWuEkoAfs3KnbQPlknCtytafYxJrAmM-K5xmY";

struct JwtFixture {
    keys: JwkSet,
    p256: ring::signature::EcdsaKeyPair,
    ed25519: ring::signature::Ed25519KeyPair,
    rng: ring::rand::SystemRandom,
    validation: Validation,
    policy: Policy,
}

fn jwt_fixture() -> &'static JwtFixture {
    static FIXTURE: OnceLock<JwtFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let der = URL_SAFE_NO_PAD
            .decode(P256_PKCS8.replace(' ', ""))
            .expect("fixture key");
        let p256 = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .expect("fixture P-256 key");
        let seed = URL_SAFE_NO_PAD.decode(ED25519_SEED).expect("fixture seed");
        let ed25519 = Ed25519KeyPair::from_seed_unchecked(&seed).expect("fixture Ed25519 key");
        let mut validation = Validation::new(ISSUER, CLIENT_ID);
        validation.leeway_secs = LEEWAY;
        JwtFixture {
            keys: JwkSet::from_json(JWKS.as_bytes()).expect("fixture JWKS"),
            p256,
            ed25519,
            rng,
            validation,
            policy: Policy {
                issuer: ISSUER.into(),
                client_id: CLIENT_ID.into(),
                leeway_secs: LEEWAY,
                max_age_secs: MAX_AGE,
            },
        }
    })
}

/// JWS verification and back-channel logout-token validation.
///
/// Layout: a mode byte, two bytes of clock offset (i16, little-endian; `now` is
/// [`NOW`] plus the offset, or the bare offset when bit 3 is set), then by mode (the low
/// three bits):
/// - 0: a compact token as received;
/// - 1: a form body carrying `logout_token`;
/// - 2: header JSON, a NUL byte, claims JSON (no NUL: the claims, with a default header);
///   the target signs them with the fixture's Ed25519 key, or its P-256 key when mode bit
///   4 is set, then verifies and validates the token;
/// - 3: claims JSON checked without a signature (the claim rules alone);
/// - 4 to 7: a JWKS document.
pub fn jwt_logout_token(data: &[u8]) {
    let [mode, t0, t1, rest @ ..] = data else {
        return;
    };
    let offset = i16::from_le_bytes([*t0, *t1]);
    let now = if mode & 8 != 0 {
        u64::from(offset as u16)
    } else {
        NOW.saturating_add_signed(i64::from(offset))
    };
    match mode & 7 {
        0 => unsigned_token(&String::from_utf8_lossy(rest), now),
        1 => {
            if let Ok(token) = backchannel::token_from_form(rest) {
                assert!(!token.is_empty());
                unsigned_token(&token, now);
            }
        }
        2 => signed_token(rest, mode & 16 != 0, now),
        3 => claims_only(rest, now),
        _ => key_set(rest),
    }
}

/// A token nobody signed with the fixture's keys: it never verifies, and it fails the same
/// way whichever entry point sees it.
fn unsigned_token(token: &str, now: u64) {
    let f = jwt_fixture();
    let header = jwt::decode_unverified_header(token);
    let verified = jwt::verify(token, &f.keys, &f.validation, now);
    let Err(e) = verified else {
        panic!("a token the fuzzer wrote verified: {token:?}");
    };
    if let Err(h) = header {
        assert_eq!(e, h, "header verdicts differ");
    }
    assert_eq!(
        backchannel::validate(token, &f.keys, &f.policy, now),
        Err(LogoutError::Jwt(e))
    );
}

fn signed_token(rest: &[u8], p256: bool, now: u64) {
    let f = jwt_fixture();
    let (header, claims): (&[u8], &[u8]) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None if p256 => (
            br#"{"alg":"ES256","kid":"fuzz-p256","typ":"logout+jwt"}"#,
            rest,
        ),
        None => (
            br#"{"alg":"EdDSA","kid":"fuzz-ed","typ":"logout+jwt"}"#,
            rest,
        ),
    };
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = if p256 {
        f.p256
            .sign(&f.rng, input.as_bytes())
            .expect("signing")
            .as_ref()
            .to_vec()
    } else {
        f.ed25519.sign(input.as_bytes()).as_ref().to_vec()
    };
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&signature));

    let verified = jwt::verify(&token, &f.keys, &f.validation, now);
    if let Ok(c) = &verified {
        let family = if p256 { Alg::ES256 } else { Alg::EdDSA };
        assert_eq!(c.header().alg, family);
        assert_valid_claims(c, now, true);
    }
    let mut relaxed = f.validation.clone();
    relaxed.require_exp = false;
    let relaxed = jwt::verify(&token, &f.keys, &relaxed, now);
    if verified.is_ok() {
        assert_eq!(relaxed, verified);
    }
    let logout = backchannel::validate(&token, &f.keys, &f.policy, now);
    match (&relaxed, &logout) {
        (Err(e), _) => assert_eq!(logout, Err(LogoutError::Jwt(*e))),
        (Ok(c), Ok(t)) => {
            assert_valid_claims(c, now, false);
            assert!(t.sub.is_some() || t.sid.is_some());
            assert_eq!((t.sub.as_deref(), t.sid.as_deref()), (c.sub(), c.sid()));
            assert_eq!((Some(t.jti.as_str()), Some(t.iat)), (c.jti(), c.iat()));
            assert!(c.get("nonce").is_none());
            // Back-channel logout §2.6: a jti seen while the token is valid is a replay.
            let mut guard = ReplayGuard::default();
            assert_eq!(guard.admit(t, now), Ok(()));
            assert_eq!(guard.admit(t, now), Err(LogoutError::Replayed));
        }
        (Ok(_), Err(_)) => {}
    }
    if relaxed.is_ok() {
        // One changed signature byte and nothing verifies.
        let (input, sig) = token.rsplit_once('.').expect("three segments");
        let first = if sig.starts_with('A') { 'B' } else { 'A' };
        let tampered = format!("{input}.{first}{}", &sig[1..]);
        assert_eq!(
            jwt::verify(&tampered, &f.keys, &f.validation, now),
            Err(JwtError::BadSignature)
        );
        assert!(backchannel::validate(&tampered, &f.keys, &f.policy, now).is_err());
    }
}

/// What a token that passed [`Validation::validate`] at `now` must satisfy.
fn assert_valid_claims(c: &Claims, now: u64, exp_required: bool) {
    assert_eq!(c.iss(), Some(ISSUER));
    assert!(c.aud().any(|a| a == CLIENT_ID));
    if c.aud().len() > 1 {
        assert_eq!(c.azp(), Some(CLIENT_ID));
    }
    match c.exp() {
        Some(exp) => assert!(exp.saturating_add(LEEWAY) > now),
        None => assert!(!exp_required),
    }
    assert!(!matches!(c.nbf(), Some(t) if t > now.saturating_add(LEEWAY)));
    assert!(!matches!(c.iat(), Some(t) if t > now.saturating_add(LEEWAY)));
}

fn claims_only(payload: &[u8], now: u64) {
    let f = jwt_fixture();
    let header = jwt::Header {
        alg: Alg::EdDSA,
        kid: None,
        typ: None,
    };
    if let Ok(c) = Claims::from_payload(payload, header) {
        if f.validation.validate(&c, now).is_ok() {
            assert_valid_claims(&c, now, true);
        }
    }
}

fn key_set(json: &[u8]) {
    let _ = jwt::VerifyingKey::from_jwk_json(json);
    let Ok(set) = JwkSet::from_json(json) else {
        return;
    };
    assert!(!set.is_empty() && set.len() <= jwt::jwks::MAX_KEYS);
    for key in set.keys() {
        if let Some(kid) = &key.kid {
            assert!(set.contains_kid(kid));
            assert!(set.get(kid).is_some());
        }
        if let Some(alg) = key.alg {
            assert_eq!(alg.family(), key.family());
        }
        if let KeyKind::Rsa(c) = &key.kind {
            assert!(c.n.first().is_some_and(|&b| b != 0));
            assert!(c.n.len() * 8 >= 2048 && c.n.len() * 8 <= 8192 + 7);
        }
    }
    // A token signed by the fixture key verifies against a set only if it holds that key.
    let f = jwt_fixture();
    let token = fixture_token();
    let ours = &f.keys.get("fuzz-ed").expect("fixture key").kind;
    let holds_ours = set.keys().iter().any(|k| match (&k.kind, ours) {
        (KeyKind::Ed25519(a), KeyKind::Ed25519(b)) => a.as_ref() == b.as_ref(),
        _ => false,
    });
    if jwt::verify(token, &set, &f.validation, NOW).is_ok() {
        assert!(holds_ours);
    }
}

/// A valid token signed with the fixture's Ed25519 key (deterministic), made once.
fn fixture_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let f = jwt_fixture();
        let header = br#"{"alg":"EdDSA","kid":"fuzz-ed"}"#;
        let claims = format!(
            r#"{{"iss":"{ISSUER}","aud":"{CLIENT_ID}","sub":"u","exp":{},"iat":{NOW}}}"#,
            NOW + 300
        );
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let sig = f.ed25519.sign(input.as_bytes());
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
        assert!(jwt::verify(&token, &f.keys, &f.validation, NOW).is_ok());
        token
    })
}

// ---------------------------------------------------------------------------------------
// config_loading

/// The environment `${VAR}` placeholders see under fuzzing: fixed, so runs are repeatable.
fn fuzz_env(name: &str) -> Option<String> {
    match name {
        "HOST" => Some("gateway.example".into()),
        "PORT" => Some("8443".into()),
        "SECRET" => Some("s3cret".into()),
        "ISSUER" => Some("https://idp.example/realms/r".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// [`crate::config::load_str`] with [`fuzz_env`] in place of the process environment.
pub fn load_config(yaml: &str) -> Result<Config, ConfigError> {
    crate::config::load_str_with(yaml, &fuzz_env)
}

/// Configuration loading on arbitrary UTF-8: errors are fine, panics are not, and what is
/// accepted can be used (routes compile, log directives parse, `check` reports).
pub fn config_loading(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match load_config(text) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    // Loading is a pure function of the text.
    let again = load_config(text).expect("accepted once");
    assert_eq!(format!("{config:?}"), format!("{again:?}"));

    // Loading compiled the routes' patterns; the router only orders them.
    let router = crate::route::Router::new(&config.routes);
    let mut out = Vec::new();
    for path in [&b"/"[..], b"/a/b/c?q=1", b"/api/x", b"//x/../y"] {
        for route in router.routes() {
            out.clear();
            route.rewrite_target(path, &mut out);
            assert!(out.starts_with(b"/"));
        }
        let _ = router.find(b"GET", Some(b"gateway.example:8443"), path);
    }
    let (directives, _) = crate::logging::directives(&config.logging);
    assert!(
        tracing_subscriber::EnvFilter::try_new(&directives).is_ok(),
        "accepted logging levels give directives {directives:?} that do not parse"
    );
    let _ = crate::check::report(&config, &crate::check::CheckInput::default());
    let _ = crate::tls::secure_cookie_warning(&config);
}
