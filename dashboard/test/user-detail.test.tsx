// Component test: a user's passkeys named by the kind of authenticator that holds them.
import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryRouter, Route, Routes } from "react-router";
import { DashboardContext, OperatorContext, type Dashboard, type SignedIn } from "../src/context";
import { Grants } from "../src/scopes";
import { UserDetailPage } from "../src/pages/UserDetail";

afterEach(cleanup);

function credential(id: string, aaguid: string | null, authenticator: string | null) {
  return {
    id,
    status: "active",
    status_reason: null,
    aaguid,
    authenticator,
    platform: "ios",
    device_label: "Nora's phone",
    backup_eligible: true,
    backup_state: true,
    verified_registration: null,
    created_at: "2026-12-01T10:00:00Z",
    last_used_at: null,
  };
}

function show(body: unknown) {
  const client = {
    GET: async (path: string) => {
      expect(path).toBe("/api/management/v1/users/{external_user_id}");
      return { data: body, response: new Response(null, { status: 200 }) };
    },
  };
  const dashboard = { api: { client } } as unknown as Dashboard;
  const operator = {
    operator: { sub: "s", scopes: [] },
    grants: new Grants(["management.users.read"]),
  } as SignedIn;
  return render(
    <DashboardContext.Provider value={dashboard}>
      <OperatorContext.Provider value={operator}>
        <MemoryRouter initialEntries={["/users/nora"]}>
          <Routes>
            <Route path="/users/:externalUserId" element={<UserDetailPage />} />
          </Routes>
        </MemoryRouter>
      </OperatorContext.Provider>
    </DashboardContext.Provider>,
  );
}

describe("the user page's passkeys", () => {
  it("names each passkey's authenticator, and says when the metadata does not", async () => {
    show({
      external_user_id: "nora",
      user_id: "7f4c9a3e-0000-4000-8000-000000000001",
      pseudonym: "p",
      created_at: "2026-12-01T10:00:00Z",
      has_biometric_reference: true,
      credentials: [
        credential(
          "7f4c9a3e-0000-4000-8000-00000000000a",
          "fbfc3007-154e-4ecc-8c0b-6e020557d7bd",
          "iCloud Keychain",
        ),
        credential("7f4c9a3e-0000-4000-8000-00000000000b", "00000000-0000-0000-0000-000000000000", null),
      ],
      recent_flows: [],
    });
    expect(await screen.findByText("Authenticator")).toBeTruthy();
    const cells = document.querySelectorAll("td[data-authenticator]");
    expect(cells).toHaveLength(2);
    expect(cells.item(0).textContent).toContain("iCloud Keychain");
    expect(cells.item(0).textContent).toContain("fbfc3007-154e-4ecc-8c0b-6e020557d7bd");
    expect(cells.item(1).textContent).toContain("Unknown");
  });
});
