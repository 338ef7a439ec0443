// Starts what the browser tests run against: the Core API and the management
// runtime (the real `biometric-passkey` binary, sharing one SQLite database),
// the OpenID Provider, and headless Chromium.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startProvider } from "./oidc-server.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, "../..");
export const outputDir = path.join(here, "output");

export const AUDIENCE = "urn:biometric-passkey:management";
export const CLIENT_ID = "biometric-passkey-dashboard";
/** The API key the test stack's Core API requires, as a customer backend's would. */
export const CORE_API_KEY = "e2e-integration-key-0123456789abcdefghij";

export function binary() {
  return process.env.BIOMETRIC_PASSKEY_BIN ?? path.join(repoRoot, "target/debug/biometric-passkey");
}

export async function freePort() {
  const server = net.createServer();
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

async function waitHealthy(url, child, log) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`runtime exited (${child.exitCode}):\n${log.join("")}`);
    try {
      const response = await fetch(`${url}/api/ready`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not become ready:\n${log.join("")}`);
}

export async function startRuntime(command, env) {
  const log = [];
  const child = spawn(binary(), [command], {
    // Two runtimes side by side: no metrics listener, or both would take 9464.
    env: {
      PATH: process.env.PATH,
      BIOMETRIC_PASSKEY_LOG_LEVEL: "warn",
      BIOMETRIC_PASSKEY_METRICS_PORT: "0",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => log.push(d.toString()));
  child.stderr.on("data", (d) => log.push(d.toString()));
  const url = `http://127.0.0.1:${env.PORT}`;
  await waitHealthy(url, child, log);
  return {
    url,
    log,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", resolve);
        child.kill("SIGTERM");
      }),
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** The whole stack; `stop()` ends everything it started. */
export async function startStack() {
  const dir = mkdtempSync(path.join(tmpdir(), "bp-dashboard-e2e-"));
  const database = {
    BIOMETRIC_PASSKEY_STORE: "sqlite",
    BIOMETRIC_PASSKEY_SQLITE_PATH: path.join(dir, "e2e.sqlite3"),
  };
  const managementPort = await freePort();
  const dashboardOrigin = `http://127.0.0.1:${managementPort}`;
  const idp = await startProvider({ dashboardOrigin, audience: AUDIENCE, clientId: CLIENT_ID });
  const core = await startRuntime("core", {
    ...database,
    PORT: String(await freePort()),
    BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY: "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA",
    BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE: "synthetic",
    BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID: "registration",
    BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID: "step-up",
    BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID: "recovery",
    BIOMETRIC_PASSKEY_CORE_API_KEYS: CORE_API_KEY,
  });
  const management = await startRuntime("management", {
    ...database,
    PORT: String(managementPort),
    BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_ISSUER: idp.issuer,
    BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_AUDIENCE: AUDIENCE,
    BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_JWKS_URL: idp.jwksUrl,
    BIOMETRIC_PASSKEY_MANAGEMENT_UI_CLIENT_ID: CLIENT_ID,
  });
  const browser = await launchBrowser();
  return {
    core,
    management,
    idp,
    browser,
    async stop() {
      await browser.close().catch(() => {});
      await management.stop();
      await core.stop();
      await idp.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Enrolls a user with an active passkey through the Core API, as a customer backend would. */
export async function enrollUser(coreUrl, externalUserId, deviceLabel) {
  const call = async (method, route, body) => {
    const response = await fetch(`${coreUrl}${route}`, {
      method,
      headers: { "content-type": "application/json", authorization: `Bearer ${CORE_API_KEY}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${route} → ${response.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  const flow = await call("POST", "/api/core/v1/flows", {
    type: "registration",
    external_user_id: externalUserId,
  });
  await call("PUT", `/api/core/v1/flows/${flow.id}/biometric-reference`, {
    token: "ZW5jcnlwdGVkLWJpb21ldHJpYy10b2tlbg",
  });
  const credentialId = Buffer.from(`${externalUserId}-passkey`).toString("base64url");
  await call("POST", `/api/core/v1/flows/${flow.id}/possession`, {
    credential: {
      id: credentialId,
      sign_count: 0,
      transports: ["internal"],
      platform: "android",
      device_label: deviceLabel,
    },
  });
  await call("POST", `/api/core/v1/synthetic/runs/${flow.identity.workflow_run_id}/outcome`, {
    outcome: "approved",
  });
  const done = await call("GET", `/api/core/v1/flows/${flow.id}`);
  if (done.state !== "completed") throw new Error(`registration of ${externalUserId} ended ${done.state}`);
  return done;
}
