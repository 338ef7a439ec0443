// The typed Management API client. Types come from docs/openapi/management-v1.json
// (generated into schema.d.ts by `npm run generate`), so they are never written twice.

import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type UserDetail = Schemas["UserDetail"];
export type UserListItem = Schemas["UserListItem"];
export type CredentialSummary = Schemas["CredentialSummary"];
export type FlowSummary = Schemas["FlowSummary"];
export type FlowDetail = Schemas["FlowDetail"];
export type AuditEvent = Schemas["AuditEventResponse"];
export type Operator = Schemas["OperatorResponse"];

/** A Management API refusal, with the API's stable error code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly correlationId?: string,
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** The scope a 403 names (the API's message says which one was missing). */
  get missingScope(): string | undefined {
    if (this.status !== 403) return undefined;
    return /management\.[a-z]+\.[a-z]+/.exec(this.message)?.[0];
  }
}

/** Thrown when the token is missing, expired or refused: the operator must sign in again. */
export class SessionEnded extends Error {
  constructor() {
    super("Your session has ended. Sign in again.");
    this.name = "SessionEnded";
  }
}

type ErrorBody = { error?: { code?: string; message?: string; correlation_id?: string } };

export async function errorFrom(response: Response, body?: unknown): Promise<Error> {
  if (response.status === 401) return new SessionEnded();
  let parsed = body as ErrorBody | undefined;
  if (parsed === undefined) {
    try {
      parsed = (await response.json()) as ErrorBody;
    } catch {
      parsed = undefined;
    }
  }
  const error = parsed?.error;
  return new ApiError(
    response.status,
    error?.code ?? "http_" + response.status,
    error?.message ?? `The Management API answered ${response.status}.`,
    error?.correlation_id,
  );
}

export type Api = ReturnType<typeof createApi>;

/** A client whose every request carries the operator's current access token. */
export function createApi(baseUrl: string, token: () => string | undefined) {
  const client = createClient<paths>({ baseUrl });
  const auth: Middleware = {
    onRequest({ request }) {
      const current = token();
      if (current) request.headers.set("Authorization", `Bearer ${current}`);
      return request;
    },
  };
  client.use(auth);
  return { client, baseUrl, token };
}

/** Unwraps an openapi-fetch result: the data, or a typed error. */
export async function data<T>(
  result: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  let outcome: { data?: T; error?: unknown; response: Response };
  try {
    outcome = await result;
  } catch {
    throw new ApiError(0, "network_error", "The management runtime could not be reached.");
  }
  if (outcome.response.ok) return outcome.data as T;
  throw await errorFrom(outcome.response, outcome.error);
}
