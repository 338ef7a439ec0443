// `npm run e2e`: the browser tests, one file at a time (the dashboard's, and the
// built-in relying party's against Chromium's virtual authenticator).
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const result = spawnSync(
  process.execPath,
  [
    "--test",
    "--test-concurrency=1",
    "--test-reporter=spec",
    path.join(here, "dashboard.e2e.mjs"),
    path.join(here, "builtin-passkeys.e2e.mjs"),
  ],
  { stdio: "inherit" },
);
process.exit(result.status ?? 1);
