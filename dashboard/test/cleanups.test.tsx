// Component test: the provider clean-up queue as support sees it, dead items called out.
import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryRouter } from "react-router";
import { DashboardContext, type Dashboard } from "../src/context";
import { CleanupsPage } from "../src/pages/Cleanups";

afterEach(cleanup);

function answering(body: unknown) {
  const client = {
    GET: async (path: string) => {
      expect(path).toBe("/api/management/v1/provider-cleanups");
      return { data: body, response: new Response(null, { status: 200 }) };
    },
  };
  return { api: { client } } as unknown as Dashboard;
}

function show(dashboard: Dashboard) {
  return render(
    <DashboardContext.Provider value={dashboard}>
      <MemoryRouter>
        <CleanupsPage />
      </MemoryRouter>
    </DashboardContext.Provider>,
  );
}

describe("the provider clean-ups page", () => {
  it("calls out dead items and what to do about them", async () => {
    show(
      answering({
        items: [
          {
            user_id: "7f4c9a3e-0000-4000-8000-000000000001",
            requested_at: "2026-12-01T10:00:00Z",
            attempts: 10,
            last_attempt_at: "2026-12-03T10:00:00Z",
            next_attempt_at: null,
            dead: true,
            dead_at: "2026-12-03T10:00:00Z",
          },
          {
            user_id: "7f4c9a3e-0000-4000-8000-000000000002",
            requested_at: "2026-12-06T10:00:00Z",
            attempts: 1,
            last_attempt_at: "2026-12-06T10:00:05Z",
            next_attempt_at: "2026-12-06T10:01:05Z",
            dead: false,
            dead_at: null,
          },
        ],
      }),
    );
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toContain("One clean-up is dead");
    const rows = document.querySelectorAll("tr[data-cleanup]");
    expect(rows).toHaveLength(2);
    expect(rows.item(0).getAttribute("data-dead")).toBe("true");
    expect(rows.item(0).textContent).toContain("dead since");
    expect(rows.item(1).textContent).toContain("retrying");
  });

  it("says so when nothing is queued", async () => {
    show(answering({ items: [] }));
    expect(await screen.findByText(/Nothing is queued/)).toBeTruthy();
    expect(screen.queryByRole("alert")).toBeNull();
  });
});
