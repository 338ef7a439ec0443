// Starts `biometric-passkey dev --possession builtin` for the bank: the Core API and the
// management runtime on free loopback ports, the synthetic IDV provider, and the built-in
// relying party for passkeys made on the bank's page.

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";

export interface DevRuntime {
  coreUrl: string;
  managementUrl: string;
  stop(): Promise<void>;
}

/** The binary: BIOMETRIC_PASSKEY_BIN, else the repository's own build, else `biometric-passkey` on PATH. */
export function findBinary(repoRoot: string): string {
  if (process.env.BIOMETRIC_PASSKEY_BIN) return process.env.BIOMETRIC_PASSKEY_BIN;
  for (const profile of ["release", "debug"]) {
    const built = path.join(repoRoot, "target", profile, "biometric-passkey");
    if (existsSync(built)) return built;
  }
  return "biometric-passkey";
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function startDev(options: {
  binary: string;
  dataDir: string;
  origin: string;
}): Promise<DevRuntime> {
  const [corePort, managementPort] = [await freePort(), await freePort()];
  const args = [
    "dev",
    "--possession",
    "builtin",
    "--rp-id",
    "localhost",
    "--origin",
    options.origin,
    "--data-dir",
    options.dataDir,
    "--core-port",
    String(corePort),
    "--management-port",
    String(managementPort),
    "--metrics-port",
    "0",
  ];
  const child = spawn(options.binary, args, {
    // `dev` takes its settings from its flags; of the environment it gets only what it needs.
    env: {
      PATH: process.env.PATH,
      BIOMETRIC_PASSKEY_LOG_LEVEL: process.env.BIOMETRIC_PASSKEY_LOG_LEVEL ?? "warn",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const coreUrl = `http://127.0.0.1:${corePort}`;
  await waitReady(coreUrl, child, options.binary);
  return {
    coreUrl,
    managementUrl: `http://127.0.0.1:${managementPort}`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

async function waitReady(coreUrl: string, child: ChildProcess, binary: string) {
  let failure: Error | undefined;
  child.once("error", (e) => (failure = new Error(`could not start ${binary}: ${e.message}`)));
  for (let i = 0; i < 300; i++) {
    if (failure) throw failure;
    if (child.exitCode !== null) throw new Error(`${binary} dev exited with ${child.exitCode}`);
    const ready = await fetch(`${coreUrl}/api/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${binary} dev did not become ready at ${coreUrl}`);
}
