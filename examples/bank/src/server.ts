// The bank's HTTP server (node:http): its JSON routes for the page, and the page's files.
// Every JSON answer carries `calls`, the Core API calls the request made, for the page to show.

import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { Bank, BankError, type Session } from "./bank.js";
import { type CoreCall, CoreApiError, type CoreClient, type CoreSettings, coreClient } from "./core.js";

type Body = Record<string, unknown>;
type Handler = (
  core: CoreClient,
  session: Session,
  body: Body,
  params: string[],
  query: URLSearchParams,
) => Promise<object>;

const STATIC: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
};

export interface ServerOptions {
  core: CoreSettings;
  /** The page's origin, `http://localhost:PORT`: passkeys are made for `localhost`. */
  origin: string;
  /** Folders the page's files are served from, first match wins. */
  staticDirs: string[];
}

export function createServer(options: ServerOptions): http.Server {
  const bank = new Bank(options.origin);
  const sessions = new Map<string, Session>();

  const routes: [string, RegExp, Handler][] = [
    ["GET", /^\/api\/session$/, async (_core, session) => ({ user: session.user ?? null })],
    [
      "POST",
      /^\/api\/sign-out$/,
      async (_core, session) => {
        session.user = undefined;
        return { user: null };
      },
    ],
    ["POST", /^\/api\/enrol$/, (core, session, body) => bank.enrol(core, session, body)],
    ["POST", /^\/api\/sign-in$/, (core, session, body) => bank.signIn(core, session, body)],
    ["POST", /^\/api\/recovery$/, (core, session, body) => bank.recover(core, session, body)],
    ["POST", /^\/api\/payments$/, (core, session, body) => bank.startPayment(core, session, body)],
    ["POST", /^\/api\/handoffs\/claim$/, (core, session, body) => bank.claim(core, session, body)],
    ["GET", /^\/api\/account$/, (core, session) => bank.account(core, session)],
    [
      "POST",
      /^\/api\/flows\/([\w-]+)\/passkey$/,
      (core, s, body, [id]) => bank.submitPasskey(core, s, id!, body),
    ],
    ["POST", /^\/api\/flows\/([\w-]+)\/capture$/, (core, s, body, [id]) => bank.capture(core, s, id!, body)],
    ["POST", /^\/api\/flows\/([\w-]+)\/pay$/, (core, s, _body, [id]) => bank.pay(core, s, id!)],
    [
      "GET",
      /^\/api\/flows\/([\w-]+)\/wait$/,
      (core, s, _body, [id], query) => bank.wait(core, s, id!, Number(query.get("after") ?? 0)),
    ],
  ];

  function sessionOf(req: http.IncomingMessage, res: http.ServerResponse): Session {
    const id = /(?:^|;\s*)bank_session=([\w-]+)/.exec(req.headers.cookie ?? "")?.[1];
    const existing = id ? sessions.get(id) : undefined;
    if (existing) return existing;
    const session: Session = { id: randomUUID() };
    sessions.set(session.id, session);
    res.setHeader("Set-Cookie", `bank_session=${session.id}; Path=/; HttpOnly; SameSite=Strict`);
    return session;
  }

  async function serveApi(req: http.IncomingMessage, res: http.ServerResponse, url: URL) {
    const route = routes.find(([method, pattern]) => method === req.method && pattern.test(url.pathname));
    if (!route) return json(res, 404, { error: { code: "not_found", message: "No such route." }, calls: [] });
    const [, pattern, handler] = route;
    const params = pattern.exec(url.pathname)!.slice(1);
    const calls: CoreCall[] = [];
    try {
      const session = sessionOf(req, res);
      const body = req.method === "POST" ? await readJson(req) : {};
      const answer = await handler(coreClient(options.core, calls), session, body, params, url.searchParams);
      json(res, 200, { ...answer, calls });
    } catch (e) {
      // The Core API's refusals of what the customer sent go back to the page as they are;
      // anything else (its 401 refuses the bank's own key) is the bank's or the Core API's failure.
      const refusal = e instanceof CoreApiError && e.status < 500 && e.status !== 401;
      const status = e instanceof BankError || refusal ? e.status : 502;
      const code = e instanceof BankError || e instanceof CoreApiError ? e.code : "bank_error";
      if (status >= 500) console.error(e);
      json(res, status, { error: { code, message: e instanceof Error ? e.message : String(e) }, calls });
    }
  }

  async function serveFile(res: http.ServerResponse, pathname: string) {
    const name = pathname === "/" ? "index.html" : path.normalize(pathname).replace(/^[/\\]+/, "");
    const type = STATIC[path.extname(name)];
    if (type && !name.startsWith("..")) {
      for (const dir of options.staticDirs) {
        const contents = await readFile(path.join(dir, name)).catch(() => null);
        if (contents) {
          res.writeHead(200, { "content-type": type, "cache-control": "no-store" });
          return res.end(contents);
        }
      }
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("Not found");
  }

  return http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", options.origin);
    const done = url.pathname.startsWith("/api/") ? serveApi(req, res, url) : serveFile(res, url.pathname);
    done.catch((e) => {
      console.error(e);
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
}

function json(res: http.ServerResponse, status: number, body: object) {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify(body));
}

async function readJson(req: http.IncomingMessage): Promise<Body> {
  let text = "";
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 64 * 1024) throw new BankError(413, "payload_too_large", "The body is too large.");
  }
  if (!text) return {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) return parsed as Body;
  } catch {
    // refused below
  }
  throw new BankError(400, "invalid_input", "The body is not a JSON object.");
}
