import { Link, useParams } from "react-router";
import { data } from "../api/client";
import { AuditTable } from "../components/AuditTable";
import { Empty, ErrorNotice, Loading, StatusBadge } from "../components/Notice";
import { useDashboard, useOperator } from "../context";
import { when, words } from "../format";
import { useLoad } from "../hooks";
import { Scope } from "../scopes";

export function FlowDetailPage() {
  const { flowId = "" } = useParams();
  const { api } = useDashboard();
  const { grants } = useOperator();
  const flow = useLoad(
    () => data(api.client.GET("/api/management/v1/flows/{id}", { params: { path: { id: flowId } } })),
    flowId,
  );
  if (flow.state === "loading") return <Loading what="the flow" />;
  if (flow.state === "failed")
    return (
      <section>
        <h1>Flow</h1>
        <ErrorNotice error={flow.error} retry={flow.reload} />
      </section>
    );
  const f = flow.value;
  return (
    <section>
      <h1>
        {words(f.flow.type)} flow <StatusBadge status={f.flow.state} />
      </h1>
      <dl className="facts">
        <dt>Flow id</dt>
        <dd className="mono">{f.flow.id}</dd>
        <dt>User</dt>
        <dd>
          {grants.has(Scope.UsersRead) ? (
            <Link to={`/users/${encodeURIComponent(f.external_user_id)}`}>{f.external_user_id}</Link>
          ) : (
            f.external_user_id
          )}
        </dd>
        <dt>Possession</dt>
        <dd>{f.possession_verified ? "verified" : "not verified"}</dd>
        <dt>Identity</dt>
        <dd>{words(f.identity_status)}</dd>
        {f.flow.failure_reason ? (
          <>
            <dt>Failure</dt>
            <dd>{words(f.flow.failure_reason)}</dd>
          </>
        ) : null}
        <dt>Passkey</dt>
        <dd className="mono">{f.credential_id ?? "—"}</dd>
        <dt>Cross-platform</dt>
        <dd>{f.cross_platform ? "yes" : "no"}</dd>
        {f.transaction_context_hmac ? (
          <>
            <dt>Transaction context (keyed digest)</dt>
            <dd className="mono small" title={`HMAC-SHA256 under key ${f.transaction_context_key_id ?? "?"}`}>
              {f.transaction_context_hmac}
            </dd>
          </>
        ) : null}
        <dt>Created</dt>
        <dd>{when(f.flow.created_at)}</dd>
        <dt>Expires</dt>
        <dd>{when(f.expires_at)}</dd>
      </dl>
      <h2>Timeline</h2>
      {f.timeline.length === 0 ? (
        <Empty>No events recorded for this flow.</Empty>
      ) : (
        <AuditTable events={f.timeline} />
      )}
    </section>
  );
}
