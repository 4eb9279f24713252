//! `spring.cloud.gateway.routes`: both forms of predicates and filters, the compiled
//! patterns, and the errors naming the entry.

use super::{fails, load};
use crate::route::{Filter, HostPattern, PathPattern, Predicate, Router};

const ROUTES: &str = "spring.cloud.gateway.routes";

fn routes_yaml(body: &str) -> String {
    format!("{ROUTES}:\n{body}")
}

/// Three routes, `body` added to the third.
fn third_route(body: &str) -> String {
    routes_yaml(&format!("  - id: a\n    uri: http://a\n  - id: b\n    uri: http://b\n  - id: c\n    uri: http://c\n{body}"))
}

/// `patterns` compiled with `parse`, as a predicate holds them.
fn compiled<T>(patterns: &[&str], parse: fn(&str) -> Result<T, String>) -> Vec<T> {
    patterns.iter().map(|p| parse(p).unwrap()).collect()
}

#[test]
fn routes_shortcut_form() {
    let c = load(&routes_yaml(
        "
  - id: api
    uri: http://127.0.0.1:9000/ignored
    order: -1
    predicates:
      - Path=/a/**, /b/*
      - Host=**.example.com
      - Method=get,POST
    filters:
      - StripPrefix=1
      - PrefixPath=/api/
      - AddRequestHeader=X-Name, a, b
      - SetRequestHeader=X-Other, v
      - RemoveRequestHeader=Cookie
  - id: bc
    uri: http://127.0.0.1:8080
    predicates: [Path=/backchannel/logout]
    filters: [BackchannelLogout]
",
    ));
    let api = &c.routes[0];
    assert_eq!((api.id.as_str(), api.order), ("api", -1));
    assert_eq!(
        api.predicates,
        [
            Predicate::Path(compiled(&["/a/**", "/b/*"], PathPattern::parse)),
            Predicate::Host(compiled(&["**.example.com"], HostPattern::parse)),
            Predicate::Method(vec!["GET".into(), "POST".into()]),
        ]
    );
    assert_eq!(
        api.filters,
        [
            Filter::StripPrefix(1),
            Filter::PrefixPath("/api".into()),
            Filter::AddRequestHeader("X-Name".into(), "a, b".into()),
            Filter::SetRequestHeader("X-Other".into(), "v".into()),
            Filter::RemoveRequestHeader("Cookie".into()),
        ]
    );
    assert_eq!(c.routes[1].filters, [Filter::BackchannelLogout]);
    assert_eq!(c.routes[1].order, 0);
}

#[test]
fn routes_expanded_form() {
    let c = load(&routes_yaml(
        "
  - id: api
    uri: https://backend
    predicates:
      - name: Path
        args: {patterns: [/a/**, /b]}
      - name: Method
        args:
          methods: GET
    filters:
      - name: StripPrefix
        args: {parts: 2}
      - name: AddRequestHeader
        args: {name: X-A, value: 'x, y'}
      - name: RemoveRequestHeader
        args: {name: X-B}
      - name: PrefixPath
        args: {prefix: /p}
",
    ));
    let r = &c.routes[0];
    assert_eq!(r.uri.port, 443);
    assert_eq!(
        r.predicates,
        [
            Predicate::Path(compiled(&["/a/**", "/b"], PathPattern::parse)),
            Predicate::Method(vec!["GET".into()])
        ]
    );
    assert_eq!(
        r.filters,
        [
            Filter::StripPrefix(2),
            Filter::AddRequestHeader("X-A".into(), "x, y".into()),
            Filter::RemoveRequestHeader("X-B".into()),
            Filter::PrefixPath("/p".into()),
        ]
    );
}

#[test]
fn loaded_routes_hold_the_compiled_patterns() {
    let c = load(&routes_yaml(
        "  - id: api\n    uri: http://a\n    predicates: ['Path=/api/**', 'Host=*.example.com']\n",
    ));
    match &c.routes[0].predicates[..] {
        [Predicate::Path(p), Predicate::Host(h)] => {
            assert_eq!((p[0].as_str(), h[0].as_str()), ("/api/**", "*.example.com"));
        }
        other => panic!("{other:?}"),
    }
    let router = Router::new(&c.routes);
    let find = |path: &[u8]| router.find(b"GET", Some(b"www.example.com"), path);
    assert_eq!(find(b"/api/x").map(|r| r.id.as_str()), Some("api"));
    assert!(find(b"/other").is_none());
}

#[test]
fn predicate_errors_name_the_entry() {
    fails(
        &third_route("    predicates: [Paths=/a]\n"),
        "spring.cloud.gateway.routes[2].predicates[0]",
        "did you mean `Path`?",
    );
    fails(
        &third_route("    predicates: ['Path=/a,b']\n"),
        "spring.cloud.gateway.routes[2].predicates[0][1]",
        "start with `/`",
    );
    fails(
        &third_route("    predicates: ['Path=/a/**/b']\n"),
        "spring.cloud.gateway.routes[2].predicates[0][0]",
        "last segment",
    );
    fails(
        &third_route("    predicates: ['Host=a.com:80']\n"),
        "spring.cloud.gateway.routes[2].predicates[0][0]",
        "port",
    );
    fails(
        &third_route("    predicates: ['Method=GE T']\n"),
        "spring.cloud.gateway.routes[2].predicates[0][0]",
        "method",
    );
    fails(
        &third_route("    predicates: ['Path=']\n"),
        "spring.cloud.gateway.routes[2].predicates[0]",
        "at least one",
    );
}

#[test]
fn filter_errors_name_the_entry() {
    fails(
        &third_route("    filters: [StripPrefixx=1]\n"),
        "spring.cloud.gateway.routes[2].filters[0]",
        "did you mean `StripPrefix`?",
    );
    fails(
        &third_route("    filters: [Frobnicate]\n"),
        "spring.cloud.gateway.routes[2].filters[0]",
        "known: StripPrefix",
    );
    fails(
        &third_route("    filters: ['AddRequestHeader=X Y, v']\n"),
        "spring.cloud.gateway.routes[2].filters[0]",
        "header name",
    );
    fails(
        &third_route("    filters: [\"SetRequestHeader=X, a\\r\\nEvil: 1\"]\n"),
        "spring.cloud.gateway.routes[2].filters[0]",
        "control character",
    );
    fails(
        &third_route("    filters: [AddRequestHeader=X]\n"),
        "spring.cloud.gateway.routes[2].filters[0]",
        "expects name, value",
    );
    fails(
        &third_route("    filters: [StripPrefix=x]\n"),
        "spring.cloud.gateway.routes[2].filters[0]",
        "integer",
    );
    fails(
        &third_route("    filters: [StripPrefix]\n"),
        "spring.cloud.gateway.routes[2].filters[0]",
        "expects parts",
    );
    fails(
        &third_route("    filters: [PrefixPath=api]\n"),
        "spring.cloud.gateway.routes[2].filters[0]",
        "/api",
    );
    fails(
        &third_route("    filters: [BackchannelLogout=1]\n"),
        "spring.cloud.gateway.routes[2].filters[0]",
        "no arguments",
    );
    fails(
        &third_route("    filters: [{name: StripPrefix, args: {part: 1}}]\n"),
        "spring.cloud.gateway.routes[2].filters[0].args.part",
        "did you mean `spring.cloud.gateway.routes[2].filters[0].args.parts`?",
    );
    fails(
        &third_route("    filters: [{nme: StripPrefix}]\n"),
        "spring.cloud.gateway.routes[2].filters[0].nme",
        "did you mean",
    );
}

#[test]
fn route_entry_errors_name_the_entry() {
    fails(
        &third_route("    metadata: {a: 1}\n"),
        "spring.cloud.gateway.routes[2].metadata",
        "unknown key",
    );
    fails(
        &third_route("    order: x\n"),
        "spring.cloud.gateway.routes[2].order",
        "integer",
    );
    fails(
        &routes_yaml("  - uri: http://a\n"),
        "spring.cloud.gateway.routes[0].id",
        "required",
    );
    fails(
        &routes_yaml("  - id: a\n"),
        "spring.cloud.gateway.routes[0].uri",
        "required",
    );
    fails(
        &routes_yaml("  - id: a\n    uri: lb://svc\n"),
        "spring.cloud.gateway.routes[0].uri",
        "http",
    );
    fails(
        &routes_yaml("  - {id: a, uri: 'http://a'}\n  - {id: a, uri: 'http://b'}\n"),
        "spring.cloud.gateway.routes[1].id",
        "twice",
    );
    fails(
        "spring.cloud.gateway.routes: x\n",
        "spring.cloud.gateway.routes",
        "list of routes",
    );
}
