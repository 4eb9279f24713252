//! A one-shot signal for the tasks of one worker: its stop, the end of a session's
//! WebSockets, a token refresh finishing, new provider keys. A worker's tasks are all on one
//! thread, so this is an `Rc` with a flag and a slab of waiting wakers; no locks, no
//! atomics. Registering, re-polling and dropping a wait are O(1), since every idle
//! keep-alive connection waits on the stop signal.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Clone, Default)]
pub struct Signal {
    inner: Rc<Inner>,
}

#[derive(Default)]
struct Inner {
    triggered: Cell<bool>,
    slots: RefCell<Slots>,
}

#[derive(Default)]
struct Slots {
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Signal {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.get()
    }

    pub fn trigger(&self) {
        self.inner.triggered.set(true);
        let wakers: Vec<Waker> = self
            .inner
            .slots
            .borrow_mut()
            .wakers
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for w in wakers {
            w.wake();
        }
    }

    /// Completes once `trigger` has been called.
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            s: self,
            slot: None,
        }
    }
}

pub struct Wait<'a> {
    s: &'a Signal,
    slot: Option<usize>,
}

impl Future for Wait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.s.is_triggered() {
            return Poll::Ready(());
        }
        let mut slots = self.s.inner.slots.borrow_mut();
        let waker = Some(cx.waker().clone());
        match self.slot {
            Some(i) => slots.wakers[i] = waker,
            None => {
                let i = match slots.free.pop() {
                    Some(i) => {
                        slots.wakers[i] = waker;
                        i
                    }
                    None => {
                        slots.wakers.push(waker);
                        slots.wakers.len() - 1
                    }
                };
                drop(slots);
                self.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let mut slots = self.s.inner.slots.borrow_mut();
            slots.wakers[i] = None;
            slots.free.push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused() {
        let s = Signal::new();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        for _ in 0..100 {
            let mut w = Box::pin(s.wait());
            assert!(w.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(s.inner.slots.borrow().wakers.len(), 1);
        let mut w = Box::pin(s.wait());
        assert!(w.as_mut().poll(&mut cx).is_pending());
        s.trigger();
        assert!(w.as_mut().poll(&mut cx).is_ready());
    }
}
