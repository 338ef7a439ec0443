// Example Bank's backend: what a customer's backend does with the Core API.
//
// The bank keeps its own sessions and decides itself what a completed flow lets a person
// do: it signs a session in when the flow it started for that user completes, and it pays
// only when a completed step-up approved exactly the payment it showed (the digests match).
// The Core API key stays here; the page only ever talks to the bank.

import { createHash, randomBytes } from "node:crypto";
import QRCode from "qrcode";
import type { components } from "./core-api.js";
import { type CoreClient, type Flow, ok } from "./core.js";

type Outcome = components["schemas"]["SyntheticOutcome"];
type Purpose = "enrol" | "sign_in" | "payment" | "recovery";

const FLOW_TYPE = {
  enrol: "registration",
  sign_in: "sign_in",
  payment: "step_up",
  recovery: "recovery",
} as const satisfies Record<Purpose, Flow["type"]>;

/** The name a new passkey is shown under in the operators' dashboard; an assertion needs none. */
const NEW_PASSKEY_LABEL: Partial<Record<Purpose, string>> = {
  enrol: "Browser (enrolled)",
  recovery: "Browser (recovered)",
};

/** A browser session of the bank (a cookie names it). */
export interface Session {
  id: string;
  /** The signed-in customer: their bank username, which is the Core API's `external_user_id`. */
  user?: string | undefined;
}

/** A payment as the bank showed it to the customer, and the digest it expects approved. */
interface Payment {
  context: { payee: string; amount: string };
  digest: string;
  paid: boolean;
}

/** What the bank keeps about a flow it started: who it is for and what for. */
interface BankFlow {
  id: string;
  purpose: Purpose;
  user: string;
  /** The sessions that may act on it: the one that started it, and a phone that claimed it. */
  sessions: Set<string>;
  runId: string | null;
  /** The identity capture has exchanged its biometric reference (done once per flow). */
  captured: boolean;
  payment?: Payment;
  /** Builtin mode gives the WebAuthn options once, when the flow is created; the phone of a
   * cross-platform step-up gets them from here after it claimed the flow. */
  webauthnOptions: unknown;
}

/** A refusal of the bank's own, with a stable code. */
export class BankError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** What the page needs to know about a flow. */
export interface FlowView {
  id: string;
  type: Flow["type"];
  state: Flow["state"];
  version: number;
  identity: string;
  possession: string;
  failureReason: string | null;
  handoffClaimed: boolean | null;
}

function view(flow: Flow): FlowView {
  return {
    id: flow.id,
    type: flow.type,
    state: flow.state,
    version: flow.version,
    identity: flow.identity.status,
    possession: flow.possession.status,
    failureReason: flow.failure_reason ?? null,
    handoffClaimed: flow.handoff?.claimed ?? null,
  };
}

/**
 * SHA-256 (hex) of a transaction context as compact JSON with its keys sorted: what the
 * Core API puts in `transaction_context_sha256` and in a completed step-up's `result`.
 */
export function contextDigest(context: Record<string, string>): string {
  const sorted = Object.fromEntries(Object.entries(context).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return createHash("sha256").update(JSON.stringify(sorted)).digest("hex");
}

/** The mobile IDV SDK's encrypted biometric token, made up: the synthetic provider takes any. */
function syntheticBiometricToken(): string {
  return randomBytes(32).toString("base64url");
}

function text(value: unknown, field: string): string {
  if (typeof value !== "string" || value.trim() === "") {
    throw new BankError(400, "invalid_input", `${field} is required.`);
  }
  return value.trim();
}

const OUTCOMES: readonly Outcome[] = ["approved", "declined", "review", "abandoned", "error"];

export class Bank {
  private readonly flows = new Map<string, BankFlow>();

  /** `origin`: where the bank's page is served (the phone's link in the QR code points there). */
  constructor(private readonly origin: string) {}

  /** Step 1: enrol a new customer. The page creates the passkey and runs the capture. */
  enrol(core: CoreClient, session: Session, body: { username?: unknown }) {
    return this.start(core, session, "enrol", body.username);
  }

  /** Step 2: sign in with the passkey. */
  signIn(core: CoreClient, session: Session, body: { username?: unknown }) {
    return this.start(core, session, "sign_in", body.username);
  }

  /** Step 5: recovery on a new device, proved against the reference captured at enrolment. */
  recover(core: CoreClient, session: Session, body: { username?: unknown }) {
    return this.start(core, session, "recovery", body.username);
  }

  private async start(
    core: CoreClient,
    session: Session,
    purpose: Exclude<Purpose, "payment">,
    username: unknown,
  ) {
    const flow = await ok(
      core.POST("/api/core/v1/flows", {
        body: { type: FLOW_TYPE[purpose], external_user_id: text(username, "A username") },
      }),
    );
    this.track(flow, purpose, session);
    return { flow: view(flow), webauthnOptions: flow.possession.webauthn_options };
  }

  /** Steps 3 and 4: a payment approved by step-up, here or (cross-platform) on the phone. */
  async startPayment(
    core: CoreClient,
    session: Session,
    body: { payee?: unknown; amount?: unknown; crossPlatform?: unknown },
  ) {
    const user = this.signedIn(session);
    const amount = text(body.amount, "An amount");
    if (!/^\d{1,7}(\.\d{2})?$/.test(amount)) {
      throw new BankError(400, "invalid_input", "The amount is a number of euros, like 25 or 2500.00.");
    }
    const context = { payee: text(body.payee, "A payee").slice(0, 64), amount: `${amount} EUR` };
    const crossPlatform = body.crossPlatform === true;
    const flow = await ok(
      core.POST("/api/core/v1/flows", {
        body: {
          type: "step_up",
          external_user_id: user,
          transaction_context: context,
          cross_platform: crossPlatform,
        },
      }),
    );
    const tracked = this.track(flow, "payment", session);
    tracked.payment = { context, digest: contextDigest(context), paid: false };
    const payment = {
      context,
      digest: tracked.payment.digest,
      echoedDigest: flow.transaction_context_sha256,
    };
    if (!crossPlatform) {
      return { flow: view(flow), payment, webauthnOptions: flow.possession.webauthn_options };
    }
    // The hand-off code is in this response only: it goes into the QR code, to the phone.
    const phoneUrl = `${this.origin}/phone.html#${encodeURIComponent(flow.handoff?.code ?? "")}`;
    const qrSvg = await QRCode.toString(phoneUrl, { type: "svg", margin: 1 });
    return { flow: view(flow), payment, phoneUrl, qrSvg };
  }

  /** The phone's side of step 4: it claims the flow with the code from the QR code. */
  async claim(core: CoreClient, session: Session, body: { code?: unknown }) {
    const user = this.signedIn(session);
    const flow = await ok(
      core.POST("/api/core/v1/handoffs/claim", {
        body: { code: text(body.code, "A hand-off code"), external_user_id: user },
      }),
    );
    const tracked = this.flows.get(flow.id);
    if (!tracked?.payment) throw new BankError(404, "flow_not_found", "This bank did not start that flow.");
    tracked.sessions.add(session.id);
    tracked.runId = flow.identity.workflow_run_id ?? tracked.runId;
    return { flow: view(flow), payment: tracked.payment, webauthnOptions: tracked.webauthnOptions };
  }

  /** The authenticator's response (`PublicKeyCredential.toJSON()`), verified by the Core API. */
  async submitPasskey(core: CoreClient, session: Session, flowId: string, body: { response?: unknown }) {
    const tracked = this.owned(session, flowId);
    if (typeof body.response !== "object" || body.response === null) {
      throw new BankError(400, "invalid_input", "The authenticator's response is required.");
    }
    const label = NEW_PASSKEY_LABEL[tracked.purpose];
    const flow = await ok(
      core.POST("/api/core/v1/flows/{flow_id}/possession", {
        params: { path: { flow_id: flowId } },
        body: {
          webauthn: {
            response: body.response as Record<string, unknown>,
            ...(label ? { platform: "web", device_label: label } : {}),
          },
        },
      }),
    );
    return { flow: this.settle(session, tracked, flow) };
  }

  /**
   * The identity capture. In production the provider's mobile SDK runs it: it asks the
   * bank's backend for the user's reference ("token requested") in a step-up or recovery,
   * hands over the new one ("token generated") in an enrolment or recovery, and the
   * provider's verdict reaches the Core API by webhook. With the synthetic provider the
   * page's buttons choose the verdict.
   */
  async capture(core: CoreClient, session: Session, flowId: string, body: { outcome?: unknown }) {
    const tracked = this.owned(session, flowId);
    const outcome = OUTCOMES.find((o) => o === body.outcome);
    if (!outcome) throw new BankError(400, "invalid_input", `The outcome is one of ${OUTCOMES.join(", ")}.`);
    if (!tracked.runId) throw new BankError(409, "no_identity_run", "This flow has no identity check.");
    const path = { flow_id: flowId };
    if (!tracked.captured) {
      if (tracked.purpose === "payment" || tracked.purpose === "recovery") {
        await ok(core.POST("/api/core/v1/flows/{flow_id}/biometric-reference/release", { params: { path } }));
      }
      if (tracked.purpose === "enrol" || tracked.purpose === "recovery") {
        await ok(
          core.PUT("/api/core/v1/flows/{flow_id}/biometric-reference", {
            params: { path },
            body: { token: syntheticBiometricToken() },
          }),
        );
      }
      tracked.captured = true;
    }
    await ok(
      core.POST("/api/core/v1/synthetic/runs/{run_id}/outcome", {
        params: { path: { run_id: tracked.runId } },
        body: { outcome },
      }),
    );
    const flow = await ok(core.GET("/api/core/v1/flows/{flow_id}", { params: { path } }));
    return { flow: this.settle(session, tracked, flow) };
  }

  /** Long-polls the flow: answers when its version passes `after`, or after 20 seconds. */
  async wait(core: CoreClient, session: Session, flowId: string, after: number) {
    const tracked = this.owned(session, flowId);
    const flow = await ok(
      core.GET("/api/core/v1/flows/{flow_id}", {
        params: { path: { flow_id: flowId }, query: { after_version: after, wait_seconds: 20 } },
      }),
    );
    return { flow: this.settle(session, tracked, flow) };
  }

  /** Pays, only if a completed step-up of this customer approved exactly this payment. */
  async pay(core: CoreClient, session: Session, flowId: string) {
    const tracked = this.owned(session, flowId);
    const payment = tracked.payment;
    if (!payment) throw new BankError(404, "payment_not_found", "No payment waits on this flow.");
    // One approval pays once.
    if (payment.paid) throw new BankError(409, "payment_already_paid", "This payment was already made.");
    const flow = await ok(
      core.GET("/api/core/v1/flows/{flow_id}", { params: { path: { flow_id: flowId } } }),
    );
    const approved = flow.result?.transaction_context_sha256 ?? null;
    if (flow.state !== "completed" || flow.type !== "step_up" || flow.external_user_id !== tracked.user) {
      throw new BankError(409, "payment_not_approved", `The step-up is ${flow.state}, not completed.`);
    }
    if (approved !== payment.digest) {
      throw new BankError(409, "payment_digest_mismatch", "The approved transaction is not the one shown.");
    }
    payment.paid = true;
    return { paid: true, context: payment.context, shownDigest: payment.digest, approvedDigest: approved };
  }

  /** The signed-in customer's passkeys, as the Core API knows them. */
  async account(core: CoreClient, session: Session) {
    const user = this.signedIn(session);
    const account = await ok(
      core.GET("/api/core/v1/users/{external_user_id}", { params: { path: { external_user_id: user } } }),
    );
    return {
      user,
      hasBiometricReference: account.has_biometric_reference,
      passkeys: account.credentials.map((c) => ({
        device: c.device_label ?? "",
        status: c.status,
        createdAt: c.created_at,
        lastUsedAt: c.last_used_at ?? null,
      })),
    };
  }

  private track(flow: Flow, purpose: Purpose, session: Session): BankFlow {
    const tracked: BankFlow = {
      id: flow.id,
      purpose,
      user: flow.external_user_id,
      sessions: new Set([session.id]),
      runId: flow.identity.workflow_run_id ?? null,
      captured: false,
      webauthnOptions: flow.possession.webauthn_options,
    };
    this.flows.set(flow.id, tracked);
    return tracked;
  }

  private owned(session: Session, flowId: string): BankFlow {
    const tracked = this.flows.get(flowId);
    if (!tracked || !tracked.sessions.has(session.id)) {
      throw new BankError(404, "flow_not_found", "This session started no such flow.");
    }
    return tracked;
  }

  private signedIn(session: Session): string {
    if (!session.user) throw new BankError(401, "sign_in_required", "Sign in first.");
    return session.user;
  }

  /** Signs the session in when an enrolment, sign-in or recovery it started has completed. */
  private settle(session: Session, tracked: BankFlow, flow: Flow): FlowView {
    const ours = flow.type === FLOW_TYPE[tracked.purpose] && flow.external_user_id === tracked.user;
    if (ours && flow.state === "completed" && tracked.purpose !== "payment") {
      session.user = tracked.user;
    }
    return view(flow);
  }
}
