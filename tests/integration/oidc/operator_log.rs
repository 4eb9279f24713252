//! The censhare logger names in `logging.level` reach our components: at TRACE,
//! `...BackchannelLogoutGatewayFilterFactory` shows each logout token received and
//! `...LogoutSignalSender` each propagation attempt and its outcome.

use std::time::Duration;

use crate::harness::quote;
use crate::oidc::listener::Listener;
use crate::oidc::stack::Stack;

const EFFECT_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn censhare_logger_names_at_trace_show_tokens_received_and_every_attempt() {
    let l = Listener::scripted(&[503]);
    let s = Stack::builder()
        .backchannel_logout()
        .cg("logoutListeners", quote(&l.url("/relay")))
        .cg("maxRetryAttempts", 3)
        .cg("minRetryDelaySeconds", 0)
        .logging(
            "com.censhare.core.cloudgateway.BackchannelLogoutGatewayFilterFactory",
            "TRACE",
        )
        .logging("com.censhare.core.cloudgateway.LogoutSignalSender", "TRACE")
        .start();
    let token = s
        .provider
        .sign_logout(s.provider.logout_claims(Some("carol"), None));
    assert_eq!(s.post_logout_token(&token).status, 200);
    l.wait_for_calls(2, EFFECT_TIMEOUT);

    for (target, message) in [
        ("sessiongate::backchannel", "logout token received"),
        ("sessiongate::dispatcher", "call queued"),
        ("sessiongate::dispatcher", "call failed; will retry"),
        ("sessiongate::dispatcher", "call delivered"),
    ] {
        s.gateway
            .wait_for_log_line(EFFECT_TIMEOUT, |line| {
                line.contains("TRACE") && line.contains(target) && line.contains(message)
            })
            .unwrap_or_else(|| {
                panic!(
                    "no TRACE line `{message}` from {target}; stderr:\n{}",
                    s.gateway.stderr()
                )
            });
    }
}
