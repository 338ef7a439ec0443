// `npm start`: Example Bank on http://localhost:8080 (BANK_PORT), against the Core API of a
// `biometric-passkey dev --possession builtin` it starts itself, or against CORE_API_URL
// (with CORE_API_KEY) when that is set.

import path from "node:path";
import { fileURLToPath } from "node:url";
import { findBinary, startDev } from "./dev.js";
import { createServer } from "./server.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const exampleRoot = path.resolve(here, "..");
const port = Number(process.env.BANK_PORT ?? 8080);
// Passkeys belong to a relying party id: `localhost` here, so the page is opened as localhost.
const origin = `http://localhost:${port}`;

const dev = process.env.CORE_API_URL
  ? undefined
  : await startDev({
      binary: findBinary(path.resolve(exampleRoot, "../..")),
      dataDir: process.env.BANK_DATA_DIR ?? path.join(exampleRoot, ".dev-data"),
      origin,
    });
const core = { baseUrl: process.env.CORE_API_URL ?? dev!.coreUrl, apiKey: process.env.CORE_API_KEY };

const server = createServer({
  core,
  origin,
  staticDirs: [path.join(exampleRoot, "web"), path.join(exampleRoot, "dist", "web")],
});
server.listen(port, "127.0.0.1", () => {
  console.log(`Example Bank:        ${origin}/`);
  console.log(`Core API:            ${core.baseUrl}${dev ? " (biometric-passkey dev)" : ""}`);
  if (dev) console.log(`Operators' dashboard: ${dev.managementUrl}/`);
  console.log("Stop with Ctrl-C.");
});

async function stop() {
  server.closeAllConnections();
  server.close();
  await dev?.stop();
  process.exit(0);
}
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
