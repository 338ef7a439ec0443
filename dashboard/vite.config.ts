import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// The management runtime serves `dist/` at the root of its origin: hashed files
// under /assets/ (cached for a year), index.html for every page (never cached).
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "dist",
    assetsDir: "assets",
    // No inline scripts or styles: the runtime's Content-Security-Policy forbids them.
    assetsInlineLimit: 0,
    sourcemap: false,
  },
  test: {
    environment: "jsdom",
    include: ["test/**/*.test.ts", "test/**/*.test.tsx"],
  },
});
