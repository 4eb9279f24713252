//! `sessiongate.access-log: true` writes one stderr line per request with method, path and
//! status.

use std::time::Duration;

use crate::backend::Backend;
use crate::client::{post, HOST};
use crate::harness::{routes_yaml, Gateway, Route};

fn line_with(gw: &Gateway, words: &[&str]) -> String {
    gw.wait_for_log_line(Duration::from_secs(5), |l| {
        words.iter().all(|w| l.contains(w))
    })
    .unwrap_or_else(|| {
        panic!(
            "no access-log line containing {words:?}; stderr:\n{}",
            gw.stderr()
        )
    })
}

#[test]
fn one_line_per_request_with_method_path_status() {
    let backend = Backend::recording();
    let gw = Gateway::with(routes_yaml(&[
        Route::new("app", backend.uri()).predicate("Path=/logged/**")
    ]))
    .set("access-log", true)
    .start();
    let mut c = gw.client();
    assert_eq!(c.get("/logged/page-one").status, 200);
    assert_eq!(c.request(&post("/logged/form-two", b"x=1")).status, 200);
    let r = c.request(format!("GET /unrouted-three HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes());
    assert_eq!(r.status, 404);

    line_with(&gw, &["GET", "/logged/page-one", "200"]);
    line_with(&gw, &["POST", "/logged/form-two", "200"]);
    line_with(&gw, &["GET", "/unrouted-three", "404"]);
    let count = |p: &str| gw.stderr().lines().filter(|l| l.contains(p)).count();
    assert_eq!(count("/logged/page-one"), 1, "exactly one line per request");
    let stdout = gw.stdout_lines();
    assert!(
        stdout
            .iter()
            .all(|l| l.starts_with("sessiongate listening on")),
        "logs belong on stderr; stdout had: {stdout:?}"
    );
}

#[test]
fn no_access_log_when_disabled() {
    let backend = Backend::recording();
    let gw = Gateway::to(&backend).set("access-log", false).start();
    assert_eq!(gw.get("/quiet-path-xyz").status, 200);
    // The request is done; a line would have been written by now if it were going to be,
    // but logging may be asynchronous, so check after a second request has also completed.
    assert_eq!(gw.get("/second").status, 200);
    assert!(
        !gw.stderr().contains("/quiet-path-xyz"),
        "access log disabled but the path was logged:\n{}",
        gw.stderr()
    );
}
