import { useState, type FormEvent } from "react";
import { Link, useSearchParams } from "react-router";
import { data } from "../api/client";
import { Empty, ErrorNotice, Loading } from "../components/Notice";
import { Pager } from "../components/Pager";
import { useDashboard } from "../context";
import { dayStart, when } from "../format";
import { useLoad } from "../hooks";
import type { paths } from "../api/schema";

/** The statuses the API knows; a hand-edited URL may name another, which the API refuses. */
type CredentialStatus = NonNullable<
  paths["/api/management/v1/users"]["get"]["parameters"]["query"]
>["credential_status"];

const PAGE_SIZE = 25;
const FILTERS = ["prefix", "status", "from", "before"] as const;

/** User search: by id prefix, credential status and creation dates, a page at a time. */
export function UsersPage() {
  const { api } = useDashboard();
  const [params, setParams] = useSearchParams();
  const after = params.get("after") ?? undefined;
  const page = useLoad(
    () =>
      data(
        api.client.GET("/api/management/v1/users", {
          params: {
            query: {
              prefix: params.get("prefix") || undefined,
              credential_status: (params.get("status") || undefined) as CredentialStatus,
              created_from: dayStart(params.get("from") ?? ""),
              created_before: dayStart(params.get("before") ?? ""),
              after,
              limit: PAGE_SIZE,
            },
          },
        }),
      ),
    params.toString(),
  );

  return (
    <section>
      <h1>Users</h1>
      <SearchForm
        key={params.toString()}
        initial={Object.fromEntries(FILTERS.map((f) => [f, params.get(f) ?? ""]))}
        onSearch={(values) => {
          const next = new URLSearchParams();
          for (const f of FILTERS) if (values[f]) next.set(f, values[f]);
          setParams(next);
        }}
      />
      {page.state === "loading" ? <Loading what="users" /> : null}
      {page.state === "failed" ? <ErrorNotice error={page.error} retry={page.reload} /> : null}
      {page.state === "ready" ? (
        page.value.users.length === 0 ? (
          <Empty>{after ? "No more users." : "No user matches this search."}</Empty>
        ) : (
          <>
            <table>
              <thead>
                <tr>
                  <th>External user id</th>
                  <th>Pseudonym</th>
                  <th>Created</th>
                </tr>
              </thead>
              <tbody>
                {page.value.users.map((u) => (
                  <tr key={u.external_user_id}>
                    <td>
                      <Link to={`/users/${encodeURIComponent(u.external_user_id)}`}>
                        {u.external_user_id}
                      </Link>
                    </td>
                    <td className="mono">{u.pseudonym}</td>
                    <td>{when(u.created_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <Pager
              param="after"
              next={page.value.next_after}
              backLabel="Previous page"
              nextLabel="Next page"
            />
          </>
        )
      ) : null}
    </section>
  );
}

function SearchForm(props: {
  initial: Record<string, string>;
  onSearch: (values: Record<string, string>) => void;
}) {
  const [values, setValues] = useState(props.initial);
  const set = (name: string) => (e: { target: { value: string } }) =>
    setValues((v) => ({ ...v, [name]: e.target.value }));
  function submit(event: FormEvent) {
    event.preventDefault();
    props.onSearch(values);
  }
  return (
    <form className="filters" onSubmit={submit} role="search">
      <label className="field">
        <span>User id starts with</span>
        <input name="prefix" value={values.prefix ?? ""} onChange={set("prefix")} autoComplete="off" />
      </label>
      <label className="field">
        <span>Has a passkey that is</span>
        <select name="status" value={values.status ?? ""} onChange={set("status")}>
          <option value="">any status</option>
          <option value="active">active</option>
          <option value="suspended">suspended</option>
          <option value="revoked">revoked</option>
        </select>
      </label>
      <label className="field">
        <span>Created from</span>
        <input type="date" name="from" value={values.from ?? ""} onChange={set("from")} />
      </label>
      <label className="field">
        <span>Created before</span>
        <input type="date" name="before" value={values.before ?? ""} onChange={set("before")} />
      </label>
      <button type="submit" className="primary">
        Search
      </button>
    </form>
  );
}
