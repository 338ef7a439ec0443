import { Link } from "react-router";
import type { FlowSummary } from "../api/client";
import { useOperator } from "../context";
import { when, words } from "../format";
import { Scope } from "../scopes";
import { StatusBadge } from "./Notice";

export function FlowTable({ flows }: { flows: FlowSummary[] }) {
  const { grants } = useOperator();
  const linked = grants.has(Scope.FlowsRead);
  return (
    <table>
      <thead>
        <tr>
          <th>Flow</th>
          <th>Type</th>
          <th>State</th>
          <th>Created</th>
          <th>Updated</th>
        </tr>
      </thead>
      <tbody>
        {flows.map((f) => (
          <tr key={f.id}>
            <td className="mono small">{linked ? <Link to={`/flows/${f.id}`}>{f.id}</Link> : f.id}</td>
            <td>{words(f.type)}</td>
            <td>
              <StatusBadge status={f.state} />
              {f.failure_reason ? <div className="muted small">{words(f.failure_reason)}</div> : null}
            </td>
            <td>{when(f.created_at)}</td>
            <td>{when(f.updated_at)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
