import { describe, expect, it } from "vitest";
import { safeReturnPath } from "../src/auth/session";
import { Grants, Scope } from "../src/scopes";

const all = Object.values(Scope);

describe("scope gating", () => {
  it("offers the lifecycle's transitions only when the scope allows them", () => {
    const everything = new Grants(all);
    expect(everything.credentialActions("active")).toEqual(["suspend", "revoke"]);
    expect(everything.credentialActions("suspended")).toEqual(["activate", "revoke"]);
    expect(everything.credentialActions("revoked")).toEqual([]);
    expect(everything.credentialActions("unknown")).toEqual([]);

    const noRevoke = new Grants(all.filter((s) => s !== Scope.CredentialsRevoke));
    expect(noRevoke.credentialActions("active")).toEqual(["suspend"]);
    expect(noRevoke.credentialActions("suspended")).toEqual(["activate"]);

    expect(new Grants([Scope.UsersRead]).credentialActions("active")).toEqual([]);
  });

  it("shows only the sections the operator can open, and lands on the overview", () => {
    expect(new Grants(all).sections().map((s) => s.label)).toEqual([
      "Overview",
      "Users",
      "Flows",
      "Audit log",
      "Provider clean-ups",
    ]);
    const auditor = new Grants([Scope.AuditRead]);
    expect(auditor.sections().map((s) => s.path)).toEqual(["/overview", "/audit"]);
    expect(auditor.home()).toBe("/overview");
    expect(new Grants(["openid"]).home()).toBe("/no-access");
  });

  it("knows scopes by their exact canonical names", () => {
    const grants = new Grants(["management.users.read.extra", "MANAGEMENT.USERS.READ"]);
    expect(grants.has(Scope.UsersRead)).toBe(false);
  });
});

describe("the page to return to after sign-in", () => {
  it("is a path on this origin, never elsewhere", () => {
    expect(safeReturnPath("/users/u-1?x=1")).toBe("/users/u-1?x=1");
    expect(safeReturnPath("https://evil.example/")).toBe("/");
    expect(safeReturnPath("//evil.example/")).toBe("/");
    expect(safeReturnPath("/\\evil.example")).toBe("/");
    expect(safeReturnPath("/auth/callback?code=x")).toBe("/");
  });
});
