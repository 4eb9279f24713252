#!/usr/bin/env python3
"""Many logins at once through a sessiongate in front of the test provider
(tests/oidc/provider.js), for perf/overload.sh. Standard library only; the same browser-like
flow as perf/login.py (perflib.Browser: redirects, login form, consent form), one cookie jar
and one connection per request for every login.

Usage: login_storm.py URL --count N [--parallel P] [--prefix USER] [--min-seconds S]
                      [--max-seconds T] [--cookies FILE]

Runs --count logins, --parallel at a time, user names PREFIX1, PREFIX2, ... (distinct
subjects). With --min-seconds it keeps starting logins after --count until that much time
has passed (at most 20 x --count attempts), so that the storm covers a measurement window.
Every login ends at the gateway's callback (/login/oauth2/code/...); its status is what is
counted. --cookies FILE receives the SESSION cookie of every successful login, one a line.
Prints one JSON object: attempts, sessions (SESSION cookie set), by callback status,
`503` answers with and without `Retry-After`, the Retry-After values seen, failures before
the callback (with a sample error), and the elapsed time.
"""
import argparse
import json
import sys
import threading
import time

from perflib import Browser


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("url")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--prefix", default="user")
    p.add_argument("--min-seconds", type=float, default=0.0)
    p.add_argument("--max-seconds", type=float, default=300.0)
    p.add_argument("--cookies")
    a = p.parse_args()

    lock = threading.Lock()
    start = time.monotonic()
    res = dict(attempts=0, sessions=0, by_status={}, r503_retry_after=0, r503_no_retry_after=0,
               retry_after_values=[], failed_before_callback=0, error_sample=None)
    cookies = []
    next_n = [0]

    def take():
        with lock:
            elapsed = time.monotonic() - start
            if elapsed > a.max_seconds:
                return None
            n = next_n[0]
            more = n < a.count or (elapsed < a.min_seconds and n < 20 * a.count)
            if not more:
                return None
            next_n[0] += 1
            return n + 1

    def worker():
        while True:
            n = take()
            if n is None:
                return
            b = Browser(timeout=30, close=True)
            err = None
            try:
                session = b.login(a.url, f"{a.prefix}{n}", stop_at_callback=True)
            except Exception as e:  # noqa: BLE001 - counted and reported
                session, err = None, f"{type(e).__name__}: {e}"
            with lock:
                res["attempts"] += 1
                if b.callback is None:
                    res["failed_before_callback"] += 1
                    res["error_sample"] = res["error_sample"] or err or "no callback reached"
                    continue
                status, headers = b.callback
                key = str(status)
                res["by_status"][key] = res["by_status"].get(key, 0) + 1
                if status == 503:
                    ra = headers.get("retry-after")
                    if ra is None:
                        res["r503_no_retry_after"] += 1
                    else:
                        res["r503_retry_after"] += 1
                        if ra not in res["retry_after_values"]:
                            res["retry_after_values"].append(ra)
                if session:
                    res["sessions"] += 1
                    cookies.append(session)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(a.max_seconds + 60)
    res["elapsed_s"] = round(time.monotonic() - start, 2)
    if a.cookies:
        with open(a.cookies, "w") as f:
            f.write("".join(c + "\n" for c in cookies))
    print(json.dumps(res), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
