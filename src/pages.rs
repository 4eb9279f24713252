//! The gateway's own pages: an error page (a login that failed, too many logins or
//! sessions, an unknown address), the signed-out page (after logout, with a link to sign in
//! again) and the access banner. One small, accessible built-in look (no external fonts,
//! images or scripts, so the pages work offline and cannot leak a visit), which the operator
//! can replace page by page (`sessiongate.page-templates`: a directory with `error.html`,
//! `signed-out.html`, `banner.html`), and brand (`sessiongate.product-name`,
//! `sessiongate.logo`).
//!
//! Templates hold `{{name}}` placeholders, checked when the configuration loads: a name a
//! page does not provide is a configuration error, not a blank on the page. Values are
//! HTML-escaped, except the operator's own banner text and the logo image the gateway built.

use std::fmt;

use crate::http::reply::{html_escape, Reply};

/// Where the signed-out page is served.
pub const SIGNED_OUT_PATH: &[u8] = b"/sessiongate/signed-out";

/// The three pages, ready to render.
#[derive(Debug, Clone)]
pub struct Pages {
    error: Template,
    signed_out: Template,
    banner: Template,
    /// Escaped product name.
    product: String,
    /// An `<img>` with the logo inlined as a data URI, or nothing.
    logo: String,
}

/// The variables each page provides.
const ERROR_VARS: &[&str] = &[
    "product",
    "logo",
    "status",
    "title",
    "message",
    "retry_href",
];
const SIGNED_OUT_VARS: &[&str] = &["product", "logo", "sign_in_href"];
const BANNER_VARS: &[&str] = &["product", "logo", "banner", "accept_action"];

/// A page template the gateway cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the operator chose; every field optional.
#[derive(Debug, Default)]
pub struct Branding<'a> {
    pub error: Option<&'a str>,
    pub signed_out: Option<&'a str>,
    pub banner: Option<&'a str>,
    pub product_name: Option<&'a str>,
    /// The logo: its media type and bytes.
    pub logo: Option<(&'a str, &'a [u8])>,
}

impl Pages {
    /// The built-in pages, unbranded.
    pub fn builtin() -> Pages {
        Pages::new(&Branding::default()).expect("the built-in templates are valid")
    }

    /// The pages with the operator's templates and branding over the built-in ones.
    pub fn new(b: &Branding) -> Result<Pages, TemplateError> {
        let parse = |name: &str, given: Option<&str>, builtin: String, vars: &[&str]| {
            Template::parse(given.unwrap_or(&builtin), vars)
                .map_err(|e| TemplateError(format!("{name}: {e}")))
        };
        Ok(Pages {
            error: parse("error.html", b.error, builtin_error(), ERROR_VARS)?,
            signed_out: parse(
                "signed-out.html",
                b.signed_out,
                builtin_signed_out(),
                SIGNED_OUT_VARS,
            )?,
            banner: parse("banner.html", b.banner, builtin_banner(), BANNER_VARS)?,
            product: html_escape(b.product_name.unwrap_or("sessiongate")),
            logo: b
                .logo
                .map_or(String::new(), |(mime, bytes)| logo_img(mime, bytes)),
        })
    }

    /// An error page with a link to start again.
    pub fn error(&self, status: u16, reason: &'static str, title: &str, message: &str) -> Reply {
        let status_text = status.to_string();
        let body = self.error.render(&|name| match name {
            "product" => Some(self.product.clone()),
            "logo" => Some(self.logo.clone()),
            "status" => Some(status_text.clone()),
            "title" => Some(html_escape(title)),
            "message" => Some(html_escape(message)),
            "retry_href" => Some("/".into()),
            _ => None,
        });
        Reply::html(status, reason, body)
    }

    /// The page after logout: the user is signed out, and may sign in again.
    pub fn signed_out(&self) -> Reply {
        let body = self.signed_out.render(&|name| match name {
            "product" => Some(self.product.clone()),
            "logo" => Some(self.logo.clone()),
            "sign_in_href" => Some("/".into()),
            _ => None,
        });
        Reply::html(200, "OK", body)
    }

    /// The access banner: the operator's text (HTML, theirs) and the form that accepts it.
    pub fn banner(&self, banner_html: &str, accept_action: &str) -> Reply {
        let body = self.banner.render(&|name| match name {
            "product" => Some(self.product.clone()),
            "logo" => Some(self.logo.clone()),
            "banner" => Some(banner_html.to_string()),
            "accept_action" => Some(html_escape(accept_action)),
            _ => None,
        });
        Reply::html(200, "OK", body)
    }
}

/// A template split at its placeholders.
#[derive(Debug, Clone)]
struct Template(Vec<Part>);

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Var(String),
}

impl Template {
    /// Splits `text` at `{{name}}`; every name must be one of `vars`.
    fn parse(text: &str, vars: &[&str]) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            parts.push(Part::Text(rest[..open].to_string()));
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| "a `{{` without its `}}`".to_string())?;
            let name = after[..close].trim();
            if !vars.contains(&name) {
                return Err(format!(
                    "unknown placeholder {{{{{name}}}}} (this page provides: {})",
                    vars.join(", ")
                ));
            }
            parts.push(Part::Var(name.to_string()));
            rest = &after[close + 2..];
        }
        parts.push(Part::Text(rest.to_string()));
        Ok(Template(parts))
    }

    fn render(&self, value: &dyn Fn(&str) -> Option<String>) -> String {
        let mut out = String::with_capacity(4096);
        for p in &self.0 {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => out.push_str(&value(v).unwrap_or_default()),
            }
        }
        out
    }
}

fn logo_img(mime: &str, bytes: &[u8]) -> String {
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD.encode(bytes);
    format!("<img class=\"logo\" src=\"data:{mime};base64,{data}\" alt=\"\" height=\"32\">")
}

/// The built-in look: system fonts, high contrast, readable on a phone, dark mode.
const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#f4f5f7;--card:#fff;--muted:#57606a;--accent:#0a58ca;--line:#d0d7de}\
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--card:#161b22;--muted:#9da7b3;--accent:#58a6ff;--line:#30363d}}\
*{box-sizing:border-box}\
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;\
font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--fg);background:var(--bg)}\
main{width:min(34rem,92vw);background:var(--card);border:1px solid var(--line);border-radius:12px;padding:2rem}\
header{display:flex;align-items:center;gap:.75rem;margin-bottom:1.25rem;color:var(--muted);font-weight:600}\
h1{font-size:1.4rem;margin:0 0 .5rem}\
p{margin:.5rem 0 1.25rem}\
.status{color:var(--muted);font-size:.9rem}\
.banner{border-left:4px solid var(--accent);padding:.25rem 1rem;margin:0 0 1.5rem}\
a.button,button{display:inline-block;font:inherit;font-weight:600;color:#fff;background:var(--accent);\
border:0;border-radius:8px;padding:.6rem 1.2rem;text-decoration:none;cursor:pointer}\
a.button:focus-visible,button:focus-visible{outline:3px solid var(--fg);outline-offset:2px}";

fn layout(title: &str, main: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title} · {{{{product}}}}</title><style>{STYLE}</style></head>\
         <body><main>\
         <header>{{{{logo}}}}<span>{{{{product}}}}</span></header>\
         {main}</main></body></html>\n"
    )
}

fn builtin_error() -> String {
    layout(
        "{{title}}",
        "<h1>{{title}}</h1><p>{{message}}</p>\
         <p class=\"status\">Error {{status}}</p>\
         <a class=\"button\" href=\"{{retry_href}}\">Start again</a>",
    )
}

fn builtin_signed_out() -> String {
    layout(
        "Signed out",
        "<h1>You have been signed out</h1>\
         <p>Your session has ended. You can close this window, or sign in again.</p>\
         <a class=\"button\" href=\"{{sign_in_href}}\">Sign in again</a>",
    )
}

fn builtin_banner() -> String {
    layout(
        "Before you continue",
        "<h1>Before you continue</h1><div class=\"banner\">{{banner}}</div>\
         <form method=\"post\" action=\"{{accept_action}}\"><button type=\"submit\">Accept</button></form>",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &Reply) -> String {
        String::from_utf8(r.body.clone()).unwrap()
    }

    #[test]
    fn builtin_pages_are_complete_offline_and_escaped() {
        let p = Pages::builtin();
        for page in [
            text(&p.error(400, "Bad Request", "Login <failed>", "a & b")),
            text(&p.signed_out()),
            text(&p.banner(
                "<b>Authorised use only</b>",
                "/sessiongate/banner/accept?return=%2F",
            )),
        ] {
            assert!(page.starts_with("<!doctype html>") && page.contains("<html lang=\"en\">"));
            assert!(!page.contains("{{"), "a placeholder left: {page}");
            assert!(
                !page.contains("<script") && !page.contains("src=\"http"),
                "{page}"
            );
            assert!(page.contains("sessiongate"));
        }
        let e = text(&p.error(400, "Bad Request", "Login <failed>", "a & b"));
        assert!(e.contains("Login &lt;failed&gt;") && e.contains("a &amp; b"));
        assert!(text(&p.signed_out()).contains("href=\"/\">Sign in again"));
        let b = text(&p.banner("<b>Authorised use only</b>", "/x?return=%2F"));
        assert!(
            b.contains("<b>Authorised use only</b>"),
            "the operator's banner is HTML"
        );
    }

    #[test]
    fn the_operator_replaces_pages_and_brands_them() {
        let p = Pages::new(&Branding {
            error: Some("<p>ACME: {{title}} / {{message}} ({{status}})</p>"),
            product_name: Some("ACME <Portal>"),
            logo: Some(("image/svg+xml", b"<svg/>")),
            ..Branding::default()
        })
        .unwrap();
        let e = text(&p.error(503, "Service Unavailable", "Busy", "later"));
        assert_eq!(e, "<p>ACME: Busy / later (503)</p>");
        let s = text(&p.signed_out());
        assert!(s.contains("ACME &lt;Portal&gt;"));
        assert!(s.contains("src=\"data:image/svg+xml;base64,PHN2Zy8+\""));
    }

    #[test]
    fn unknown_or_broken_placeholders_are_refused() {
        let e = Pages::new(&Branding {
            signed_out: Some("<a href=\"{{login_url}}\">again</a>"),
            ..Branding::default()
        })
        .unwrap_err();
        assert!(
            e.0.contains("signed-out.html") && e.0.contains("login_url"),
            "{e}"
        );
        let e = Pages::new(&Branding {
            banner: Some("{{banner"),
            ..Branding::default()
        })
        .unwrap_err();
        assert!(e.0.contains("banner.html"), "{e}");
    }
}
