// Example Bank's page: enrol, sign in, pay with a step-up here or on the phone, recover.

import {
  $,
  approveStepUp,
  bank,
  capture,
  createPasskey,
  type FlowView,
  type PaymentView,
  run,
  say,
  showPayment,
  untilEnded,
  usePasskey,
} from "./common.js";

type Started = { flow: FlowView; webauthnOptions: unknown };

const logOf = (step: HTMLElement) => $(".calls", step);
const field = (form: HTMLFormElement, name: string) =>
  (form.elements.namedItem(name) as HTMLInputElement).value;

/** The signed-in customer, in the header, and their passkeys. */
async function refreshSession() {
  const { user } = await bank<{ user: string | null }>(
    "GET",
    "/api/session",
    undefined,
    document.createElement("div"),
  );
  $("#who").textContent = user ? `Signed in as ${user}` : "Not signed in";
  $("#sign-out").hidden = !user;
  document.body.dataset.user = user ?? "";
  const account = $("#account");
  account.hidden = !user;
  if (!user) return;
  type Passkey = { device: string; status: string; createdAt: string; lastUsedAt: string | null };
  const { passkeys } = await bank<{ passkeys: Passkey[] }>("GET", "/api/account", undefined, logOf(account));
  $("tbody", account).replaceChildren(
    ...passkeys.map((p) => {
      const row = document.createElement("tr");
      for (const value of [p.device, p.status, p.createdAt, p.lastUsedAt ?? "never"]) {
        const cell = document.createElement("td");
        cell.textContent = value;
        row.append(cell);
      }
      row.dataset.status = p.status;
      return row;
    }),
  );
}

/** Enrolment and recovery: a new passkey and an identity capture, then wait for the flow. */
async function newPasskey(step: HTMLElement, route: string, username: string, done: string) {
  const log = logOf(step);
  const started = await bank<Started>("POST", route, { username }, log);
  say(step, "Your browser creates a passkey…");
  let { flow } = await bank<{ flow: FlowView }>(
    "POST",
    `/api/flows/${started.flow.id}/passkey`,
    { response: await createPasskey(started.webauthnOptions) },
    log,
  );
  say(step, "Passkey verified. Now the identity check.");
  flow = await untilEnded(await capture(step, flow, log), log);
  if (flow.state !== "completed") return say(step, `Stopped: ${flow.failureReason ?? flow.state}`, "failed");
  // The header and the account first: "done" tells the customer (and the
  // journey's test) that they are signed in.
  await refreshSession();
  say(step, done, "done");
}

/** A payment by step-up on this device: passkey, identity check, then the digests compared. */
async function payHere(step: HTMLElement, payee: string, amount: string) {
  const log = logOf(step);
  const started = await bank<Started & { payment: PaymentView }>(
    "POST",
    "/api/payments",
    { payee, amount },
    log,
  );
  showPayment(step, started.payment);
  const flow = await approveStepUp(step, started.flow.id, started.webauthnOptions, log);
  await pay(step, flow);
}

/** Pays once the step-up ended: the bank's backend compares the approved digest with its own. */
async function pay(step: HTMLElement, flow: FlowView) {
  if (flow.state !== "completed") return say(step, `Not paid: ${flow.failureReason ?? flow.state}`, "failed");
  const paid = await bank<{ context: PaymentView["context"]; approvedDigest: string }>(
    "POST",
    `/api/flows/${flow.id}/pay`,
    {},
    logOf(step),
  );
  await refreshSession();
  say(
    step,
    `Paid ${paid.context.amount} to ${paid.context.payee}: the approved digest ${paid.approvedDigest.slice(0, 16)}… is the one shown.`,
    "done",
  );
}

/** A payment approved on the phone: a QR code here, this page long-polling the flow. */
async function payOnPhone(step: HTMLElement, payee: string, amount: string) {
  const log = logOf(step);
  const started = await bank<{ flow: FlowView; payment: PaymentView; qrSvg: string; phoneUrl: string }>(
    "POST",
    "/api/payments",
    { payee, amount, crossPlatform: true },
    log,
  );
  showPayment(step, started.payment);
  const handoff = $(".handoff", step);
  handoff.hidden = false;
  $(".qr", handoff).innerHTML = started.qrSvg; // made by the bank's backend (qrcode)
  const link = $<HTMLAnchorElement>("a", handoff);
  link.href = started.phoneUrl;
  say(step, "Scan the code with your phone (or open the link in another tab). Waiting…");
  const flow = await untilEnded(started.flow, log, (f) => {
    if (f.possession === "verified") say(step, "Your phone confirmed with its passkey; identity check…");
    else if (f.handoffClaimed) say(step, "Your phone took the request…");
  });
  handoff.hidden = true;
  await pay(step, flow);
}

function onSubmit(id: string, action: (step: HTMLElement, form: HTMLFormElement) => Promise<void>) {
  const step = $(`#${id}`);
  $<HTMLFormElement>("form", step).addEventListener("submit", (event) => {
    event.preventDefault();
    void run(step, () => action(step, event.target as HTMLFormElement));
  });
}

onSubmit("enrol", (step, form) =>
  newPasskey(
    step,
    "/api/enrol",
    field(form, "username"),
    "Enrolled: you are signed in with your new passkey.",
  ),
);
onSubmit("sign-in", async (step, form) => {
  const log = logOf(step);
  const started = await bank<Started>("POST", "/api/sign-in", { username: field(form, "username") }, log);
  say(step, "Confirm with your passkey…");
  const { flow } = await bank<{ flow: FlowView }>(
    "POST",
    `/api/flows/${started.flow.id}/passkey`,
    { response: await usePasskey(started.webauthnOptions) },
    log,
  );
  if (flow.state !== "completed") return say(step, `Stopped: ${flow.state}`, "failed");
  await refreshSession();
  say(step, "Signed in with your passkey.", "done");
});
onSubmit("payment", (step, form) => payHere(step, field(form, "payee"), field(form, "amount")));
onSubmit("cross", (step, form) => payOnPhone(step, field(form, "payee"), field(form, "amount")));
onSubmit("recovery", (step, form) =>
  newPasskey(
    step,
    "/api/recovery",
    field(form, "username"),
    "Recovered: this device's passkey is active, your earlier ones are revoked.",
  ),
);
$("#sign-out").addEventListener("click", async () => {
  await bank("POST", "/api/sign-out", {}, document.createElement("div"));
  await refreshSession();
});
void refreshSession();
