// The Core API client. Its types are generated from docs/openapi/core-v1.json into
// src/core-api.d.ts (`npm run generate`), so no request or response shape is written here.
//
// Every call is recorded (method, path, status, bodies) so the page can show what each
// step asked of the Core API. The API key is sent, never recorded.

import createClient from "openapi-fetch";
import type { components, paths } from "./core-api.js";

export type Flow = components["schemas"]["FlowResponse"];
export type User = components["schemas"]["UserResponse"];
export type ErrorBody = components["schemas"]["ErrorBody"];

/** One Core API call, as the page shows it. */
export interface CoreCall {
  method: string;
  path: string;
  status: number;
  request?: unknown;
  response?: unknown;
}

/** A refusal from the Core API: its status and its stable error code. */
export class CoreApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "CoreApiError";
  }
}

export interface CoreSettings {
  baseUrl: string;
  /** The Core API key (`Authorization: Bearer`); `dev` needs none. Kept on the server only. */
  apiKey?: string | undefined;
}

/** A client that records its calls into `calls`; one per request the bank serves. */
export function coreClient(settings: CoreSettings, calls: CoreCall[]) {
  const client = createClient<paths>({ baseUrl: settings.baseUrl });
  const sent = new Map<string, unknown>();
  client.use({
    async onRequest({ request, id }) {
      if (settings.apiKey) request.headers.set("Authorization", `Bearer ${settings.apiKey}`);
      const body = request.body ? await request.clone().text() : "";
      sent.set(id, body ? JSON.parse(body) : undefined);
      return request;
    },
    async onResponse({ request, response, id }) {
      const text = await response.clone().text();
      const url = new URL(request.url);
      calls.push({
        method: request.method,
        path: url.pathname + url.search,
        status: response.status,
        request: sent.get(id),
        response: text ? JSON.parse(text) : undefined,
      });
      sent.delete(id);
    },
  });
  return client;
}

export type CoreClient = ReturnType<typeof coreClient>;

/** The data of a successful call, or a `CoreApiError` with the Core API's error code. */
export async function ok<T>(
  result: Promise<{ data?: T; error?: ErrorBody; response: Response }>,
): Promise<T> {
  const { data, error, response } = await result;
  if (response.ok && data !== undefined) return data;
  throw new CoreApiError(
    response.status,
    error?.error.code ?? `http_${response.status}`,
    error?.error.message ?? `The Core API answered ${response.status}.`,
  );
}
