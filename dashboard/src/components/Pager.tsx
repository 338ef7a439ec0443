import { useSearchParams } from "react-router";

/**
 * Pages of a cursor-paged list whose cursor lives in the URL (`param`): going
 * back is the browser's history, going on sets the next cursor.
 */
export function Pager(props: {
  param: string;
  next: string | number | null | undefined;
  backLabel: string;
  nextLabel: string;
}) {
  const [params, setParams] = useSearchParams();
  const { next } = props;
  return (
    <div className="pager">
      {params.get(props.param) ? (
        <button type="button" onClick={() => history.back()}>
          {props.backLabel}
        </button>
      ) : null}
      {next != null && next !== "" ? (
        <button
          type="button"
          onClick={() => {
            const following = new URLSearchParams(params);
            following.set(props.param, String(next));
            setParams(following);
          }}
        >
          {props.nextLabel}
        </button>
      ) : null}
    </div>
  );
}
