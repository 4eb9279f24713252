//! SIGHUP re-reads the configuration file: changed routes and upstreams serve new requests
//! while open keep-alive connections and requests in flight carry on; `logging.level`
//! changes apply at once; an invalid file keeps the running configuration and says why.
//!
//! Each reload adds a marker route; the test polls it on fresh connections (which the
//! kernel spreads over both workers) until it answers, so it never depends on a log line
//! that a new log level may hide.

use std::thread;
use std::time::{Duration, Instant};

use crate::backend::{Backend, Reply};
use crate::client::HOST;
use crate::harness::{routes_yaml, Gateway, Route};

const EFFECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes `yaml` over the gateway's file (keeping its `sessiongate:` section), sends SIGHUP
/// and waits (bounded) until `marker` answers 200 on several fresh connections in a row.
fn reload(gw: &Gateway, yaml: &str, marker: &str) {
    let running = gw.config_yaml();
    let knobs = &running[running
        .find("\nsessiongate:\n")
        .expect("the harness writes a sessiongate section")
        + 1..];
    gw.rewrite_config(&format!("{yaml}{knobs}"));
    gw.signal(libc::SIGHUP);
    wait_until_routed(gw, marker);
}

fn wait_until_routed(gw: &Gateway, path: &str) {
    let deadline = Instant::now() + EFFECT_TIMEOUT;
    let mut in_a_row = 0;
    while in_a_row < 8 {
        let r = gw.get(path);
        if r.status == 200 {
            in_a_row += 1;
            continue;
        }
        in_a_row = 0;
        assert_eq!(r.status, 404, "{path} during the reload: {}", r.text());
        assert!(
            Instant::now() < deadline,
            "{path} is still not routed {EFFECT_TIMEOUT:?} after SIGHUP"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn targets(b: &Backend) -> Vec<String> {
    b.requests().into_iter().map(|r| r.target).collect()
}

/// The access log line of a request (`sessiongate::access`), if one was written.
fn access_line(gw: &Gateway, path: &str) -> Option<String> {
    gw.stderr()
        .lines()
        .find(|l| l.contains("sessiongate::access") && l.contains(path))
        .map(str::to_string)
}

#[test]
fn a_reload_switches_routes_while_open_connections_carry_on() {
    let a = Backend::replying(|r| {
        if r.target.starts_with("/a/slow") {
            Reply::ok().body("slow").delay(Duration::from_millis(800))
        } else {
            Reply::ok().body("from a")
        }
    });
    let b = Backend::replying(|_| Reply::ok().body("from b"));
    let gw = Gateway::with(routes_yaml(&[
        Route::new("a", a.uri()).predicate("Path=/a/**"),
        Route::new("old", a.uri()).predicate("Path=/old/**"),
    ]))
    .workers(2)
    .start();

    let mut kept = gw.client();
    let r = kept.get("/a/before");
    assert_eq!((r.status, r.text().as_str()), (200, "from a"));
    assert_eq!(gw.get("/old/before").status, 200);
    assert_eq!(gw.get("/new/before").status, 404);

    // A request in flight while the file changes.
    let mut in_flight = gw.client();
    in_flight.send(format!("GET /a/slow HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes());
    let deadline = Instant::now() + EFFECT_TIMEOUT;
    while !targets(&a).iter().any(|t| t == "/a/slow") {
        assert!(Instant::now() < deadline, "the slow request never arrived");
        thread::sleep(Duration::from_millis(5));
    }

    reload(
        &gw,
        &routes_yaml(&[
            Route::new("a", b.uri()).predicate("Path=/a/**"),
            Route::new("new", b.uri()).predicate("Path=/new/**"),
        ]),
        "/new/marker",
    );

    let r = in_flight.read_response();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "slow"),
        "the request in flight finishes"
    );
    for i in 0..6 {
        let r = gw.get(&format!("/a/after-{i}"));
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "from b"),
            "/a goes to the new upstream"
        );
        let r = gw.get(&format!("/old/after-{i}"));
        assert_eq!(r.status, 404, "the removed route: {}", r.text());
    }
    // The connection opened before the reload is still served, by the new table.
    let r = kept.get("/a/kept");
    assert_eq!((r.status, r.text().as_str()), (200, "from b"));
    let r = kept.get("/new/kept");
    assert_eq!((r.status, r.text().as_str()), (200, "from b"));
    assert!(!targets(&a)
        .iter()
        .any(|t| t.contains("after") || t.contains("kept")));
    assert!(targets(&b).iter().any(|t| t == "/a/kept"));
    assert!(!gw.stderr().contains("reload refused"), "{}", gw.stderr());
}

#[test]
fn a_reload_applies_log_levels() {
    let backend = Backend::recording();
    let routes = |markers: &[&str]| {
        let mut r = vec![Route::new("app", backend.uri()).predicate("Path=/app/**")];
        for m in markers {
            r.push(Route::new(m, backend.uri()).predicate(&format!("Path=/{m}/**")));
        }
        routes_yaml(&r)
    };
    let gw = Gateway::with(routes(&[]))
        .workers(2)
        .set("access-log", true)
        .start();

    assert_eq!(gw.get("/app/shown-before").status, 200);
    gw.wait_for_log_line(EFFECT_TIMEOUT, |l| {
        l.contains("sessiongate::access") && l.contains("/app/shown-before")
    })
    .unwrap_or_else(|| panic!("no access log line:\n{}", gw.stderr()));

    // `sessiongate: WARN` hides every INFO line of ours, the access log among them.
    reload(
        &gw,
        &format!(
            "{}logging:\n  level:\n    sessiongate: WARN\n",
            routes(&["m1"])
        ),
        "/m1/marker",
    );
    for i in 0..6 {
        assert_eq!(gw.get(&format!("/app/hidden-{i}")).status, 200);
    }

    // Back to INFO: logged again.
    reload(
        &gw,
        &format!(
            "{}logging:\n  level:\n    sessiongate: INFO\n",
            routes(&["m1", "m2"])
        ),
        "/m2/marker",
    );
    assert_eq!(gw.get("/app/shown-after").status, 200);
    gw.wait_for_log_line(EFFECT_TIMEOUT, |l| {
        l.contains("sessiongate::access") && l.contains("/app/shown-after")
    })
    .unwrap_or_else(|| panic!("no access log line after INFO again:\n{}", gw.stderr()));
    // Lines are written in order: had the hidden requests been logged, they would be by now.
    for i in 0..6 {
        let path = format!("/app/hidden-{i}");
        assert_eq!(access_line(&gw, &path), None, "{path} was logged at WARN");
    }

    // Only the access log's own target.
    reload(
        &gw,
        &format!(
            "{}logging:\n  level:\n    sessiongate.access: WARN\n",
            routes(&["m1", "m2", "m3"])
        ),
        "/m3/marker",
    );
    assert_eq!(gw.get("/app/hidden-again").status, 200);
    reload(&gw, &routes(&["m1", "m2", "m3", "m4"]), "/m4/marker");
    assert_eq!(gw.get("/app/shown-last").status, 200);
    gw.wait_for_log_line(EFFECT_TIMEOUT, |l| {
        l.contains("sessiongate::access") && l.contains("/app/shown-last")
    })
    .unwrap_or_else(|| panic!("no access log line without a level:\n{}", gw.stderr()));
    assert_eq!(access_line(&gw, "/app/hidden-again"), None);
}

#[test]
fn an_invalid_file_keeps_the_running_configuration() {
    let a = Backend::replying(|_| Reply::ok().body("from a"));
    let b = Backend::replying(|_| Reply::ok().body("from b"));
    let gw = Gateway::with(routes_yaml(&[
        Route::new("a", a.uri()).predicate("Path=/a/**")
    ]))
    .workers(2)
    .start();
    let mut kept = gw.client();
    assert_eq!(kept.get("/a/before").status, 200);

    let running = gw.config_yaml();
    let bad = running.replace(
        "\nsessiongate:\n",
        "\ncg:\n  sessionTimeoutSecz: 5\nsessiongate:\n",
    );
    let bad = bad.replace(&a.uri(), &b.uri());
    assert_ne!(bad, running);
    gw.rewrite_config(&bad);
    gw.signal(libc::SIGHUP);
    let line = gw
        .wait_for_log_line(EFFECT_TIMEOUT, |l| l.contains("reload refused"))
        .unwrap_or_else(|| panic!("no `reload refused` line:\n{}", gw.stderr()));
    assert!(
        line.contains("sessionTimeoutSecz"),
        "the refusal names the key: {line}"
    );

    // Nothing of the refused file applies; the process and its connections carry on.
    for i in 0..6 {
        let r = gw.get(&format!("/a/after-{i}"));
        assert_eq!((r.status, r.text().as_str()), (200, "from a"));
    }
    let r = kept.get("/a/kept");
    assert_eq!((r.status, r.text().as_str()), (200, "from a"));
    assert!(b.requests().is_empty());

    // Broken YAML is refused the same way.
    gw.rewrite_config("server: [unclosed\n");
    gw.signal(libc::SIGHUP);
    let deadline = Instant::now() + EFFECT_TIMEOUT;
    while gw.stderr().matches("reload refused").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "the broken file was not refused:\n{}",
            gw.stderr()
        );
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(gw.get("/a/still").status, 200);

    // A corrected file is taken.
    gw.rewrite_config(&running.replace(&a.uri(), &b.uri()));
    gw.signal(libc::SIGHUP);
    let deadline = Instant::now() + EFFECT_TIMEOUT;
    loop {
        let r = gw.get("/a/fixed");
        if r.text() == "from b" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the corrected file was not applied"
        );
        thread::sleep(Duration::from_millis(20));
    }
}
