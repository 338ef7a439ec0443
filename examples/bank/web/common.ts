// What both pages share: calling the bank's backend (and showing the Core API calls it
// made), the browser's WebAuthn API, the synthetic identity capture, and long-polling.

/** A Core API call the bank made, as its backend reports it. */
export interface CoreCall {
  method: string;
  path: string;
  status: number;
  request?: unknown;
  response?: unknown;
}

/** A flow as the bank's backend shows it to the page. */
export interface FlowView {
  id: string;
  type: string;
  state: string;
  version: number;
  identity: string;
  possession: string;
  failureReason: string | null;
  handoffClaimed: boolean | null;
}

/** A payment as the bank showed it, with the digest it expects approved and the one the Core API echoed. */
export interface PaymentView {
  context: { payee: string; amount: string };
  digest: string;
  echoedDigest?: string | null;
}

export class BankRefusal extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const $ = <T extends HTMLElement = HTMLElement>(selector: string, root: ParentNode = document): T => {
  const element = root.querySelector<T>(selector);
  if (!element) throw new Error(`no ${selector}`);
  return element;
};

function element(tag: string, className: string, text?: string): HTMLElement {
  const e = document.createElement(tag);
  e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Calls the bank's backend; the Core API calls it made are appended to `log`. */
export async function bank<T>(method: string, path: string, body: unknown, log: HTMLElement): Promise<T> {
  const response = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = (await response.json()) as { calls?: CoreCall[]; error?: { code: string; message: string } };
  for (const call of answer.calls ?? []) log.append(renderCall(call));
  if (answer.error) throw new BankRefusal(answer.error.code, answer.error.message);
  return answer as T;
}

function renderCall(call: CoreCall): HTMLElement {
  const details = element("details", "call");
  const summary = element("summary", call.status < 300 ? "ok" : "refused");
  summary.append(
    element("span", "method", call.method),
    element("span", "path", call.path),
    element("span", "http-status", String(call.status)),
  );
  details.append(summary);
  if (call.request !== undefined)
    details.append(element("pre", "request", JSON.stringify(call.request, null, 2)));
  if (call.response !== undefined)
    details.append(element("pre", "response", JSON.stringify(call.response, null, 2)));
  return details;
}

/** Shows what a step is doing, or why it stopped. */
export function say(step: HTMLElement, message: string, kind: "info" | "done" | "failed" = "info") {
  const status = $(".status", step);
  status.textContent = message;
  status.dataset.kind = kind;
}

export const TERMINAL = ["completed", "failed", "expired", "cancelled"];

/** Long-polls the flow through the bank until it ends; `onChange` sees every new version. */
export async function untilEnded(
  flow: FlowView,
  log: HTMLElement,
  onChange: (flow: FlowView) => void = () => {},
): Promise<FlowView> {
  while (!TERMINAL.includes(flow.state)) {
    ({ flow } = await bank<{ flow: FlowView }>(
      "GET",
      `/api/flows/${flow.id}/wait?after=${flow.version}`,
      undefined,
      log,
    ));
    onChange(flow);
  }
  return flow;
}

/** `navigator.credentials.create` with the options the Core API gave, as JSON for the Core API. */
export async function createPasskey(options: unknown): Promise<unknown> {
  const credential = await navigator.credentials.create({
    publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(
      options as PublicKeyCredentialCreationOptionsJSON,
    ),
  });
  return (credential as PublicKeyCredential).toJSON();
}

/** `navigator.credentials.get` with the options the Core API gave, as JSON for the Core API. */
export async function usePasskey(options: unknown): Promise<unknown> {
  const credential = await navigator.credentials.get({
    publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(
      options as PublicKeyCredentialRequestOptionsJSON,
    ),
  });
  return (credential as PublicKeyCredential).toJSON();
}

/**
 * The identity capture, which the IDV provider's mobile SDK runs in production. The synthetic
 * provider's buttons choose its verdict instead; a review is then decided by a reviewer.
 * Resolves with the flow once a verdict other than "review" was given.
 */
export function capture(step: HTMLElement, flow: FlowView, log: HTMLElement): Promise<FlowView> {
  const panel = $(".capture", step);
  panel.hidden = false;
  const show = (title: string, buttons: [string, string][]) => {
    panel.replaceChildren(element("h3", "", title));
    for (const [outcome, label] of buttons) {
      const button = element("button", `outcome-${outcome}`, label) as HTMLButtonElement;
      button.type = "button";
      button.dataset.outcome = outcome;
      panel.append(button);
    }
  };
  show("Identity check (synthetic provider, in place of the mobile SDK's face capture)", [
    ["approved", "Approve"],
    ["declined", "Decline"],
    ["review", "Send to review"],
  ]);
  return new Promise((resolve, reject) => {
    panel.onclick = async (event) => {
      const outcome = (event.target as HTMLElement).dataset.outcome;
      if (!outcome) return;
      panel.querySelectorAll("button").forEach((b) => (b.disabled = true));
      try {
        const answer = await bank<{ flow: FlowView }>(
          "POST",
          `/api/flows/${flow.id}/capture`,
          { outcome },
          log,
        );
        if (answer.flow.state === "in_review") {
          say(step, "The provider's staff are reviewing the capture.");
          show("Manual review at the provider", [
            ["approved", "Reviewer approves"],
            ["declined", "Reviewer declines"],
          ]);
          return;
        }
        panel.hidden = true;
        panel.onclick = null;
        resolve(answer.flow);
      } catch (e) {
        panel.hidden = true;
        reject(e);
      }
    };
  });
}

/** A step-up on this device: the passkey's assertion, then the identity capture, then the flow's end. */
export async function approveStepUp(step: HTMLElement, flowId: string, options: unknown, log: HTMLElement) {
  say(step, "Confirm with your passkey…");
  const { flow } = await bank<{ flow: FlowView }>(
    "POST",
    `/api/flows/${flowId}/passkey`,
    { response: await usePasskey(options) },
    log,
  );
  say(step, "Passkey verified. Now the identity check.");
  return untilEnded(await capture(step, flow, log), log);
}

/** Shows a payment's context and both digests. */
export function showPayment(step: HTMLElement, payment: PaymentView) {
  const box = $(".payment", step);
  box.hidden = false;
  const rows: [string, string][] = [
    ["Payee", payment.context.payee],
    ["Amount", payment.context.amount],
    ["SHA-256 of what the bank shows", payment.digest],
  ];
  if (payment.echoedDigest) rows.push(["transaction_context_sha256 (Core API)", payment.echoedDigest]);
  box.replaceChildren(
    ...rows.map(([label, value]) => {
      const row = element("div", "row");
      row.append(element("span", "label", label), element("code", "value", value));
      return row;
    }),
  );
}

/** Runs a step's action, saying why it stopped if it did. */
export async function run(step: HTMLElement, action: () => Promise<void>) {
  step.querySelectorAll("button").forEach((b) => (b.disabled = true));
  try {
    await action();
  } catch (e) {
    const message = e instanceof BankRefusal ? `${e.code}: ${e.message}` : String(e);
    say(step, message, "failed");
  } finally {
    step.querySelectorAll("form button").forEach((b) => ((b as HTMLButtonElement).disabled = false));
  }
}
