//! What an operator meets at start: a second gateway on a port one already serves is
//! refused, once, with its own exit code.

use crate::backend::Backend;
use crate::harness::{run_expecting_exit, single_route_yaml, Gateway};

/// SO_REUSEPORT would let a second gateway process share the port, and the kernel would
/// split users between two processes with different sessions: the second one is refused.
#[test]
fn a_second_gateway_on_a_busy_port_is_refused_once_with_exit_69() {
    let backend = Backend::recording();
    let first = Gateway::to(&backend).workers(2).start();
    let port = first.addr().port();
    let yaml = single_route_yaml(&backend).replace("port: 0", &format!("port: {port}"));
    assert!(yaml.contains(&format!("port: {port}")), "{yaml}");
    let second = run_expecting_exit(&yaml);
    assert_eq!(second.code, Some(69), "stderr:\n{}", second.stderr);
    assert_eq!(
        second.stderr.matches("already in use").count(),
        1,
        "the error is printed once:\n{}",
        second.stderr
    );
    assert!(second.stderr.contains(&format!("127.0.0.1:{port}")));
    assert!(!second.stdout.contains("listening"), "{}", second.stdout);
    // The first gateway (two workers sharing the port) serves on.
    assert_eq!(first.get("/x").status, 200);
}
