// The bank against a Core API that requires an API key (`biometric-passkey core`, as deployed):
// the key goes from the bank's server to the Core API and never to the page.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { startBank, startCore } from "./support.mjs";

const KEY = "example-bank-core-api-key-0123456789abcdef";
let core;
let dir;
const started = [];

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "example-bank-core-"));
  core = await startCore({
    BIOMETRIC_PASSKEY_STORE: "sqlite",
    BIOMETRIC_PASSKEY_SQLITE_PATH: path.join(dir, "core.sqlite3"),
    BIOMETRIC_PASSKEY_DATA_ENCRYPTION_KEY: "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA",
    BIOMETRIC_PASSKEY_IDV_PROVIDER_MODE: "synthetic",
    BIOMETRIC_PASSKEY_IDV_REGISTRATION_WORKFLOW_ID: "registration",
    BIOMETRIC_PASSKEY_IDV_STEP_UP_WORKFLOW_ID: "step-up",
    BIOMETRIC_PASSKEY_IDV_RECOVERY_VERIFY_WORKFLOW_ID: "recovery",
    BIOMETRIC_PASSKEY_POSSESSION_MODE: "builtin",
    BIOMETRIC_PASSKEY_WEBAUTHN_RP_ID: "localhost",
    BIOMETRIC_PASSKEY_WEBAUTHN_ORIGINS: "http://localhost:8080",
    BIOMETRIC_PASSKEY_CORE_API_KEYS: KEY,
  });
});

after(async () => {
  for (const process of started) await process.stop();
  await core?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function enrol(apiKey, username) {
  const bank = await startBank({ CORE_API_URL: core.url, CORE_API_KEY: apiKey });
  started.push(bank);
  const response = await fetch(`${bank.origin}/api/enrol`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username }),
  });
  const text = await response.text();
  assert.ok(!text.includes(KEY), "the page never sees the key");
  return { status: response.status, body: JSON.parse(text) };
}

test("the bank's calls carry its Core API key", async () => {
  const { status, body } = await enrol(KEY, "grace");
  assert.equal(status, 200, JSON.stringify(body));
  assert.deepEqual(
    body.calls.map((c) => [c.method, c.path, c.status]),
    [["POST", "/api/core/v1/flows", 201]],
  );
  assert.equal(body.flow.state, "awaiting_verification");
  assert.equal(body.webauthnOptions.rp.id, "localhost");
});

test("a bank with a wrong key fails as the bank's fault, not the customer's", async () => {
  const { status, body } = await enrol("not-the-configured-key-0123456789abcdef", "hopper");
  assert.equal(status, 502);
  assert.equal(body.error.code, "unauthorized");
  assert.equal(body.calls[0].status, 401);
});
