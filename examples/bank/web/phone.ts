// The phone's side of a cross-platform step-up. In production this is the bank's mobile app,
// signed in as the customer, scanning the QR code; here it is a second tab of the browser.

import { $, approveStepUp, bank, type FlowView, type PaymentView, run, say, showPayment } from "./common.js";

const step = $("#phone");
const log = $(".calls", step);
const code = decodeURIComponent(location.hash.slice(1));

$("form", step).addEventListener("submit", (event) => {
  event.preventDefault();
  void run(step, async () => {
    const claimed = await bank<{ flow: FlowView; payment: PaymentView; webauthnOptions: unknown }>(
      "POST",
      "/api/handoffs/claim",
      { code },
      log,
    );
    showPayment(step, claimed.payment);
    const flow = await approveStepUp(step, claimed.flow.id, claimed.webauthnOptions, log);
    if (flow.state !== "completed")
      return say(step, `Not approved: ${flow.failureReason ?? flow.state}`, "failed");
    say(step, "Approved. Go back to your computer.", "done");
    $("form", step).hidden = true;
  });
});

const { user } = await bank<{ user: string | null }>(
  "GET",
  "/api/session",
  undefined,
  document.createElement("div"),
);
$("#who").textContent = user ? `Signed in as ${user}` : "Not signed in: sign in on this device first";
if (!code) say(step, "Open this page from the QR code of a payment.", "failed");
