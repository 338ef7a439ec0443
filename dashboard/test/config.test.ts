import { describe, expect, it } from "vitest";
import {
  ConfigError,
  isAllowedAuthority,
  loadRuntimeConfig,
  oidcSettings,
  parseRuntimeConfig,
} from "../src/config";

const served = {
  oidc: {
    authority: "https://login.example.com/",
    clientId: "biometric-passkey-management-ui",
    audience: "biometric-passkey-management-api",
    scopes: ["openid", "profile", "api://bp/management.users.read"],
    scopeClaim: "scp",
    scopePrefix: "api://bp/",
  },
  apiBaseUrl: "",
};

function problems(json: unknown): string[] {
  try {
    parseRuntimeConfig(json);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error("expected a ConfigError");
}

describe("the runtime configuration", () => {
  it("is read exactly as the management runtime serves it", () => {
    const config = parseRuntimeConfig(served);
    expect(config.oidc).toEqual(served.oidc);
    expect(config.apiBaseUrl).toBe("");
  });

  it("lists every problem at once", () => {
    expect(problems({ oidc: { scopes: "openid" }, apiBaseUrl: 3 })).toEqual([
      "oidc.authority is missing",
      "oidc.clientId is missing",
      "oidc.scopes must be a list of scopes",
      "apiBaseUrl must be a string",
    ]);
    expect(problems(null)).toContain("oidc is missing");
  });

  it("refuses plain http except on loopback, and scopes without openid", () => {
    expect(problems({ ...served, oidc: { ...served.oidc, authority: "http://login.example.com/" } })).toEqual(
      ["oidc.authority must be an https URL (http only on loopback)"],
    );
    expect(isAllowedAuthority("http://127.0.0.1:3001/")).toBe(true);
    expect(isAllowedAuthority("http://localhost:8080")).toBe(true);
    expect(isAllowedAuthority("javascript:alert(1)")).toBe(false);
    expect(problems({ ...served, oidc: { ...served.oidc, scopes: ["profile"] } })).toEqual([
      "oidc.scopes must include openid",
    ]);
  });

  it("defaults the scope claim and trims a trailing slash from the API base", () => {
    const config = parseRuntimeConfig({
      oidc: { ...served.oidc, scopeClaim: "" },
      apiBaseUrl: "https://admin.example.com/",
    });
    expect(config.oidc.scopeClaim).toBe("scope");
    expect(config.apiBaseUrl).toBe("https://admin.example.com");
  });

  it("is fetched uncached, and a failed fetch says what went wrong", async () => {
    let asked: RequestInit | undefined;
    const ok = (async (_url: string, init?: RequestInit) => {
      asked = init;
      return new Response(JSON.stringify(served), { status: 200 });
    }) as typeof fetch;
    await expect(loadRuntimeConfig(ok)).resolves.toMatchObject({ oidc: { clientId: served.oidc.clientId } });
    expect(asked?.cache).toBe("no-store");

    const down = (async () => new Response("", { status: 503 })) as typeof fetch;
    await expect(loadRuntimeConfig(down)).rejects.toMatchObject({
      problems: ["/runtime-config.json answered 503"],
    });
    const html = (async () => new Response("<html>", { status: 200 })) as typeof fetch;
    await expect(loadRuntimeConfig(html)).rejects.toMatchObject({
      problems: ["/runtime-config.json is not JSON"],
    });
  });
});

describe("the OIDC client settings", () => {
  it("use the fixed redirect paths on the dashboard's origin and request the configured scopes", () => {
    const settings = oidcSettings(parseRuntimeConfig(served), "https://admin.example.com");
    expect(settings.redirect_uri).toBe("https://admin.example.com/auth/callback");
    expect(settings.post_logout_redirect_uri).toBe("https://admin.example.com/login");
    expect(settings.response_type).toBe("code");
    expect(settings.scope).toBe("openid profile api://bp/management.users.read");
    expect(settings.client_id).toBe("biometric-passkey-management-ui");
    expect(settings.automaticSilentRenew).toBe(false);
  });

  it("name the audience, as an RFC 8707 resource only when it is a URI", () => {
    const plain = oidcSettings(parseRuntimeConfig(served), "https://a.example");
    expect(plain.extraQueryParams).toEqual({ audience: "biometric-passkey-management-api" });
    expect(plain.extraTokenParams).toEqual({});

    const uri = oidcSettings(
      parseRuntimeConfig({ ...served, oidc: { ...served.oidc, audience: "urn:bp:management" } }),
      "https://a.example",
    );
    expect(uri.extraQueryParams).toEqual({ audience: "urn:bp:management", resource: "urn:bp:management" });
    expect(uri.extraTokenParams).toEqual({ resource: "urn:bp:management" });

    const none = oidcSettings(
      parseRuntimeConfig({ ...served, oidc: { ...served.oidc, audience: "" } }),
      "https://a.example",
    );
    expect(none.extraQueryParams).toEqual({});
  });
});
