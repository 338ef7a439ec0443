import { useState, type FormEvent } from "react";
import { useSearchParams } from "react-router";
import { data } from "../api/client";
import { FlowTable } from "../components/FlowTable";
import { Empty, ErrorNotice, Loading } from "../components/Notice";
import { useDashboard } from "../context";
import { words } from "../format";
import { useLoad } from "../hooks";

const TYPES = ["registration", "sign_in", "step_up", "recovery"];
const STATES = [
  "pending",
  "awaiting_verification",
  "verified",
  "in_review",
  "completed",
  "failed",
  "expired",
  "cancelled",
];

/** A user's flows, newest first, filtered by type and state. */
export function FlowsPage() {
  const [params, setParams] = useSearchParams();
  const user = params.get("user") ?? "";
  return (
    <section>
      <h1>Flows</h1>
      <FlowFilters key={params.toString()} params={params} onSearch={setParams} />
      {user ? <FlowResults params={params} /> : <Empty>Enter a user id to see their flows.</Empty>}
    </section>
  );
}

/** The filters, showing what the URL says (also after going back). */
function FlowFilters(props: { params: URLSearchParams; onSearch: (next: URLSearchParams) => void }) {
  const [values, setValues] = useState({
    user: props.params.get("user") ?? "",
    type: props.params.get("type") ?? "",
    state: props.params.get("state") ?? "",
  });
  function submit(event: FormEvent) {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of Object.entries(values)) if (v.trim()) next.set(k, v.trim());
    props.onSearch(next);
  }
  return (
    <form className="filters" onSubmit={submit} role="search">
      <label className="field">
        <span>External user id</span>
        <input
          name="user"
          required
          value={values.user}
          autoComplete="off"
          onChange={(e) => setValues({ ...values, user: e.target.value })}
        />
      </label>
      <Choice
        label="Type"
        name="type"
        any="any type"
        choices={TYPES}
        value={values.type}
        onChange={(type) => setValues({ ...values, type })}
      />
      <Choice
        label="State"
        name="state"
        any="any state"
        choices={STATES}
        value={values.state}
        onChange={(state) => setValues({ ...values, state })}
      />
      <button type="submit" className="primary">
        Show flows
      </button>
    </form>
  );
}

function FlowResults({ params }: { params: URLSearchParams }) {
  const { api } = useDashboard();
  const flows = useLoad(
    () =>
      data(
        api.client.GET("/api/management/v1/flows", {
          params: {
            query: {
              external_user_id: params.get("user") ?? "",
              type: params.get("type") || undefined,
              state: params.get("state") || undefined,
              limit: 100,
            },
          },
        }),
      ),
    params.toString(),
  );
  if (flows.state === "loading") return <Loading what="flows" />;
  if (flows.state === "failed") return <ErrorNotice error={flows.error} retry={flows.reload} />;
  if (flows.value.length === 0) return <Empty>No flow matches.</Empty>;
  return <FlowTable flows={flows.value} />;
}

/** A filter over a fixed set of snake_case values, or none. */
function Choice(props: {
  label: string;
  name: string;
  any: string;
  choices: string[];
  value: string;
  onChange: (value: string) => void;
}) {
  return (
    <label className="field">
      <span>{props.label}</span>
      <select name={props.name} value={props.value} onChange={(e) => props.onChange(e.target.value)}>
        <option value="">{props.any}</option>
        {props.choices.map((choice) => (
          <option key={choice} value={choice}>
            {words(choice)}
          </option>
        ))}
      </select>
    </label>
  );
}
