import type { ReactNode } from "react";
import { ApiError, SessionEnded } from "../api/client";
import { useDashboard } from "../context";
import { AccessDenied } from "./RequireScope";

export function Loading({ what }: { what: string }) {
  return (
    <p className="notice loading" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="notice empty">{children}</p>;
}

/** An error as an operator needs to read it: what happened and what to do. */
export function ErrorNotice({ error, retry }: { error: unknown; retry?: () => void }) {
  const { session } = useDashboard();
  if (error instanceof SessionEnded) {
    return (
      <div className="notice error" role="alert">
        <strong>Your session has ended.</strong>
        <button
          type="button"
          onClick={() => {
            void session.forget().then(() => session.signIn(currentPath()));
          }}
        >
          Sign in again
        </button>
      </div>
    );
  }
  if (error instanceof ApiError && error.status === 403) {
    return <AccessDenied scope={error.missingScope} message={error.message} />;
  }
  const message =
    error instanceof ApiError
      ? error.status === 404
        ? "Not found. It may have been deleted."
        : error.status === 503 || error.status === 0
          ? `${error.message} Try again in a moment.`
          : error.message
      : error instanceof Error
        ? error.message
        : "Something went wrong.";
  return (
    <div className="notice error" role="alert">
      <strong>{message}</strong>
      {error instanceof ApiError && error.correlationId ? (
        <span className="muted"> Correlation id: {error.correlationId}</span>
      ) : null}
      {retry ? (
        <button type="button" onClick={retry}>
          Try again
        </button>
      ) : null}
    </div>
  );
}

export function currentPath(): string {
  return window.location.pathname + window.location.search;
}

export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge badge-${status}`}>{status.replace(/_/g, " ")}</span>;
}
