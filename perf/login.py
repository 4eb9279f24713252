#!/usr/bin/env python3
"""Logs in through a sessiongate in front of the test provider (tests/oidc/provider.js, whose
development login form accepts any user) and prints the SESSION cookie's value.

Usage: login.py http://127.0.0.1:PORT/ [user]
Standard library only: it follows the redirects, posts the login and consent forms, and
keeps a cookie jar per port, as a browser would.
"""
import http.client
import re
import sys
import urllib.parse as up

jar = {}


def request(method, url, body=None):
    u = up.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    headers = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}
    cookies = jar.get(u.port, {})
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, u.path + ("?" + u.query if u.query else ""), body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    for k, v in r.getheaders():
        if k.lower() == "set-cookie":
            name, val = v.split(";")[0].split("=", 1)
            jar.setdefault(u.port, {})[name] = val
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def main():
    url = sys.argv[1]
    user = sys.argv[2] if len(sys.argv) > 2 else "perf"
    gateway_port = up.urlsplit(url).port
    status, headers, body = request("GET", url)
    for _ in range(20):
        if status in (302, 303):
            url = up.urljoin(url, headers["location"])
            status, headers, body = request("GET", url)
            continue
        if status == 200 and b"<form" in body:
            html = body.decode()
            action = re.search(r'<form[^>]*action="([^"]+)"', html).group(1)
            fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html))
            if 'name="login"' in html:
                fields.update(login=user, password=user)
            url = up.urljoin(url, action)
            status, headers, body = request("POST", url, up.urlencode(fields))
            continue
        break
    session = jar.get(gateway_port, {}).get("SESSION")
    if not session:
        sys.exit(f"login failed: last status {status}")
    print(session)


if __name__ == "__main__":
    main()
