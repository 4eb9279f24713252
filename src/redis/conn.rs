//! The connection task: connect, handshake, then read and write until the connection is
//! lost; back off and do it again, until the handle is closed.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Split, Splitable};
use redis_protocol::resp2::decode::decode;
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::ServerName;

use super::{Cmd, Shared, Value, LOG, PING};
use crate::net::outbound::{ConnectError, Connector, Stream};
use crate::net::{read_spare, reserve_read};

/// An idle connection is checked with a PING this often, so a dead peer is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const READ_CHUNK: usize = 16 * 1024;
/// A reply larger than this is refused (session records are kilobytes).
const MAX_REPLY: usize = 64 * 1024 * 1024;

/// Why a connection could not be had.
enum Failure {
    /// The server refused AUTH: its message (the password is never part of it).
    Auth(String),
    Other(String),
}

/// Runs until the handle is closed.
pub(super) async fn run(shared: Rc<Shared>, tls: Arc<rustls::ClientConfig>) {
    let s = &shared.settings;
    let connector = Connector::new(tls, s.timeout);
    let address = s.address();
    let name = shared.name;
    let mut backoff = Backoff::new();
    // Logged once per outage: its start (WARN), a refused AUTH (ERROR), its end (INFO).
    let mut outage_logged = false;
    let mut auth_logged = false;
    loop {
        let attempt = monoio::select! {
            r = connect(&shared, &connector) => r,
            _ = shared.closed.wait() => break,
        };
        match attempt {
            Ok((stream, decoder)) => {
                shared.set_up();
                if outage_logged {
                    tracing::info!(target: LOG, name, address = %address, "redis connection restored");
                } else {
                    tracing::debug!(target: LOG, name, address = %address, "redis connected");
                }
                backoff.reset();
                auth_logged = false;
                let lost = monoio::select! {
                    why = serve(&shared, stream, decoder) => why,
                    _ = shared.closed.wait() => break,
                };
                shared.set_down();
                tracing::warn!(target: LOG, name, address = %address, error = %lost, "redis connection lost");
                outage_logged = true;
            }
            Err(Failure::Auth(msg)) => {
                if !auth_logged {
                    tracing::error!(target: LOG, name, address = %address, error = %msg, "redis refused AUTH");
                    (outage_logged, auth_logged) = (true, true);
                }
            }
            Err(Failure::Other(e)) => {
                if !outage_logged {
                    tracing::warn!(target: LOG, name, address = %address, error = %e, "redis unavailable");
                    outage_logged = true;
                }
            }
        }
        monoio::select! {
            _ = monoio::time::sleep(backoff.next()) => {}
            _ = shared.closed.wait() => break,
        }
    }
    shared.set_down();
}

/// Opens the connection and runs the handshake; returns the reader's decoder with any
/// bytes already read after the handshake's replies.
async fn connect(shared: &Shared, connector: &Connector) -> Result<(Stream, Decoder), Failure> {
    let s = &shared.settings;
    let addrs = s
        .addrs()
        .map_err(|e| Failure::Other(format!("cannot resolve {}: {e}", s.host)))?;
    let tls_name = match s.tls {
        true => Some(
            ServerName::try_from(s.host.clone())
                .map_err(|e| Failure::Other(format!("not a TLS server name: {e}")))?,
        ),
        false => None,
    };
    let mut stream = connector
        .connect(&addrs, tls_name.as_ref())
        .await
        .map_err(|e| Failure::Other(connect_error(&e)))?;
    let mut decoder = Decoder::new();
    match monoio::time::timeout(s.timeout, handshake(shared, &mut stream, &mut decoder)).await {
        Ok(r) => r.map(|()| (stream, decoder)),
        Err(_) => Err(Failure::Other("handshake timed out".to_string())),
    }
}

fn connect_error(e: &ConnectError) -> String {
    match e {
        ConnectError::Refused(e) => e.to_string(),
        ConnectError::Timeout => "connect timed out".to_string(),
        ConnectError::Tls(why) => format!("TLS handshake failed: {why}"),
        ConnectError::TlsTimeout => "TLS handshake timed out".to_string(),
    }
}

/// AUTH, SELECT and CLIENT SETNAME in one write, their replies checked in order.
async fn handshake(
    shared: &Shared,
    stream: &mut Stream,
    decoder: &mut Decoder,
) -> Result<(), Failure> {
    let s = &shared.settings;
    let mut out = Vec::new();
    let mut expect = Vec::with_capacity(3);
    if let Some(password) = &s.password {
        let auth = Cmd::new("AUTH");
        let auth = match &s.username {
            Some(user) => auth.arg(user),
            None => auth,
        };
        auth.arg(password).write_to(&mut out);
        expect.push("AUTH");
    }
    if s.database != 0 {
        Cmd::new("SELECT")
            .arg_int(s.database.into())
            .write_to(&mut out);
        expect.push("SELECT");
    }
    Cmd::new("CLIENT")
        .arg("SETNAME")
        .arg(format!("sessiongate-{}", shared.name))
        .write_to(&mut out);
    expect.push("CLIENT SETNAME");
    let (r, _) = stream.write_all(out).await;
    r.map_err(|e| Failure::Other(e.to_string()))?;
    for what in expect {
        let reply = decoder.next(stream).await.map_err(Failure::Other)?;
        match (what, reply) {
            (_, Value::Simple(_)) => {}
            ("AUTH", Value::Error(e)) => return Err(Failure::Auth(e)),
            // Servers (or proxies) without CLIENT SETNAME still serve.
            ("CLIENT SETNAME", Value::Error(_)) => {}
            (what, Value::Error(e)) => return Err(Failure::Other(format!("{what} refused: {e}"))),
            (what, other) => {
                return Err(Failure::Other(format!(
                    "unexpected reply to {what}: {other:?}"
                )))
            }
        }
    }
    Ok(())
}

/// Reads and writes until the connection fails; returns why.
async fn serve(shared: &Shared, stream: Stream, decoder: Decoder) -> String {
    match stream {
        Stream::Plain(s) => pump(shared, s, decoder).await,
        Stream::Tls(s) => pump(shared, *s, decoder).await,
    }
}

async fn pump<S>(shared: &Shared, stream: S, mut decoder: Decoder) -> String
where
    S: AsyncReadRent + AsyncWriteRent + Split + 'static,
{
    let (mut r, mut w) = stream.into_split();
    let read = async {
        loop {
            match decoder.next(&mut r).await {
                Ok(v) => {
                    if let Err(e) = shared.deliver(v) {
                        return e.to_string();
                    }
                }
                Err(e) => return e,
            }
        }
    };
    monoio::select! {
        why = read => why,
        why = write(shared, &mut w) => why,
    }
}

/// Writes whatever callers queued, all of it at once; pings an idle connection.
async fn write<W: AsyncWriteRent>(shared: &Shared, w: &mut W) -> String {
    // Swapped with the queue's buffer, so neither is ever reallocated once grown.
    let mut buf = Vec::new();
    loop {
        let wait = idle_wait(shared);
        match monoio::time::timeout(wait, Queued(shared)).await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => return why.to_string(),
            Err(_) => {
                if let Some(why) = keep_alive(shared) {
                    return why.to_string();
                }
                continue;
            }
        }
        {
            let mut st = shared.state.borrow_mut();
            std::mem::swap(&mut buf, &mut st.out);
        }
        let (r, b) = w.write_all(buf).await;
        buf = b;
        buf.clear();
        if let Err(e) = r {
            return e.to_string();
        }
        shared.state.borrow_mut().last_io = Some(Instant::now());
    }
}

/// How long the writer may wait for commands before checking the connection.
fn idle_wait(shared: &Shared) -> Duration {
    let st = shared.state.borrow();
    let now = Instant::now();
    match (st.ping_sent, st.last_io) {
        (Some(sent), _) => (sent + shared.settings.timeout).saturating_duration_since(now),
        (None, Some(last)) => (last + KEEP_ALIVE).saturating_duration_since(now),
        (None, None) => KEEP_ALIVE,
    }
}

/// Sends a PING on a connection idle for [`KEEP_ALIVE`] with nothing in flight (a
/// blocking command in flight is watched by its own timeout); `Some` when an earlier PING
/// went unanswered.
fn keep_alive(shared: &Shared) -> Option<&'static str> {
    let mut st = shared.state.borrow_mut();
    if let Some(sent) = st.ping_sent {
        return (sent.elapsed() >= shared.settings.timeout).then_some("keep-alive PING unanswered");
    }
    let idle = st.last_io.map_or(true, |t| t.elapsed() >= KEEP_ALIVE);
    if !idle {
        return None;
    }
    if st.in_flight.is_empty() {
        Cmd::new("PING").write_to(&mut st.out);
        st.in_flight.push_back(PING);
        st.ping_sent = Some(Instant::now());
    } else {
        // A blocking command is waiting: look again a keep-alive period later.
        st.last_io = Some(Instant::now());
    }
    None
}

/// Ready when commands are queued, or with an error when the connection is to be dropped.
struct Queued<'a>(&'a Shared);

impl std::future::Future for Queued<'_> {
    type Output = Result<(), &'static str>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let mut st = self.0.state.borrow_mut();
        if std::mem::take(&mut st.reset) {
            return std::task::Poll::Ready(Err("a reply did not come in time"));
        }
        if !st.out.is_empty() {
            return std::task::Poll::Ready(Ok(()));
        }
        st.writer = Some(cx.waker().clone());
        std::task::Poll::Pending
    }
}

/// Replies from a byte stream: bytes read are kept until they make whole frames.
pub(super) struct Decoder {
    buf: Vec<u8>,
    /// Where the next frame starts in `buf`.
    at: usize,
}

impl Decoder {
    fn new() -> Decoder {
        Decoder {
            buf: Vec::with_capacity(READ_CHUNK),
            at: 0,
        }
    }

    /// The next reply, reading as needed; `Err` when the stream fails or breaks RESP.
    async fn next<R: AsyncReadRent>(&mut self, r: &mut R) -> Result<Value, String> {
        loop {
            match decode(&self.buf[self.at..]) {
                Ok(Some((frame, n))) => {
                    self.at += n;
                    return Ok(Value::from(frame));
                }
                Ok(None) => {}
                Err(e) => return Err(format!("bad reply: {e}")),
            }
            // Whole frames consumed: move the partial one to the front before reading more.
            self.buf.drain(..self.at);
            self.at = 0;
            if self.buf.is_empty() && self.buf.capacity() > 4 * READ_CHUNK {
                self.buf = Vec::with_capacity(READ_CHUNK);
            }
            if self.buf.len() >= MAX_REPLY {
                return Err(format!("a reply larger than {MAX_REPLY} bytes"));
            }
            reserve_read(&mut self.buf, READ_CHUNK);
            let (res, b) = read_spare(r, std::mem::take(&mut self.buf)).await;
            self.buf = b;
            match res {
                Ok(0) => return Err("closed by the server".to_string()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

/// Exponential backoff with jitter: each delay is drawn from the upper half of the current
/// step, so workers reconnecting after one outage spread out.
struct Backoff {
    step: Duration,
    rng: SystemRandom,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            step: BACKOFF_MIN,
            rng: SystemRandom::new(),
        }
    }

    fn reset(&mut self) {
        self.step = BACKOFF_MIN;
    }

    fn next(&mut self) -> Duration {
        let step = self.step;
        self.step = (step * 2).min(BACKOFF_MAX);
        let mut r = [0u8; 4];
        let _ = self.rng.fill(&mut r);
        let frac = f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX);
        step / 2 + step.mul_f64(frac / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter() {
        let mut b = Backoff::new();
        let first = b.next();
        assert!(first >= BACKOFF_MIN / 2 && first <= BACKOFF_MIN);
        for _ in 0..20 {
            let d = b.next();
            assert!(d <= BACKOFF_MAX, "{d:?}");
        }
        assert!(b.next() >= BACKOFF_MAX / 2);
        b.reset();
        assert!(b.next() <= BACKOFF_MIN);
    }
}
