// What an operator may do follows from their scopes, which the Management API
// reports at GET /api/management/v1/me (prefix already stripped). The dashboard
// hides what is not allowed; the API enforces it regardless.

export const Scope = {
  UsersRead: "management.users.read",
  UsersDelete: "management.users.delete",
  CredentialsRead: "management.credentials.read",
  CredentialsSuspend: "management.credentials.suspend",
  CredentialsActivate: "management.credentials.activate",
  CredentialsRevoke: "management.credentials.revoke",
  FlowsRead: "management.flows.read",
  AuditRead: "management.audit.read",
} as const;

export type Scope = (typeof Scope)[keyof typeof Scope];

export type CredentialAction = "suspend" | "activate" | "revoke";

export const ACTION_SCOPE: Record<CredentialAction, Scope> = {
  suspend: Scope.CredentialsSuspend,
  activate: Scope.CredentialsActivate,
  revoke: Scope.CredentialsRevoke,
};

/** The transitions the lifecycle allows from each credential status. */
const TRANSITIONS: Record<string, CredentialAction[]> = {
  active: ["suspend", "revoke"],
  suspended: ["activate", "revoke"],
  revoked: [],
};

export class Grants {
  private readonly scopes: ReadonlySet<string>;

  constructor(scopes: Iterable<string>) {
    this.scopes = new Set(scopes);
  }

  has(scope: Scope): boolean {
    return this.scopes.has(scope);
  }

  /** The actions to offer on a credential in `status`: allowed by both the lifecycle and the scopes. */
  credentialActions(status: string): CredentialAction[] {
    return (TRANSITIONS[status] ?? []).filter((action) => this.has(ACTION_SCOPE[action]));
  }

  /** The navigation entries this operator can use. */
  sections(): { path: string; label: string }[] {
    const sections = [];
    if (this.has(Scope.UsersRead)) sections.push({ path: "/users", label: "Users" });
    if (this.has(Scope.FlowsRead)) sections.push({ path: "/flows", label: "Flows" });
    if (this.has(Scope.AuditRead)) sections.push({ path: "/audit", label: "Audit log" });
    if (this.has(Scope.UsersRead)) sections.push({ path: "/cleanups", label: "Provider clean-ups" });
    // The overview opens for anyone with a section; without the audit scope
    // it says why it shows nothing.
    if (sections.length > 0) sections.unshift({ path: "/overview", label: "Overview" });
    return sections;
  }

  /** Where a signed-in operator lands. */
  home(): string {
    return this.sections()[0]?.path ?? "/no-access";
  }
}
