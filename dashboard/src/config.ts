// The runtime configuration the management runtime serves at /runtime-config.json.
// It is the dashboard's only configuration: nothing is baked in at build time.

export interface RuntimeConfig {
  oidc: {
    authority: string;
    clientId: string;
    audience: string;
    /** What the dashboard requests at sign-in, with the scope prefix already applied. */
    scopes: string[];
    scopeClaim: string;
    scopePrefix: string;
  };
  /** Empty: the Management API is on the dashboard's own origin. */
  apiBaseUrl: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`The runtime configuration is not usable: ${problems.join("; ")}`);
    this.name = "ConfigError";
  }
}

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** True for https URLs, and for http on loopback (development). */
export function isAllowedAuthority(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.protocol === "https:") return true;
  return url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname);
}

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/**
 * Checks the JSON the runtime served and returns it typed, or throws a
 * ConfigError listing every problem (so an operator fixes them in one go).
 */
export function parseRuntimeConfig(json: unknown): RuntimeConfig {
  const problems: string[] = [];
  const root = (typeof json === "object" && json !== null ? json : {}) as Record<string, unknown>;
  const oidc = (typeof root.oidc === "object" && root.oidc !== null ? root.oidc : {}) as Record<
    string,
    unknown
  >;
  if (typeof root.oidc !== "object" || root.oidc === null) problems.push("oidc is missing");

  const authority = str(oidc.authority) ?? "";
  if (!authority) problems.push("oidc.authority is missing");
  else if (!isAllowedAuthority(authority))
    problems.push("oidc.authority must be an https URL (http only on loopback)");

  const clientId = str(oidc.clientId) ?? "";
  if (!clientId) problems.push("oidc.clientId is missing");

  const scopes = Array.isArray(oidc.scopes) ? oidc.scopes : undefined;
  if (!scopes || !scopes.every((s) => typeof s === "string" && s.length > 0 && !/\s/.test(s)))
    problems.push("oidc.scopes must be a list of scopes");
  else if (!scopes.includes("openid")) problems.push("oidc.scopes must include openid");

  const apiBaseUrl = root.apiBaseUrl === undefined ? "" : str(root.apiBaseUrl);
  if (apiBaseUrl === undefined) problems.push("apiBaseUrl must be a string");

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    oidc: {
      authority,
      clientId,
      audience: str(oidc.audience) ?? "",
      scopes: scopes as string[],
      scopeClaim: str(oidc.scopeClaim) || "scope",
      scopePrefix: str(oidc.scopePrefix) ?? "",
    },
    apiBaseUrl: (apiBaseUrl ?? "").replace(/\/+$/, ""),
  };
}

export async function loadRuntimeConfig(fetchImpl: typeof fetch = fetch): Promise<RuntimeConfig> {
  const response = await fetchImpl("/runtime-config.json", {
    cache: "no-store",
    headers: { accept: "application/json" },
  });
  if (!response.ok) {
    throw new ConfigError([`/runtime-config.json answered ${response.status}`]);
  }
  let json: unknown;
  try {
    json = await response.json();
  } catch {
    throw new ConfigError(["/runtime-config.json is not JSON"]);
  }
  return parseRuntimeConfig(json);
}

/** A URL is an absolute URI when it parses with a scheme (RFC 8707 resource values must). */
function isAbsoluteUri(value: string): boolean {
  return /^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(value);
}

/** The oidc-client-ts settings for this config, served at `origin`. */
export function oidcSettings(config: RuntimeConfig, origin: string) {
  const extra: Record<string, string> = {};
  if (config.oidc.audience) {
    // Providers name the API a token is for differently: `audience` (Auth0-style)
    // or an RFC 8707 `resource`, which must be an absolute URI.
    extra.audience = config.oidc.audience;
    if (isAbsoluteUri(config.oidc.audience)) extra.resource = config.oidc.audience;
  }
  return {
    authority: config.oidc.authority,
    client_id: config.oidc.clientId,
    redirect_uri: `${origin}/auth/callback`,
    post_logout_redirect_uri: `${origin}/login`,
    response_type: "code",
    scope: config.oidc.scopes.join(" "),
    extraQueryParams: extra,
    extraTokenParams: extra.resource ? { resource: extra.resource } : {},
    // Public client without refresh tokens: a new sign-in when the token ends.
    automaticSilentRenew: false,
    loadUserInfo: false,
    monitorSession: false,
  };
}
