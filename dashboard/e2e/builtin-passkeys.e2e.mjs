// The built-in relying party (`builtin` possession mode) against a real
// browser: `biometric-passkey dev --possession builtin`, headless Chromium with
// its virtual authenticator (DevTools protocol `WebAuthn` domain), and a page
// on http://localhost that plays the customer's web app. The test plays the
// customer's backend: it creates flows on the Core API and hands the options
// to the page, which calls navigator.credentials.create/get and returns the
// authenticator's response as PublicKeyCredential.toJSON() gives it.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { binary, freePort, launchBrowser } from "./stack.mjs";

let dev;
let pageServer;
let browser;
let dataDir;
let core;
let origin;

async function call(method, route, body) {
  const response = await fetch(`${core}${route}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function ok(method, route, body) {
  const { status, body: json } = await call(method, route, body);
  assert.ok(status >= 200 && status < 300, `${method} ${route} → ${status} ${JSON.stringify(json)}`);
  return json;
}

before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), "bp-builtin-e2e-"));
  // The customer's web app: a blank page on http://localhost (a secure context).
  pageServer = http.createServer((_req, res) => {
    res.setHeader("content-type", "text/html");
    res.end("<!doctype html><title>Example Bank</title><h1>Example Bank</h1>");
  });
  await new Promise((r) => pageServer.listen(0, r));
  origin = `http://localhost:${pageServer.address().port}`;

  const [corePort, managementPort] = [await freePort(), await freePort()];
  core = `http://127.0.0.1:${corePort}`;
  dev = spawn(
    binary(),
    [
      "dev",
      "--data-dir",
      dataDir,
      "--core-port",
      String(corePort),
      "--management-port",
      String(managementPort),
      "--metrics-port",
      "0",
      "--possession",
      "builtin",
      "--rp-id",
      "localhost",
      "--origin",
      origin,
    ],
    { env: { PATH: process.env.PATH, BIOMETRIC_PASSKEY_LOG_LEVEL: "warn" }, stdio: "inherit" },
  );
  for (let i = 0; i < 300; i++) {
    if (
      await fetch(`${core}/api/health`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    await new Promise((r) => setTimeout(r, 100));
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  if (dev && dev.exitCode === null) {
    await new Promise((resolve) => {
      dev.once("exit", resolve);
      dev.kill("SIGTERM");
    });
  }
  await new Promise((r) => pageServer?.close(r));
  rmSync(dataDir, { recursive: true, force: true });
});

test("a passkey made by Chromium's virtual authenticator registers and signs in", async () => {
  const page = await browser.newPage();
  await page.goto(origin);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });

  // Registration: the backend creates the flow and gives the page its options.
  const user = `browser-${Date.now()}`;
  const flow = await ok("POST", "/api/core/v1/flows", { type: "registration", external_user_id: user });
  const creation = flow.possession.webauthn_options;
  assert.equal(creation.rp.id, "localhost");
  await ok("PUT", `/api/core/v1/flows/${flow.id}/biometric-reference`, {
    token: "ZW5jcnlwdGVkLWJpb21ldHJpYy10b2tlbg",
  });
  const registration = await page.evaluate(async (options) => {
    const credential = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
    });
    return credential.toJSON();
  }, creation);
  const proven = await ok("POST", `/api/core/v1/flows/${flow.id}/possession`, {
    webauthn: { response: registration, platform: "web", device_label: "Chromium virtual authenticator" },
  });
  assert.equal(proven.possession.status, "verified");
  await ok("POST", `/api/core/v1/synthetic/runs/${flow.identity.workflow_run_id}/outcome`, {
    outcome: "approved",
  });
  assert.equal((await ok("GET", `/api/core/v1/flows/${flow.id}`)).state, "completed");

  // Sign-in with the same passkey.
  const signIn = await ok("POST", "/api/core/v1/flows", { type: "sign_in", external_user_id: user });
  const request = signIn.possession.webauthn_options;
  assert.deepEqual(
    request.allowCredentials.map((c) => c.id),
    [registration.id],
  );
  const assertion = await page.evaluate(async (options) => {
    const credential = await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
    });
    return credential.toJSON();
  }, request);
  const signedIn = await ok("POST", `/api/core/v1/flows/${signIn.id}/possession`, {
    webauthn: { response: assertion },
  });
  assert.equal(signedIn.state, "completed");

  // The same assertion again (a replay) is refused and changes nothing.
  const again = await ok("POST", "/api/core/v1/flows", { type: "sign_in", external_user_id: user });
  const replay = await call("POST", `/api/core/v1/flows/${again.id}/possession`, {
    webauthn: { response: assertion },
  });
  assert.equal(replay.status, 400);
  assert.equal(replay.body.error.code, "webauthn_challenge_mismatch");

  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  assert.equal(credentials.length, 1);
  const account = await ok("GET", `/api/core/v1/users/${user}`);
  assert.equal(account.credentials.length, 1);
  assert.equal(account.credentials[0].status, "active");
  assert.equal(account.credentials[0].webauthn_id, registration.id);
});
