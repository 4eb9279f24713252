#!/usr/bin/env python3
"""Logs in through a sessiongate in front of the test provider (tests/oidc/provider.js, whose
development login form accepts any user) and prints the SESSION cookie's value.

Usage: login.py http://127.0.0.1:PORT/ [user]
Standard library only: the browser-like flow of perflib.Browser (redirects, login and consent
forms, a cookie jar per port).
"""
import sys

from perflib import Browser


def main():
    url = sys.argv[1]
    user = sys.argv[2] if len(sys.argv) > 2 else "perf"
    browser = Browser(timeout=20)
    session = browser.login(url, user)
    if not session:
        sys.exit(f"login failed: last status {browser.status}")
    print(session)


if __name__ == "__main__":
    main()
