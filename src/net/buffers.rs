//! A worker's pool of I/O buffers. A connection holds buffers only while an exchange is in
//! flight: between requests it gives them back and waits for readability without a read
//! (and so without a buffer) in flight, so an idle keep-alive connection costs its task and
//! socket, not tens of KiB. Single-threaded: a `RefCell`ed free list, no locks.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Free buffers kept per size class; beyond that a returned buffer is freed.
const MAX_FREE: usize = 256;
/// Buffers grown past this are freed on return rather than kept.
const MAX_KEPT_CAPACITY: usize = 256 * 1024;

/// Size classes: heads and small answers, bodies and responses.
pub const SMALL: usize = 16 * 1024;
pub const LARGE: usize = 64 * 1024;

#[derive(Default)]
pub struct BufPool {
    small: RefCell<Vec<Vec<u8>>>,
    large: RefCell<Vec<Vec<u8>>>,
    lent: Cell<usize>,
    /// Where the count is shown (the worker's metrics), written on every change.
    shown: Option<Arc<AtomicU64>>,
}

impl BufPool {
    /// A pool whose lent count is mirrored into `shown` (read by the metrics endpoint).
    pub fn shown_in(shown: Arc<AtomicU64>) -> BufPool {
        BufPool {
            shown: Some(shown),
            ..BufPool::default()
        }
    }

    #[inline]
    fn set_lent(&self, n: usize) {
        self.lent.set(n);
        if let Some(s) = &self.shown {
            s.store(n as u64, Relaxed);
        }
    }

    /// An empty buffer with room for at least `capacity` bytes.
    #[inline]
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        self.set_lent(self.lent.get() + 1);
        let list = if capacity <= SMALL {
            &self.small
        } else {
            &self.large
        };
        match list.borrow_mut().pop() {
            Some(mut b) => {
                b.reserve(capacity);
                b
            }
            None => Vec::with_capacity(if capacity <= SMALL {
                SMALL
            } else {
                capacity.max(LARGE)
            }),
        }
    }

    /// Gives a buffer back (one without capacity was never lent: ignored).
    #[inline]
    pub fn give(&self, mut b: Vec<u8>) {
        if b.capacity() == 0 {
            return;
        }
        self.set_lent(self.lent.get().saturating_sub(1));
        if b.capacity() > MAX_KEPT_CAPACITY {
            return;
        }
        b.clear();
        let list = if b.capacity() < LARGE {
            &self.small
        } else {
            &self.large
        };
        let mut list = list.borrow_mut();
        if list.len() < MAX_FREE {
            list.push(b);
        }
    }

    /// Counts a buffer that arrived from another worker (a handed-off connection's bytes) as
    /// lent by this pool.
    pub fn adopt(&self, b: &Vec<u8>) {
        if b.capacity() > 0 {
            self.set_lent(self.lent.get() + 1);
        }
    }

    /// A lent buffer leaves this worker (with a handed-off connection).
    pub fn forget(&self, b: &Vec<u8>) {
        if b.capacity() > 0 {
            self.set_lent(self.lent.get().saturating_sub(1));
        }
    }

    /// Runs `op` on a lent buffer, which comes back with its result. If `op`'s future is
    /// dropped first (a timeout or a `select!` gave up on it), the buffer goes with the
    /// cancelled operation (io_uring keeps it until the kernel lets go, then it is freed)
    /// and the pool stops counting it as lent.
    pub async fn lend_during<F, Fut, T>(&self, buf: Vec<u8>, op: F) -> (T, Vec<u8>)
    where
        F: FnOnce(Vec<u8>) -> Fut,
        Fut: std::future::Future<Output = (T, Vec<u8>)>,
    {
        let in_flight = InFlight {
            pool: self,
            lent: buf.capacity() > 0,
        };
        let out = op(buf).await;
        std::mem::forget(in_flight);
        out
    }

    /// Buffers lent out now: zero when every connection is idle.
    pub fn lent(&self) -> usize {
        self.lent.get()
    }

    /// Gives back a connection's buffer, leaving it without capacity.
    #[inline]
    pub fn reclaim(&self, b: &mut Vec<u8>) {
        self.give(std::mem::take(b));
    }

    /// Makes sure `b` has room for `capacity` bytes, from the pool when it has none.
    #[inline]
    pub fn ensure(&self, b: &mut Vec<u8>, capacity: usize) {
        if b.capacity() == 0 {
            let old = std::mem::take(b);
            *b = self.take(capacity);
            b.extend_from_slice(&old);
        }
    }
}

/// See [`BufPool::lend_during`].
struct InFlight<'a> {
    pool: &'a BufPool,
    lent: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.lent {
            let pool = self.pool;
            pool.set_lent(pool.lent.get().saturating_sub(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lent_buffers_come_back_and_are_reused() {
        let p = BufPool::default();
        let mut a = p.take(4096);
        let b = p.take(LARGE);
        assert_eq!(p.lent(), 2);
        a.extend_from_slice(b"x");
        let ptr = a.as_ptr();
        p.reclaim(&mut a);
        assert_eq!(a.capacity(), 0);
        p.give(b);
        assert_eq!(p.lent(), 0);
        let again = p.take(100);
        assert_eq!(again.as_ptr(), ptr, "the small buffer is reused");
        assert!(again.is_empty());
        p.give(again);
        p.give(Vec::new());
        assert_eq!(p.lent(), 0, "an empty Vec was never lent");
    }

    #[test]
    fn a_buffer_gone_with_a_cancelled_operation_is_no_longer_lent() {
        use std::future::Future;
        use std::task::{Context, Waker};
        let pool = BufPool::default();
        let mut cx = Context::from_waker(Waker::noop());
        let buf = pool.take(SMALL);
        let mut stuck = Box::pin(pool.lend_during(buf, |b| async move {
            std::future::pending::<()>().await;
            ((), b)
        }));
        assert!(stuck.as_mut().poll(&mut cx).is_pending());
        assert_eq!(pool.lent(), 1);
        drop(stuck);
        assert_eq!(
            pool.lent(),
            0,
            "the cancelled operation's buffer is still counted"
        );
        // One that completes hands the buffer back, still lent until given.
        let buf = pool.take(SMALL);
        let mut done = Box::pin(pool.lend_during(buf, |b| async move { ((), b) }));
        let std::task::Poll::Ready(((), buf)) = done.as_mut().poll(&mut cx) else {
            panic!("an operation that does not wait completes at once");
        };
        drop(done);
        assert_eq!(pool.lent(), 1);
        pool.give(buf);
        assert_eq!(pool.lent(), 0);
    }
}
