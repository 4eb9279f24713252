//! A Redis (or Valkey) client on the worker's own monoio runtime: one connection per
//! [`Redis`] handle, owned by a task of the current runtime, pipelined, reconnecting.
//!
//! Commands go out as RESP2 arrays of bulk strings and replies are decoded with the sans-I/O
//! `redis-protocol` codec. Callers queue commands into one shared write buffer; the task
//! writes whatever has queued up in one write and hands each reply to the waiter at the
//! front of the in-flight queue, so replies meet their commands in order.
//!
//! Failure is explicit and fast: while the connection is down every call fails at once with
//! [`RedisError::Unavailable`] (nothing queues up for later); a loss with commands in flight
//! fails each of them with [`RedisError::Disconnected`] (the outcome is unknown); a reply
//! slower than the timeout fails with [`RedisError::Timeout`] and drops the connection,
//! whose reply stream is out of step from then on. The task reconnects with backoff
//! (50 ms doubling to 5 s, jittered) and logs an outage once at WARN and its end at INFO.
//!
//! A blocking command (`XREAD BLOCK`) occupies the connection until it answers: give it a
//! handle of its own and [`Redis::query_within`] a longer wait.

mod conn;
#[cfg(test)]
pub(crate) mod tests;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io::Write as _;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use redis_protocol::resp2::encode::encode_borrowed;
use redis_protocol::resp2::types::{BorrowedFrame, OwnedFrame};

pub use crate::config::RedisConfig as Settings;
use crate::signal::Signal;

const LOG: &str = "sessiongate::redis";
/// Replies outstanding on one connection beyond which calls fail fast with
/// [`RedisError::Unavailable`] instead of queueing further behind a slow server.
const MAX_IN_FLIGHT: usize = 65_536;

/// A decoded reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Nil,
    Int(i64),
    Bytes(Vec<u8>),
    Simple(String),
    /// An error reply inside a pipeline's or an array's answers.
    Error(String),
    Array(Vec<Value>),
}

impl Value {
    /// A bulk or simple string's bytes.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// An integer reply, or a bulk string holding a decimal integer (`HGET` of a counter).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    pub fn into_array(self) -> Option<Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The `+OK` status reply.
    pub fn is_ok(&self) -> bool {
        matches!(self, Value::Simple(s) if s == "OK")
    }
}

impl From<OwnedFrame> for Value {
    fn from(f: OwnedFrame) -> Value {
        match f {
            OwnedFrame::Null => Value::Nil,
            OwnedFrame::Integer(n) => Value::Int(n),
            OwnedFrame::BulkString(b) => Value::Bytes(b),
            OwnedFrame::SimpleString(s) => Value::Simple(
                String::from_utf8(s)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
            OwnedFrame::Error(e) => Value::Error(e),
            OwnedFrame::Array(items) => Value::Array(items.into_iter().map(Value::from).collect()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RedisError {
    /// Not connected now (or closed): the command was not sent.
    #[error("redis is unavailable")]
    Unavailable,
    /// The connection was lost with the command queued or in flight: it may or may not
    /// have been carried out.
    #[error("redis connection lost with the command in flight")]
    Disconnected,
    /// No reply within the timeout; the connection is dropped and opened anew.
    #[error("redis did not answer in time")]
    Timeout,
    #[error("redis protocol error: {0}")]
    Protocol(String),
    /// An error reply (`-ERR ...`, `-WRONGTYPE ...`).
    #[error("redis error reply: {0}")]
    Server(String),
}

/// One command: its arguments already encoded as RESP bulk strings, so queueing it is one
/// copy into the connection's write buffer.
#[derive(Clone, Debug)]
pub struct Cmd {
    argc: usize,
    args: Vec<u8>,
}

impl Cmd {
    pub fn new(name: &str) -> Cmd {
        Cmd {
            argc: 0,
            args: Vec::with_capacity(64),
        }
        .arg(name)
    }

    pub fn arg(self, a: impl AsRef<[u8]>) -> Cmd {
        self.frame(&BorrowedFrame::BulkString(a.as_ref()))
    }

    /// An integer argument, sent as a bulk string of its decimal digits.
    pub fn arg_int(self, n: i64) -> Cmd {
        self.frame(&BorrowedFrame::Integer(n))
    }

    fn frame(mut self, f: &BorrowedFrame) -> Cmd {
        let at = self.args.len();
        self.args.resize(at + f.encode_len(true), 0);
        // The slice is sized by encode_len, so encoding cannot run out of room.
        let n = encode_borrowed(&mut self.args[at..], f, true).expect("sized by encode_len");
        self.args.truncate(at + n);
        self.argc += 1;
        self
    }

    /// Appends the whole command (array header and arguments) to `out`.
    fn write_to(&self, out: &mut Vec<u8>) {
        // The codec encodes whole frames only; the array header is written here so the
        // arguments need no frame list of their own.
        let _ = write!(out, "*{}\r\n", self.argc);
        out.extend_from_slice(&self.args);
    }
}

/// A Lua script run with EVALSHA, its SHA-1 computed once.
#[derive(Clone, Debug)]
pub struct Script {
    src: &'static str,
    sha: String,
}

impl Script {
    pub fn new(src: &'static str) -> Script {
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, src.as_bytes());
        let sha = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Script { src, sha }
    }

    /// The hex SHA-1 the server knows the script by.
    pub fn sha(&self) -> &str {
        &self.sha
    }

    fn call(&self, eval: bool, keys: &[&[u8]], args: &[&[u8]]) -> Cmd {
        let cmd = match eval {
            true => Cmd::new("EVAL").arg(self.src),
            false => Cmd::new("EVALSHA").arg(&self.sha),
        };
        let cmd = cmd.arg_int(keys.len() as i64);
        keys.iter().chain(args).fold(cmd, |c, a| c.arg(a))
    }
}

/// One connection, owned by a task spawned on the current monoio runtime. Cheap to clone;
/// not `Send`. The task ends on [`Redis::close`] or when the last clone is dropped.
#[derive(Clone)]
pub struct Redis {
    handle: Rc<Handle>,
}

/// Ends the task when the last clone of a [`Redis`] goes.
struct Handle {
    shared: Rc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.closed.trigger();
    }
}

impl Redis {
    /// Returns at once; the task connects in the background and keeps reconnecting. `name`
    /// tells connections apart in logs and in `CLIENT LIST` (`sessiongate-<name>`).
    pub fn connect(
        settings: Rc<Settings>,
        tls: Arc<rustls::ClientConfig>,
        name: &'static str,
    ) -> Redis {
        let shared = Rc::new(Shared {
            name,
            settings,
            state: RefCell::new(State::default()),
            closed: Signal::new(),
            up: RefCell::new(Signal::new()),
        });
        monoio::spawn(conn::run(shared.clone(), tls));
        Redis {
            handle: Rc::new(Handle { shared }),
        }
    }

    fn shared(&self) -> &Rc<Shared> {
        &self.handle.shared
    }

    /// One command within the configured timeout; an error reply is [`RedisError::Server`].
    pub async fn query(&self, cmd: Cmd) -> Result<Value, RedisError> {
        self.query_within(cmd, self.shared().settings.timeout).await
    }

    /// [`Redis::query`] with its own wait, for a blocking command (`XREAD BLOCK 5000`
    /// wants a little more than 5 s).
    pub async fn query_within(&self, cmd: Cmd, within: Duration) -> Result<Value, RedisError> {
        match self.call(std::slice::from_ref(&cmd), false, within).await? {
            Replies::One(Value::Error(e)) => Err(RedisError::Server(e)),
            Replies::One(v) => Ok(v),
            Replies::Many(_) => unreachable!("one command, one reply"),
        }
    }

    /// Several commands in one write, their replies in order; an error reply stays a
    /// [`Value::Error`] in its place.
    pub async fn pipeline(&self, cmds: Vec<Cmd>) -> Result<Vec<Value>, RedisError> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        match self
            .call(&cmds, true, self.shared().settings.timeout)
            .await?
        {
            Replies::Many(v) => Ok(v),
            Replies::One(_) => unreachable!("a pipeline collects its replies"),
        }
    }

    /// EVALSHA; when the server does not know the script (restarted, flushed), EVAL once,
    /// which also loads it for the next call.
    pub async fn script(
        &self,
        script: &Script,
        keys: &[&[u8]],
        args: &[&[u8]],
    ) -> Result<Value, RedisError> {
        match self.query(script.call(false, keys, args)).await {
            Err(RedisError::Server(e)) if e.starts_with("NOSCRIPT") => {
                self.query(script.call(true, keys, args)).await
            }
            other => other,
        }
    }

    /// Connected and past the handshake now.
    pub fn is_up(&self) -> bool {
        self.shared().state.borrow().up
    }

    /// Whether the connection is up within `within` (at once when it is).
    pub async fn wait_up(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.is_up() {
                return true;
            }
            if self.shared().closed.is_triggered() {
                return false;
            }
            let up = self.shared().up.borrow().clone();
            let left = deadline.saturating_duration_since(Instant::now());
            if monoio::time::timeout(left, up.wait()).await.is_err() {
                return self.is_up();
            }
        }
    }

    /// Ends the task and the connection; calls fail with [`RedisError::Unavailable`] from
    /// now on (used at worker shutdown).
    pub fn close(&self) {
        self.shared().closed.trigger();
    }

    async fn call(
        &self,
        cmds: &[Cmd],
        many: bool,
        within: Duration,
    ) -> Result<Replies, RedisError> {
        let shared = self.shared();
        let slot = shared.enqueue(cmds, many)?;
        let ticket = Ticket { shared, slot };
        match monoio::time::timeout(within, &ticket).await {
            Ok(r) => r,
            Err(_) => {
                shared.timed_out(slot);
                Err(RedisError::Timeout)
            }
        }
    }
}

/// What the handles and the connection task share (one thread: `RefCell`, no locks).
struct Shared {
    name: &'static str,
    settings: Rc<Settings>,
    state: RefCell<State>,
    closed: Signal,
    /// Triggered when the connection comes up; a fresh one is put in when it goes down.
    up: RefCell<Signal>,
}

#[derive(Default)]
struct State {
    up: bool,
    /// Encoded commands not yet handed to a write; reused, never shrunk below its use.
    out: Vec<u8>,
    /// The slot of each reply expected, in order, written or not; [`PING`] for the task's
    /// own keep-alive.
    in_flight: VecDeque<u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// The task's writer, waiting for bytes.
    writer: Option<Waker>,
    /// Set by a timeout: the connection is to be dropped.
    reset: bool,
    /// When the keep-alive PING went out, until its reply.
    ping_sent: Option<Instant>,
    last_io: Option<Instant>,
}

/// The in-flight entry of the task's own keep-alive PING.
const PING: u32 = u32::MAX;

/// The replies of one call, filled as they arrive.
#[derive(Default)]
struct Slot {
    many: bool,
    one: Option<Value>,
    all: Vec<Value>,
    remaining: usize,
    /// Set when complete or failed; taken by the waiter.
    outcome: Option<Result<(), RedisError>>,
    /// No in-flight entry names it any longer.
    done: bool,
    /// The waiter is gone; replies still due are dropped, then the slot is freed.
    abandoned: bool,
    waker: Option<Waker>,
}

enum Replies {
    One(Value),
    Many(Vec<Value>),
}

impl Shared {
    fn enqueue(&self, cmds: &[Cmd], many: bool) -> Result<u32, RedisError> {
        let mut st = self.state.borrow_mut();
        if !st.up || self.closed.is_triggered() || st.in_flight.len() + cmds.len() > MAX_IN_FLIGHT {
            return Err(RedisError::Unavailable);
        }
        let id = match st.free.pop() {
            Some(id) => id,
            None => {
                st.slots.push(Slot::default());
                (st.slots.len() - 1) as u32
            }
        };
        let slot = &mut st.slots[id as usize];
        slot.many = many;
        slot.remaining = cmds.len();
        if many {
            slot.all.reserve(cmds.len());
        }
        for c in cmds {
            c.write_to(&mut st.out);
            st.in_flight.push_back(id);
        }
        if let Some(w) = st.writer.take() {
            w.wake();
        }
        Ok(id)
    }

    /// A reply arrived: it belongs to the front of the in-flight queue. `Err`: nobody asked
    /// for it, the stream is out of step.
    fn deliver(&self, v: Value) -> Result<(), String> {
        let mut st = self.state.borrow_mut();
        st.last_io = Some(Instant::now());
        let id = st.in_flight.pop_front().ok_or("a reply nobody asked for")?;
        if id == PING {
            st.ping_sent = None;
            return Ok(());
        }
        let slot = &mut st.slots[id as usize];
        slot.remaining -= 1;
        if !slot.abandoned {
            match slot.many {
                true => slot.all.push(v),
                false => slot.one = Some(v),
            }
        }
        if slot.remaining == 0 {
            slot.done = true;
            if slot.abandoned {
                release(&mut st, id);
            } else {
                slot.outcome = Some(Ok(()));
                if let Some(w) = slot.waker.take() {
                    w.wake();
                }
            }
        }
        Ok(())
    }

    /// The connection is gone: every call queued or in flight fails with `Disconnected`.
    fn set_down(&self) {
        let mut st = self.state.borrow_mut();
        let was_up = std::mem::replace(&mut st.up, false);
        st.out.clear();
        st.in_flight.clear();
        st.reset = false;
        st.ping_sent = None;
        for id in 0..st.slots.len() as u32 {
            let slot = &mut st.slots[id as usize];
            // Free slots have nothing due; finished ones are their waiters' now.
            if slot.done || slot.remaining == 0 {
                continue;
            }
            slot.done = true;
            if slot.abandoned {
                release(&mut st, id);
            } else {
                slot.outcome = Some(Err(RedisError::Disconnected));
                if let Some(w) = slot.waker.take() {
                    w.wake();
                }
            }
        }
        drop(st);
        if was_up {
            *self.up.borrow_mut() = Signal::new();
        }
    }

    fn set_up(&self) {
        let mut st = self.state.borrow_mut();
        st.up = true;
        st.last_io = Some(Instant::now());
        drop(st);
        self.up.borrow().trigger();
    }

    /// A waiter gave up on `id`: unless the connection already failed it, the reply stream
    /// is out of step and the connection is dropped. It counts as down at once, so that no
    /// new call is queued behind the reply that is late.
    fn timed_out(&self, id: u32) {
        let mut st = self.state.borrow_mut();
        if st.up && !st.slots[id as usize].done {
            st.up = false;
            st.reset = true;
            if let Some(w) = st.writer.take() {
                w.wake();
            }
            drop(st);
            *self.up.borrow_mut() = Signal::new();
        }
    }
}

/// Puts a slot back for reuse, keeping its reply vector's capacity only when small.
fn release(st: &mut State, id: u32) {
    let slot = &mut st.slots[id as usize];
    let mut all = std::mem::take(&mut slot.all);
    all.clear();
    if all.capacity() > 64 {
        all = Vec::new();
    }
    *slot = Slot {
        all,
        ..Slot::default()
    };
    st.free.push(id);
}

/// A call's claim on its slot; awaiting it yields the replies. Dropped before that (a
/// timeout, a cancelled caller), the slot is abandoned: replies still due are discarded.
struct Ticket<'a> {
    shared: &'a Shared,
    slot: u32,
}

impl Future for &Ticket<'_> {
    type Output = Result<Replies, RedisError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.shared.state.borrow_mut();
        let slot = &mut st.slots[self.slot as usize];
        match slot.outcome.take() {
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Some(Err(e)) => Poll::Ready(Err(e)),
            Some(Ok(())) => Poll::Ready(Ok(match slot.many {
                true => Replies::Many(std::mem::take(&mut slot.all)),
                false => Replies::One(slot.one.take().unwrap_or(Value::Nil)),
            })),
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut st = self.shared.state.borrow_mut();
        if st.slots[self.slot as usize].done {
            release(&mut st, self.slot);
        } else {
            let slot = &mut st.slots[self.slot as usize];
            slot.abandoned = true;
            slot.waker = None;
        }
    }
}
