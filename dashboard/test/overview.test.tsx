// Component test: the overview support and fraud teams land on, drawn from the
// aggregate route, and what an operator without the audit scope sees.
import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryRouter } from "react-router";
import { DashboardContext, OperatorContext, type Dashboard } from "../src/context";
import { OverviewPage, charts } from "../src/pages/Overview";
import { Grants, Scope } from "../src/scopes";

afterEach(cleanup);

const NOW = new Date("2026-12-06T10:20:00Z");

const ANSWER = {
  from: "2026-12-05T11:00:00Z",
  to: "2026-12-06T11:00:00Z",
  bucket: "hour",
  flows: [
    { bucket_start: "2026-12-06T09:00:00Z", type: "sign_in", state: "completed", count: 40 },
    { bucket_start: "2026-12-06T09:00:00Z", type: "registration", state: "failed", count: 3 },
    { bucket_start: "2026-12-06T10:00:00Z", type: "step_up", state: "awaiting_verification", count: 2 },
  ],
  events: [
    {
      bucket_start: "2026-12-06T09:00:00Z",
      type: "flow.failed",
      outcome: "failure",
      reason: "idv_declined",
      count: 3,
    },
    {
      bucket_start: "2026-12-06T09:00:00Z",
      type: "flow.in_review",
      outcome: "success",
      reason: null,
      count: 1,
    },
    {
      bucket_start: "2026-12-06T10:00:00Z",
      type: "credential.counter_regression",
      outcome: "rejected",
      reason: "counter_regression",
      count: 2,
    },
    {
      bucket_start: "2026-12-06T10:00:00Z",
      type: "flow.request_rejected",
      outcome: "rejected",
      reason: "webauthn_origin_not_allowed",
      count: 5,
    },
    {
      bucket_start: "2026-12-06T10:00:00Z",
      type: "credential.suspended",
      outcome: "success",
      reason: null,
      count: 1,
    },
  ],
};

function show(scopes: string[], calls: unknown[] = []) {
  const client = {
    GET: async (path: string, init: unknown) => {
      expect(path).toBe("/api/management/v1/overview");
      calls.push(init);
      return { data: ANSWER, response: new Response(null, { status: 200 }) };
    },
  };
  return render(
    <DashboardContext.Provider value={{ api: { client } } as unknown as Dashboard}>
      <OperatorContext.Provider value={{ operator: { sub: "op", scopes }, grants: new Grants(scopes) }}>
        <MemoryRouter>
          <OverviewPage now={() => NOW} />
        </MemoryRouter>
      </OperatorContext.Provider>
    </DashboardContext.Provider>,
  );
}

describe("the overview", () => {
  it("groups the counts into the charts support and fraud teams watch", () => {
    const all = charts(ANSWER, new Date("2026-12-06T11:00:00Z"));
    const drawn = (title: string) => {
      const chart = all.find((c) => c.title === title);
      if (!chart) throw new Error(`no chart ${title}`);
      return chart;
    };
    const outcomes = drawn("Flows by outcome").series;
    expect(outcomes.keys).toEqual(["completed", "failed", "open"]);
    expect(outcomes.rows).toHaveLength(24);
    expect(outcomes.total).toBe(45);
    expect(outcomes.rows.at(22)).toMatchObject({ completed: 40, failed: 3, open: 0 });
    expect(drawn("Flows by type").series.keys).toEqual(["registration", "sign in", "step up"]);
    const idv = drawn("Identity verification: declines and manual reviews").series;
    expect(idv.rows.at(22)).toMatchObject({ declined: 3, "manual review": 1 });
    const refused = drawn("Refused possession proofs and requests, by reason").series;
    expect(refused.keys).toEqual(["counter regression", "webauthn origin not allowed"]);
    expect(refused.total).toBe(7);
    expect(drawn("Credentials suspended and revoked").series.keys).toEqual(["suspended"]);
  });

  it("draws the charts for the chosen period", async () => {
    const calls: unknown[] = [];
    const query = (i: number) => (calls[i] as { params: { query: Record<string, string> } }).params.query;
    show([Scope.AuditRead], calls);
    const chart = await screen.findByText("Flows by outcome");
    expect(chart).toBeTruthy();
    expect(document.querySelectorAll("figure.chart")).toHaveLength(5);
    expect(document.querySelectorAll("figure.chart svg.recharts-surface").length).toBeGreaterThan(0);
    expect(query(0)).toEqual({
      from: "2026-12-05T11:00:00.000Z",
      to: "2026-12-06T11:00:00.000Z",
      bucket: "hour",
    });
    fireEvent.click(screen.getByRole("button", { name: "Last 30 days" }));
    await screen.findByText("Flows by outcome");
    expect(query(1).bucket).toBe("day");
    expect(query(1).from).toBe("2026-11-06T11:00:00.000Z");
  }, 30_000);

  it("tells an operator without the audit scope why it is empty, without calling the API", () => {
    const calls: unknown[] = [];
    show([Scope.UsersRead], calls);
    const alert = screen.getByRole("alert");
    expect(alert.textContent).toContain("management.audit.read");
    expect(calls).toHaveLength(0);
  });
});
