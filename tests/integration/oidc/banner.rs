//! The access banner (`sessiongate.access-banner`): a page the user must accept once per
//! login before anything reaches the backend.

use std::thread;
use std::time::Duration;

use crate::harness::quote;
use crate::oidc::browser::{parse_forms, Form, Url};
use crate::oidc::provider::random_token;
use crate::oidc::stack::{Stack, TempFile, APP_PATH};

/// The form on a banner page that posts to `/sessiongate/banner/accept`.
fn accept_form(page: &str, page_url: &Url) -> Form {
    parse_forms(page)
        .into_iter()
        .find(|f| f.action_url(page_url).path() == "/sessiongate/banner/accept")
        .unwrap_or_else(|| panic!("no form posting to /sessiongate/banner/accept in:\n{page}"))
}

/// First navigation after login shows the banner (200, the file's content, a POST form to
/// `/sessiongate/banner/accept`) instead of the backend; accepting redirects back and the
/// backend is reached from then on; after the session expired, the next login shows the
/// banner again.
#[test]
fn access_banner_is_shown_once_per_login() {
    let marker = format!("Authorized use only {}", random_token(8));
    let banner = TempFile::new(".html", &format!("<h2>Notice</h2>\n<p>{marker}</p>\n"));
    let s = Stack::builder()
        .set("access-banner", quote(banner.path.to_str().unwrap()))
        .cg("sessionTimeoutSec", 2)
        .cg("sessionCheckIntervalMs", 100)
        .start();

    let (mut b, login) = s.login("alice");
    let page_url = s.url(APP_PATH);
    assert_eq!(
        login.response.status,
        200,
        "the banner page: {}",
        login.response.text()
    );
    let page = login.response.text();
    assert!(
        page.contains(&marker),
        "the banner must show the file's content:\n{page}"
    );
    let form = accept_form(&page, &page_url);
    assert_eq!(form.method, "POST");
    assert!(
        s.app_requests().is_empty(),
        "nothing reaches the backend before the banner is accepted"
    );

    // Not accepted yet: another navigation shows the banner again.
    let r = b.navigate(&s.url("/app/other"));
    assert_eq!(r.status, 200);
    assert!(r.text().contains(&marker), "banner before acceptance");
    assert!(s.app_requests().is_empty());

    let r = b.submit_once(&page_url, &form);
    assert_eq!(
        r.status,
        302,
        "accepting the banner: {} {}",
        r.status,
        r.text()
    );
    let back = form
        .action_url(&page_url)
        .join(r.header("location").unwrap());
    assert_eq!(
        back.origin(),
        s.url("/").origin(),
        "redirect stays on the gateway"
    );
    let r = b.navigate(&back);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok", "after acceptance the backend answers");
    let r = b.navigate(&s.url("/app/second"));
    assert_eq!(r.text(), "ok", "the banner is shown once per login");
    assert!(!s.backend_requests_to("/app/second").is_empty());

    // Idle expiry, then a new login: the banner again. (Expiry timing itself is unit-tested
    // on a manual clock; this waits the timeout, one check interval and a small margin.)
    thread::sleep(Duration::from_millis(2000 + 100 + 500));
    let again = b.login(&s.url("/app/again"), "alice");
    assert_eq!(again.response.status, 200);
    assert_ne!(
        again.session, login.session,
        "a new login gets a new session id"
    );
    assert!(
        again.response.text().contains(&marker),
        "a new login must show the banner again:\n{}",
        again.response.text()
    );
    assert!(s.backend_requests_to("/app/again").is_empty());
    let page_url = s.url("/app/again");
    let form = accept_form(&again.response.text(), &page_url);
    let (r, at) = b.submit(&page_url, &form);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "ok"),
        "after accepting at {at}"
    );
    assert_eq!(s.backend_requests_to("/app/again").len(), 1);
}
