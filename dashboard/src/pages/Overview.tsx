import { useState } from "react";
import { Bar, BarChart, CartesianGrid, Legend, Tooltip, XAxis, YAxis } from "recharts";
import { data } from "../api/client";
import type { components } from "../api/schema";
import { ErrorNotice, Loading } from "../components/Notice";
import { useDashboard, useOperator } from "../context";
import { words } from "../format";
import { useLoad } from "../hooks";
import { Scope } from "../scopes";

type Overview = components["schemas"]["Overview"];

/** The periods offered, each with the bucket its charts are drawn in. */
export const PERIODS = {
  "24h": { label: "Last 24 hours", hours: 24, bucket: "hour" },
  "7d": { label: "Last 7 days", hours: 7 * 24, bucket: "day" },
  "30d": { label: "Last 30 days", hours: 30 * 24, bucket: "day" },
} as const;
export type Period = keyof typeof PERIODS;

const HOUR = 3_600_000;
const COLOURS = ["#2563eb", "#dc2626", "#d97706", "#6b7280", "#059669", "#7c3aed", "#db2777", "#0891b2"];

/** A flow's outcome as the overview groups it: its end, or `open`. */
function outcome(state: string): string {
  return ["completed", "failed", "expired", "cancelled"].includes(state) ? state : "open";
}

/** The buckets of `[from, to)`: aligned on UTC hours or days, as the API counts. */
function buckets(from: Date, to: Date, bucket: "hour" | "day"): number[] {
  const width = bucket === "hour" ? HOUR : 24 * HOUR;
  const starts = [];
  for (let t = Math.floor(from.getTime() / width) * width; t < to.getTime(); t += width) starts.push(t);
  return starts;
}

export interface Series {
  /** One row per bucket: its label and a count per key. */
  rows: Record<string, number | string>[];
  keys: string[];
  total: number;
}

/** Counts `[bucket_start, key, count]` into one row per bucket, zero-filled. */
export function series(
  starts: number[],
  bucket: "hour" | "day",
  counts: { bucket_start: string; key: string; count: number }[],
): Series {
  const keys = [...new Set(counts.map((c) => c.key))].sort();
  const rows = starts.map((start) => {
    const row: Record<string, number | string> = { bucket: label(start, bucket) };
    for (const key of keys) row[key] = 0;
    return row;
  });
  const index = new Map(starts.map((start, i) => [start, i]));
  let total = 0;
  for (const c of counts) {
    const row = rows[index.get(new Date(c.bucket_start).getTime()) ?? -1];
    if (!row) continue;
    row[c.key] = (row[c.key] as number) + c.count;
    total += c.count;
  }
  return { rows, keys, total };
}

function label(start: number, bucket: "hour" | "day"): string {
  const date = new Date(start);
  return bucket === "hour"
    ? date.toLocaleString(undefined, { weekday: "short", hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

/** The overview's charts, from one answer of the API. */
export function charts(overview: Overview, now: Date): { title: string; hint: string; series: Series }[] {
  const bucket = overview.bucket === "day" ? "day" : "hour";
  const starts = buckets(new Date(overview.from), now, bucket);
  const events = overview.events;
  const of = (keep: (e: (typeof events)[number]) => boolean, key: (e: (typeof events)[number]) => string) =>
    series(
      starts,
      bucket,
      events.filter(keep).map((e) => ({ bucket_start: e.bucket_start, key: key(e), count: e.count })),
    );
  return [
    {
      title: "Flows by outcome",
      hint: "Flows started in each period, by how they ended; open flows have not ended yet.",
      series: series(
        starts,
        bucket,
        overview.flows.map((f) => ({ bucket_start: f.bucket_start, key: outcome(f.state), count: f.count })),
      ),
    },
    {
      title: "Flows by type",
      hint: "Flows started in each period, by type.",
      series: series(
        starts,
        bucket,
        overview.flows.map((f) => ({ bucket_start: f.bucket_start, key: words(f.type), count: f.count })),
      ),
    },
    {
      title: "Identity verification: declines and manual reviews",
      hint: "Runs the IDV provider declined, and runs it put in manual review.",
      series: of(
        (e) => (e.type === "flow.failed" && e.reason === "idv_declined") || e.type === "flow.in_review",
        (e) => (e.type === "flow.in_review" ? "manual review" : "declined"),
      ),
    },
    {
      title: "Refused possession proofs and requests, by reason",
      hint: "Counter regressions, WebAuthn refusals (origin, challenge, signature…), unusable credentials.",
      series: of(
        (e) => e.outcome === "rejected",
        (e) => words(e.reason ?? e.type),
      ),
    },
    {
      title: "Credentials suspended and revoked",
      hint: "Operators' suspensions, re-activations and revocations, and revocations by recovery.",
      series: of(
        (e) => e.type.startsWith("credential.") && e.outcome === "success" && !e.type.includes("counter"),
        (e) =>
          e.type === "credential.revoked" && e.reason === "recovery"
            ? "revoked by recovery"
            : words(e.type.replace("credential.", "")),
      ),
    },
  ];
}

/**
 * The dashboard's start page: what support and fraud teams watch, as charts
 * over the last day, week or month. Needs `management.audit.read`.
 */
export function OverviewPage({ now = () => new Date() }: { now?: () => Date }) {
  const { grants } = useOperator();
  const [period, setPeriod] = useState<Period>("24h");
  return (
    <section>
      <h1>Overview</h1>
      {grants.has(Scope.AuditRead) ? (
        <>
          <div className="filters" role="group" aria-label="Period">
            {(Object.keys(PERIODS) as Period[]).map((p) => (
              <button
                key={p}
                type="button"
                className={p === period ? "primary" : undefined}
                aria-pressed={p === period}
                onClick={() => setPeriod(p)}
              >
                {PERIODS[p].label}
              </button>
            ))}
          </div>
          <OverviewCharts period={period} now={now} />
        </>
      ) : (
        <div className="notice denied" role="alert">
          <strong>No overview for your sign-in.</strong> Its charts are counted from the audit trail, which
          needs the scope <code>{Scope.AuditRead}</code>; your sign-in does not carry it. The sections you can
          use are in the menu above; ask your administrator if you need the overview.
        </div>
      )}
    </section>
  );
}

function OverviewCharts({ period, now }: { period: Period; now: () => Date }) {
  const { api } = useDashboard();
  const [at] = useState(now);
  const { hours, bucket } = PERIODS[period];
  const to = new Date(Math.ceil(at.getTime() / HOUR) * HOUR);
  const from = new Date(to.getTime() - hours * HOUR);
  const load = useLoad(
    () =>
      data(
        api.client.GET("/api/management/v1/overview", {
          params: { query: { from: from.toISOString(), to: to.toISOString(), bucket } },
        }),
      ),
    `overview:${period}`,
  );
  if (load.state === "loading") return <Loading what="the overview" />;
  if (load.state === "failed") return <ErrorNotice error={load.error} retry={load.reload} />;
  return (
    <div className="charts">
      {charts(load.value, to).map((chart) => (
        <figure key={chart.title} className="chart" data-chart={chart.title}>
          <figcaption>
            <strong>{chart.title}</strong> <span className="total">{chart.series.total} in total</span>
            <br />
            <small>{chart.hint}</small>
          </figcaption>
          {chart.series.total === 0 ? (
            <p className="notice empty">None in this period.</p>
          ) : (
            <BarChart width={560} height={220} data={chart.series.rows}>
              <CartesianGrid strokeDasharray="3 3" vertical={false} />
              <XAxis dataKey="bucket" fontSize={11} minTickGap={16} />
              <YAxis allowDecimals={false} fontSize={11} width={40} />
              <Tooltip />
              <Legend wrapperStyle={{ fontSize: 12 }} />
              {chart.series.keys.map((key, i) => (
                <Bar
                  key={key}
                  dataKey={key}
                  stackId="all"
                  fill={COLOURS[i % COLOURS.length]}
                  isAnimationActive={false}
                />
              ))}
            </BarChart>
          )}
        </figure>
      ))}
    </div>
  );
}
