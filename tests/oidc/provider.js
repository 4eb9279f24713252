// The OpenID provider for sessiongate's integration tests: `oidc-provider` with one
// confidential client (the gateway), configured from environment variables and/or a JSON
// object given as the first argument (the argument wins). See README.md beside this file.
//
// stdout carries exactly what tests read: the ready line
//   provider listening on http://127.0.0.1:PORT
// and one JSON object per line for each provider event worth asserting on
//   {"event":"backchannel.success","client_id":"gateway","account_id":"alice","sid":"..."}
// Everything else (oidc-provider's own warnings) goes to stderr.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';

import Provider from 'oidc-provider';

// ---------------------------------------------------------------------------------------------
// Settings

function settings() {
  const fromArg = process.argv[2] ? JSON.parse(process.argv[2]) : {};
  const get = (name, fallback) => {
    const v = fromArg[name] ?? process.env[name];
    return v === undefined || v === '' ? fallback : String(v);
  };
  const list = (...names) => {
    for (const name of names) {
      const v = get(name);
      if (v !== undefined) return v.split(/[\s,]+/).filter(Boolean);
    }
    return [];
  };
  const seconds = (name, fallback) => {
    const v = Number(get(name, fallback));
    if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} must be a positive integer`);
    return v;
  };
  const authMethod = get('TOKEN_ENDPOINT_AUTH_METHOD', 'client_secret_basic');
  if (!['client_secret_basic', 'client_secret_post'].includes(authMethod)) {
    throw new Error(`TOKEN_ENDPOINT_AUTH_METHOD: unsupported ${authMethod}`);
  }
  return {
    port: Number(get('PORT', '0')),
    issuer: get('ISSUER'),
    clientId: get('CLIENT_ID', 'gateway'),
    clientSecret: get('CLIENT_SECRET', 'secret'),
    redirectUris: list('REDIRECT_URIS', 'REDIRECT_URI'),
    postLogoutRedirectUris: list('POST_LOGOUT_REDIRECT_URIS', 'POST_LOGOUT_REDIRECT_URI'),
    backchannelLogoutUri: get('BACKCHANNEL_LOGOUT_URI'),
    accessTokenTtl: seconds('ACCESS_TOKEN_TTL', '300'),
    idTokenTtl: seconds('ID_TOKEN_TTL', '300'),
    refreshTokenTtl: seconds('REFRESH_TOKEN_TTL', '3600'),
    sessionTtl: seconds('SESSION_TTL', '3600'),
    authMethod,
    // "always": every refresh returns a new refresh token and the old one is spent (reuse is
    // then treated as theft and revokes the grant). Default: oidc-provider's own policy.
    rotateRefreshToken: get('ROTATE_REFRESH_TOKEN', 'default'),
    // "true": the client may also use the client_credentials grant (tokens live
    // ACCESS_TOKEN_TTL), as a Keycloak client with service accounts enabled.
    clientCredentials: get('CLIENT_CREDENTIALS', 'false') === 'true',
    keys: list('KEYS').length ? list('KEYS') : ['k1'],
    keysDir: get('KEYS_DIR', path.join(os.tmpdir(), `sessiongate-oidc-keys-${process.pid}`)),
  };
}

// ---------------------------------------------------------------------------------------------
// Signing keys: each name is an RSA key kept as a private JWK in KEYS_DIR/<name>.json,
// generated on first use, so a restart with `KEYS=new,old` publishes both and signs with
// `new`. The JWK's kid is its name.

function namedKey(dir, name) {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new Error(`bad key name ${JSON.stringify(name)}`);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
  }
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: name, alg: 'RS256', use: 'sig' };
  // Written aside, then hard-linked into place, which fails if the name exists: when
  // several providers race on a new name, the first one wins and all use its key.
  const tmp = `${file}.${process.pid}.${crypto.randomUUID()}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(jwk));
  try {
    fs.linkSync(tmp, file);
  } catch (e) {
    if (e.code !== 'EEXIST') throw e;
  } finally {
    fs.unlinkSync(tmp);
  }
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

// ---------------------------------------------------------------------------------------------
// Storage: the built-in memory adapter is an LRU of about 1000 entries, which a test with a
// thousand parallel logins would overflow (evicting interactions mid-flow). This one is a
// plain map with expiry, unbounded for a test's lifetime.

const store = new Map();
const live = (key) => {
  const e = store.get(key);
  if (!e) return undefined;
  if (e.expires !== undefined && e.expires <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return e.payload;
};
const grantMembers = new Map();

class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expires = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
    store.set(key, { payload, expires });
    if (payload.grantId) {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, new Set());
      grantMembers.get(payload.grantId).add(key);
    }
    if (payload.uid) store.set(`uid:${this.model}:${payload.uid}`, { payload: id, expires });
    if (payload.userCode) store.set(`userCode:${payload.userCode}`, { payload: id, expires });
  }

  async find(id) {
    return live(this.key(id));
  }

  async findByUid(uid) {
    const id = live(`uid:${this.model}:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = live(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const p = live(this.key(id));
    if (p) p.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of grantMembers.get(grantId) ?? []) store.delete(key);
    grantMembers.delete(grantId);
  }
}

// ---------------------------------------------------------------------------------------------
// Events, one JSON line each on stdout.

function emit(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

function logEvents(provider) {
  provider.on('backchannel.success', (ctx, client, accountId, sid) => {
    emit('backchannel.success', { client_id: client.clientId, account_id: accountId, sid });
  });
  provider.on('backchannel.error', (ctx, err, client, accountId, sid) => {
    emit('backchannel.error', {
      client_id: client.clientId, account_id: accountId, sid, error: String(err?.message ?? err),
    });
  });
  provider.on('grant.revoked', (ctx, grantId) => {
    emit('grant.revoked', { grant_id: grantId, client_id: ctx.oidc?.client?.clientId });
  });
  provider.on('end_session.success', (ctx) => {
    emit('end_session.success', { client_id: ctx.oidc?.client?.clientId });
  });
  provider.on('grant.success', (ctx) => {
    emit('grant.success', {
      grant_type: ctx.oidc?.params?.grant_type, client_id: ctx.oidc?.client?.clientId,
    });
  });
  provider.on('server_error', (ctx, err) => {
    emit('server_error', { path: ctx?.path, error: String(err?.stack ?? err) });
  });
  for (const name of [
    'authorization.error', 'grant.error', 'revocation.error', 'end_session.error',
    'jwks.error', 'discovery.error', 'userinfo.error', 'backchannel_logout.error',
  ]) {
    provider.on(name, (ctx, err) => {
      emit(name, {
        path: ctx?.path,
        error: err?.error ?? err?.name,
        error_description: err?.error_description ?? err?.message,
      });
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Test-only endpoints, outside the provider. GET /__test/callback is a registered redirect
// URI for tests that run the code flow themselves. POST /__test/sign with JSON
//   {"key": "k1", "header": {...}, "claims": {...}}
// answers a compact RS256 JWS signed by that named key (generated if new, so a test can sign
// with a key the provider never published). `header.kid` defaults to the key's name; set it to
// another name to forge a token that claims a published kid. An optional `"omit": ["typ"]`
// leaves those header members out.
//
// What the provider holds, for tests that act as its administrator:
//   GET  /__test/sessions[?account=ID]   its live sessions: [{"account", "uid",
//        "sids": {client_id: sid}, "grants": {client_id: grant_id}}]
//   GET  /__test/refresh-tokens?account=ID   the live refresh tokens issued to that account
//   POST /__test/end-session {"account": ID}   ends every session of that account the way an
//        administrator would: each client with a backchannel_logout_uri gets a logout token
//        from the provider itself (backchannel.success/backchannel.error events as usual),
//        then the grants and the session are gone. Answers [{"client_id", "sid", "ok",
//        "error"?}].

function b64url(data) {
  return Buffer.from(data).toString('base64url');
}

function signJws(keysDir, {
  key = 'k1', header = {}, claims = {}, omit = [],
}) {
  const jwk = namedKey(keysDir, key);
  const privateKey = crypto.createPrivateKey({ key: jwk, format: 'jwk' });
  const h = { alg: 'RS256', typ: 'JWT', kid: jwk.kid, ...header };
  for (const name of omit) delete h[name];
  const input = `${b64url(JSON.stringify(h))}.${b64url(JSON.stringify(claims))}`;
  const sig = crypto.sign('sha256', Buffer.from(input), privateKey);
  return `${input}.${b64url(sig)}`;
}

// Live entries of one model in the store, as [id, payload].
function liveOf(model) {
  const out = [];
  for (const key of [...store.keys()]) {
    if (!key.startsWith(`${model}:`)) continue;
    const payload = live(key);
    if (payload !== undefined) out.push([key.slice(model.length + 1), payload]);
  }
  return out;
}

function sessionsOf(account) {
  return liveOf('Session')
    .filter(([, p]) => account === undefined || p.accountId === account)
    .map(([id, p]) => {
      const sids = {};
      const grants = {};
      for (const [clientId, a] of Object.entries(p.authorizations ?? {})) {
        sids[clientId] = a.sid;
        grants[clientId] = a.grantId;
      }
      return { id, account: p.accountId, uid: p.uid, sids, grants };
    });
}

async function endSessionsOf(provider, account) {
  const results = [];
  for (const session of sessionsOf(account)) {
    for (const [clientId, sid] of Object.entries(session.sids)) {
      // eslint-disable-next-line no-await-in-loop
      const client = await provider.Client.find(clientId);
      if (client?.backchannelLogoutUri) {
        try {
          // eslint-disable-next-line no-await-in-loop
          await client.backchannelLogout(session.account, sid);
          provider.emit('backchannel.success', undefined, client, session.account, sid);
          results.push({ client_id: clientId, sid, ok: true });
        } catch (err) {
          provider.emit('backchannel.error', undefined, err, client, session.account, sid);
          results.push({
            client_id: clientId, sid, ok: false, error: String(err?.message ?? err),
          });
        }
      }
    }
    for (const grantId of Object.values(session.grants)) {
      if (!grantId) continue;
      for (const key of grantMembers.get(grantId) ?? []) store.delete(key);
      grantMembers.delete(grantId);
      store.delete(`Grant:${grantId}`);
    }
    store.delete(`Session:${session.id}`);
  }
  return results;
}

function testEndpoint(cfg, provider, req, res) {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (d) => { body += d; });
  req.on('end', async () => {
    const json = (status, value) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
        .end(JSON.stringify(value));
    };
    try {
      const url = new URL(req.url, 'http://test.invalid');
      const account = url.searchParams.get('account') ?? undefined;
      if (req.method === 'GET' && req.url.startsWith('/__test/callback')) {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('callback reached');
        return;
      }
      if (req.method === 'GET' && url.pathname === '/__test/sessions') {
        json(200, sessionsOf(account).map(({ id, ...rest }) => rest));
        return;
      }
      if (req.method === 'GET' && url.pathname === '/__test/refresh-tokens') {
        json(200, liveOf('RefreshToken')
          .filter(([, p]) => account === undefined || p.accountId === account)
          .map(([id]) => id));
        return;
      }
      if (req.method === 'POST' && url.pathname === '/__test/end-session') {
        const { account: who } = JSON.parse(body || '{}');
        if (typeof who !== 'string') throw new Error('end-session needs {"account": ID}');
        json(200, await endSessionsOf(provider, who));
        return;
      }
      if (req.method !== 'POST' || req.url !== '/__test/sign') {
        res.writeHead(404).end();
        return;
      }
      const jws = signJws(cfg.keysDir, JSON.parse(body || '{}'));
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end(jws);
    } catch (e) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end(String(e?.message ?? e));
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The provider

function configuration(cfg) {
  const keys = cfg.keys.map((name) => namedKey(cfg.keysDir, name));
  const resource = `${cfg.issuer}/resource/${cfg.clientId}`;
  const client = {
    client_id: cfg.clientId,
    client_secret: cfg.clientSecret,
    // Plus one of our own, for tests that run the code flow themselves (no gateway).
    redirect_uris: [...cfg.redirectUris, `${cfg.issuer}/__test/callback`],
    post_logout_redirect_uris: cfg.postLogoutRedirectUris,
    grant_types: [
      'authorization_code', 'refresh_token', ...(cfg.clientCredentials ? ['client_credentials'] : []),
    ],
    response_types: ['code'],
    token_endpoint_auth_method: cfg.authMethod,
  };
  if (cfg.backchannelLogoutUri) {
    client.backchannel_logout_uri = cfg.backchannelLogoutUri;
    client.backchannel_logout_session_required = true;
  }
  const resourceServer = {
    scope: 'openid profile email',
    audience: cfg.clientId,
    accessTokenFormat: 'jwt',
    accessTokenTTL: cfg.accessTokenTtl,
  };

  return {
    adapter: MapAdapter,
    clients: [client],
    jwks: { keys },
    cookies: { keys: ['sessiongate-test-cookie-key'] },
    // The dev interactions accept any login/password and use the login as the subject.
    async findAccount(ctx, sub) {
      return {
        accountId: sub,
        async claims() {
          return {
            sub,
            name: `User ${sub}`,
            preferred_username: sub,
            email: `${sub}@example.test`,
            email_verified: true,
          };
        },
      };
    },
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      clientCredentials: { enabled: cfg.clientCredentials },
      backchannelLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Every access token is a JWT for the gateway (aud = client id), the shape a
        // Keycloak realm gives it, even though the gateway sends no `resource` parameter.
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: () => resourceServer,
      },
    },
    issueRefreshToken: (ctx, c, code) => c.grantTypeAllowed('refresh_token')
      && (code.kind === 'AuthorizationCode' || code.kind === 'RefreshToken'),
    ...(cfg.rotateRefreshToken === 'always' ? { rotateRefreshToken: () => true } : {}),
    ttl: {
      AccessToken: cfg.accessTokenTtl,
      ClientCredentials: cfg.accessTokenTtl,
      AuthorizationCode: 60,
      IdToken: cfg.idTokenTtl,
      RefreshToken: cfg.refreshTokenTtl,
      Session: cfg.sessionTtl,
      Grant: cfg.sessionTtl,
      Interaction: 600,
    },
    // oidc-provider refuses loopback addresses for its outgoing calls (back-channel logout);
    // the gateway under test lives on 127.0.0.1.
    fetch: (url, options) => {
      // eslint-disable-next-line no-param-reassign
      delete options.dispatcher;
      return globalThis.fetch(url, options);
    },
    renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html><body><h1>oops</h1><pre>${
        Object.entries(out).map(([k, v]) => `${k}: ${String(v).replace(/[<>&]/g, '')}`).join('\n')
      }</pre></body></html>`;
    },
  };
}

async function main() {
  const cfg = settings();
  const server = http.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  cfg.issuer ??= `http://127.0.0.1:${port}`;

  const provider = new Provider(cfg.issuer, configuration(cfg));
  logEvents(provider);
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url.startsWith('/__test/')) testEndpoint(cfg, provider, req, res);
    else callback(req, res);
  });
  // Keep-alive connections must not hold a restart up.
  const stop = () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  process.stdout.write(`provider listening on http://127.0.0.1:${port}\n`);
}

main().catch((e) => {
  process.stderr.write(`provider failed to start: ${e?.stack ?? e}\n`);
  process.exit(1);
});
