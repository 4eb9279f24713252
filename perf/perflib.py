"""What the perf/ Python scripts share (standard library only): a browser-like client that
logs in through a sessiongate in front of the test provider (tests/oidc/provider.js, whose
development login form accepts any user).
"""
import http.client
import re
import urllib.parse as up

CALLBACK_PREFIX = "/login/oauth2/code/"


class Browser:
    """Follows redirects, posts the login and consent forms, and keeps a cookie jar per
    port, as a browser would.

    timeout: seconds per request. close: one connection per request, announced with
    `Connection: close` (a login storm opens connections as many browsers would).
    """

    def __init__(self, timeout=20, close=False):
        self.timeout = timeout
        self.close = close
        self.jar = {}
        self.status = None  # of the last answer
        self.callback = None  # (status, headers) of the gateway's callback answer

    def request(self, method, url, body=None):
        u = up.urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=self.timeout)
        headers = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}
        if self.close:
            headers["Connection"] = "close"
        cookies = self.jar.get(u.port, {})
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        path = u.path + ("?" + u.query if u.query else "")
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
        finally:
            if self.close:
                conn.close()
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, val = v.split(";")[0].split("=", 1)
                self.jar.setdefault(u.port, {})[name] = val
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        self.status = r.status
        if u.path.startswith(CALLBACK_PREFIX):
            self.callback = (r.status, hdrs)
        return r.status, hdrs, data

    def login(self, url, user, stop_at_callback=False):
        """Logs USER in, starting at URL on the gateway; returns the gateway's SESSION cookie
        (None without one). stop_at_callback: end with the gateway's callback answer instead
        of following its redirect."""
        gateway_port = up.urlsplit(url).port
        status, headers, body = self.request("GET", url)
        for _ in range(20):
            if stop_at_callback and self.callback is not None:
                break
            if status in (302, 303):
                url = up.urljoin(url, headers["location"])
                status, headers, body = self.request("GET", url)
                continue
            if status == 200 and b"<form" in body:
                html = body.decode()
                action = re.search(r'<form[^>]*action="([^"]+)"', html).group(1)
                fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html))
                if 'name="login"' in html:
                    fields.update(login=user, password=user)
                url = up.urljoin(url, action)
                status, headers, body = self.request("POST", url, up.urlencode(fields))
                continue
            break
        return self.jar.get(gateway_port, {}).get("SESSION")
