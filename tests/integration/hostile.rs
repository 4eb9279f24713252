//! Hostile and malformed requests: one test per request.
//!
//! Each test sends the whole request in one write, then asserts the status, that the answer
//! says `Connection: close` and the connection is closed, and that the backend received no
//! byte (RFC 9112 §6.3, §11.2: request smuggling must be impossible by construction).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::backend::Backend;
use crate::client::Response;
use crate::harness::{Gateway, GatewayBuilder};

fn refused(raw: &[u8], expected: &[u16]) -> Response {
    refused_with(|g| g, raw, expected)
}

fn refused_with(
    configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder,
    raw: &[u8],
    expected: &[u16],
) -> Response {
    let backend = Backend::recording();
    let gw = configure(Gateway::to(&backend)).start();
    let mut c = gw.client();
    c.send_lenient(raw);
    let shown = String::from_utf8_lossy(&raw[..raw.len().min(300)]).into_owned();
    let r = c
        .try_read_response("GET", true)
        .unwrap_or_else(|e| panic!("no response to {shown:?}: {e}"));
    check_refusal(&r, expected, &shown);
    c.expect_closed(Duration::from_secs(5));
    backend.assert_saw_nothing();
    r
}

fn check_refusal(r: &Response, expected: &[u16], shown: &str) {
    assert!(
        expected.contains(&r.status),
        "request {shown:?}: expected status {expected:?}, got {:?}",
        r.head.start
    );
    assert!(
        r.says_close(),
        "refusal of {shown:?} must say Connection: close: {:?}",
        r.head.headers
    );
}

const BAD: &[u16] = &[400];

// --- Content-Length and Transfer-Encoding (RFC 9112 §6.1, §6.3) ---

#[test]
fn content_length_and_transfer_encoding() {
    refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        BAD,
    );
}

#[test]
fn two_different_content_lengths() {
    refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        BAD,
    );
}

#[test]
fn duplicate_equal_content_lengths() {
    refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        BAD,
    );
}

#[test]
fn content_length_list() {
    refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!",
        BAD,
    );
}

#[test]
fn content_length_list_of_equal_values() {
    refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello",
        BAD,
    );
}

#[test]
fn content_length_plus_sign() {
    refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
        BAD,
    );
}

#[test]
fn content_length_negative() {
    refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        BAD,
    );
}

#[test]
fn content_length_hex() {
    refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\nhello",
        BAD,
    );
}

#[test]
fn content_length_with_inner_space() {
    refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5 5\r\n\r\nhello",
        BAD,
    );
}

#[test]
fn content_length_overflow() {
    refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1234567890123456789012345\r\n\r\nhello",
        BAD,
    );
}

#[test]
fn content_length_empty() {
    refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n",
        BAD,
    );
}

#[test]
fn content_length_space_before_colon() {
    refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello",
        BAD,
    );
}

#[test]
fn transfer_encoding_chunked_then_identity() {
    refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        BAD,
    );
}

#[test]
fn transfer_encoding_gzip_only() {
    refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nhello",
        BAD,
    );
}

#[test]
fn transfer_encoding_chunked_twice() {
    refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        BAD,
    );
}

#[test]
fn transfer_encoding_header_repeated() {
    refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        BAD,
    );
}

#[test]
fn transfer_encoding_xchunked() {
    refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        BAD,
    );
}

#[test]
fn transfer_encoding_on_http_1_0() {
    refused(
        b"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        BAD,
    );
}

// --- Header syntax (RFC 9112 §5, §2.2; RFC 9110 §5.5) ---

#[test]
fn obs_fold_with_space() {
    refused(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", BAD);
}

#[test]
fn obs_fold_with_tab() {
    refused(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n", BAD);
}

#[test]
fn host_space_before_colon() {
    refused(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", BAD);
}

#[test]
fn missing_host_on_http_1_1() {
    refused(b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", BAD);
}

#[test]
fn two_host_headers() {
    refused(
        b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        BAD,
    );
}

#[test]
fn host_with_invalid_characters() {
    refused(b"GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n", BAD);
}

#[test]
fn nul_in_header_value() {
    refused(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", BAD);
}

#[test]
fn bare_cr_in_header_value() {
    refused(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", BAD);
}

#[test]
fn bare_lf_line_endings() {
    refused(b"GET / HTTP/1.1\nHost: x\nX-A: 1\n\n", BAD);
}

#[test]
fn header_name_with_space() {
    refused(b"GET / HTTP/1.1\r\nHost: x\r\nX Foo: bar\r\n\r\n", BAD);
}

#[test]
fn header_name_with_control_char() {
    refused(b"GET / HTTP/1.1\r\nHost: x\r\nX\x01Foo: bar\r\n\r\n", BAD);
}

#[test]
fn empty_header_name() {
    refused(b"GET / HTTP/1.1\r\nHost: x\r\n: bar\r\n\r\n", BAD);
}

// --- Chunked framing (RFC 9112 §7.1) ---

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut r = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    r.extend_from_slice(body);
    r
}

#[test]
fn chunk_size_not_hex() {
    refused(&chunked(b"zz\r\nhello\r\n0\r\n\r\n"), BAD);
}

#[test]
fn chunk_size_with_0x_prefix() {
    refused(&chunked(b"0x10\r\n0123456789abcdef\r\n0\r\n\r\n"), BAD);
}

#[test]
fn chunk_size_overflow() {
    refused(&chunked(b"FFFFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n"), BAD);
}

#[test]
fn chunk_size_leading_space() {
    refused(&chunked(b" 5\r\nhello\r\n0\r\n\r\n"), BAD);
}

#[test]
fn chunk_data_without_crlf() {
    refused(&chunked(b"5\r\nhello0\r\n\r\n"), BAD);
}

#[test]
fn chunk_extension_with_bare_lf() {
    refused(&chunked(b"5;a=b\nc\r\nhello\r\n0\r\n\r\n"), BAD);
}

#[test]
fn chunk_extension_with_bare_cr() {
    refused(&chunked(b"5;a=b\rc\r\nhello\r\n0\r\n\r\n"), BAD);
}

// --- Request line (RFC 9112 §3) ---

#[test]
fn absolute_form_target() {
    refused(b"GET http://evil/ HTTP/1.1\r\nHost: evil\r\n\r\n", BAD);
}

#[test]
fn asterisk_form_target() {
    refused(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", BAD);
}

#[test]
fn http_2_0_version() {
    refused(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", &[400, 505]);
}

#[test]
fn garbage_version() {
    refused(b"GET / HTZP/1.1\r\nHost: x\r\n\r\n", &[400, 505]);
}

#[test]
fn invalid_method_characters() {
    refused(b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", BAD);
}

#[test]
fn space_inside_target() {
    refused(b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", BAD);
}

// --- Limits ---

#[test]
fn head_larger_than_max_head_bytes_is_431() {
    let mut raw = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    raw.extend(std::iter::repeat(b'a').take(20_000));
    raw.extend_from_slice(b"\r\n\r\n");
    refused_with(|g| g.set("max-head-bytes", 16384), &raw, &[431]);
}

#[test]
fn more_than_max_headers_is_431() {
    let mut raw = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..150 {
        raw.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    refused_with(|g| g.set("max-headers", 100), &raw, &[431]);
}

#[test]
fn target_longer_than_max_uri_bytes_is_414() {
    let raw = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "u".repeat(9000));
    refused_with(
        |g| g.set("max-uri-bytes", 8192).set("max-head-bytes", 16384),
        raw.as_bytes(),
        &[414],
    );
}

#[test]
fn content_length_above_max_body_bytes_is_413() {
    let mut raw = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n".to_vec();
    raw.extend(std::iter::repeat(b'b').take(2048));
    refused_with(|g| g.set("max-body-bytes", 1024), &raw, &[413]);
}

#[test]
fn expect_continue_above_max_body_bytes_is_413() {
    refused_with(
        |g| g.set("max-body-bytes", 1024),
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\nExpect: 100-continue\r\n\r\n",
        &[413],
    );
}

#[test]
fn chunk_above_max_body_bytes_is_413() {
    let mut body = b"800\r\n".to_vec();
    body.extend(std::iter::repeat(b'c').take(0x800));
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    refused_with(|g| g.set("max-body-bytes", 1024), &chunked(&body), &[413]);
}

#[test]
fn small_chunks_above_max_body_bytes_are_413() {
    let mut body = Vec::new();
    for _ in 0..4 {
        body.extend_from_slice(b"190\r\n");
        body.extend(std::iter::repeat(b'c').take(0x190));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    refused_with(|g| g.set("max-body-bytes", 1024), &chunked(&body), &[413]);
}

#[test]
fn incomplete_head_times_out_with_408() {
    refused_with(
        |g| g.set("request-head-timeout-ms", 300),
        b"GET / HTTP/1.1\r\nHost: x\r\n",
        &[408],
    );
}

/// The head timeout is a deadline for the whole head, not a per-read timeout: a client that
/// sends one byte every 50 ms never completes a head and must still get 408.
#[test]
fn trickled_head_times_out_with_408() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend)
        .set("request-head-timeout-ms", 500)
        .start();
    let mut c = gw.client();
    let mut writer = c.writer();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_writer = stop.clone();
    let trickle = thread::spawn(move || {
        use std::io::Write;
        let mut bytes = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_vec();
        bytes.extend(std::iter::repeat(b'a').take(200));
        for b in bytes {
            if stop_writer.load(Ordering::SeqCst) || writer.write_all(&[b]).is_err() {
                return;
            }
            // Pacing of a slow client, not a wait for a condition.
            thread::sleep(Duration::from_millis(50));
        }
    });
    let r = c
        .try_read_response("GET", true)
        .unwrap_or_else(|e| panic!("no 408 for a trickled head: {e}"));
    stop.store(true, Ordering::SeqCst);
    check_refusal(&r, &[408], "trickled head");
    c.expect_closed(Duration::from_secs(5));
    trickle.join().unwrap();
    backend.assert_saw_nothing();
}

/// The probe behind every test above must notice bytes that did reach the backend.
#[test]
#[should_panic(expected = "backend must see nothing")]
fn backend_probe_detects_forwarded_bytes() {
    use std::io::Write;
    let backend = Backend::recording();
    let mut direct = std::net::TcpStream::connect(backend.addr()).unwrap();
    direct
        .write_all(b"GET /leak HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    backend.wait_for_requests(1);
    backend.assert_saw_nothing();
}
