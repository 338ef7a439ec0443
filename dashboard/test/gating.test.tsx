// Component tests: what an operator sees for what their scopes allow.
import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryRouter, Route, Routes } from "react-router";
import { ApiError } from "../src/api/client";
import { ErrorNotice } from "../src/components/Notice";
import { RequireScope } from "../src/components/RequireScope";
import { DashboardContext, OperatorContext, type Dashboard } from "../src/context";
import { Grants, Scope } from "../src/scopes";

afterEach(cleanup);

const dashboard = {} as Dashboard; // ErrorNotice reads the session only for a 401.

function signedInAs(scopes: string[], ui: React.ReactNode, path = "/") {
  return render(
    <DashboardContext.Provider value={dashboard}>
      <OperatorContext.Provider value={{ operator: { sub: "op", scopes }, grants: new Grants(scopes) }}>
        <MemoryRouter initialEntries={[path]}>{ui}</MemoryRouter>
      </OperatorContext.Provider>
    </DashboardContext.Provider>,
  );
}

describe("a section behind a scope", () => {
  const routes = (
    <Routes>
      <Route element={<RequireScope scope={Scope.AuditRead} />}>
        <Route path="/audit" element={<p>the audit log</p>} />
      </Route>
    </Routes>
  );

  it("opens with the scope", () => {
    signedInAs([Scope.AuditRead], routes, "/audit");
    expect(screen.getByText("the audit log")).toBeTruthy();
    expect(screen.queryByRole("alert")).toBeNull();
  });

  it("says access denied and names the missing scope without it", () => {
    signedInAs([Scope.UsersRead], routes, "/audit");
    expect(screen.queryByText("the audit log")).toBeNull();
    const alert = screen.getByRole("alert");
    expect(alert.textContent).toContain("Access denied.");
    expect(alert.textContent).toContain("management.audit.read");
  });
});

describe("a 403 from the Management API", () => {
  it("is shown as a plain access denied naming the scope the API reported", () => {
    const refusal = new ApiError(403, "missing_scope", "this needs the scope management.credentials.revoke");
    signedInAs([], <ErrorNotice error={refusal} />);
    const alert = screen.getByRole("alert");
    expect(alert.textContent).toContain("Access denied.");
    expect(alert.querySelector("code")?.textContent).toBe("management.credentials.revoke");
  });

  it("falls back to the API's message when it names no scope", () => {
    signedInAs([], <ErrorNotice error={new ApiError(403, "forbidden", "not for you")} />);
    expect(screen.getByRole("alert").textContent).toContain("not for you");
  });

  it("is told apart from other failures, which offer a retry", () => {
    signedInAs(
      [],
      <ErrorNotice
        error={new ApiError(503, "service_unavailable", "The database is unavailable.")}
        retry={() => {}}
      />,
    );
    expect(screen.getByRole("alert").textContent).not.toContain("Access denied");
    expect(screen.getByRole("button", { name: "Try again" })).toBeTruthy();
  });
});
