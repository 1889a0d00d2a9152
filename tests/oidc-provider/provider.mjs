// Test-only OpenID provider for tower-oidc's interoperability tests.
//
// Usage: node provider.mjs '<config JSON>'   (OIDC_PROVIDER_INSTALL_DIR=<dir with node_modules>)
//
// Runs the `oidc-provider` npm package (an OpenID-certified provider) on a loopback port with a
// configuration taken from a JSON document (argv[2], or the OIDC_PROVIDER_CONFIG environment
// variable). Prints exactly one line `READY <issuer>` to stdout once it listens; everything else
// goes to stderr. Exits when stdin closes or on SIGTERM/SIGINT, so a test that dies never leaves a
// provider behind.
//
// Configuration (every key optional; see tests/support/oidc_provider.rs for the Rust builder):
//   port                  listening port, 0 (default) picks a free one
//   listen_address        address to bind, "127.0.0.1" by default
//   host                  host name in the issuer, "localhost" by default
//   path                  issuer path prefix such as "/tenant-a", "" by default
//   clients               client metadata objects (oidc-provider/OpenID registration names)
//   accounts              [{ login, password, claims: { sub, name, ... } }]
//   ttl                   { AccessToken, IdToken, RefreshToken, Session, Grant, Interaction, ... } seconds
//   api_audience          resource indicator that gets JWT access tokens
//   api_scope             scopes of that resource server, "api:read api:write" by default
//   resource_servers      extra [{ audience, scope, format: "jwt"|"opaque", alg }]
//   use_granted_resource  token endpoint falls back to the resource of the authorization request
//   refresh_tokens        "offline_access" (default) or "always" (for clients allowed refresh_token)
//   offline_access_needs_prompt_consent  false (default): an authorization request with
//                         offline_access gets prompt=consent added here, so relying parties need not
//                         send it; true keeps oidc-provider's behaviour (offline_access dropped
//                         unless the request has prompt=consent)
//   rotate_refresh_tokens true/false forces rotation; absent keeps oidc-provider's default policy
//   clock_tolerance       seconds, oidc-provider's default is 15
//   conform_id_token_claims  oidc-provider's conformIdTokenClaims, true by default
//   allow_http_implicit   accept http/localhost redirect URIs for hybrid/implicit clients (true)
//   pkce_required         true by default: every authorization request needs S256 PKCE
//   client_assertion_audience  "issuer" or "token_endpoint": the only `aud` accepted in
//                         private_key_jwt client assertions (absent: oidc-provider's own rule,
//                         which accepts the issuer, the token endpoint and the endpoint called)

import crypto from 'node:crypto';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const startedAt = Date.now();
console.error(`provider.mjs: node ${process.version} started (pid ${process.pid})`);

// oidc-provider prints its notices with console.info (stdout); stdout is reserved for READY.
console.log = (...args) => console.error(...args);
console.info = (...args) => console.error(...args);

// The package is installed outside the source tree (target/oidc-provider-node/<hash>/); the test
// support code names that directory in OIDC_PROVIDER_INSTALL_DIR. Without it, resolve from here.
async function importOidcProvider() {
  const installDir = process.env.OIDC_PROVIDER_INSTALL_DIR;
  if (!installDir) return import('oidc-provider');
  const resolved = createRequire(path.join(installDir, 'package.json')).resolve('oidc-provider');
  return import(pathToFileURL(resolved).href);
}

const { default: Provider, errors } = await importOidcProvider();

function readConfig() {
  const raw = process.argv[2] ?? process.env.OIDC_PROVIDER_CONFIG ?? '{}';
  try {
    return JSON.parse(raw);
  } catch (err) {
    console.error(`provider.mjs: configuration is not valid JSON: ${err.message}`);
    process.exit(2);
  }
}

const config = readConfig();

const listenAddress = config.listen_address ?? '127.0.0.1';
const issuerHost = config.host ?? 'localhost';
const prefix = normalizePrefix(config.path ?? '');
const apiAudience = config.api_audience ?? 'https://api.example.test';
const apiScope = config.api_scope ?? 'api:read api:write';

function normalizePrefix(path) {
  if (!path || path === '/') return '';
  const withSlash = path.startsWith('/') ? path : `/${path}`;
  return withSlash.endsWith('/') ? withSlash.slice(0, -1) : withSlash;
}

const defaultClients = () => [
  {
    client_id: 'rp-confidential',
    client_secret: 'rp-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    redirect_uris: ['http://127.0.0.1:8080/auth/callback'],
    post_logout_redirect_uris: ['http://127.0.0.1:8080/'],
    response_types: ['code'],
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
  },
  {
    client_id: 'rp-public',
    token_endpoint_auth_method: 'none',
    redirect_uris: ['http://127.0.0.1:8080/auth/callback'],
    post_logout_redirect_uris: ['http://127.0.0.1:8080/'],
    response_types: ['code'],
    grant_types: ['authorization_code', 'refresh_token'],
  },
];

const defaultAccounts = () => ['alice', 'bob'].map((login) => ({
  login,
  password: login,
  claims: {
    sub: login,
    name: `${login[0].toUpperCase()}${login.slice(1)} Example`,
    given_name: `${login[0].toUpperCase()}${login.slice(1)}`,
    email: `${login}@example.test`,
    email_verified: true,
  },
}));

const accounts = new Map();
for (const account of config.accounts ?? defaultAccounts()) {
  const claims = { sub: account.login, ...(account.claims ?? {}) };
  accounts.set(account.login, { ...account, claims });
}
const accountsBySub = new Map([...accounts.values()].map((a) => [a.claims.sub, a]));

function generateJwks() {
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
    .export({ format: 'jwk' });
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
    .export({ format: 'jwk' });
  return {
    // The first key of a type is the default signing key: RS256 first.
    keys: [
      { ...rsa, kid: `rs256-${crypto.randomBytes(4).toString('hex')}`, alg: 'RS256', use: 'sig' },
      { ...ec, kid: `es256-${crypto.randomBytes(4).toString('hex')}`, alg: 'ES256', use: 'sig' },
    ],
  };
}

const resourceServers = new Map();
resourceServers.set(apiAudience, { audience: apiAudience, scope: apiScope, format: 'jwt', alg: 'RS256' });
for (const rs of config.resource_servers ?? []) {
  resourceServers.set(rs.audience, rs);
}

// oidc-provider drops offline_access from an authorization request without prompt=consent
// (OpenID Connect Core §11), before any hook could see it. Unless told otherwise, requests with
// offline_access get prompt=consent added on the way in, marked with this parameter so that the
// consent step passes without a page when everything requested was granted before.
const INJECTED_CONSENT_PARAM = 'x_test_injected_consent';
const injectConsentPrompt = !(config.offline_access_needs_prompt_consent ?? false);

function withConsentPrompt(url) {
  const scope = url.searchParams.get('scope');
  if (!scope || !scope.split(' ').includes('offline_access')) return false;
  const prompts = (url.searchParams.get('prompt') ?? '').split(' ').filter(Boolean);
  if (prompts.includes('consent') || prompts.includes('none')) return false;
  url.searchParams.set('prompt', [...prompts, 'consent'].join(' '));
  url.searchParams.set(INJECTED_CONSENT_PARAM, '1');
  return true;
}

const ttl = config.ttl ?? {};
const accessTokenTtl = ttl.AccessToken ?? 3600;

const htmlEscape = (value) => String(value)
  .replaceAll('&', '&amp;')
  .replaceAll('<', '&lt;')
  .replaceAll('>', '&gt;')
  .replaceAll('"', '&quot;')
  .replaceAll("'", '&#39;');

function page(title, body) {
  return `<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><title>${htmlEscape(title)}</title></head>
<body>
<h1>${htmlEscape(title)}</h1>
${body}
</body>
</html>
`;
}

const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(config.port ?? 0, listenAddress, resolve);
});
const { port } = server.address();
const issuer = `http://${issuerHost}:${port}${prefix}`;

const providerConfig = {
  clients: config.clients ?? defaultClients(),
  jwks: generateJwks(),
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  findAccount: async (_ctx, sub) => {
    const account = accountsBySub.get(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      claims: async () => ({ ...account.claims }),
    };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile'],
  extraParams: [INJECTED_CONSENT_PARAM],
  clockTolerance: config.clock_tolerance ?? 15,
  conformIdTokenClaims: config.conform_id_token_claims ?? true,
  pkce: { required: () => config.pkce_required ?? true },
  interactions: {
    url: (_ctx, interaction) => `${prefix}/interaction/${interaction.uid}`,
  },
  features: {
    devInteractions: { enabled: false },
    claimsParameter: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
    },
    introspection: { enabled: true },
    revocation: { enabled: true },
    dPoP: {
      enabled: true,
      nonceSecret: config.dpop_nonce ? crypto.randomBytes(32) : undefined,
      requireNonce: () => config.dpop_nonce ?? false,
    },
    requestObjects: {
      enabled: true,
      requireSignedRequestObject: config.require_signed_request_object ?? false,
    },
    pushedAuthorizationRequests: {
      enabled: true,
      requirePushedAuthorizationRequests: config.require_par ?? false,
    },
    clientCredentials: { enabled: true },
    backchannelLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: async () => config.use_granted_resource ?? false,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        const rs = resourceServers.get(resourceIndicator);
        if (!rs) throw new errors.InvalidTarget();
        const info = {
          audience: rs.audience ?? resourceIndicator,
          scope: rs.scope ?? '',
          accessTokenTTL: accessTokenTtl,
          accessTokenFormat: rs.format ?? 'jwt',
        };
        if (info.accessTokenFormat === 'jwt') {
          info.jwt = { sign: { alg: rs.alg ?? 'RS256' } };
        }
        return info;
      },
    },
  },
  assertJwtClientAuthClaimsAndHeader: async (ctx, claims) => {
    const wanted = config.client_assertion_audience;
    if (!wanted) return;
    const expected = wanted === 'issuer' ? ctx.oidc.issuer : ctx.oidc.urlFor('token');
    if (claims.aud !== expected) {
      throw new errors.InvalidClientAuth(`audience (aud) must be ${expected}`);
    }
  },
  issueRefreshToken: async (_ctx, client, source) => {
    if (!client.grantTypeAllowed('refresh_token')) return false;
    if (config.refresh_tokens === 'always') return true;
    return source.scopes.has('offline_access');
  },
  ttl: {
    AccessToken: accessTokenTtl,
    ClientCredentials: ttl.ClientCredentials ?? accessTokenTtl,
    AuthorizationCode: ttl.AuthorizationCode ?? 60,
    IdToken: ttl.IdToken ?? 3600,
    RefreshToken: ttl.RefreshToken ?? 14 * 24 * 3600,
    Session: ttl.Session ?? 14 * 24 * 3600,
    Grant: ttl.Grant ?? 14 * 24 * 3600,
    Interaction: ttl.Interaction ?? 3600,
  },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    const rows = Object.entries(out)
      .map(([key, value]) => `<p><strong>${htmlEscape(key)}</strong>: <span id="${htmlEscape(key)}">${htmlEscape(value)}</span></p>`)
      .join('\n');
    ctx.body = page('Error', rows);
  },
  // Backchannel logout goes to loopback relying parties: oidc-provider's outgoing fetch refuses
  // special-use addresses (127.0.0.1, ::1) through its own dispatcher, so drop that dispatcher.
  fetch: (url, options) => {
    const { dispatcher: _dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
};
if (typeof config.rotate_refresh_tokens === 'boolean') {
  providerConfig.rotateRefreshToken = () => config.rotate_refresh_tokens;
}

const provider = new Provider(issuer, providerConfig);

if (config.allow_http_implicit ?? true) {
  // Hybrid (`code id_token`) clients imply the implicit grant, whose redirect URIs must be https
  // and not localhost by default; the tests use http loopback URIs.
  const { invalidate } = provider.Client.Schema.prototype;
  provider.Client.Schema.prototype.invalidate = function invalidateUnlessLoopbackImplicit(message, code) {
    if (code === 'implicit-force-https' || code === 'implicit-forbid-localhost') return;
    invalidate.call(this, message, code);
  };
}

for (const event of ['server_error', 'backchannel.error', 'grant.error', 'authorization.error', 'end_session.error', 'end_session_confirm.error', 'userinfo.error', 'introspection.error', 'revocation.error']) {
  provider.on(event, (...args) => {
    const err = args.find((a) => a instanceof Error);
    const detail = err
      ? `${err.name}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}${err.cause ? ` caused by ${err.cause.message ?? err.cause}` : ''}`
      : '';
    console.error(`provider event ${event}: ${detail}`);
  });
}

const providerCallback = provider.callback();

function readForm(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > 64 * 1024) {
        reject(new Error('form body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

function sendHtml(res, status, html) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(html);
}

function loginPage(uid, details, error) {
  const base = `${prefix}/interaction/${uid}`;
  return page('Sign-in', `<p>Client: <span id="client_id">${htmlEscape(details.params.client_id)}</span></p>
${error ? `<p id="error">${htmlEscape(error)}</p>` : ''}
<form id="login" method="post" action="${base}/login" autocomplete="off">
  <input type="hidden" name="uid" value="${htmlEscape(uid)}">
  <label>Login <input type="text" name="login" id="login-input" autofocus></label>
  <label>Password <input type="password" name="password" id="password-input"></label>
  <button type="submit" id="submit">Sign-in</button>
</form>
<a id="abort" href="${base}/abort">Cancel</a>
`);
}

function consentPage(uid, details) {
  const base = `${prefix}/interaction/${uid}`;
  const { missingOIDCScope = [], missingOIDCClaims = [], missingResourceScopes = {} } = details.prompt.details;
  const resources = Object.entries(missingResourceScopes)
    .map(([rs, scopes]) => `<li>${htmlEscape(rs)}: ${htmlEscape(scopes.join(' '))}</li>`).join('');
  return page('Authorize', `<p>Client: <span id="client_id">${htmlEscape(details.params.client_id)}</span></p>
<p>Scopes: <span id="scopes">${htmlEscape(missingOIDCScope.join(' '))}</span></p>
<p>Claims: <span id="claims">${htmlEscape(missingOIDCClaims.join(' '))}</span></p>
<ul id="resources">${resources}</ul>
<form id="confirm" method="post" action="${base}/confirm">
  <input type="hidden" name="uid" value="${htmlEscape(uid)}">
  <button type="submit" id="submit">Continue</button>
</form>
<a id="abort" href="${base}/abort">Cancel</a>
`);
}

async function handleInteraction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    sendHtml(res, 400, page('Error', '<p id="error">interaction mismatch</p>'));
    return;
  }
  const promptName = details.prompt.name;

  if (req.method === 'GET' && action === '') {
    const { reasons = [], details: missing = {} } = details.prompt;
    const nothingMissing = !missing.missingOIDCScope && !missing.missingOIDCClaims
      && !missing.missingResourceScopes;
    if (promptName === 'consent' && details.params[INJECTED_CONSENT_PARAM] && nothingMissing
      && reasons.every((reason) => reason === 'consent_prompt')) {
      // Only the prompt=consent added by this script is pending: no page.
      await provider.interactionFinished(req, res, { consent: {} }, { mergeWithLastSubmission: true });
      return;
    }
    if (promptName === 'login') {
      sendHtml(res, 200, loginPage(uid, details));
    } else if (promptName === 'consent') {
      sendHtml(res, 200, consentPage(uid, details));
    } else {
      sendHtml(res, 400, page('Error', `<p id="error">unsupported prompt ${htmlEscape(promptName)}</p>`));
    }
    return;
  }

  if (req.method === 'GET' && action === 'abort') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return;
  }

  if (req.method === 'POST' && action === 'login') {
    const form = await readForm(req);
    const account = accounts.get(form.get('login') ?? '');
    if (promptName !== 'login') {
      sendHtml(res, 400, page('Error', '<p id="error">no login prompt pending</p>'));
      return;
    }
    if (!account || account.password !== form.get('password')) {
      sendHtml(res, 200, loginPage(uid, details, 'Invalid login or password.'));
      return;
    }
    await provider.interactionFinished(req, res, {
      login: { accountId: account.claims.sub },
    }, { mergeWithLastSubmission: false });
    return;
  }

  if (req.method === 'POST' && action === 'confirm') {
    await readForm(req);
    if (promptName !== 'consent') {
      sendHtml(res, 400, page('Error', '<p id="error">no consent prompt pending</p>'));
      return;
    }
    const { params, session: { accountId }, grantId } = details;
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId, clientId: params.client_id });
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = details.prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    if (missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const savedGrantId = await grant.save();
    await provider.interactionFinished(req, res, {
      consent: grantId ? {} : { grantId: savedGrantId },
    }, { mergeWithLastSubmission: true });
    return;
  }

  sendHtml(res, 404, page('Error', '<p id="error">not found</p>'));
}

const INTERACTION = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm|abort))?\/?$/;

server.on('request', (req, res) => {
  const url = new URL(req.url, 'http://placeholder');
  let { pathname } = url;
  if (prefix) {
    if (pathname !== prefix && !pathname.startsWith(`${prefix}/`)) {
      sendHtml(res, 404, page('Error', '<p id="error">not found</p>'));
      return;
    }
    pathname = pathname.slice(prefix.length) || '/';
  }

  const match = INTERACTION.exec(pathname);
  if (match) {
    handleInteraction(req, res, match[1], match[2] ?? '').catch((err) => {
      console.error(`interaction error: ${err.name}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}`);
      if (!res.headersSent) {
        sendHtml(res, err.statusCode ?? 500, page('Error', `<p id="error">${htmlEscape(err.message)}</p>`));
      } else {
        res.end();
      }
    });
    return;
  }

  if (injectConsentPrompt && req.method === 'GET' && pathname === '/auth') {
    if (withConsentPrompt(url)) {
      req.url = `${prefix}${pathname}${url.search}`;
    }
  }

  if (prefix) {
    // Mounted the way connect/express do: originalUrl keeps the prefix so that oidc-provider
    // builds its endpoint URLs under the issuer path.
    req.originalUrl = req.url;
    req.url = `${pathname}${url.search}`;
  }
  providerCallback(req, res);
});

function shutdown(code) {
  server.close();
  server.closeAllConnections?.();
  process.exit(code);
}

process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
process.stdin.on('end', () => shutdown(0));
process.stdin.on('close', () => shutdown(0));
process.stdin.on('error', () => shutdown(0));
process.stdin.resume();

console.error(`provider.mjs: ${issuer} ready after ${Date.now() - startedAt} ms`);
process.stdout.write(`READY ${issuer}\n`);
