#!/usr/bin/env python3
"""Holds idle keep-alive connections and a slowloris crowd against an HTTP/1.1 server on
127.0.0.1, for perf/overload.sh. Standard library only: one thread, one epoll.

Usage: overload_clients.py --port PORT [--idle 10000] [--slow 2000] [--head-timeout 10]
                           [--max-seconds 240] [--burst 256] [--pause 0]
                           [--tls [--server-name localhost]]

1. Idle crowd: opens --idle connections (at most --burst connects and first requests in
   flight at once), sends one complete `GET / HTTP/1.1` on each, reads the whole answer
   (must be 2xx), then stays silent. A held connection the server closes is counted
   (`idle_closed`): with the server's keep-alive idle timeout above the hold, it must be 0.
   With --tls every idle connection first makes a full TLS handshake (a new session each,
   certificate not verified; protocol, suite and group as the OpenSSL configuration, e.g.
   OPENSSL_CONF, pins them; the first connection's are reported as `tls`). TLS records
   without application data on a held connection (session tickets) are not counted as
   talk. The slowloris crowd is plain only (--tls needs --slow 0).
2. Slowloris crowd: --slow connections, each sending a request head of a few kilobytes one
   byte per second (the starts spread over one second, so the bytes do not arrive in
   bursts). The head cannot complete while the test runs. When the server cuts one (a 408
   answer, a close or a reset) the time since its first byte is recorded and a new
   connection takes its place, so the crowd stays --slow strong until the end.
   With --pause S it prints `idle idle=N` when the idle crowd stands and waits for SIGUSR2
   (at most S seconds) before starting the slowloris crowd.
3. Prints `ready idle=N slow=M` on stdout once both crowds stand, then one status line a
   second on stderr, and holds until SIGUSR1 (or --max-seconds, as a safety bound).
4. Then sends a second `GET /` on every idle connection still open (at most --burst in
   flight) and counts the 2xx answers (the held connections must still be served), resets
   every socket (SO_LINGER 0, so no TIME_WAIT is left to the next run) and prints one JSON
   object on stdout.
SIGTERM / SIGINT: reset everything and exit at once.
"""
import argparse
import errno
import heapq
import json
import os
import resource
import select
import signal
import socket
import ssl
import struct
import sys
import time

IN, OUT, ERR = select.EPOLLIN, select.EPOLLOUT, select.EPOLLERR | select.EPOLLHUP
LINGER0 = struct.pack("ii", 1, 0)


class Conn:
    __slots__ = ("sock", "kind", "state", "buf", "t0", "pos", "got408", "gen")

    def __init__(self, sock, kind, gen=0):
        self.sock = sock
        self.kind = kind  # "idle" or "slow"
        self.state = "connecting"
        self.buf = b""
        self.t0 = 0.0  # slow: time of the first head byte
        self.pos = 0  # slow: head bytes sent
        self.got408 = False
        self.gen = gen


def response_complete(buf):
    """(status, done) for the bytes of one HTTP/1.1 response read so far."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None, False
    head = buf[:end].decode("latin-1").split("\r\n")
    try:
        status = int(head[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        return 0, True
    length, chunked = 0, False
    for line in head[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    body = buf[end + 4:]
    if chunked:
        return status, body.endswith(b"0\r\n\r\n")
    return status, len(body) >= length


class Crowds:
    def __init__(self, a):
        self.a = a
        self.addr = ("127.0.0.1", a.port)
        self.ep = select.epoll()
        self.conns = {}  # fd -> Conn
        self.request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{a.port}\r\n\r\n".encode()
        pad = b"a" * 4000  # one byte a second: never complete within a test run
        self.slow_head = (
            b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: overload-slowloris\r\nX-Pad: "
            + pad + b"\r\n\r\n"
        )
        self.sends = []  # heap of (due, fd, gen) for the slow crowd
        self.gen = 0
        self.stop = False
        self.abort = False
        self.holding = False
        self.go_on = False
        self.c = dict(
            idle_wanted=a.idle, idle_held=0, idle_failed=0, idle_closed=0, idle_unexpected=0,
            slow_wanted=a.slow, slow_opened=0, slow_connect_failed=0, slow_cut_408=0,
            slow_cut_close=0, slow_cut_reset=0, slow_cut_early=0, slow_bytes=0,
            verify_sent=0, verify_2xx=0, verify_failed=0,
        )
        self.cut_secs = []
        self.idle_inflight = 0
        self.verify_inflight = 0
        self.verify_status = {}
        self.idle_to_open = a.idle
        self.tls = None
        self.negotiated = None
        if a.tls:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self.tls.check_hostname = False
            self.tls.verify_mode = ssl.CERT_NONE

    # --- sockets ------------------------------------------------------------------------
    def open(self, kind):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
        rc = s.connect_ex(self.addr)
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            return None
        self.gen += 1
        c = Conn(s, kind, self.gen)
        self.conns[s.fileno()] = c
        self.ep.register(s.fileno(), OUT | ERR)
        return c

    def close(self, fd):
        c = self.conns.pop(fd, None)
        if c is None:
            return
        try:
            self.ep.unregister(fd)
        except OSError:
            pass
        c.sock.close()  # SO_LINGER 0: a reset, no TIME_WAIT

    # --- idle crowd -----------------------------------------------------------------------
    def idle_fail(self, fd):
        """A connection of the idle crowd lost before its first answer."""
        self.c["idle_failed"] += 1
        self.idle_inflight -= 1
        self.close(fd)

    def idle_first(self, fd, c):
        """Connected (and with --tls handshaken): the first request."""
        try:
            c.sock.send(self.request)  # 40 bytes into an empty socket buffer
        except OSError:
            self.idle_fail(fd)
            return
        c.state = "first"
        self.ep.modify(fd, IN | ERR)

    def handshake(self, fd, c):
        try:
            c.sock.do_handshake()
        except ssl.SSLWantReadError:
            self.ep.modify(fd, IN | ERR)
            return
        except ssl.SSLWantWriteError:
            self.ep.modify(fd, OUT | ERR)
            return
        except OSError:
            self.idle_fail(fd)
            return
        if self.negotiated is None:
            self.negotiated = f"{c.sock.version()} {c.sock.cipher()[0]}"
        self.idle_first(fd, c)

    @staticmethod
    def recv(c):
        """What the server sent on C: bytes; b"" when it closed or reset the connection; None
        when nothing is to be read (yet), e.g. a TLS record without application data."""
        try:
            data = c.sock.recv(65536)
            while data and isinstance(c.sock, ssl.SSLSocket) and c.sock.pending():
                data += c.sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None
        except OSError:
            return b""
        return data

    def idle_event(self, fd, c, ev):
        if c.state == "connecting":
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err or ev & ERR and not ev & OUT:
                self.idle_fail(fd)
                return
            if self.tls is None:
                self.idle_first(fd, c)
                return
            # same descriptor, so the epoll registration stays
            c.sock = self.tls.wrap_socket(c.sock, server_hostname=self.a.server_name,
                                          do_handshake_on_connect=False)
            c.state = "handshake"
        if c.state == "handshake":
            self.handshake(fd, c)
            return
        data = self.recv(c)
        if data is None:
            return
        if c.state == "held":
            # The server must not close or talk on a held connection.
            if data:
                self.c["idle_unexpected"] += 1
            else:
                self.c["idle_closed"] += 1
                self.close(fd)
            return
        if not data:
            if c.state == "verify":
                self.c["verify_failed"] += 1
                self.verify_status["closed"] = self.verify_status.get("closed", 0) + 1
                self.verify_inflight -= 1
            elif c.state == "first":
                self.idle_fail(fd)
                return
            # "verified": closed after its second answer, counted already
            self.close(fd)
            return
        c.buf += data
        status, done = response_complete(c.buf)
        if not done:
            return
        c.buf = b""
        ok = status is not None and 200 <= status < 300
        if c.state == "first":
            self.idle_inflight -= 1
            if ok:
                c.state = "held"
                self.c["idle_held"] += 1
            else:
                self.c["idle_failed"] += 1
                self.close(fd)
        elif c.state == "verify":
            self.c["verify_2xx" if ok else "verify_failed"] += 1
            self.verify_status[str(status)] = self.verify_status.get(str(status), 0) + 1
            self.verify_inflight -= 1
            c.state = "verified"

    # --- slowloris crowd ------------------------------------------------------------------
    def slow_start(self, delay=0.0):
        c = self.open("slow")
        if c is None:
            self.c["slow_connect_failed"] += 1
            return
        c.t0 = delay  # first byte not before this (absolute time)

    def slow_cut(self, fd, c, how):
        age = time.monotonic() - c.t0
        self.cut_secs.append(age)
        if age < self.a.head_timeout - 0.5:
            self.c["slow_cut_early"] += 1
        self.c["slow_cut_" + how] += 1
        self.close(fd)
        if not self.stop:
            self.slow_start()

    def slow_event(self, fd, c, ev):
        if c.state == "connecting":
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err or ev & ERR and not ev & OUT:
                self.c["slow_connect_failed"] += 1
                self.close(fd)
                if not self.stop:
                    self.slow_start()
                return
            self.c["slow_opened"] += 1
            c.state = "sending"
            self.ep.modify(fd, IN | ERR)
            heapq.heappush(self.sends, (max(c.t0, time.monotonic()), fd, c.gen))
            return
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self.slow_cut(fd, c, "408" if c.got408 else "reset")
            return
        if data:
            c.got408 = c.got408 or (c.buf + data)[:12] == b"HTTP/1.1 408"
            c.buf = (c.buf + data)[:64]
            return
        self.slow_cut(fd, c, "408" if c.got408 else "close")

    def slow_sends(self, now):
        while self.sends and self.sends[0][0] <= now:
            _, fd, gen = heapq.heappop(self.sends)
            c = self.conns.get(fd)
            if c is None or c.gen != gen or c.kind != "slow":
                continue
            if c.pos == 0:
                c.t0 = now
            try:
                c.sock.send(self.slow_head[c.pos:c.pos + 1])
            except OSError:
                # Cut; read what the server said before the reset, if anything.
                try:
                    data = c.sock.recv(65536)
                    c.got408 = c.got408 or data[:12] == b"HTTP/1.1 408"
                except OSError:
                    pass
                self.slow_cut(fd, c, "408" if c.got408 else "reset")
                continue
            c.pos += 1
            self.c["slow_bytes"] += 1
            if c.pos < len(self.slow_head):
                heapq.heappush(self.sends, (c.t0 + c.pos, fd, gen))

    # --- loop -----------------------------------------------------------------------------
    def slow_alive(self):
        return sum(1 for c in self.conns.values() if c.kind == "slow" and c.state == "sending")

    def poll(self, until):
        now = time.monotonic()
        wait = min(0.05, max(0.0, until - now))
        if self.sends:
            wait = min(wait, max(0.0, self.sends[0][0] - now))
        for fd, ev in self.ep.poll(wait, 4096):
            c = self.conns.get(fd)
            if c is None:
                continue
            if c.kind == "idle":
                self.idle_event(fd, c, ev)
            else:
                self.slow_event(fd, c, ev)
        self.slow_sends(time.monotonic())

    def status(self, start):
        s = self.c
        print(
            f"t={time.monotonic() - start:.0f}s idle_held={s['idle_held']} "
            f"idle_closed={s['idle_closed']} slow_alive={self.slow_alive()} "
            f"slow_cut={s['slow_cut_408'] + s['slow_cut_close'] + s['slow_cut_reset']} "
            f"open={len(self.conns)}",
            file=sys.stderr, flush=True,
        )

    def run(self):
        a = self.a
        start = time.monotonic()
        hard_end = start + a.max_seconds
        # 1. idle crowd
        while (self.idle_to_open or self.idle_inflight) and not self.abort:
            while self.idle_to_open and self.idle_inflight < a.burst:
                self.idle_to_open -= 1
                if self.open("idle") is None:
                    self.c["idle_failed"] += 1
                else:
                    self.idle_inflight += 1
            self.poll(hard_end)
            if time.monotonic() > min(hard_end, start + a.setup_seconds):
                break
        held = self.c["idle_held"] - self.c["idle_closed"]
        print(f"idle idle={held} setup_s={time.monotonic() - start:.1f}", flush=True)
        if a.pause:
            # Wait for SIGUSR2 (the caller samples the server's memory with only the idle
            # crowd standing), bounded like everything else.
            end = time.monotonic() + a.pause
            while not self.go_on and not self.abort and time.monotonic() < min(end, hard_end):
                self.poll(min(end, hard_end))
        # 2. slowloris crowd, starts spread over one second
        t = time.monotonic()
        for i in range(a.slow):
            self.slow_start(t + i / max(a.slow, 1))
        while not self.abort and self.slow_alive() + self.c["slow_connect_failed"] < a.slow:
            self.poll(hard_end)
            if time.monotonic() > min(hard_end, start + a.setup_seconds):
                break
        ready = time.monotonic()
        print(f"ready idle={self.c['idle_held'] - self.c['idle_closed']} slow={self.slow_alive()} "
              f"setup_s={ready - start:.1f}", flush=True)
        self.status(start)
        # 3. hold
        self.holding = True
        next_status = time.monotonic() + 1
        while not self.stop and not self.abort and time.monotonic() < hard_end:
            self.poll(hard_end)
            if time.monotonic() >= next_status:
                self.status(start)
                next_status += 1
        timed_out = not self.stop and not self.abort
        self.stop = True
        held_s = time.monotonic() - ready
        # Slow connections still open long after their head timeout were never cut.
        now = time.monotonic()
        overdue = sum(1 for c in self.conns.values()
                      if c.kind == "slow" and c.state == "sending" and c.pos > 0
                      and now - c.t0 > a.head_timeout + 2)
        slow_alive = self.slow_alive()
        # 4. verify the idle crowd is still served: a second request on each, at most
        # --burst in flight (users coming back, not all in the same millisecond)
        if not self.abort:
            todo = [fd for fd, c in self.conns.items() if c.kind == "idle" and c.state == "held"]
            end = time.monotonic() + 60
            while (todo or self.verify_inflight) and time.monotonic() < end and not self.abort:
                while todo and self.verify_inflight < a.burst:
                    c = self.conns.get(todo.pop())
                    if c is None or c.state != "held":
                        continue
                    try:
                        c.sock.send(self.request)
                        c.state = "verify"
                        self.c["verify_sent"] += 1
                        self.verify_inflight += 1
                    except OSError:
                        self.c["verify_failed"] += 1
                self.poll(end)
        for fd in list(self.conns):
            self.close(fd)
        cuts = sorted(self.cut_secs)
        out = dict(self.c)
        out.update(
            slow_alive_at_stop=slow_alive, slow_overdue=overdue, held_seconds=round(held_s, 1),
            timed_out=timed_out, aborted=self.abort, verify_status=self.verify_status,
            tls=self.negotiated,
            cut_s_min=round(cuts[0], 2) if cuts else None,
            cut_s_median=round(cuts[len(cuts) // 2], 2) if cuts else None,
            cut_s_max=round(cuts[-1], 2) if cuts else None,
        )
        print(json.dumps(out), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--idle", type=int, default=10000)
    p.add_argument("--slow", type=int, default=2000)
    p.add_argument("--head-timeout", type=float, default=10.0)
    p.add_argument("--burst", type=int, default=256)
    p.add_argument("--setup-seconds", type=float, default=120.0)
    p.add_argument("--max-seconds", type=float, default=240.0)
    p.add_argument("--pause", type=float, default=0.0,
                   help="after the idle crowd stands, wait up to this long for SIGUSR2")
    p.add_argument("--tls", action="store_true", help="the idle crowd speaks TLS")
    p.add_argument("--server-name", default="localhost", help="SNI with --tls")
    a = p.parse_args()
    if a.tls and a.slow:
        p.error("--tls is for the idle crowd only: give --slow 0")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = a.idle + a.slow + a.burst + 64
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))
        if min(hard, need) < need:
            sys.exit(f"open-file limit {hard} is below the {need} sockets needed")
    crowds = Crowds(a)

    def on_usr1(*_):
        crowds.stop = True

    def on_term(*_):
        crowds.abort = True
        crowds.stop = True

    def on_usr2(*_):
        crowds.go_on = True

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGUSR2, on_usr2)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    crowds.run()
    os._exit(0)


if __name__ == "__main__":
    main()
