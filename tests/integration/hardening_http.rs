//! Attacks on the HTTP layer, each against the running gateway: what a secure gateway does
//! with a duplicate `Authorization`, forwarding fields from untrusted peers, chunked
//! trailers, HEAD, framing-field look-alikes, ambiguous requests, and bytes a strict parser
//! refuses.

use std::time::Duration;

use crate::backend::{Backend, Reply};
use crate::client::{post_chunked, Client, Response, HOST};
use crate::harness::{routes_yaml, Gateway, Route};
use crate::oidc::provider::bearer;
use crate::oidc::stack::{Stack, APP_PATH};

/// Sends `raw` on a new connection and asserts the refusal: one of `expected`, with
/// `Connection: close`, then the connection closes with nothing more sent.
fn refused_on(gw: &Gateway, raw: &[u8], expected: u16) -> Response {
    let mut c = gw.client();
    c.send_lenient(raw);
    let shown = String::from_utf8_lossy(&raw[..raw.len().min(300)]).into_owned();
    let method = if raw.starts_with(b"HEAD ") {
        "HEAD"
    } else {
        "GET"
    };
    let r = c
        .try_read_response(method, true)
        .unwrap_or_else(|e| panic!("no response to {shown:?}: {e}"));
    assert_eq!(r.status, expected, "{shown:?}: {:?}", r.head.start);
    assert!(r.says_close(), "{shown:?}: {:?}", r.head.headers);
    c.expect_closed(Duration::from_secs(5));
    r
}

/// Each request refused by a fresh gateway whose backend then saw no byte at all.
fn all_refused(cases: &[&[u8]]) {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).start();
    for raw in cases {
        refused_on(&gw, raw, 400);
    }
    backend.assert_saw_nothing();
}

// --- 6. Duplicate Authorization -------------------------------------------------------

/// Two Authorization fields: the gateway would verify one and the backend might read the
/// other. Refused in the head judgment, before routing or the gate.
#[test]
fn duplicate_authorization_is_refused_before_anything_else() {
    all_refused(&[
            b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YTpi\r\nX-A: 1\r\nauthorization: Basic Yzpk\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: \r\nAUTHORIZATION: Bearer b\r\n\r\n",
        ],
    );
}

/// The attack itself: a valid token first (verified by the gateway), a forged identity
/// second (read by a backend that takes the last field). 400, and the backend sees nothing;
/// the valid token alone still passes.
#[test]
fn duplicate_authorization_with_a_valid_token_first_is_refused() {
    let s = Stack::start();
    let token = s.provider.tokens_for("robot").access_token;
    let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";
    let api = |target: &str, auth: &str| {
        Client::connect(s.gateway.addr()).request(
            format!(
                "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: application/json\r\n{auth}\r\n",
                s.port
            )
            .as_bytes(),
        )
    };
    let r = api("/api/alone", &format!("Authorization: Bearer {token}\r\n"));
    assert_eq!(r.status, 200, "the valid token alone passes: {}", r.text());

    let r = api(
        "/api/dup",
        &format!("Authorization: Bearer {token}\r\nAuthorization: Bearer {forged}\r\n"),
    );
    assert_eq!(r.status, 400, "duplicate Authorization: {}", r.text());
    assert!(r.says_close());
    assert!(
        s.backend_requests_to("/api/dup").is_empty(),
        "the backend must not see a request with two Authorization fields"
    );
}

// --- 8. Forwarding fields from untrusted peers -------------------------------------------

const FORWARDING: &str = "Forwarded: for=10.9.9.9;proto=https;host=evil.example\r\n\
    X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Host: evil.example\r\n\
    X-Forwarded-Proto: https\r\nX-Forwarded-Prefix: /admin\r\nX-Forwarded-Port: 443\r\n\
    x-real-ip: 10.9.9.9\r\n";

/// `GET /f` with every forwarding field a client can make up.
fn with_forwarding_fields(gw: &Gateway) -> Response {
    gw.client()
        .request(format!("GET /f HTTP/1.1\r\nHost: {HOST}\r\n{FORWARDING}\r\n").as_bytes())
}

/// Only the gateway's own view of the client reaches the backend: no client-made
/// Forwarded, X-Forwarded-Prefix/-Port or X-Real-IP, and X-Forwarded-For/-Host/-Proto are
/// the gateway's, not appended to.
fn assert_only_gateway_forwarding(req: &crate::backend::Request, xff: &[&str]) {
    for gone in [
        "forwarded",
        "x-forwarded-prefix",
        "x-forwarded-port",
        "x-real-ip",
    ] {
        assert!(
            !req.has_header(gone),
            "{gone} from the client reached the backend: {:?}",
            req.head.headers
        );
    }
    let chain = req.headers("x-forwarded-for").join(",");
    let hops: Vec<&str> = chain.split(',').map(str::trim).collect();
    assert_eq!(hops, xff, "X-Forwarded-For: {chain:?}");
    assert_eq!(req.headers("x-forwarded-proto"), ["http"]);
    assert_eq!(req.headers("x-forwarded-host"), [HOST]);
}

#[test]
fn forwarding_fields_from_an_untrusted_peer_are_stripped() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).start();
    assert_eq!(with_forwarding_fields(&gw).status, 200);
    assert_only_gateway_forwarding(&backend.single_request(), &["127.0.0.1"]);
}

/// `sessiongate.trusted-proxies` naming another address changes nothing for this peer; naming
/// the peer keeps its X-Forwarded-For chain and appends to it, and still nothing else.
#[test]
fn forwarded_for_chain_is_kept_only_from_a_trusted_proxy() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend)
        .set("trusted-proxies", "[10.0.0.1]")
        .start();
    assert_eq!(with_forwarding_fields(&gw).status, 200);
    assert_only_gateway_forwarding(&backend.single_request(), &["127.0.0.1"]);
    drop(gw);

    let backend = Backend::recording();
    let gw = Gateway::to(&backend)
        .set("trusted-proxies", "[10.0.0.1, 127.0.0.1]")
        .start();
    assert_eq!(with_forwarding_fields(&gw).status, 200);
    assert_only_gateway_forwarding(&backend.single_request(), &["203.0.113.7", "127.0.0.1"]);
}

// --- 9. Chunked trailers -----------------------------------------------------------------

/// Trailers would reach the backend after the head's credentials were stripped or
/// replaced. They are dropped; the body arrives whole and the framing stays valid (the
/// backend parses strictly, and the same connections serve the next request).
#[test]
fn request_trailers_are_dropped() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).workers(1).start();
    let mut c = gw.client();
    let r = c.request(&post_chunked(
        "/t",
        &[b"hello ", b"world"],
        &[
            ("Authorization", "Bearer forged"),
            ("Cookie", "SESSION=AAAAAAAAAAAAAAAAAAAAAAA"),
            ("X-Checksum", "abc"),
        ],
    ));
    assert_eq!(r.status, 200);
    let r = c.get("/after");
    assert_eq!(r.status, 200, "the connection is still in step");
    let reqs = backend.wait_for_requests(2);
    assert_eq!(reqs[0].body, b"hello world");
    assert!(reqs[0].chunked);
    assert!(
        reqs[0].trailers.is_empty(),
        "request trailers reached the backend: {:?}",
        reqs[0].trailers
    );
    assert_eq!(reqs[1].target, "/after");
    assert_eq!(
        backend.connections(),
        1,
        "the upstream connection was reused"
    );
}

/// The same with a real session: the backend sees the session's token in the head and no
/// trailer carrying another identity or the session cookie.
#[test]
fn request_trailers_cannot_smuggle_credentials_past_the_session() {
    let s = Stack::start();
    let (_browser, login) = s.login("alice");
    let session_token = s.bearer_at_backend(APP_PATH);
    let mut raw = format!(
        "POST /app/upload HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: SESSION={}\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        s.port, login.session
    )
    .into_bytes();
    raw.extend_from_slice(
        format!(
            "4\r\ndata\r\n0\r\nAuthorization: Bearer forged\r\nCookie: SESSION={}\r\n\r\n",
            login.session
        )
        .as_bytes(),
    );
    let r = Client::connect(s.gateway.addr()).request(&raw);
    assert_eq!(r.status, 200, "{}", r.text());
    let req = s
        .backend_requests_to("/app/upload")
        .pop()
        .expect("the upload reached the backend");
    assert_eq!(
        bearer(req.header("authorization")).as_deref(),
        Some(session_token.as_str())
    );
    assert_eq!(req.body, b"data");
    assert!(
        req.trailers.is_empty(),
        "trailers reached the backend: {:?}",
        req.trailers
    );
}

/// Response trailers are dropped too; the body and the connection are unharmed.
#[test]
fn response_trailers_are_dropped() {
    let backend = Backend::replying(|_| {
        Reply::status(200).chunked(
            &[b"first,", b"second"],
            &[("X-Checksum", "42"), ("Set-Cookie", "SESSION=evil")],
        )
    });
    let gw = Gateway::to(&backend).start();
    let mut c = gw.client();
    let r = c.request(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nTE: trailers\r\n\r\n").as_bytes());
    assert_eq!(r.status, 200);
    assert!(r.chunked);
    assert_eq!(r.text(), "first,second");
    assert!(r.trailers.is_empty(), "trailers relayed: {:?}", r.trailers);
    assert_eq!(c.get("/again").status, 200);
}

// --- 10. HEAD ----------------------------------------------------------------------------

/// A canned refusal to HEAD: the head with its Content-Length, then no byte more.
#[test]
fn canned_refusal_to_head_has_no_body() {
    let backend = Backend::recording();
    let gw = Gateway::with(routes_yaml(&[
        Route::new("app", backend.uri()).predicate("Path=/app/**")
    ]))
    .start();
    let r = refused_on(
        &gw,
        format!("HEAD /nowhere HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes(),
        404,
    );
    assert!(r.header("content-length").is_some_and(|n| n != "0"));
    // Refused while the head was judged: still no body.
    let r = refused_on(
        &gw,
        b"HEAD /app/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
    );
    assert!(r.header("content-length").is_some());
    backend.assert_saw_nothing();
}

/// The gateway's own answer to HEAD (the 401 JSON for a request without a session) keeps
/// its Content-Length but sends no body: the next response on the connection starts right
/// after the head, as a pooling front proxy expects.
#[test]
fn gateway_answer_to_head_has_no_body() {
    let s = Stack::start();
    let mut c = Client::connect(s.gateway.addr());
    let req = |method: &str| {
        format!(
            "{method} /app/x HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: application/json\r\n\r\n",
            s.port
        )
    };
    let r = c.request(req("HEAD").as_bytes());
    assert_eq!(r.status, 401);
    assert!(r.header("content-length").is_some_and(|n| n != "0"));
    assert!(!r.says_close());
    c.send(req("GET").as_bytes());
    let r = c
        .try_read_response("GET", true)
        .unwrap_or_else(|e| panic!("the answer to HEAD carried a body: {e}"));
    assert_eq!(r.status, 401);
    assert!(r.text().contains("unauthorized"), "{}", r.text());
    assert!(s.app_requests().iter().all(|r| r.target != "/app/x"));
}

/// A relayed answer to HEAD carries no body even when the backend wrongly sends one; the
/// next response on the client connection is the next request's.
#[test]
fn relayed_answer_to_head_has_no_body_even_if_the_backend_sends_one() {
    let backend = Backend::replying(|r| {
        if r.method == "HEAD" {
            Reply::raw("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world")
        } else {
            Reply::ok().body("second")
        }
    });
    let gw = Gateway::to(&backend).workers(1).start();
    let mut c = gw.client();
    let r = c.request(format!("HEAD /h HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("11"));
    let r = c.get("/next");
    assert_eq!((r.status, r.text().as_str()), (200, "second"));
}

// --- 11. Look-alike framing fields and ambiguous requests --------------------------------

/// Names that normalise (lower case, `_` as `-`, dashes collapsed) to a framing, hop or
/// forwarding field without being it: some backends read them as the real thing.
#[test]
fn framing_field_lookalikes_are_refused() {
    all_refused(&[
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent_Length: 5\r\n\r\nhello",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer---Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\ncontent--LENGTH: 5\r\n\r\nhello",
        b"GET / HTTP/1.1\r\nHost: x\r\nTRANSFER_-_encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nKeep_Alive: timeout=5\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nProxy_Connection: keep-alive\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: 10.9.9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Real_IP: 10.9.9.9\r\n\r\n",
    ]);
}

/// Case alone does not make a look-alike: those are the real fields, judged as such.
#[test]
fn framing_fields_in_other_case_are_the_real_fields() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).start();
    let r = gw.client().request(
        b"POST /c HTTP/1.1\r\nHost: x\r\nCONTENT-LENGTH: 5\r\nx-custom_name: 1\r\n\r\nhello",
    );
    assert_eq!(r.status, 200);
    let req = backend.single_request();
    assert_eq!(req.body, b"hello");
    assert_eq!(req.header("x-custom_name"), Some("1"));
}

/// A GET with a body is read differently by different parsers: after its response the
/// client connection closes and the upstream connection is not pooled again.
#[test]
fn get_with_a_body_ends_both_connections() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).workers(1).start();
    let mut c = gw.client();
    assert_eq!(c.get("/warm").status, 200);
    assert_eq!(backend.connections(), 1);

    let r = c.request(
        format!("GET /body HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\n\r\nhello").as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert!(r.says_close(), "{:?}", r.head.headers);
    c.expect_closed(Duration::from_secs(5));

    let mut c = gw.client();
    let r = c.request(
        format!(
            "HEAD /chunked HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert!(r.says_close(), "{:?}", r.head.headers);
    c.expect_closed(Duration::from_secs(5));

    assert_eq!(gw.get("/after").status, 200);
    let reqs = backend.wait_for_requests(4);
    assert_eq!(reqs[1].body, b"hello");
    assert_eq!(
        backend.connections(),
        3,
        "each upstream connection that carried a GET or HEAD with a body is not reused"
    );
}

// --- 12. Strictness ----------------------------------------------------------------------

/// Request-target bytes outside visible ASCII (0x21-0x7E).
#[test]
fn target_bytes_outside_visible_ascii_are_refused() {
    all_refused(&[
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /\x80 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a?b=\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n",
    ]);
}

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut r = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    r.extend_from_slice(body);
    r
}

/// A quoted string in a chunk extension that is still open at the CRLF: a parser that
/// honours quotes reads the line on past it.
#[test]
fn unclosed_quote_in_chunk_extension_is_refused() {
    all_refused(&[
        &chunked(b"5;a=\"x\r\nhello\r\n0\r\n\r\n"),
        &chunked(b"5;a=\"x;b=1\r\nhello\r\n0\r\n\r\n"),
        &chunked(b"5;a=\"x\\\"\r\nhello\r\n0\r\n\r\n"),
        &chunked(b"5\r\nhello\r\n0;a=\"\r\n\r\n"),
        &chunked(b"5;\"a\"\r\nhello\r\n0\r\n\r\n"),
    ]);
}

/// Well-formed extensions, quoted or not, still pass (and are not forwarded).
#[test]
fn well_formed_chunk_extensions_pass() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).start();
    let r = gw.client().request(&chunked(
        b"5;a=1;b=\"x;y \\\"z\\\"\" ; c\r\nhello\r\n0;d=\"\"\r\n\r\n",
    ));
    assert_eq!(r.status, 200);
    assert_eq!(backend.single_request().body, b"hello");
}
