#!/usr/bin/env node
// Demo backend for the quickstart: a dependency-free HTTP server that answers every
// request with a small HTML page showing what it received through the gateway:
// method, path, the request headers (X-Forwarded-For, X-Forwarded-Proto, Authorization ...)
// and the body of a POST/PUT/PATCH. A form on the page lets you send a POST.
//
//   PORT=9000 HOST=127.0.0.1 PROVIDER=http://localhost:9100 node quickstart/demo-backend.js
//
// PROVIDER (the demo OpenID provider's URL) is only named on the page, in the note shown
// when the provider's own cookies arrive here.
'use strict';

const http = require('node:http');

const PORT = Number.parseInt(process.env.PORT || '9000', 10);
const HOST = process.env.HOST || '127.0.0.1';
const MAX_BODY = 64 * 1024; // shown bytes; the rest is counted, not kept
const PROVIDER = process.env.PROVIDER || 'the demo provider';
// The cookies oidc-provider sets for its own login session and login form.
const PROVIDER_COOKIE = /^_(session|interaction)/;

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  }[c]));
}

// A bearer token is a credential: show enough to recognise it, not enough to reuse it.
function displayValue(name, value) {
  if (name === 'authorization' && value.length > 40) {
    return `${value.slice(0, 32)}… (${value.length} chars)`;
  }
  return value;
}

// Readers take the provider's cookies on this page for a leak of the gateway's session, so
// say where they come from when they show up.
function cookieNote(req) {
  const names = String(req.headers.cookie || '')
    .split(';')
    .map((c) => c.split('=')[0].trim())
    .filter((n) => PROVIDER_COOKIE.test(n));
  if (names.length === 0) return '';
  const list = [...new Set(names)].map((n) => `<code>${escapeHtml(n)}</code>`).join(', ');
  return `<p class="note">About the cookies ${list}: they are the OpenID provider's own
login cookies (${escapeHtml(PROVIDER)}), not the gateway's session. Browsers keep cookies per
host name, not per port, so when the gateway and the provider are opened under the same host
name the browser sends the provider's cookies to the gateway too, and the gateway passes on
every cookie but its own <code>SESSION</code>. The quickstart gives the provider another
name (localhost) than the gateway (127.0.0.1) to keep them apart: open the gateway at
http://127.0.0.1:8080/ and they are gone.</p>`;
}

function page(req, body, bodyBytes) {
  const rows = [];
  // rawHeaders keeps the order and the repeats the gateway sent
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i];
    const value = displayValue(name.toLowerCase(), req.rawHeaders[i + 1]);
    rows.push(`<tr><th>${escapeHtml(name)}</th><td>${escapeHtml(value)}</td></tr>`);
  }
  const bodySection = bodyBytes > 0
    ? `<h2>Body (${bodyBytes} bytes)</h2><pre>${escapeHtml(body)}${
      bodyBytes > MAX_BODY ? '\n… (truncated)' : ''}</pre>`
    : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sessiongate demo backend</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem; max-width: 60rem; }
  table { border-collapse: collapse; }
  th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left;
           vertical-align: top; font-family: ui-monospace, monospace; font-size: .9rem; }
  th { background: #f4f4f4; white-space: nowrap; }
  td { word-break: break-all; }
  pre { background: #f4f4f4; padding: .5rem; white-space: pre-wrap; }
  .note { background: #fff8e1; border-left: 4px solid #f0b400; padding: .5rem; }
</style>
</head>
<body>
<h1>Hello from the demo backend</h1>
<p>This page was produced by the backend behind sessiongate. It shows the request
exactly as the backend received it.</p>
<h2>Request</h2>
<table>
<tr><th>Method</th><td>${escapeHtml(req.method)}</td></tr>
<tr><th>Path</th><td>${escapeHtml(req.url)}</td></tr>
<tr><th>HTTP version</th><td>${escapeHtml(req.httpVersion)}</td></tr>
<tr><th>Peer</th><td>${escapeHtml(req.socket.remoteAddress)}:${req.socket.remotePort}</td></tr>
</table>
<h2>Headers</h2>
<table>
${rows.join('\n')}
</table>
${cookieNote(req)}
${bodySection}
<h2>Try a POST</h2>
<form method="post" action="${escapeHtml(req.url)}">
<input name="message" value="hello" aria-label="message">
<button type="submit">POST</button>
</form>
<h2>Log out</h2>
<form method="post" action="/logout">
<button type="submit">Log out</button>
</form>
</body>
</html>
`;
}

const server = http.createServer((req, res) => {
  const chunks = [];
  let kept = 0;
  let total = 0;
  req.on('data', (chunk) => {
    total += chunk.length;
    if (kept < MAX_BODY) {
      const part = chunk.subarray(0, MAX_BODY - kept);
      chunks.push(part);
      kept += part.length;
    }
  });
  req.on('end', () => {
    const html = page(req, Buffer.concat(chunks).toString('utf8'), total);
    const headers = {
      'content-type': 'text/html; charset=utf-8',
      'content-length': Buffer.byteLength(html),
      'cache-control': 'no-store',
    };
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : html);
    console.log(`${new Date().toISOString()} ${req.method} ${req.url} -> 200`);
  });
  req.on('error', (err) => {
    console.error(`request error: ${err.message}`);
  });
});

server.keepAliveTimeout = 60_000;
server.on('clientError', (err, socket) => {
  if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
});
server.on('error', (err) => {
  console.error(`demo backend: ${err.message}`);
  process.exit(1);
});

server.listen(PORT, HOST, () => {
  console.log(`demo backend listening on http://${HOST}:${PORT}`);
});

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
