// Starts the bank as `npm start` does (node dist/main.js), and `biometric-passkey core`, on free ports.

import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { findBinary, freePort } from "../dist/dev.js";

export const exampleRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const binary = findBinary(path.resolve(exampleRoot, "../.."));

/** Runs `command` with PATH and `env` until `ready()` holds; `stop()` ends it. */
async function run(command, args, env, ready) {
  let output = "";
  const child = spawn(command, args, {
    env: { PATH: process.env.PATH, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  for (let i = 0; !(await ready(output)); i++) {
    if (child.exitCode !== null || i > 600) throw new Error(`${command} did not start:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    output: () => output,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", resolve);
        child.kill("SIGTERM");
      }),
  };
}

/** The bank with `env` (BANK_PORT is chosen here); `origin` is where its page is. */
export async function startBank(env) {
  const port = await freePort();
  const bank = await run(
    process.execPath,
    [path.join(exampleRoot, "dist/main.js")],
    { BIOMETRIC_PASSKEY_BIN: binary, ...env, BANK_PORT: String(port) },
    async (output) => output.includes("Example Bank:"),
  );
  return { ...bank, origin: `http://localhost:${port}` };
}

/** `biometric-passkey core` with `env`, on a free port, once it is ready. */
export async function startCore(env) {
  const url = `http://127.0.0.1:${await freePort()}`;
  const core = await run(
    binary,
    ["core"],
    {
      BIOMETRIC_PASSKEY_LOG_LEVEL: "warn",
      BIOMETRIC_PASSKEY_METRICS_PORT: "0",
      ...env,
      PORT: new URL(url).port,
    },
    () =>
      fetch(`${url}/api/ready`).then(
        (r) => r.ok,
        () => false,
      ),
  );
  return { ...core, url };
}
