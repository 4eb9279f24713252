//! Configuration loading: any text either loads or is refused with a message; what loads
//! is used the way the gateway uses it.

use crate::config::{Config, ConfigError};

// ---------------------------------------------------------------------------------------
// config_loading

/// The environment `${VAR}` placeholders see under fuzzing: fixed, so runs are repeatable.
fn fuzz_env(name: &str) -> Option<String> {
    match name {
        "HOST" => Some("gateway.example".into()),
        "PORT" => Some("8443".into()),
        "SECRET" => Some("s3cret".into()),
        "ISSUER" => Some("https://idp.example/realms/r".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// [`crate::config::load_str`] with `fuzz_env` in place of the process environment.
pub fn load_config(yaml: &str) -> Result<Config, ConfigError> {
    crate::config::load_str_with(yaml, &fuzz_env)
}

/// Configuration loading on arbitrary UTF-8: errors are fine, panics are not, and what is
/// accepted can be used (routes compile, log directives parse, `check` reports).
pub fn config_loading(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match load_config(text) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    // Loading is a pure function of the text.
    let again = load_config(text).expect("accepted once");
    assert_eq!(format!("{config:?}"), format!("{again:?}"));

    // Loading compiled the routes' patterns; the router only orders them.
    let router = crate::route::Router::new(&config.routes);
    let mut out = Vec::new();
    for path in [&b"/"[..], b"/a/b/c?q=1", b"/api/x", b"//x/../y"] {
        for route in router.routes() {
            out.clear();
            route.rewrite_target(path, &mut out);
            assert!(out.starts_with(b"/"));
        }
        let _ = router.find(b"GET", Some(b"gateway.example:8443"), path);
    }
    let (directives, _) = crate::logging::directives(&config.logging);
    assert!(
        tracing_subscriber::EnvFilter::try_new(&directives).is_ok(),
        "accepted logging levels give directives {directives:?} that do not parse"
    );
    let _ = crate::check::report(&config, &crate::check::CheckInput::default());
    let _ = crate::tls::secure_cookie_warning(&config);
}
