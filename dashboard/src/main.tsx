import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { createApi } from "./api/client";
import { App } from "./App";
import { Session } from "./auth/session";
import { ConfigError, loadRuntimeConfig } from "./config";
import { DashboardContext } from "./context";
import "./styles.css";

const root = createRoot(document.getElementById("root")!);

loadRuntimeConfig().then(
  (config) => {
    const session = new Session(config, window.location.origin);
    const api = createApi(config.apiBaseUrl, () => session.accessToken);
    root.render(
      <StrictMode>
        <DashboardContext.Provider value={{ config, session, api }}>
          <App />
        </DashboardContext.Provider>
      </StrictMode>,
    );
  },
  (error: unknown) => {
    const problems =
      error instanceof ConfigError ? error.problems : ["/runtime-config.json could not be loaded"];
    root.render(
      <div className="centered">
        <h1>The dashboard cannot start</h1>
        <p>Its configuration from the management runtime is not usable:</p>
        <ul>
          {problems.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
        <p className="muted">
          Check the BIOMETRIC_PASSKEY_MANAGEMENT_AUTH_* and _UI_* settings, then reload.
        </p>
      </div>,
    );
  },
);
