// The dashboard in headless Chromium against the real management runtime and a
// real OpenID Provider (its token endpoint on a second origin): sign-in,
// search, passkey lifecycle, audit, deletion, scope gating, sign-out, and the
// development sign-in of `biometric-passkey dev`.
// Screenshots of the main pages land in e2e/output/.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { binary, enrollUser, freePort, launchBrowser, outputDir, startStack, CLIENT_ID } from "./stack.mjs";

const TIMEOUT = 15_000;
let stack;

async function shot(page, name) {
  mkdirSync(outputDir, { recursive: true });
  await page.screenshot({ path: path.join(outputDir, `${name}.png`), fullPage: true });
}

/** Opens `route` signed out, signs in at the identity provider as `operator`, and lands back on `route`. */
async function signIn(operator, route = "/users") {
  const context = await stack.browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const problems = [];
  // Errors on the dashboard's own origin only (the identity provider's pages are not ours).
  const ours = (url) => url.startsWith(stack.management.url);
  page.on(
    "console",
    (m) =>
      m.type() === "error" && ours(m.location().url) && problems.push(`${m.text()} (${m.location().url})`),
  );
  page.on("pageerror", (e) => problems.push(e.message));
  // The code's redemptions at the token endpoint, by their answers' statuses.
  const redemptions = [];
  page.on("requestfinished", async (request) => {
    if (request.method() === "POST" && request.url() === stack.idp.tokenEndpoint) {
      redemptions.push((await request.response())?.status());
    }
  });
  page.on("requestfailed", (request) => {
    if (request.url() === stack.idp.tokenEndpoint) redemptions.push(request.failure()?.errorText);
  });
  await page.goto(stack.management.url + route);
  await page.waitForURL((url) => url.origin === new URL(stack.idp.issuer).origin);
  await page.getByLabel("Operator").fill(operator);
  await page.getByRole("button", { name: "Continue" }).click();
  await page.waitForURL((url) => url.href === stack.management.url + route);
  await page.locator(".topbar .operator").getByText(operator).waitFor();
  return { context, page, problems, redemptions };
}

function credentialRow(page) {
  return page.locator("tr[data-credential]").first();
}

async function lifecycle(page, action, reason) {
  await credentialRow(page).getByRole("button", { name: action }).click();
  const dialog = page.getByRole("dialog");
  const confirm = dialog.getByRole("button", { name: action });
  assert.equal(await confirm.isDisabled(), true, "a reason is required first");
  await dialog.getByLabel("Reason").fill(reason);
  await confirm.click();
  await dialog.waitFor({ state: "hidden" });
}

/** The access token the dashboard holds (for calling the API as the dashboard would, bypassing its UI). */
function accessToken(page) {
  return page.evaluate(
    ([authority, clientId]) =>
      JSON.parse(sessionStorage.getItem(`oidc.user:${authority}:${clientId}`)).access_token,
    [stack.idp.issuer, CLIENT_ID],
  );
}

before(async () => {
  stack = await startStack();
  await enrollUser(stack.core.url, "e2e-customer-1", "Pixel 9 (work)");
  await enrollUser(stack.core.url, "e2e-customer-2", "Galaxy S25");
  await enrollUser(stack.core.url, "e2e-delete-me", "Old phone");
});

after(async () => {
  await stack?.stop();
});

describe("an operator with every scope", () => {
  test("signs in, finds a user, suspends and re-activates a passkey, sees it audited, signs out", async () => {
    const { context, page, problems } = await signIn("alice.support");
    await page.getByRole("heading", { name: "Users" }).waitFor();
    await page.getByRole("link", { name: "e2e-customer-2" }).waitFor();
    await shot(page, "users");

    await page.getByLabel("User id starts with").fill("e2e-customer-1");
    await page.getByRole("button", { name: "Search" }).click();
    await page.waitForURL(/\/users\?prefix=e2e-customer-1$/);
    await page.getByRole("link", { name: "e2e-customer-2" }).waitFor({ state: "detached" });
    await page.getByRole("link", { name: "e2e-customer-1" }).click();

    await page.getByRole("heading", { name: "User e2e-customer-1" }).waitFor();
    const row = credentialRow(page);
    await row.getByText("active", { exact: true }).waitFor();
    await row.getByText("Pixel 9 (work)").waitFor();
    assert.equal(await row.getByRole("button", { name: "Revoke" }).count(), 1);
    await shot(page, "user");

    await lifecycle(page, "Suspend", "Customer reported the phone lost");
    await page.getByText("Passkey suspended.").waitFor();
    await row.getByText("suspended", { exact: true }).waitFor();
    await row.getByText("Customer reported the phone lost").waitFor();
    await shot(page, "user-suspended");
    await lifecycle(page, "Activate", "Phone found");
    await row.getByText("active", { exact: true }).waitFor();

    await page.getByRole("link", { name: "Audit events" }).click();
    await page.getByRole("heading", { name: "Audit log" }).waitFor();
    const suspended = page.locator('tr[data-event-type="credential.suspended"]');
    await suspended.getByText("alice.support").waitFor();
    await suspended.getByText("Customer reported the phone lost").waitFor();
    await page.locator('tr[data-event-type="credential.activated"]').getByText("alice.support").waitFor();
    await shot(page, "audit");

    // The export carries what the page shows, as JSON lines.
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Export JSON lines" }).click(),
    ]);
    assert.match(download.suggestedFilename(), /^audit-.*\.jsonl$/);
    const lines = (await readFile(await download.path(), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.ok(lines.some((e) => e.type === "credential.suspended" && e.actor_id === "alice.support"));

    // Filtering by event type.
    await page.getByLabel("Event type").fill("credential.activated");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(/type=credential.activated/);
    // The old page's rows go, then the filtered page's arrive.
    await page.locator('tr[data-event-type="credential.suspended"]').waitFor({ state: "detached" });
    await page.locator('tr[data-event-type="credential.activated"]').waitFor();
    assert.equal(await page.locator("tr[data-event-type]").count(), 1);

    // The user's flows, then a flow's timeline, and a deep link that survives a reload.
    await page.goto(stack.management.url + "/users/e2e-customer-1");
    await page.getByRole("link", { name: "All flows of this user" }).click();
    await page.getByRole("heading", { name: "Flows" }).waitFor();
    await page.getByRole("cell", { name: "registration" }).waitFor();
    await page.getByLabel("Type").selectOption("step_up");
    await page.getByRole("button", { name: "Show flows" }).click();
    await page.getByText("No flow matches.").waitFor();
    await page.goBack();
    await page.getByRole("cell", { name: "registration" }).waitFor();
    assert.equal(await page.getByLabel("Type").inputValue(), "", "the filters follow the URL back");
    await page.goto(stack.management.url + "/users/e2e-customer-1");
    await page.getByRole("heading", { name: "User e2e-customer-1" }).waitFor();
    await page.locator("table").nth(1).getByRole("link").first().click();
    await page.getByRole("heading", { name: /registration flow/ }).waitFor();
    await page.getByRole("heading", { name: "Timeline" }).waitFor();
    await page.locator('tr[data-event-type="flow.created"]').waitFor();
    const flowUrl = page.url();
    await page.reload();
    await page.getByRole("heading", { name: /registration flow/ }).waitFor();
    assert.equal(page.url(), flowUrl);
    await shot(page, "flow");

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Yes, sign me out" }).click();
    await page.waitForURL(stack.management.url + "/login");
    await page.getByText("You are signed out.").waitFor();
    await shot(page, "signed-out");
    // Signed out for real: a page now asks the identity provider again.
    await page.goto(stack.management.url + "/users");
    await page.waitForURL((url) => url.origin === new URL(stack.idp.issuer).origin);
    await page.getByLabel("Operator").waitFor();

    assert.deepEqual(problems, [], "no script errors or CSP violations");
    await context.close();
  });

  test("deletes a user only after typing their id", async () => {
    const { context, page } = await signIn("alice.support", "/users/e2e-delete-me");
    await page.getByRole("button", { name: "Delete user" }).click();
    const dialog = page.getByRole("dialog");
    const confirm = dialog.getByRole("button", { name: "Delete user" });
    await dialog.getByLabel(/Type/).fill("e2e-delete");
    assert.equal(await confirm.isDisabled(), true);
    await dialog.getByLabel(/Type/).fill("e2e-delete-me");
    await confirm.click();
    await page.waitForURL(stack.management.url + "/users");
    await page.goto(stack.management.url + "/users/e2e-delete-me");
    await page.getByText("Not found.").waitFor();
    // What the provider must still forget is in its own section.
    await page.getByRole("link", { name: "Provider clean-ups" }).click();
    await page.getByRole("heading", { name: "Provider clean-ups" }).waitFor();
    await page.locator("table, .notice.empty").first().waitFor();
    await shot(page, "provider-cleanups");
    await context.close();
  });
});

describe("an identity provider whose token endpoint is on another origin than its issuer", () => {
  test("the page's policy allows that origin, from the provider's discovery document, and the code is redeemed there", async () => {
    const issuerOrigin = new URL(stack.idp.issuer).origin;
    const tokenOrigin = new URL(stack.idp.tokenEndpoint).origin;
    assert.notEqual(tokenOrigin, issuerOrigin);
    const discovery = await (await fetch(`${stack.idp.issuer}/.well-known/openid-configuration`)).json();
    assert.equal(discovery.token_endpoint, stack.idp.tokenEndpoint);

    const page = await fetch(stack.management.url + "/users");
    const connect = /connect-src ([^;]*);/.exec(page.headers.get("content-security-policy"))?.[1];
    // The provider's userinfo, JWKS and revocation endpoints are on the issuer's origin.
    assert.equal(connect, `'self' ${issuerOrigin} ${tokenOrigin}`);

    const { context, page: signedIn, problems, redemptions } = await signIn("carol.viewer");
    await signedIn.getByRole("heading", { name: "Users" }).waitFor();
    assert.deepEqual(redemptions, [200], "one redemption, on the second origin, answered 200");
    assert.deepEqual(problems, [], "no script errors or CSP violations");
    await context.close();
  });
});

describe("an operator without management.credentials.revoke", () => {
  test("sees no revoke action, and the API refuses it anyway", async () => {
    const { context, page } = await signIn("bob.agent", "/users/e2e-customer-2");
    const row = credentialRow(page);
    await row.getByRole("button", { name: "Suspend" }).waitFor();
    assert.equal(await row.getByRole("button", { name: "Revoke" }).count(), 0);

    const credentialId = await row.getAttribute("data-credential");
    const refusal = await page.evaluate(
      async ([id, token]) => {
        const response = await fetch(`/api/management/v1/credentials/${id}/revoke`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({ reason: "trying anyway" }),
        });
        return { status: response.status, body: await response.json() };
      },
      [credentialId, await accessToken(page)],
    );
    assert.equal(refusal.status, 403);
    assert.equal(refusal.body.error.code, "missing_scope");
    assert.match(refusal.body.error.message, /management\.credentials\.revoke/);
    await page.reload();
    await credentialRow(page).getByText("active", { exact: true }).waitFor();
    await context.close();
  });
});

describe("the overview", () => {
  test("is where an operator lands, charting the flows, refusals and passkey actions just made", async () => {
    const { context, page, problems } = await signIn("alice.support", "/");
    await page.waitForURL(stack.management.url + "/overview");
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    // The enrolments and the suspension of the tests above, in the last 24 hours.
    const outcomes = page.locator('figure[data-chart="Flows by outcome"]');
    await outcomes.locator("svg.recharts-surface").first().waitFor();
    assert.notEqual(await outcomes.locator(".total").textContent(), "0 in total");
    const credentials = page.locator('figure[data-chart="Credentials suspended and revoked"]');
    await credentials.locator("svg.recharts-surface").first().waitFor();
    await shot(page, "overview");
    await page.getByRole("button", { name: "Last 30 days" }).click();
    await page.getByRole("button", { name: "Last 30 days", pressed: true }).waitFor();
    await outcomes.locator("svg.recharts-surface").first().waitFor();
    assert.deepEqual(problems, []);
    await context.close();
  });
});

describe("an operator who may only look users up", () => {
  test("sees only the user sections and a plain access-denied naming the missing scope", async () => {
    const { context, page } = await signIn("carol.viewer", "/users/e2e-customer-2");
    assert.deepEqual(await page.locator(".topbar nav a").allTextContents(), [
      "Overview",
      "Users",
      "Provider clean-ups",
    ]);
    await credentialRow(page).waitFor();
    assert.equal(await credentialRow(page).getByRole("button").count(), 0);
    assert.equal(await page.getByRole("button", { name: "Delete user" }).count(), 0);

    await page.goto(stack.management.url + "/overview");
    await page.getByRole("alert").getByText("management.audit.read").waitFor();
    assert.equal(await page.locator("figure.chart").count(), 0);

    await page.goto(stack.management.url + "/audit");
    const denied = page.getByRole("alert");
    await denied.getByText("Access denied.").waitFor();
    await denied.getByText("management.audit.read").waitFor();
    assert.equal(await page.getByRole("search").count(), 0, "no filters or export behind a denied page");
    assert.equal(await page.getByRole("button", { name: "Export JSON lines" }).count(), 0);
    await shot(page, "access-denied");
    await context.close();
  });
});

describe("biometric-passkey dev", () => {
  test("lets a newcomer sign in as an operator without an identity provider", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "bp-dev-e2e-"));
    const [corePort, managementPort] = [await freePort(), await freePort()];
    const dev = spawn(
      binary(),
      [
        "dev",
        "--data-dir",
        dir,
        "--core-port",
        String(corePort),
        "--management-port",
        String(managementPort),
        "--metrics-port",
        "0",
      ],
      { env: { PATH: process.env.PATH, BIOMETRIC_PASSKEY_LOG_LEVEL: "warn" }, stdio: "ignore" },
    );
    const origin = `http://127.0.0.1:${managementPort}`;
    const browser = await launchBrowser();
    try {
      for (let i = 0; i < 300; i++) {
        if (
          await fetch(`${origin}/api/health`).then(
            (r) => r.ok,
            () => false,
          )
        )
          break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const page = await browser.newPage();
      page.setDefaultTimeout(TIMEOUT);
      await page.goto(origin + "/");
      await page.getByRole("heading", { name: "Development sign-in" }).waitFor();
      await shot(page, "dev-sign-in");
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.waitForURL(origin + "/overview");
      await page.locator(".topbar .operator").getByText("dev-operator").waitFor();
      await page.getByRole("heading", { name: "Overview" }).waitFor();
      await page.getByRole("link", { name: "Users" }).click();
      await page.getByText("No user matches this search.").waitFor();
    } finally {
      await browser.close();
      await new Promise((resolve) => {
        dev.once("exit", resolve);
        dev.kill("SIGTERM");
      });
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
