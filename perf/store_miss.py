#!/usr/bin/env python3
"""The shared store's miss path, seen from a client: logs COUNT users in through the gateway
at URL, then (after the caller restarted the gateway, so its cache is empty) requests once
with each session (every request a cache miss: one load from Redis) and once more (every
request a hit), one keep-alive connection, and prints the median latency of each pass in us.

Usage: store_miss.py login URL COUNT FILE     (writes the cookies to FILE)
       store_miss.py passes URL FILE
Standard library only.
"""
import http.client
import statistics
import sys
import time
import urllib.parse as up

from perflib import Browser


def login(url, count, path):
    with open(path, "w") as out:
        for i in range(count):
            session = Browser(timeout=20).login(url, f"user{i}")
            if not session:
                sys.exit(f"login {i} failed")
            out.write(session + "\n")


def one_pass(conn, cookies):
    times = []
    for c in cookies:
        t0 = time.perf_counter()
        conn.request("GET", "/", headers={"Cookie": f"SESSION={c}"})
        r = conn.getresponse()
        r.read()
        times.append((time.perf_counter() - t0) * 1e6)
        if r.status != 200:
            sys.exit(f"status {r.status}")
    return statistics.median(times)


def passes(url, path):
    cookies = [l.strip() for l in open(path) if l.strip()]
    u = up.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    miss = one_pass(conn, cookies)
    hit = one_pass(conn, cookies)
    print(f"{miss:.0f} {hit:.0f} {len(cookies)}")


if __name__ == "__main__":
    if sys.argv[1] == "login":
        login(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        passes(sys.argv[2], sys.argv[3])
