//! Every problem of a file is reported at once, in file order: problems in several
//! sections, several in one section or route, and what one problem leaves unchecked.

use super::{error, fails, fails_all};

const ROUTES: &str = "spring.cloud.gateway.routes";

/// Read in another order than written: `sessiongate` first, `cg` before the routes,
/// `logging` last.
const SEVERAL_SECTIONS: &str = "
cg:
  sessionTimeoutSecs: 600
  maxSessions: 0
server:
  port: 70000
sessiongate:
  max_head_bytes: 10
  driver: epoll
spring.cloud.gateway.routes:
  - id: a
    uri: lb://a
    predicates: [Paths=/a]
  - id: b
    uri: http://b
    filters: [StripPrefix=x, PrefixPath=api]
logging.level.com.x: LOUD
";

#[test]
fn problems_in_several_sections_are_reported_at_once_in_file_order() {
    fails_all(
        SEVERAL_SECTIONS,
        &[
            (
                "cg.sessionTimeoutSecs",
                "did you mean `cg.sessionTimeoutSec`?",
            ),
            ("cg.maxSessions", "positive"),
            ("server.port", "from 0 to 65535"),
            (
                "sessiongate.max_head_bytes",
                "did you mean `sessiongate.max-head-bytes`?",
            ),
            ("sessiongate.driver", "io_uring or legacy"),
            (&format!("{ROUTES}[0].uri"), "http"),
            (
                &format!("{ROUTES}[0].predicates[0]"),
                "did you mean `Path`?",
            ),
            (&format!("{ROUTES}[1].filters[0]"), "integer"),
            (&format!("{ROUTES}[1].filters[1]"), "/api"),
            ("logging.level.com.x", "TRACE, DEBUG"),
        ],
    );
}

#[test]
fn the_report_is_the_same_every_time() {
    let first = error(SEVERAL_SECTIONS);
    assert!(first.starts_with("10 errors:\n"), "{first}");
    assert_eq!(error(SEVERAL_SECTIONS), first);
}

#[test]
fn every_unknown_key_of_every_strict_section_is_named() {
    fails_all(
        "server.prot: 1\nmanagement.server.adress: 1\ncg.completelyDifferent: 1\n\
         cg.maxSesions: 1\nsessiongate.worker: 2\nspring.cloud.gateway.route: []\n",
        &[
            ("server.prot", "did you mean `server.port`?"),
            (
                "management.server.adress",
                "did you mean `management.server.address`?",
            ),
            (
                "cg.completelyDifferent",
                "known keys here: censhareLogoutUrl",
            ),
            ("cg.maxSesions", "did you mean `cg.maxSessions`?"),
            ("sessiongate.worker", "did you mean `sessiongate.workers`?"),
            (
                "spring.cloud.gateway.route",
                "did you mean `spring.cloud.gateway.routes`?",
            ),
        ],
    );
}

#[test]
fn each_route_entry_reports_its_own_problems() {
    let yaml = format!(
        "{ROUTES}:
  - id: a
    ur: http://a
    metadata: {{}}
  - uri: http://b
    order: x
  - id: a
    uri: http://c
    predicates: ['Path=/a,b', 'Host=a.com:80']
    filters: [{{name: StripPrefix, args: {{part: 1, prefx: 2}}}}]
  - 5
"
    );
    let at = |rest: &str| format!("{ROUTES}{rest}");
    fails_all(
        &yaml,
        &[
            (&at("[0].ur"), &format!("did you mean `{}`?", at("[0].uri"))),
            (&at("[0].metadata"), "unknown key"),
            (&at("[1].order"), "integer"),
            (&at("[1].id"), "required"),
            (&at("[2].id"), "used twice"),
            (&at("[2].predicates[0][1]"), "start with `/`"),
            (&at("[2].predicates[1][0]"), "port"),
            (&at("[2].filters[0].args.part"), "did you mean"),
            (&at("[2].filters[0].args.prefx"), "unknown key"),
            (&at("[3]"), "expected a map of keys"),
        ],
    );
}

#[test]
fn every_bad_item_of_a_list_is_named() {
    fails_all(
        &format!(
            "cg.logoutListeners: [ftp://a/, http://b/, 'http://u@c/']\n\
             sessiongate.trusted-proxies: nope, 10.0.0.1, nah\n\
             {ROUTES}: [{{id: a, uri: 'http://a', predicates: ['Path=a,b']}}]\n"
        ),
        &[
            ("cg.logoutListeners[0]", "http"),
            ("cg.logoutListeners[2]", "user information"),
            ("sessiongate.trusted-proxies[0]", "IP address"),
            ("sessiongate.trusted-proxies[2]", "IP address"),
            (&format!("{ROUTES}[0].predicates[0][0]"), "start with `/`"),
            (&format!("{ROUTES}[0].predicates[0][1]"), "start with `/`"),
        ],
    );
}

#[test]
fn start_time_file_rules_are_reported_with_the_rest() {
    fails_all(
        "sessiongate:\n  workers: 256\n  access-banner: /nonexistent/banner.html\n\
         \x20 ca-bundle: /nonexistent/ca.pem\ncg.maxSessions: 0\n",
        &[
            ("sessiongate.workers", "at most 255"),
            (
                "sessiongate.access-banner",
                "cannot read /nonexistent/banner.html",
            ),
            ("sessiongate.ca-bundle", "cannot read /nonexistent/ca.pem"),
            ("cg.maxSessions", "positive"),
        ],
    );
}

/// A section that is not a map is one problem: nothing below it is read, the rest of the
/// file is.
#[test]
fn a_section_that_is_not_a_map_stops_only_itself() {
    fails_all(
        "cg: [1]\nsessiongate: {workers: x}\nserver: 5\nspring.cloud.gateway.routes: x\n\
         spring.security.oauth2.client: 5\n",
        &[
            ("cg", "expected a map"),
            ("sessiongate.workers", "non-negative integer"),
            ("server", "expected a map"),
            (ROUTES, "list of routes"),
            ("spring.security.oauth2.client", "expected a map"),
        ],
    );
}

/// A required key that looks misspelt is the typo's problem only, not a second one.
#[test]
fn a_misspelt_required_key_is_one_problem() {
    fails(
        &format!("{ROUTES}: [{{id: a, ur: 'http://a'}}]\n"),
        &format!("{ROUTES}[0].ur"),
        &format!("did you mean `{ROUTES}[0].uri`?"),
    );
    let client = "spring.security.oauth2.client";
    for (issuer, client_id, typo) in [
        ("issuer-ur", "client-id", "provider.kc.issuer-ur"),
        ("issuer-uri", "client-ids", "registration.kc.client-ids"),
    ] {
        fails(
            &format!(
                "{client}:\n  provider.kc.{issuer}: https://sso/\n  \
                 registration.kc: {{{client_id}: a, client-secret: b}}\n"
            ),
            &format!("{client}.{typo}"),
            "did you mean",
        );
    }
    fails(
        &format!("{client}.registrations.kc: {{client-id: a}}\n"),
        &format!("{client}.registrations"),
        "did you mean",
    );
    fails(
        "server.ssl: {enabled: true, certficate: /c.pem, certificate-private-key: /k.pem}\n",
        "server.ssl.certficate",
        "did you mean `server.ssl.certificate`?",
    );
}

/// Placeholders and conflicts are reported with the rest; a value they leave out is not
/// reported again as missing.
#[test]
fn problems_of_the_tree_are_reported_with_the_rest() {
    fails_all(
        &format!(
            "cg.censhareLogoutUrl: ${{UNSET_URL}}\nserver.prot: 1\n\
             {ROUTES}:\n  - id: a\n    uri: ${{UNSET_BACKEND}}\n\
             cg.maxSessions: 5\ncg.sessionTimeoutSec: 10\ncg: {{maxSessions: 6, sessionTimeoutSec: 20}}\n"
        ),
        &[
            ("cg.censhareLogoutUrl", "UNSET_URL"),
            ("cg.maxSessions", "more than once"),
            ("cg.sessionTimeoutSec", "more than once"),
            ("server.prot", "did you mean `server.port`?"),
            (&format!("{ROUTES}[0].uri"), "UNSET_BACKEND"),
        ],
    );
}
