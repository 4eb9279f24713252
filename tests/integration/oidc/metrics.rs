//! The Prometheus endpoint's latency histograms and per-worker gauges, read back with a
//! Prometheus text-format parser.

use prometheus_parse::{Scrape, Value};

use crate::oidc::stack::Stack;

fn scrape(s: &Stack) -> Scrape {
    let r = s.gateway.admin("GET", "/actuator/prometheus", None);
    assert_eq!(r.status, 200);
    let text = r.text();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

/// The observation count of histogram `name` with these labels (its `+Inf` bucket).
fn observations(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Histogram(buckets) => {
                let mut b = buckets.clone();
                b.sort_by(|x, y| x.less_than.total_cmp(&y.less_than));
                assert!(
                    b.windows(2).all(|w| w[0].count <= w[1].count),
                    "{name}: buckets are cumulative: {b:?}"
                );
                b.last().map_or(0.0, |x| x.count)
            }
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .sum()
}

#[test]
fn latency_histograms_and_session_gauges() {
    let s = Stack::builder().management(None).start();
    let (mut b, _) = s.login("alice");
    for i in 0..5 {
        assert_eq!(b.navigate(&s.url(&format!("/app/{i}"))).status, 200);
    }
    let m = scrape(&s);
    let requests = "sessiongate_request_duration_seconds";
    // Five answers from the backend, plus the login's own: its first navigation, forwarded
    // after the callback.
    assert!(observations(&m, requests, &[("route", "app"), ("code", "2xx")]) >= 5.0);
    // The login redirect and the callback are the gateway's own answers.
    assert!(observations(&m, requests, &[("route", "gateway"), ("code", "3xx")]) >= 2.0);
    assert!(
        observations(
            &m,
            "sessiongate_upstream_response_seconds",
            &[("route", "app")]
        ) >= 5.0
    );
    let calls = "sessiongate_provider_call_duration_seconds";
    assert_eq!(observations(&m, calls, &[("call", "code_exchange")]), 1.0);
    let sessions: f64 = m
        .samples
        .iter()
        .filter(|s| s.metric == "sessiongate_worker_sessions")
        .map(|s| match s.value {
            Value::Gauge(v) => v,
            ref other => panic!("not a gauge: {other:?}"),
        })
        .sum();
    assert_eq!(sessions, 1.0, "one session over the workers");
    assert!(
        m.samples
            .iter()
            .filter(|s| s.metric.ends_with("_total"))
            .all(|s| matches!(s.value, Value::Counter(_))),
        "every _total is a counter"
    );
}
