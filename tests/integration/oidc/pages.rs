//! The gateway's own pages as users see them: the built-in look, the operator's templates
//! and branding, and the page after logout.

use std::path::PathBuf;

use crate::oidc::browser::{parse_forms, Browser, Url};
use crate::oidc::provider::random_token;
use crate::oidc::stack::{Stack, TempFile};

/// A directory of page templates, removed on drop.
struct TemplateDir(PathBuf);

impl TemplateDir {
    fn new(files: &[(&str, &str)]) -> TemplateDir {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("sessiongate-pages-{}", random_token(6)));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        TemplateDir(dir)
    }
}

impl Drop for TemplateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A failed login shows a complete, self-contained page: no script, no external resource.
#[test]
fn a_failed_login_shows_the_built_in_page() {
    let s = Stack::start();
    let r = Browser::new().navigate(&s.url("/login/oauth2/code/demo?state=00nothing&code=x"));
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let page = r.text();
    assert!(page.starts_with("<!doctype html>") && page.contains("<html lang=\"en\">"));
    assert!(page.contains("<h1>Login failed</h1>"), "{page}");
    assert!(page.contains("href=\"/\">Start again"), "{page}");
    assert!(!page.contains("<script") && !page.contains("src=\"http") && !page.contains("@import"));
}

/// The operator's error template and branding replace the built-in ones; pages they did not
/// replace keep the built-in look with their product name and logo.
#[test]
fn the_operator_replaces_and_brands_the_pages() {
    let dir = TemplateDir::new(&[(
        "error.html",
        "<!doctype html><title>{{title}}</title><p id=acme>{{product}}: {{message}} ({{status}})</p>",
    )]);
    let logo = TempFile::new(".svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"/>");
    let s = Stack::builder()
        .set("page-templates", dir.0.display())
        .set("product-name", "\"ACME Portal\"")
        .set("logo", logo.path.display())
        .start();
    let r = Browser::new().navigate(&s.url("/login/oauth2/code/demo?state=00nothing&code=x"));
    assert_eq!(r.status, 400);
    assert!(
        r.text()
            .contains("<p id=acme>ACME Portal: This login is unknown"),
        "{}",
        r.text()
    );
    let r = Browser::new().navigate(&s.url("/sessiongate/signed-out"));
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("ACME Portal") && r.text().contains("src=\"data:image/svg+xml;base64,")
    );
}

/// A template with a placeholder the page does not provide is refused at start (64),
/// naming the key.
#[test]
fn a_broken_template_is_refused_at_start() {
    let dir = TemplateDir::new(&[("signed-out.html", "<a href=\"{{login_url}}\">again</a>")]);
    let yaml = format!(
        "server:\n  port: 0\nsessiongate:\n  page-templates: {}\n",
        dir.0.display()
    );
    let out = crate::harness::run_expecting_exit(&yaml);
    assert_eq!(out.code, Some(64), "{}", out.stderr);
    assert!(
        out.stderr.contains("sessiongate.page-templates") && out.stderr.contains("login_url"),
        "{}",
        out.stderr
    );
}

/// After logout the provider sends the user to the gateway's signed-out page, which says so
/// and offers to sign in again.
#[test]
fn after_logout_the_user_sees_they_are_signed_out() {
    let s = {
        let b = Stack::builder();
        let port_url = |path: &str| format!("http://127.0.0.1:{}{path}", b.port());
        let landing = port_url("/sessiongate/signed-out");
        b.set("post-logout-redirect-uri", format!("\"{landing}\""))
            .provider(|p| {
                let mut p = p;
                p.post_logout_redirect_uris = vec![landing.clone()];
                p
            })
            .start()
    };
    let (mut b, _) = s.login("alice");
    let r = b.post_form(&s.url("/logout"), &[]);
    assert_eq!(r.status, 302, "{}", r.text());
    let end = s.url("/").join(r.header("location").unwrap());
    let page = b.navigate(&end);
    assert_eq!(page.status, 200, "provider logout page: {}", page.text());
    let mut form = parse_forms(&page.text())
        .into_iter()
        .find(|f| f.id.as_deref() == Some("op.logoutForm"))
        .expect("the provider's logout confirmation");
    form.set("logout", "yes");
    let r = b.submit_once(&end, &form);
    assert_eq!(r.status, 303, "{}", r.text());
    let landing: Url = end.join(r.header("location").unwrap());
    assert_eq!(landing, s.url("/sessiongate/signed-out"));
    let r = b.navigate(&landing);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("You have been signed out"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("href=\"/\">Sign in again"));
    // "Sign in again" starts a new login.
    s.assert_login_redirect(&b.navigate(&s.url("/")), "sign in again");
}
