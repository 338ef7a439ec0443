// A real OpenID Provider (the `oidc-provider` package, certified) on loopback,
// standing in for the company's identity provider in the dashboard's browser
// tests: authorization code + PKCE for a public client, JWT access tokens for
// the Management API's audience, and per-operator scopes. Like Google's or
// Amazon Cognito's, its token endpoint lives on another origin than its issuer
// (a second port), and its discovery document says so.

import { generateKeyPairSync, randomBytes } from "node:crypto";
import http from "node:http";
import Provider from "oidc-provider";

export const MANAGEMENT_SCOPES = [
  "management.audit.read",
  "management.credentials.activate",
  "management.credentials.read",
  "management.credentials.revoke",
  "management.credentials.suspend",
  "management.flows.read",
  "management.users.delete",
  "management.users.read",
];

/** The operators this provider knows, and the management scopes each may be granted. */
export const OPERATORS = {
  "alice.support": { name: "Alice (support lead)", scopes: MANAGEMENT_SCOPES },
  "bob.agent": {
    name: "Bob (support agent, cannot revoke)",
    scopes: MANAGEMENT_SCOPES.filter((s) => s !== "management.credentials.revoke"),
  },
  "carol.viewer": { name: "Carol (user lookup only)", scopes: ["management.users.read"] },
};

const escape = (s) =>
  String(s).replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c],
  );

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title></head><body><h1>${escape(title)}</h1>${body}</body></html>`;
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

/**
 * Starts the provider on 127.0.0.1:`port` (0 = any), its token endpoint on a
 * second port. `dashboardOrigin` is where the dashboard runs; `audience` the
 * Management API's JWT audience.
 */
export async function startProvider({ port = 0, dashboardOrigin, audience, clientId }) {
  const server = http.createServer();
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  const issuerHost = `127.0.0.1:${server.address().port}`;
  const issuer = `http://${issuerHost}`;
  const tokenServer = http.createServer();
  await new Promise((resolve) => tokenServer.listen(0, "127.0.0.1", resolve));
  const tokenEndpoint = `http://127.0.0.1:${tokenServer.address().port}/token`;

  const signing = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" });
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        token_endpoint_auth_method: "none",
        application_type: "web",
        grant_types: ["authorization_code"],
        response_types: ["code"],
        redirect_uris: [`${dashboardOrigin}/auth/callback`],
        post_logout_redirect_uris: [`${dashboardOrigin}/login`],
        id_token_signed_response_alg: "ES256",
      },
    ],
    jwks: { keys: [{ ...signing, kid: "e2e-es256", alg: "ES256", use: "sig" }] },
    cookies: { keys: [randomBytes(32).toString("hex")] },
    pkce: { required: () => true },
    scopes: ["openid", "profile", "email", "offline_access"],
    claims: { openid: ["sub"], profile: ["name"], email: ["email"] },
    findAccount: (_ctx, id) =>
      OPERATORS[id]
        ? { accountId: id, claims: () => ({ sub: id, name: OPERATORS[id].name, email: `${id}@example.com` }) }
        : undefined,
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    // The dashboard runs on another origin and calls the token endpoint from the browser.
    clientBasedCORS: () => true,
    features: {
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (resource !== audience) throw new Error(`unknown resource ${resource}`);
          return {
            scope: MANAGEMENT_SCOPES.join(" "),
            audience,
            accessTokenFormat: "jwt",
            accessTokenTTL: 3600,
            jwt: { sign: { alg: "ES256" } },
          };
        },
      },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          ctx.body = page(
            "Sign out of the identity provider?",
            `${form}<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>`,
          );
        },
      },
    },
    renderError: async (ctx, out) => {
      ctx.type = "html";
      ctx.body = page("Identity provider error", `<pre>${escape(JSON.stringify(out))}</pre>`);
    },
  });

  // The discovery document names the token endpoint on the second origin.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === "/.well-known/openid-configuration" && ctx.body?.token_endpoint) {
      ctx.body.token_endpoint = tokenEndpoint;
    }
  });

  const callback = provider.callback();
  // The second origin serves the token endpoint (preflight included) and nothing else.
  tokenServer.on("request", (req, res) => {
    if (req.url.split("?")[0] !== "/token") {
      res.statusCode = 404;
      res.end();
      return;
    }
    req.headers.host = issuerHost;
    callback(req, res);
  });
  server.on("request", (req, res) => {
    const match = /^\/interaction\/([\w-]+)(\/login)?$/.exec(req.url.split("?")[0]);
    if (!match) return callback(req, res);
    interaction(provider, req, res, match[2] === "/login").catch((error) => {
      res.statusCode = 500;
      res.setHeader("content-type", "text/plain");
      res.end(`interaction failed: ${error.message}`);
    });
  });

  return {
    issuer,
    jwksUrl: `${issuer}/jwks`,
    tokenEndpoint,
    close: () => Promise.all([server, tokenServer].map((s) => new Promise((r) => s.close(r)))),
  };
}

async function interaction(provider, req, res, isLogin) {
  const details = await provider.interactionDetails(req, res);
  if (isLogin && req.method === "POST") {
    const form = await readForm(req);
    const accountId = form.get("login") ?? "";
    if (!OPERATORS[accountId]) {
      res.setHeader("content-type", "text/html");
      res.end(loginPage(details.uid, `Unknown operator ${accountId}`));
      return;
    }
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId } },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  if (details.prompt.name === "login") {
    res.setHeader("content-type", "text/html");
    res.end(loginPage(details.uid));
    return;
  }
  // Consent: grant what the operator holds, reject the rest (no consent screen in a company IdP).
  const accountId = details.session.accountId;
  const allowed = new Set(OPERATORS[accountId]?.scopes ?? []);
  const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = details.prompt.details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: details.params.client_id });
  if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(" "));
  if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
  for (const [resource, scopes] of Object.entries(missingResourceScopes ?? {})) {
    const granted = scopes.filter((s) => allowed.has(s));
    const refused = scopes.filter((s) => !allowed.has(s));
    if (granted.length) grant.addResourceScope(resource, granted.join(" "));
    if (refused.length) grant.rejectResourceScope(resource, refused.join(" "));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

function loginPage(uid, problem) {
  return page(
    "Company sign-in",
    `${problem ? `<p role="alert">${escape(problem)}</p>` : ""}
<form method="post" action="/interaction/${escape(uid)}/login">
<label>Operator <input name="login" autocomplete="off" autofocus></label>
<button type="submit">Continue</button>
</form>`,
  );
}
