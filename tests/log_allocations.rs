//! A JSON access line costs no allocation to format: the only one per line is the writer
//! thread's copy of it (`tracing_appender`). Own test binary, for its counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;

use sessiongate::config::StructuredFormat;
use sessiongate::logging::JsonLines;
use sessiongate::session::{SessionId, ID_LEN};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::EnvFilter;

/// Counts the allocations of the thread that asked for counting; forwards all to `System`.
struct Counting;

thread_local! {
    static COUNT: Cell<Option<usize>> = const { Cell::new(None) };
}

// SAFETY: every call goes to `System` unchanged; counting only touches a const-initialized
// thread-local `Cell`, which neither allocates nor has a destructor.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = COUNT.try_with(|c| c.set(c.get().map(|n| n + 1)));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = COUNT.try_with(|c| c.set(c.get().map(|n| n + 1)));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    COUNT.with(|c| c.set(Some(0)));
    f();
    COUNT.with(|c| c.take()).unwrap()
}

/// An event of the access line's shape (`proxy::log_access`, structured).
fn access_line(peer: SocketAddr, session: &SessionId, path: &str) {
    let route: Option<&str> = Some("app");
    tracing::info!(
        target: "sessiongate::access",
        {
            client.address = %peer.ip(),
            client.port = peer.port(),
            http.request.method = Some("GET"),
            url.path = Some(path),
            http.response.status_code = 200u16,
            http.response.bytes = 1234u64,
            event.duration = 5_000_000u64,
            sessiongate.upstream.duration = Some(4_000_000u64),
            sessiongate.route.id = route,
            sessiongate.session = Some(display(session.reference())),
        },
        "{} {}",
        "GET /a/path\twith \"escapes\"",
        200,
    );
}

#[test]
fn formatting_a_json_access_line_allocates_nothing() {
    for format in [StructuredFormat::Ecs, StructuredFormat::Logstash] {
        let subscriber = tracing_subscriber::registry()
            .with(EnvFilter::new("info"))
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::sink)
                    .event_format(JsonLines::new(format)),
            );
        let peer: SocketAddr = "192.0.2.7:50123".parse().unwrap();
        let session = SessionId::from_bytes([3; ID_LEN]);
        tracing::subscriber::with_default(subscriber, || {
            // The first line sizes the subscriber's reused line buffer.
            access_line(peer, &session, "/warm-up/with/a/longer/path/than/later");
            let n = allocations(|| {
                for _ in 0..100 {
                    access_line(peer, &session, "/a/path");
                }
            });
            assert_eq!(n, 0, "{format:?}: allocations for 100 lines");
        });
    }
}

#[test]
fn the_counter_sees_allocations() {
    let n = allocations(|| drop(std::hint::black_box(vec![1u8; 64])));
    assert_eq!(n, 1);
}
