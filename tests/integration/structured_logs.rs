//! `logging.structured.format.console: ecs | logstash` (Spring Boot 3.4's names): every
//! stderr line is one JSON object with the format's members; the access line carries its
//! request in Elastic Common Schema names, never the query or the SESSION cookie. An
//! unknown format is refused at start; a reload that changes the format needs a restart.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::backend::Backend;
use crate::client::{post, HOST};
use crate::harness::{routes_yaml, run_expecting_exit, Gateway, Route, EX_CONFIG};
use crate::oidc::stack::{session_reference, Stack};

/// Looks like a credential in a query: must never reach the log.
const SECRET: &str = "s3cr3t-Qv7Zx9";

fn gateway(format: &str, backend: &Backend) -> Gateway {
    let mut yaml = routes_yaml(&[Route::new("app", backend.uri()).predicate("Path=/logged/**")]);
    yaml.push_str(&format!(
        "logging:\n  structured:\n    format:\n      console: {format}\n"
    ));
    Gateway::with(yaml).set("access-log", true).start()
}

/// Sends `raw` on a fresh connection the gateway closes after answering; every byte back.
fn exchange(gw: &Gateway, raw: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(gw.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    got
}

/// Every stderr line, each parsed as JSON (panics on the first that is not).
fn json_lines(gw: &Gateway) -> Vec<Value> {
    let stderr = gw.stderr();
    assert!(!stderr.is_empty(), "the gateway logged nothing");
    stderr
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| panic!("not a JSON object: {l:?}\nstderr:\n{stderr}"))
        })
        .collect()
}

/// Waits for the access line whose `url.path` is `path`.
fn access_line(gw: &Gateway, logger_key: &str, path: &str) -> Value {
    let quoted = serde_json::to_string(path).unwrap();
    gw.wait_for_log_line(Duration::from_secs(5), |l| {
        l.contains("sessiongate::access") && l.contains(&format!("\"url.path\":{quoted}"))
    })
    .unwrap_or_else(|| panic!("no access line for {path}; stderr:\n{}", gw.stderr()));
    json_lines(gw)
        .into_iter()
        .find(|l| l[logger_key] == "sessiongate::access" && l["url.path"] == path)
        .unwrap()
}

/// Sends the scenario's requests; returns the bytes the client got for the one with a query.
fn requests(gw: &Gateway, backend: &Backend) -> usize {
    let got = exchange(
        gw,
        &format!(
            "GET /logged/page?token={SECRET}&x=1 HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(got.starts_with(b"HTTP/1.1 200"), "{got:?}");
    // The query did go through: the log leaves it out, the backend gets it.
    let sent = backend.wait_for_requests(1);
    assert!(sent[0].target.contains(SECRET), "{:?}", sent[0].target);
    let mut c = gw.client();
    assert_eq!(c.request(&post("/logged/form", b"a=1")).status, 200);
    assert_eq!(c.get("/logged/q\"uote\\back").status, 200);
    assert_eq!(c.get("/unrouted").status, 404);
    let refused = exchange(gw, "GET /logged/x HTTP/9.9\r\nHost: h\r\n\r\n");
    assert!(refused.starts_with(b"HTTP/1.1 505"), "{refused:?}");
    got.len()
}

/// What both formats' access lines carry, in ECS names.
fn assert_access_fields(gw: &Gateway, logger_key: &str, page_bytes: usize) {
    let page = access_line(gw, logger_key, "/logged/page");
    assert_eq!(page["message"], "GET /logged/page 200", "{page}");
    assert_eq!(page["http.request.method"], "GET", "{page}");
    assert_eq!(page["http.response.status_code"], 200, "{page}");
    assert_eq!(
        page["http.response.bytes"].as_u64(),
        Some(page_bytes as u64),
        "every byte the client got, head included: {page}"
    );
    let total = page["event.duration"]
        .as_u64()
        .expect("event.duration (ns)");
    let upstream = page["sessiongate.upstream.duration"]
        .as_u64()
        .expect("sessiongate.upstream.duration (ns)");
    assert!(0 < upstream && upstream <= total, "{page}");
    assert_eq!(page["sessiongate.route.id"], "app", "{page}");
    assert_eq!(page["client.address"], "127.0.0.1", "{page}");
    assert!(page["client.port"].is_u64(), "{page}");
    assert!(
        page.get("sessiongate.session").is_none(),
        "no login here: {page}"
    );

    let form = access_line(gw, logger_key, "/logged/form");
    assert_eq!(form["http.request.method"], "POST", "{form}");
    // Escaped in the line, the same text once parsed.
    let odd = access_line(gw, logger_key, "/logged/q\"uote\\back");
    assert_eq!(odd["http.response.status_code"], 200, "{odd}");
    let unrouted = access_line(gw, logger_key, "/unrouted");
    assert_eq!(unrouted["http.response.status_code"], 404, "{unrouted}");
    assert!(
        unrouted.get("sessiongate.route.id").is_none()
            && unrouted.get("sessiongate.upstream.duration").is_none(),
        "no route answered it: {unrouted}"
    );
    // A head refused before it was understood has no method or path, and is still a line.
    gw.wait_for_log_line(Duration::from_secs(5), |l| {
        l.contains("sessiongate::access") && l.contains("\"http.response.status_code\":505")
    })
    .unwrap_or_else(|| panic!("no line for the refused head:\n{}", gw.stderr()));
    let refused: Vec<Value> = json_lines(gw)
        .into_iter()
        .filter(|l| l[logger_key] == "sessiongate::access" && l.get("url.path").is_none())
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].get("http.request.method").is_none());

    let stderr = gw.stderr();
    assert!(
        !stderr.contains(SECRET) && !stderr.contains("token="),
        "the query reached the log:\n{stderr}"
    );
}

/// A gateway logging in `format` after the scenario's requests, its access lines checked.
fn scenario(format: &str, logger_key: &str) -> (Backend, Gateway) {
    let backend = Backend::recording();
    let gw = gateway(format, &backend);
    let page_bytes = requests(&gw, &backend);
    assert_access_fields(&gw, logger_key, page_bytes);
    (backend, gw)
}

#[test]
fn ecs_lines_have_spring_boot_names_and_the_access_line_its_fields() {
    let (_backend, gw) = scenario("ecs", "log.logger");
    let lines = json_lines(&gw);
    assert!(
        lines.len() >= 6,
        "start-up lines and five access lines: {lines:?}"
    );
    for l in &lines {
        assert!(
            l["@timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{l}"
        );
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&l["log.level"].as_str().unwrap()),
            "{l}"
        );
        assert!(
            l["log.logger"].as_str().unwrap().starts_with("sessiongate"),
            "{l}"
        );
        assert_eq!(l["process.pid"], gw.pid(), "{l}");
        assert!(l["process.thread.name"].is_string(), "{l}");
        assert_eq!(l["service.name"], "sessiongate", "{l}");
        assert!(l["service.version"].is_string(), "{l}");
        assert!(l["message"].is_string(), "{l}");
        assert_eq!(l["ecs.version"], "8.11", "{l}");
        assert!(
            l.get("level").is_none() && l.get("logger_name").is_none(),
            "{l}"
        );
    }
    // The access lines come from the workers, the start-up lines from the main thread.
    let page = access_line(&gw, "log.logger", "/logged/page");
    assert!(
        page["process.thread.name"]
            .as_str()
            .unwrap()
            .starts_with("sessiongate-w"),
        "{page}"
    );
    assert!(
        lines.iter().any(|l| l["message"] == "sessiongate started"),
        "{lines:?}"
    );
}

#[test]
fn logstash_lines_have_the_encoder_names() {
    let (_backend, gw) = scenario("logstash", "logger_name");
    for l in json_lines(&gw) {
        assert!(l["@timestamp"].is_string(), "{l}");
        assert_eq!(l["@version"], "1", "{l}");
        assert!(l["message"].is_string(), "{l}");
        assert!(
            l["logger_name"]
                .as_str()
                .unwrap()
                .starts_with("sessiongate"),
            "{l}"
        );
        assert!(l["thread_name"].is_string(), "{l}");
        let value = match l["level"].as_str().unwrap() {
            "TRACE" => 5000,
            "DEBUG" => 10000,
            "INFO" => 20000,
            "WARN" => 30000,
            "ERROR" => 40000,
            other => panic!("level {other:?}: {l}"),
        };
        assert_eq!(l["level_value"], value, "{l}");
        assert!(
            l.get("log.level").is_none() && l.get("ecs.version").is_none(),
            "{l}"
        );
    }
}

/// A request of a logged-in user names the session by its reference, never the cookie.
#[test]
fn a_session_is_logged_by_reference_never_by_cookie() {
    let s = Stack::builder()
        .structured_logs("ecs")
        .set("access-log", true)
        .start();
    let (_browser, login) = s.login("alice");
    let path = "/app/with-session";
    let r = s.with_session(&login.session, &format!("{path}?api_key={SECRET}"));
    assert_eq!(r.status, 200);
    let line = access_line(&s.gateway, "log.logger", path);
    assert_eq!(
        line["sessiongate.session"],
        session_reference(&login.session),
        "{line}"
    );
    let callback = access_line(&s.gateway, "log.logger", &s.callback_path());
    assert_eq!(callback["http.response.status_code"], 302, "{callback}");
    let stderr = s.gateway.stderr();
    let code = login.callback_url.param("code").unwrap();
    for (what, secret) in [
        ("the SESSION cookie", login.session.as_str()),
        ("the query", SECRET),
        ("the authorization code", code.as_str()),
    ] {
        assert!(!stderr.contains(secret), "{what} logged:\n{stderr}");
    }
    json_lines(&s.gateway);
}

#[test]
fn an_unknown_format_is_refused_naming_the_key() {
    let backend = Backend::recording();
    let mut yaml = routes_yaml(&[Route::new("app", backend.uri()).predicate("Path=/**")]);
    yaml.push_str("logging.structured.format.console: gelf\n");
    let out = run_expecting_exit(&yaml);
    assert_eq!(out.code, Some(EX_CONFIG), "{out:?}");
    assert!(
        out.stderr.contains("logging.structured.format.console")
            && out.stderr.contains("\"gelf\"")
            && out.stderr.contains("ecs or logstash"),
        "{}",
        out.stderr
    );
}

/// The format is fixed at start: a reload that changes it says so and the lines stay ECS.
#[test]
fn a_reload_that_changes_the_format_needs_a_restart() {
    let backend = Backend::recording();
    let gw = gateway("ecs", &backend);
    let yaml = gw.config_yaml();
    assert!(yaml.contains("console: ecs"), "{yaml}");
    gw.rewrite_config(&yaml.replace("console: ecs", "console: logstash"));
    gw.signal(libc::SIGHUP);
    gw.wait_for_log_line(Duration::from_secs(5), |l| {
        l.contains("takes effect after a restart")
            && l.contains("logging.structured.format.console")
    })
    .unwrap_or_else(|| panic!("no restart warning:\n{}", gw.stderr()));
    gw.wait_for_log_line(Duration::from_secs(5), |l| {
        l.contains("configuration reloaded")
    })
    .unwrap_or_else(|| panic!("no reload:\n{}", gw.stderr()));
    for l in json_lines(&gw) {
        assert_eq!(l["ecs.version"], "8.11", "{l}");
    }
}
