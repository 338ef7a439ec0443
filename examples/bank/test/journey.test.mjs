// The whole journey in headless Chromium, against `npm start` as a newcomer runs it: the bank
// starts a real `biometric-passkey dev --possession builtin` on free ports, and the browser's
// WebAuthn API talks to Chromium's virtual authenticator (DevTools protocol `WebAuthn` domain).
// Each step's screenshot is written to test/output/; with UPDATE_SCREENSHOTS=1 it replaces the one
// in docs/ that the README shows.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";
import { exampleRoot, startBank } from "./support.mjs";

const screenshots = path.join(exampleRoot, process.env.UPDATE_SCREENSHOTS === "1" ? "docs" : "test/output");
mkdirSync(screenshots, { recursive: true });
// A fresh `dev` data folder per run, so the name is free.
const user = "ada";

let bank;
let browser;
let dataDir;
let origin;

before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), "example-bank-"));
  bank = await startBank({ BANK_DATA_DIR: dataDir });
  origin = bank.origin;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  await bank?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** A page of a new browser context (a device of its own) with a virtual platform authenticator. */
async function device(viewport = { width: 1100, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const authenticator = await virtualAuthenticator(page);
  return { context, page, ...authenticator };
}

async function virtualAuthenticator(page) {
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
  return { cdp, authenticatorId };
}

async function finished(step, kind = "done") {
  await step.locator(`.status[data-kind="${kind}"]`).waitFor({ timeout: 30_000 });
  return step.locator(".status").textContent();
}

async function calls(step) {
  return step.locator(".call summary").allTextContents();
}

async function shoot(locator, name) {
  await locator.screenshot({ path: path.join(screenshots, name) });
}

test("enrol, sign in, pay by step-up here and on the phone, recover on a new device", async () => {
  const laptop = await device();
  const { page } = laptop;
  page.on("pageerror", (e) => assert.fail(`page error: ${e.message}`));
  await page.goto(origin);

  // 1. Enrolment: a passkey from the browser, the capture sent to review, then approved.
  const enrol = page.locator("#enrol");
  await enrol.locator("input[name=username]").fill(user);
  await enrol.locator("button", { hasText: "Create passkey" }).click();
  await enrol.getByRole("button", { name: "Send to review" }).click();
  await enrol.getByRole("button", { name: "Reviewer approves" }).click();
  assert.match(await finished(enrol), /Enrolled/);
  assert.equal(await page.locator("#who").textContent(), `Signed in as ${user}`);
  const enrolCalls = (await calls(enrol)).join("\n");
  for (const call of [
    /POST\/api\/core\/v1\/flows201/,
    /POST\/api\/core\/v1\/flows\/[\w-]+\/possession200/,
    /PUT\/api\/core\/v1\/flows\/[\w-]+\/biometric-reference200/,
    /POST\/api\/core\/v1\/synthetic\/runs\/[^/]+\/outcome200/,
  ]) {
    assert.match(enrolCalls, call);
  }
  await enrol.locator(".call").first().locator("summary").click();
  await shoot(enrol, "1-enrol.png");

  // 2. Sign-in with the passkey alone.
  await page.locator("#sign-out").click();
  await page.locator("#who", { hasText: "Not signed in" }).waitFor();
  const signIn = page.locator("#sign-in");
  await signIn.locator("input[name=username]").fill(user);
  await signIn.locator("button").click();
  assert.match(await finished(signIn), /Signed in/);
  assert.match((await calls(signIn)).join("\n"), /POST\/api\/core\/v1\/flows\/[\w-]+\/possession200/);
  await shoot(signIn, "2-sign-in.png");

  // 3. A payment by step-up: the context and its digests shown, the reference released to the capture.
  const payment = page.locator("#payment");
  await payment.locator("button", { hasText: "Pay" }).click();
  await payment.getByRole("button", { name: "Approve" }).waitFor();
  const digests = await payment.locator(".payment code").allTextContents();
  assert.deepEqual(digests.slice(0, 2), ["ACME Ltd", "2500.00 EUR"]);
  assert.match(digests[2], /^[0-9a-f]{64}$/);
  assert.equal(digests[3], digests[2], "the Core API echoes the digest the bank computed");
  await shoot(payment, "3-payment-capture.png");
  await payment.getByRole("button", { name: "Approve" }).click();
  assert.match(await finished(payment), /Paid 2500\.00 EUR to ACME Ltd/);
  assert.match(
    (await calls(payment)).join("\n"),
    /POST\/api\/core\/v1\/flows\/[\w-]+\/biometric-reference\/release200/,
  );
  await shoot(payment, "4-payment-paid.png");

  // One approval pays once.
  const { id: paidFlow } = JSON.parse(await payment.locator(".call pre.response").first().textContent());
  const again = await page.evaluate(
    (id) => fetch(`/api/flows/${id}/pay`, { method: "POST" }).then((r) => r.json()),
    paidFlow,
  );
  assert.equal(again.error.code, "payment_already_paid");

  // A payment whose capture the provider declines is not paid.
  await payment.locator("input[name=payee]").fill("Mallory Ltd");
  await payment.locator("button", { hasText: "Pay" }).click();
  await payment.getByRole("button", { name: "Decline" }).click();
  assert.match(await finished(payment, "failed"), /Not paid: idv_declined/);

  // 4. Cross-platform: a QR code here, claimed by the "phone" (a second tab holding the same
  // passkey, as a synced passkey would be), this tab long-polling the flow meanwhile.
  const cross = page.locator("#cross");
  await cross.locator("button").click();
  const link = cross.locator(".handoff a");
  await link.waitFor();
  assert.equal(await cross.locator(".qr svg").count(), 1);
  const phoneUrl = await link.getAttribute("href");
  assert.match(phoneUrl, new RegExp(`^${origin}/phone\\.html#.+`));
  await shoot(cross, "5-cross-platform-qr.png");

  const phone = await laptop.context.newPage();
  await phone.setViewportSize({ width: 420, height: 860 });
  const phoneAuthenticator = await virtualAuthenticator(phone);
  const { credentials } = await laptop.cdp.send("WebAuthn.getCredentials", {
    authenticatorId: laptop.authenticatorId,
  });
  assert.equal(credentials.length, 1);
  await phoneAuthenticator.cdp.send("WebAuthn.addCredential", {
    authenticatorId: phoneAuthenticator.authenticatorId,
    credential: credentials[0],
  });
  await phone.goto(phoneUrl);
  const approval = phone.locator("#phone");
  await approval.locator("button", { hasText: "Review the payment" }).click();
  await approval.getByRole("button", { name: "Approve" }).waitFor();
  assert.deepEqual((await approval.locator(".payment code").allTextContents()).slice(0, 2), [
    "Utility Co",
    "120.00 EUR",
  ]);
  await approval.getByRole("button", { name: "Approve" }).click();
  assert.match(await finished(approval), /Approved/);
  assert.match((await calls(approval)).join("\n"), /POST\/api\/core\/v1\/handoffs\/claim200/);
  await shoot(approval, "6-phone.png");
  await phone.close();

  assert.match(await finished(cross), /Paid 120\.00 EUR to Utility Co/);
  const crossCalls = (await calls(cross)).join("\n");
  assert.match(crossCalls, /GET\/api\/core\/v1\/flows\/[\w-]+\?after_version=\d+&wait_seconds=20200/);
  await shoot(cross, "7-cross-platform-paid.png");

  // 5. Recovery on a new device: no cookies, an authenticator without the passkey.
  const newDevice = await device();
  await newDevice.page.goto(origin);
  const recovery = newDevice.page.locator("#recovery");
  await recovery.locator("input[name=username]").fill(user);
  await recovery.locator("button").click();
  await recovery.getByRole("button", { name: "Approve" }).click();
  assert.match(await finished(recovery), /Recovered/);
  const account = newDevice.page.locator("#account");
  await account.locator("tbody tr").nth(1).waitFor();
  const statuses = await account.locator("tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.status));
  assert.deepEqual(statuses.sort(), ["active", "revoked"]);
  await newDevice.page.screenshot({ path: path.join(screenshots, "8-recovery.png"), fullPage: true });

  // The recovery revoked the old device's passkey: a sign-in there is offered only the new
  // device's passkey, which the old device's authenticator does not hold.
  await page.locator("#sign-out").click();
  await page.locator("#who", { hasText: "Not signed in" }).waitFor();
  await signIn.locator("input[name=username]").fill(user);
  await signIn.locator("button").click();
  assert.match(await finished(signIn, "failed"), /NotAllowedError/);
  const offered = JSON.parse(await signIn.locator(".call pre.response").last().textContent());
  const [kept] = (
    await newDevice.cdp.send("WebAuthn.getCredentials", { authenticatorId: newDevice.authenticatorId })
  ).credentials;
  assert.deepEqual(
    offered.possession.webauthn_options.allowCredentials.map((c) => c.id),
    [Buffer.from(kept.credentialId, "base64").toString("base64url")],
  );
});
