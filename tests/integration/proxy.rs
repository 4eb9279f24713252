//! Ordinary proxying: keep-alive, pipelining, bodies both ways, special statuses, header
//! rewriting, routing, upstream failures and connection lifetimes.

use std::time::Duration;

use crate::backend::{Backend, Reply};
use crate::client::{post, post_chunked, HOST};
use crate::harness::{closed_port_addr, routes_yaml, Gateway, Route};

#[test]
fn get_keep_alive_three_requests_on_one_connection() {
    let backend = Backend::replying(|r| Reply::ok().body(format!("you asked {}", r.target)));
    let gw = Gateway::to(&backend).start();
    let mut c = gw.client();
    for path in ["/a", "/b?x=1", "/c/d"] {
        let r = c.get(path);
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), format!("you asked {path}"));
        assert!(
            !r.says_close(),
            "keep-alive response must not close: {:?}",
            r.head
        );
    }
    let seen: Vec<_> = backend
        .wait_for_requests(3)
        .iter()
        .map(|r| r.target.clone())
        .collect();
    assert_eq!(seen, ["/a", "/b?x=1", "/c/d"]);
    assert!(backend.requests().iter().all(|r| r.version == "HTTP/1.1"));
}

#[test]
fn upstream_connection_is_reused() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).workers(1).start();
    let mut c = gw.client();
    for _ in 0..3 {
        assert_eq!(c.get("/").status, 200);
    }
    assert_eq!(
        backend.connections(),
        1,
        "three sequential requests should share one pooled upstream connection"
    );
}

#[test]
fn backend_connection_close_is_not_reused() {
    let backend = Backend::replying(|_| Reply::ok().close());
    let gw = Gateway::to(&backend).workers(1).start();
    let mut c = gw.client();
    let first = c.get("/1");
    assert_eq!(first.status, 200);
    assert!(
        !first.says_close(),
        "the backend's Connection: close is hop-by-hop and must not close the client side"
    );
    assert_eq!(c.get("/2").status, 200);
    assert_eq!(backend.wait_for_requests(2).len(), 2);
    assert_eq!(backend.connections(), 2);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    // The first answer is slow, so a gateway that answers out of order would show it.
    let backend = Backend::replying(|r| {
        let reply = Reply::ok().body(format!("body of {}", r.target));
        if r.target == "/1" {
            reply.delay(Duration::from_millis(150))
        } else {
            reply
        }
    });
    let gw = Gateway::to(&backend).start();
    let mut c = gw.client();
    let mut burst = Vec::new();
    for p in ["/1", "/2", "/3"] {
        burst.extend_from_slice(format!("GET {p} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes());
    }
    c.send(&burst);
    for p in ["/1", "/2", "/3"] {
        let r = c.read_response();
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), format!("body of {p}"));
    }
    assert_eq!(backend.wait_for_requests(3).len(), 3);
}

#[test]
fn post_with_content_length_reaches_backend_intact() {
    let backend = Backend::replying(|r| Reply::status(201).body(format!("got {}", r.body_len)));
    let gw = Gateway::to(&backend).start();
    let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let r = gw.client().request(&post("/upload", &body));
    assert_eq!(r.status, 201);
    assert_eq!(r.text(), "got 100000");
    let req = backend.single_request();
    assert_eq!(req.method, "POST");
    assert_eq!(req.header("content-length"), Some("100000"));
    assert!(!req.chunked);
    assert!(req.body == body, "body bytes differ at the backend");
}

#[test]
fn post_chunked_is_forwarded_chunked() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).start();
    let big = vec![b'z'; 70_000];
    let chunks: [&[u8]; 3] = [b"hello ", b"chunked ", &big];
    let r = gw
        .client()
        .request(&post_chunked("/c", &chunks, &[("X-Checksum", "abc")]));
    assert_eq!(r.status, 200);
    let req = backend.single_request();
    assert!(
        req.chunked,
        "request body should stay chunked: {:?}",
        req.head
    );
    assert!(
        !req.has_header("content-length"),
        "chunked request must not get a Content-Length"
    );
    let mut expected = b"hello chunked ".to_vec();
    expected.extend_from_slice(&big);
    assert!(
        req.body == expected,
        "chunked body bytes differ at the backend"
    );
    // Trailers would arrive after the head's credentials were stripped: dropped.
    assert!(
        req.trailers.is_empty(),
        "request trailers are dropped: {:?}",
        req.trailers
    );
}

#[test]
fn chunked_response_is_passed_on_without_its_trailers() {
    let backend = Backend::replying(|_| {
        Reply::status(200).chunked(&[b"first,", b"second"], &[("X-Checksum", "42")])
    });
    let gw = Gateway::to(&backend).start();
    let mut c = gw.client();
    let r = c.request(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nTE: trailers\r\n\r\n").as_bytes());
    assert_eq!(r.status, 200);
    assert!(r.chunked, "response should stay chunked: {:?}", r.head);
    assert_eq!(r.text(), "first,second");
    assert_eq!(
        r.trailer("x-checksum"),
        None,
        "response trailers are dropped"
    );
    // The connection is still usable afterwards.
    assert_eq!(c.get("/again").status, 200);
}

#[test]
fn head_response_has_no_body() {
    let backend = Backend::replying(|_| Reply::ok().body("hello world"));
    let gw = Gateway::to(&backend).start();
    let mut c = gw.client();
    let r = c.request(format!("HEAD /h HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("11"));
    // A body wrongly sent after the HEAD response would be read as the next response here.
    let next = c.get("/g");
    assert_eq!(next.status, 200);
    assert_eq!(next.text(), "hello world");
    assert_eq!(backend.wait_for_requests(2)[0].method, "HEAD");
}

#[test]
fn no_content_204() {
    let backend = Backend::replying(|r| {
        if r.target == "/empty" {
            Reply::status(204).header("X-Kind", "none")
        } else {
            Reply::ok()
        }
    });
    let gw = Gateway::to(&backend).start();
    let mut c = gw.client();
    let r = c.get("/empty");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("x-kind"), Some("none"));
    assert!(
        !r.has_header("transfer-encoding"),
        "204 must not be chunked"
    );
    assert_eq!(c.get("/after").text(), "ok");
}

#[test]
fn not_modified_304_with_content_length_has_no_body() {
    // RFC 9110 §8.6: a 304 may carry the Content-Length of the 200 it stands for.
    let backend = Backend::replying(|r| {
        if r.target == "/cached" {
            Reply::status(304)
                .header("ETag", "\"v1\"")
                .header("Content-Length", "5")
        } else {
            Reply::ok()
        }
    });
    let gw = Gateway::to(&backend).start();
    let mut c = gw.client();
    let r = c.request(
        format!("GET /cached HTTP/1.1\r\nHost: {HOST}\r\nIf-None-Match: \"v1\"\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some("\"v1\""));
    assert_eq!(c.get("/after").text(), "ok");
    assert_eq!(
        backend.wait_for_requests(1)[0].header("if-none-match"),
        Some("\"v1\"")
    );
}

#[test]
fn expect_100_continue() {
    let backend = Backend::replying(|r| Reply::ok().body(format!("got {}", r.body_len)));
    let gw = Gateway::to(&backend).start();
    let mut c = gw.client();
    c.send(
        format!(
            "POST /e HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        .as_bytes(),
    );
    let interim = c.read_head().expect("interim response");
    assert!(
        interim.start.starts_with("HTTP/1.1 100"),
        "expected 100 Continue before sending the body, got {:?}",
        interim.start
    );
    c.send(b"hello");
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "got 5");
    assert_eq!(backend.single_request().body, b"hello");
}

#[test]
fn early_hints_103_come_before_the_final_response() {
    let backend = Backend::replying(|_| {
        Reply::ok()
            .body("page")
            .interim("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
    });
    let gw = Gateway::to(&backend).start();
    let r = gw.get("/page");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "page");
    let hints: Vec<_> = r
        .interim
        .iter()
        .filter(|h| h.start.starts_with("HTTP/1.1 103"))
        .collect();
    assert_eq!(
        hints.len(),
        1,
        "expected one 103 before the 200: {:?}",
        r.interim
    );
    assert_eq!(hints[0].get("link"), Some("</style.css>; rel=preload"));
}

#[test]
fn hop_by_hop_request_headers_are_removed() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).start();
    let r = gw.client().request(
        format!(
            "GET /h HTTP/1.1\r\nHost: {HOST}\r\nConnection: keep-alive, X-Secret\r\n\
             X-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n\
             TE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nX-Keep: yes\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200);
    let req = backend.single_request();
    for gone in [
        "x-secret",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ] {
        assert!(
            !req.has_header(gone),
            "{gone} must not reach the backend: {:?}",
            req.head
        );
    }
    for v in req.headers("connection") {
        assert!(
            !v.to_ascii_lowercase().contains("x-secret")
                && !v.to_ascii_lowercase().contains("upgrade"),
            "client's Connection tokens must not be forwarded: {v:?}"
        );
    }
    assert_eq!(req.header("x-keep"), Some("yes"));
}

#[test]
fn hop_by_hop_response_headers_are_removed() {
    let backend = Backend::replying(|_| {
        Reply::ok()
            .header("Connection", "X-Internal")
            .header("X-Internal", "secret")
            .header("Keep-Alive", "timeout=5")
            .header("Proxy-Connection", "keep-alive")
            .header("X-Public", "yes")
    });
    let gw = Gateway::to(&backend).start();
    let r = gw.get("/");
    assert_eq!(r.status, 200);
    for gone in ["x-internal", "keep-alive", "proxy-connection"] {
        assert!(
            !r.has_header(gone),
            "{gone} must not reach the client: {:?}",
            r.head
        );
    }
    assert_eq!(r.header("x-public"), Some("yes"));
}

#[test]
fn forwarded_headers_and_upstream_host() {
    let backend = Backend::recording();
    // A client's X-Forwarded-For chain is kept only from a trusted proxy.
    let gw = Gateway::to(&backend)
        .set("trusted-proxies", "[127.0.0.1]")
        .start();
    let r = gw.client().request(
        b"GET /f HTTP/1.1\r\nHost: shop.example:8443\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let req = backend.single_request();
    let xff = req.headers("x-forwarded-for").join(",");
    let hops: Vec<_> = xff.split(',').map(str::trim).collect();
    assert_eq!(
        hops,
        ["203.0.113.7", "127.0.0.1"],
        "X-Forwarded-For: {xff:?}"
    );
    assert_eq!(req.header("x-forwarded-proto"), Some("http"));
    assert_eq!(req.header("x-forwarded-host"), Some("shop.example:8443"));
    let host = backend.addr().to_string();
    assert_eq!(
        req.headers("host"),
        [host.as_str()],
        "Host is the route uri's authority"
    );
}

#[test]
fn forwarded_for_is_set_when_absent() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).start();
    assert_eq!(gw.get("/").status, 200);
    let req = backend.single_request();
    assert_eq!(req.headers("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(req.header("x-forwarded-host"), Some(HOST));
}

#[test]
fn filters_rewrite_path_and_headers() {
    let backend = Backend::recording();
    let route = Route::new("api", backend.uri())
        .predicate("Path=/api/**")
        .filter("StripPrefix=1")
        .filter("PrefixPath=/x")
        .filter("AddRequestHeader=X-A, 1")
        .filter("SetRequestHeader=X-B, 2")
        .filter("RemoveRequestHeader=X-C");
    let gw = Gateway::with(routes_yaml(&[route])).start();
    let r = gw.client().request(
        format!("GET /api/items/7?q=1 HTTP/1.1\r\nHost: {HOST}\r\nX-B: old\r\nX-C: gone\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(r.status, 200);
    let req = backend.single_request();
    assert_eq!(req.target, "/x/items/7?q=1");
    assert_eq!(req.headers("x-a"), ["1"]);
    assert_eq!(req.headers("x-b"), ["2"]);
    assert!(
        !req.has_header("x-c"),
        "RemoveRequestHeader: {:?}",
        req.head
    );
}

#[test]
fn host_and_method_predicates_route_and_unmatched_is_404() {
    let by_host = Backend::replying(|_| Reply::ok().body("host"));
    let by_method = Backend::replying(|_| Reply::ok().body("method"));
    let by_path = Backend::replying(|_| Reply::ok().body("path"));
    let gw = Gateway::with(routes_yaml(&[
        Route::new("by-host", by_host.uri()).predicate("Host=a.example"),
        Route::new("by-method", by_method.uri())
            .predicate("Method=POST")
            .predicate("Path=/submit"),
        Route::new("by-path", by_path.uri()).predicate("Path=/docs/**"),
    ]))
    .start();
    let mut c = gw.client();
    let r = c.request(b"GET /anything HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "host"));
    let r = c.request(b"POST /submit HTTP/1.1\r\nHost: b.example\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!((r.status, r.text().as_str()), (200, "method"));
    let r = c.request(b"GET /docs/intro HTTP/1.1\r\nHost: b.example\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "path"));

    let r = gw
        .client()
        .request(b"GET /submit HTTP/1.1\r\nHost: b.example\r\n\r\n");
    assert_eq!(r.status, 404, "GET /submit matches no route");
    let r = gw
        .client()
        .request(b"GET /nowhere HTTP/1.1\r\nHost: b.example\r\n\r\n");
    assert_eq!(r.status, 404);
    assert_eq!(by_host.requests().len(), 1);
    assert_eq!(by_method.requests().len(), 1);
    assert_eq!(by_path.requests().len(), 1);
}

#[test]
fn route_order_beats_file_order() {
    let late = Backend::replying(|_| Reply::ok().body("late"));
    let early = Backend::replying(|_| Reply::ok().body("early"));
    let gw = Gateway::with(routes_yaml(&[
        Route::new("late", late.uri())
            .predicate("Path=/**")
            .order(5),
        Route::new("early", early.uri())
            .predicate("Path=/**")
            .order(1),
    ]))
    .start();
    assert_eq!(gw.get("/x").text(), "early");
    assert!(late.requests().is_empty());
}

#[test]
fn upstream_refused_is_502() {
    let dead = closed_port_addr();
    let gw = Gateway::with(routes_yaml(&[
        Route::new("dead", format!("http://{dead}")).predicate("Path=/**")
    ]))
    .start();
    let r = gw.get("/");
    assert_eq!(r.status, 502);
    assert!(!r.body.is_empty(), "502 should carry a short text body");
}

#[test]
fn upstream_silent_is_504() {
    let backend = Backend::replying(|_| Reply::silent());
    let gw = Gateway::to(&backend)
        .set("upstream-response-timeout-ms", 300)
        .start();
    let r = gw.get("/slow");
    assert_eq!(r.status, 504);
    assert!(!r.body.is_empty(), "504 should carry a short text body");
    assert_eq!(backend.single_request().target, "/slow");
}

#[test]
fn client_connection_close_is_honoured() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).start();
    let mut c = gw.client();
    let r = c
        .request(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").as_bytes());
    assert_eq!(r.status, 200);
    assert!(
        r.says_close(),
        "response should say Connection: close: {:?}",
        r.head
    );
    c.expect_closed(Duration::from_secs(5));
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend)
        .set("connection-idle-timeout-ms", 300)
        .start();
    let mut c = gw.client();
    assert_eq!(c.get("/1").status, 200);
    assert_eq!(c.get("/2").status, 200);
    c.expect_closed(Duration::from_secs(5));
}

#[test]
fn legacy_driver_proxies() {
    let backend = Backend::replying(|r| Reply::ok().body(format!("{} {}", r.method, r.body_len)));
    let gw = Gateway::to(&backend).driver("legacy").start();
    let mut c = gw.client();
    assert_eq!(c.get("/").text(), "GET 0");
    assert_eq!(c.request(&post("/p", b"abcdef")).text(), "POST 6");
    assert_eq!(backend.wait_for_requests(2)[1].body, b"abcdef");
}

#[test]
fn pipelined_requests_with_bodies() {
    let backend = Backend::replying(|r| {
        Reply::ok().body(format!("{} {} {}", r.method, r.target, r.body_len))
    });
    let gw = Gateway::to(&backend).start();
    let mut c = gw.client();
    let mut burst = format!("GET /1 HTTP/1.1\r\nHost: {HOST}\r\n\r\n").into_bytes();
    burst.extend_from_slice(&post("/2", b"twelve bytes"));
    burst.extend_from_slice(&post_chunked("/3", &[b"abc", b"defg"], &[]));
    burst.extend_from_slice(format!("GET /4 HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes());
    c.send(&burst);
    for expected in ["GET /1 0", "POST /2 12", "POST /3 7", "GET /4 0"] {
        let r = c.read_response();
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), expected);
    }
    let reqs = backend.wait_for_requests(4);
    assert_eq!(reqs[1].body, b"twelve bytes");
    assert_eq!(reqs[2].body, b"abcdefg");
}

#[test]
fn close_delimited_response_is_relayed_whole() {
    let backend = Backend::replying(|_| {
        Reply::raw("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nno length, ends at close")
    });
    let gw = Gateway::to(&backend).start();
    let mut c = gw.client();
    let r = c.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "no length, ends at close");
}

#[test]
fn upstream_response_with_length_and_chunked_is_not_passed_ambiguously() {
    // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length; an intermediary that
    // forwards such a message must drop the Content-Length first (or refuse it).
    let backend = Backend::replying(|_| {
        Reply::raw(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
             5\r\nhello\r\n0\r\n\r\n",
        )
    });
    let gw = Gateway::to(&backend).start();
    let r = gw.get("/");
    match r.status {
        502 => {}
        200 => {
            assert!(
                !r.has_header("content-length"),
                "both framings passed to the client: {:?}",
                r.head
            );
            assert_eq!(r.text(), "hello");
        }
        other => panic!("expected 502 or a cleanly re-framed 200, got {other}"),
    }
}

#[test]
fn idle_wait_between_requests_is_not_a_head_timeout() {
    // The keep-alive wait is governed by the idle timeout, not the head timeout.
    let backend = Backend::recording();
    let gw = Gateway::to(&backend)
        .set("request-head-timeout-ms", 300)
        .set("connection-idle-timeout-ms", 10_000)
        .start();
    let mut c = gw.client();
    assert_eq!(c.get("/1").status, 200);
    // A client that pauses between requests: the pause is the scenario.
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(c.get("/2").status, 200);
}

/// Reads a response if one comes before the close; `None` when the connection just ends.
fn response_or_close(c: &mut crate::client::Client) -> Option<crate::client::Response> {
    match c.try_read_response("GET", true) {
        Ok(r) => Some(r),
        Err(e)
            if e.kind() == std::io::ErrorKind::UnexpectedEof
                || e.kind() == std::io::ErrorKind::ConnectionReset =>
        {
            None
        }
        Err(e) => panic!("expected a response or a close, got: {e}"),
    }
}

fn wait_backend_connections_closed(backend: &Backend) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while backend.closed_connections() < backend.connections() {
        assert!(
            std::time::Instant::now() < deadline,
            "gateway kept a half-sent upstream connection open"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn stalled_body_is_cut_after_body_read_timeout() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend)
        .set("body-read-timeout-ms", 300)
        .start();
    let mut c = gw.client();
    c.send(
        format!("POST /p HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 10\r\n\r\nhalf.").as_bytes(),
    );
    if let Some(r) = response_or_close(&mut c) {
        assert_eq!(
            r.status, 408,
            "a stalled body may only be answered with 408"
        );
    }
    c.expect_closed(Duration::from_secs(5));
    assert!(
        backend.requests().is_empty(),
        "backend must not see a complete request"
    );
    wait_backend_connections_closed(&backend);
}

#[test]
fn chunked_body_over_limit_after_forwarding_cuts_the_connection() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).set("max-body-bytes", 1024).start();
    let mut c = gw.client();
    let mut first =
        format!("POST /p HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n1f4\r\n")
            .into_bytes();
    first.extend(std::iter::repeat(b'a').take(500));
    first.extend_from_slice(b"\r\n");
    c.send(&first);
    // Give the gateway the chance to start streaming (it should); proceed either way.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while backend.bytes_received() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut second = b"258\r\n".to_vec();
    second.extend(std::iter::repeat(b'b').take(600));
    second.extend_from_slice(b"\r\n0\r\n\r\n");
    c.send_lenient(&second);
    if let Some(r) = response_or_close(&mut c) {
        assert_eq!(
            r.status, 413,
            "over-limit body may only be answered with 413"
        );
    }
    c.expect_closed(Duration::from_secs(5));
    assert!(
        backend.requests().is_empty(),
        "backend must not see a complete request"
    );
    wait_backend_connections_closed(&backend);
}

#[test]
fn http_1_0_request_is_served_and_closed() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).start();
    let mut c = gw.client();
    let r = c.request(b"GET /old HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok");
    c.expect_closed(Duration::from_secs(5));
    assert_eq!(backend.single_request().target, "/old");
}
