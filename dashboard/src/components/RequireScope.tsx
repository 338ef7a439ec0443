import { Outlet } from "react-router";
import { useOperator } from "../context";
import type { Scope } from "../scopes";

/** A section of the dashboard that needs `scope`: without it, a plain access-denied naming it. */
export function RequireScope({ scope }: { scope: Scope }) {
  const { grants } = useOperator();
  if (grants.has(scope)) return <Outlet />;
  return (
    <section>
      <AccessDenied scope={scope} />
    </section>
  );
}

export function AccessDenied({ scope, message }: { scope?: string; message?: string }) {
  return (
    <div className="notice denied" role="alert">
      <strong>Access denied.</strong>{" "}
      {scope ? (
        <>
          This needs the scope <code>{scope}</code>, which your sign-in does not carry. Ask your administrator
          if you need it.
        </>
      ) : (
        message
      )}
    </div>
  );
}
