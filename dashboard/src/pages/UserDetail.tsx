import { useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { data, type CredentialSummary } from "../api/client";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { Empty, ErrorNotice, Loading, StatusBadge } from "../components/Notice";
import { FlowTable } from "../components/FlowTable";
import { useDashboard, useOperator } from "../context";
import { when } from "../format";
import { useLoad } from "../hooks";
import { Scope, type CredentialAction } from "../scopes";

const ACTION_TEXT: Record<CredentialAction, { label: string; explain: string; danger: boolean }> = {
  suspend: {
    label: "Suspend",
    explain: "The passkey stops working until it is activated again.",
    danger: false,
  },
  activate: { label: "Activate", explain: "The passkey works again.", danger: false },
  revoke: {
    label: "Revoke",
    explain: "The passkey stops working for good. This cannot be undone; the user must recover.",
    danger: true,
  },
};

const PAST: Record<CredentialAction, string> = {
  suspend: "suspended",
  activate: "activated",
  revoke: "revoked",
};

export function UserDetailPage() {
  const { externalUserId = "" } = useParams();
  const { api } = useDashboard();
  const { grants } = useOperator();
  const navigate = useNavigate();
  const [pending, setPending] = useState<{ credential: CredentialSummary; action: CredentialAction } | null>(
    null,
  );
  const [deleting, setDeleting] = useState(false);
  const [done, setDone] = useState<string | null>(null);
  const user = useLoad(
    () =>
      data(
        api.client.GET("/api/management/v1/users/{external_user_id}", {
          params: { path: { external_user_id: externalUserId } },
        }),
      ),
    externalUserId,
  );

  if (user.state === "loading") return <Loading what="the user" />;
  if (user.state === "failed")
    return (
      <section>
        <h1>User {externalUserId}</h1>
        <ErrorNotice error={user.error} retry={user.reload} />
      </section>
    );
  const u = user.value;

  return (
    <section>
      <div className="title-row">
        <h1>
          User <span className="mono">{u.external_user_id}</span>
        </h1>
        {grants.has(Scope.UsersDelete) ? (
          <button type="button" className="danger" onClick={() => setDeleting(true)}>
            Delete user
          </button>
        ) : null}
      </div>
      {done ? (
        <p className="notice success" role="status">
          {done}
        </p>
      ) : null}
      <dl className="facts">
        <dt>Pseudonym</dt>
        <dd className="mono">{u.pseudonym}</dd>
        <dt>Created</dt>
        <dd>{when(u.created_at)}</dd>
        <dt>Biometric reference</dt>
        <dd>{u.has_biometric_reference ? "enrolled" : "none"}</dd>
      </dl>

      <h2>Passkeys</h2>
      {u.credentials.length === 0 ? (
        <Empty>This user has no passkey.</Empty>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Status</th>
              <th>Device</th>
              <th>Authenticator</th>
              <th>Created</th>
              <th>Last used</th>
              <th>
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {u.credentials.map((c) => (
              <tr key={c.id} data-credential={c.id}>
                <td>
                  <StatusBadge status={c.status} />
                  {c.status_reason ? <div className="muted small">{c.status_reason}</div> : null}
                </td>
                <td>
                  {c.device_label ?? "—"}
                  {c.platform ? <div className="muted small">{c.platform}</div> : null}
                  {c.backup_eligible ? (
                    <div className="muted small">can be synced{c.backup_state ? " (backed up)" : ""}</div>
                  ) : null}
                </td>
                <td data-authenticator>
                  {c.authenticator ?? "Unknown"}
                  <div className="muted small mono" title="AAGUID">
                    {c.aaguid ?? "no AAGUID"}
                  </div>
                  {c.verified_registration?.attestation_verified ? (
                    <div className="muted small">attestation verified</div>
                  ) : null}
                </td>
                <td>{when(c.created_at)}</td>
                <td>{when(c.last_used_at)}</td>
                <td className="row-actions">
                  {grants.credentialActions(c.status).map((action) => (
                    <button
                      key={action}
                      type="button"
                      className={ACTION_TEXT[action].danger ? "danger" : undefined}
                      onClick={() => setPending({ credential: c, action })}
                    >
                      {ACTION_TEXT[action].label}
                    </button>
                  ))}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      <h2>Recent flows</h2>
      {u.recent_flows.length === 0 ? <Empty>No flows yet.</Empty> : <FlowTable flows={u.recent_flows} />}
      {grants.has(Scope.FlowsRead) ? (
        <p>
          <Link to={`/flows?user=${encodeURIComponent(u.external_user_id)}`}>All flows of this user</Link>
          {grants.has(Scope.AuditRead) ? (
            <>
              {" · "}
              <Link to={`/audit?user_id=${encodeURIComponent(u.user_id)}`}>Audit events</Link>
            </>
          ) : null}
        </p>
      ) : null}

      {pending ? (
        <ConfirmDialog
          title={`${ACTION_TEXT[pending.action].label} this passkey?`}
          confirmLabel={ACTION_TEXT[pending.action].label}
          danger={ACTION_TEXT[pending.action].danger}
          reasonLabel="Reason (recorded in the audit trail)"
          onClose={() => setPending(null)}
          onConfirm={async (reason) => {
            await data(
              api.client.POST("/api/management/v1/credentials/{id}/{action}", {
                params: { path: { id: pending.credential.id, action: pending.action } },
                body: { reason },
              }),
            );
            setDone(`Passkey ${PAST[pending.action]}.`);
            user.reload();
          }}
        >
          <p>{ACTION_TEXT[pending.action].explain}</p>
          <p className="muted small">
            Passkey <span className="mono">{pending.credential.id}</span>
            {pending.credential.device_label ? ` on ${pending.credential.device_label}` : ""}
          </p>
        </ConfirmDialog>
      ) : null}

      {deleting ? (
        <ConfirmDialog
          title="Delete this user?"
          confirmLabel="Delete user"
          danger
          typeToConfirm={u.external_user_id}
          onClose={() => setDeleting(false)}
          onConfirm={async () => {
            await data(
              api.client.DELETE("/api/management/v1/users/{external_user_id}", {
                params: { path: { external_user_id: u.external_user_id } },
              }),
            );
            navigate("/users", { replace: true });
          }}
        >
          <p>
            Deletes the user's passkeys, biometric reference and provider-side data. The audit trail keeps
            only the pseudonym. This cannot be undone.
          </p>
        </ConfirmDialog>
      ) : null}
    </section>
  );
}
