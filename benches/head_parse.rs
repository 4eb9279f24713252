//! Request-head parsing plus routing, the per-request fixed cost before any I/O.
//!
//! Run: `cargo bench --bench head_parse`. Figures and machine: `perf/RESULTS.md`.
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sessiongate::config::load_str;
use sessiongate::http::head::{parse_request, Limits, RequestHead};
use sessiongate::route::Router;

const CONFIG: &str = r#"
spring:
  cloud:
    gateway:
      routes:
        - id: backchannel
          uri: http://127.0.0.1:8080
          predicates: [Path=/backchannel/logout]
          filters: [BackchannelLogout]
        - id: api
          uri: http://127.0.0.1:9001
          predicates: ["Path=/api/**,/rest/*", "Method=GET,POST"]
          filters: [StripPrefix=1]
        - id: app
          uri: http://127.0.0.1:9000
          predicates: [Path=/**]
"#;

/// A browser-like request: the size of head real users send (cookies, accept, UA).
const BROWSER: &[u8] = b"GET /censhare5/client/index.html?lang=en HTTP/1.1\r\n\
Host: censhare.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Connection: keep-alive\r\n\
Cookie: SESSION=AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA; theme=dark\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-Dest: document\r\n\
Upgrade-Insecure-Requests: 1\r\n\r\n";

const SMALL: &[u8] = b"GET /api/v1/ping HTTP/1.1\r\nHost: a\r\n\r\n";

fn bench(c: &mut Criterion) {
    let cfg = load_str(CONFIG).expect("bench config");
    let router = Router::new(&cfg.routes);
    let limits = Limits::default();
    let mut head = RequestHead::default();
    let mut g = c.benchmark_group("head_parse_route");
    for (name, raw) in [("browser", BROWSER), ("small", SMALL)] {
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| {
            b.iter(|| {
                let raw = black_box(raw);
                parse_request(raw, &limits, &mut head).unwrap().unwrap();
                let r = router.find(head.method(raw), head.host(raw), head.path(raw));
                black_box(r.map(|r| r.order));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
