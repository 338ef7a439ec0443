import { Link } from "react-router";
import type { AuditEvent } from "../api/client";
import { when, words } from "../format";

/** Audit events, with links to what they are about. */
export function AuditTable({ events }: { events: AuditEvent[] }) {
  return (
    <table className="audit">
      <thead>
        <tr>
          <th>#</th>
          <th>When</th>
          <th>Event</th>
          <th>Outcome</th>
          <th>Actor</th>
          <th>About</th>
        </tr>
      </thead>
      <tbody>
        {events.map((e) => (
          <tr key={e.id} data-event-type={e.type}>
            <td className="mono small">{e.seq}</td>
            <td>{when(e.occurred_at)}</td>
            <td>
              <span className="mono">{e.type}</span>
              {e.reason ? <div className="muted small">{e.reason}</div> : null}
            </td>
            <td>{words(e.outcome)}</td>
            <td>
              {e.actor}
              {e.actor_id ? <div className="muted small mono">{e.actor_id}</div> : null}
            </td>
            <td className="small">
              {e.flow_id ? (
                <div>
                  flow{" "}
                  <Link to={`/flows/${e.flow_id}`} title={e.flow_id}>
                    {short(e.flow_id)}
                  </Link>
                </div>
              ) : null}
              {e.credential_id ? (
                <div>
                  passkey{" "}
                  <Link to={`/audit?credential_id=${e.credential_id}`} title={e.credential_id}>
                    {short(e.credential_id)}
                  </Link>
                </div>
              ) : null}
              {e.user_pseudonym ? <div className="muted mono">{e.user_pseudonym}</div> : null}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Ids are UUIDv7: the leading digits are a timestamp, the tail tells them apart. */
function short(id: string): string {
  return `…${id.slice(-8)}`;
}
