import { data } from "../api/client";
import { Empty, ErrorNotice, Loading } from "../components/Notice";
import { useDashboard } from "../context";
import { when } from "../format";
import { useLoad } from "../hooks";

/**
 * Deleted users the IDV provider has not yet been made to forget. The Core API
 * retries each with a growing wait; a dead item gets no more attempts and needs
 * an operator (the hint says what to do).
 */
export function CleanupsPage() {
  const { api } = useDashboard();
  const cleanups = useLoad(() => data(api.client.GET("/api/management/v1/provider-cleanups")), "cleanups");
  let body;
  if (cleanups.state === "loading") body = <Loading what="provider clean-ups" />;
  else if (cleanups.state === "failed") body = <ErrorNotice error={cleanups.error} retry={cleanups.reload} />;
  else if (cleanups.value.items.length === 0)
    body = <Empty>Nothing is queued: the provider has forgotten every deleted user.</Empty>;
  else {
    const items = cleanups.value.items;
    const dead = items.filter((item) => item.dead).length;
    body = (
      <>
        {dead > 0 ? (
          <p className="notice error" role="alert">
            {dead === 1 ? "One clean-up is dead" : `${dead} clean-ups are dead`}: no more attempts are made.
            Ask the IDV provider to delete these users&apos; data by other means, then remove the items from
            the database (see the Management API guide).
          </p>
        ) : null}
        <table>
          <thead>
            <tr>
              <th>User id (ours)</th>
              <th>Requested</th>
              <th>Attempts</th>
              <th>Last attempt</th>
              <th>Next attempt</th>
              <th>Status</th>
            </tr>
          </thead>
          <tbody>
            {items.map((item) => (
              <tr key={item.user_id} data-cleanup={item.user_id} data-dead={item.dead ? "true" : "false"}>
                <td>
                  <code>{item.user_id}</code>
                </td>
                <td>{when(item.requested_at)}</td>
                <td>{item.attempts}</td>
                <td>{when(item.last_attempt_at)}</td>
                <td>{item.dead ? "none" : when(item.next_attempt_at)}</td>
                <td>
                  <span className={`badge ${item.dead ? "badge-revoked" : "badge-pending"}`}>
                    {item.dead
                      ? `dead since ${when(item.dead_at)}`
                      : item.attempts === 0
                        ? "queued"
                        : "retrying"}
                  </span>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </>
    );
  }
  return (
    <section>
      <h1>Provider clean-ups</h1>
      <p>Deleted users the IDV provider has not yet confirmed forgetting, oldest first.</p>
      {body}
    </section>
  );
}
