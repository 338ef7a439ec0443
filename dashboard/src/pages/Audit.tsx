import { useState, type FormEvent } from "react";
import { useSearchParams } from "react-router";
import { data, errorFrom } from "../api/client";
import { AuditTable } from "../components/AuditTable";
import { Empty, ErrorNotice, Loading } from "../components/Notice";
import { Pager } from "../components/Pager";
import { useDashboard } from "../context";
import { dayStart } from "../format";
import { useLoad } from "../hooks";
import type { paths } from "../api/schema";

/** The event types the API knows; a hand-edited URL may name another, which the API refuses. */
type EventType = NonNullable<paths["/api/management/v1/audit"]["get"]["parameters"]["query"]>["type"];

const FILTERS = ["user_id", "flow_id", "credential_id", "type", "from", "until"] as const;
type Filter = (typeof FILTERS)[number];
const PAGE_SIZE = 50;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function query(params: URLSearchParams) {
  const uuid = (name: Filter) => {
    const v = params.get(name)?.trim();
    return v ? v : undefined;
  };
  const before = params.get("before");
  return {
    user_id: uuid("user_id"),
    flow_id: uuid("flow_id"),
    credential_id: uuid("credential_id"),
    type: (params.get("type") || undefined) as EventType,
    from: dayStart(params.get("from") ?? ""),
    until: dayStart(params.get("until") ?? ""),
    before: before ? Number(before) : undefined,
  };
}

/** The audit trail, newest first, with filters and a JSON-lines export. */
export function AuditPage() {
  const { api } = useDashboard();
  const [params, setParams] = useSearchParams();
  const [exportError, setExportError] = useState<unknown>(null);
  const [exporting, setExporting] = useState(false);
  const page = useLoad(
    () =>
      data(
        api.client.GET("/api/management/v1/audit", {
          params: { query: { ...query(params), limit: PAGE_SIZE } },
        }),
      ),
    params.toString(),
  );

  async function exportLines() {
    setExporting(true);
    setExportError(null);
    try {
      const q = query(params);
      const search = new URLSearchParams();
      for (const [k, v] of Object.entries(q)) if (v !== undefined && k !== "before") search.set(k, String(v));
      const response = await fetch(`${api.baseUrl}/api/management/v1/audit/export?${search}`, {
        headers: { Authorization: `Bearer ${api.token() ?? ""}` },
      });
      if (!response.ok) throw await errorFrom(response);
      const blob = await response.blob();
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = `audit-${new Date().toISOString().slice(0, 19).replace(/:/g, "")}.jsonl`;
      link.click();
      URL.revokeObjectURL(link.href);
    } catch (error) {
      setExportError(error);
    } finally {
      setExporting(false);
    }
  }

  return (
    <section>
      <div className="title-row">
        <h1>Audit log</h1>
        <button type="button" onClick={() => void exportLines()} disabled={exporting}>
          {exporting ? "Exporting…" : "Export JSON lines"}
        </button>
      </div>
      <AuditFilters
        key={params.toString()}
        initial={Object.fromEntries(FILTERS.map((f) => [f, params.get(f) ?? ""]))}
        onSearch={(values) => {
          const next = new URLSearchParams();
          for (const f of FILTERS) if (values[f]?.trim()) next.set(f, values[f].trim());
          setParams(next);
        }}
      />
      {exportError ? <ErrorNotice error={exportError} /> : null}
      {page.state === "loading" ? <Loading what="audit events" /> : null}
      {page.state === "failed" ? <ErrorNotice error={page.error} retry={page.reload} /> : null}
      {page.state === "ready" ? (
        page.value.events.length === 0 ? (
          <Empty>No audit event matches.</Empty>
        ) : (
          <>
            <AuditTable events={page.value.events} />
            <Pager
              param="before"
              next={page.value.next_before}
              backLabel="Newer events"
              nextLabel="Older events"
            />
          </>
        )
      ) : null}
    </section>
  );
}

function AuditFilters(props: {
  initial: Record<string, string>;
  onSearch: (values: Record<string, string>) => void;
}) {
  const [values, setValues] = useState(props.initial);
  const [problem, setProblem] = useState<string | null>(null);
  const set = (name: Filter) => (e: { target: { value: string } }) =>
    setValues((v) => ({ ...v, [name]: e.target.value }));
  function submit(event: FormEvent) {
    event.preventDefault();
    for (const name of ["user_id", "flow_id", "credential_id"] as const) {
      const v = values[name]?.trim();
      if (v && !UUID.test(v)) {
        setProblem(`${name.replace("_", " ")} must be a UUID.`);
        return;
      }
    }
    setProblem(null);
    props.onSearch(values);
  }
  const text = (name: Filter, label: string) => (
    <label className="field">
      <span>{label}</span>
      <input name={name} value={values[name] ?? ""} onChange={set(name)} autoComplete="off" />
    </label>
  );
  return (
    <form className="filters" onSubmit={submit} role="search">
      {text("type", "Event type")}
      {text("user_id", "User id (internal)")}
      {text("flow_id", "Flow id")}
      {text("credential_id", "Passkey id")}
      <label className="field">
        <span>From</span>
        <input type="date" name="from" value={values.from ?? ""} onChange={set("from")} />
      </label>
      <label className="field">
        <span>Until</span>
        <input type="date" name="until" value={values.until ?? ""} onChange={set("until")} />
      </label>
      <button type="submit" className="primary">
        Filter
      </button>
      {problem ? (
        <p className="notice error" role="alert">
          {problem}
        </p>
      ) : null}
    </form>
  );
}
