import { useEffect, useRef, useState, type FormEvent, type ReactNode } from "react";
import { ErrorNotice } from "./Notice";

/**
 * A modal confirmation. With `reasonLabel`, a reason is required; with
 * `typeToConfirm`, the operator must type that exact text first.
 */
export function ConfirmDialog(props: {
  title: string;
  children: ReactNode;
  confirmLabel: string;
  danger?: boolean;
  reasonLabel?: string;
  typeToConfirm?: string;
  onConfirm: (reason: string) => Promise<void>;
  onClose: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const [reason, setReason] = useState("");
  const [typed, setTyped] = useState("");
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<unknown>(null);

  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
  }, []);

  const ready =
    !busy &&
    (!props.reasonLabel || reason.trim().length > 0) &&
    (!props.typeToConfirm || typed === props.typeToConfirm);

  async function confirm(event: FormEvent) {
    event.preventDefault();
    if (!ready) return;
    setBusy(true);
    setFailure(null);
    try {
      await props.onConfirm(reason.trim());
      props.onClose();
    } catch (error) {
      setFailure(error);
      setBusy(false);
    }
  }

  return (
    <dialog ref={ref} className="dialog" onClose={props.onClose} aria-labelledby="dialog-title">
      <form onSubmit={confirm}>
        <h2 id="dialog-title">{props.title}</h2>
        <div className="dialog-body">{props.children}</div>
        {props.reasonLabel ? (
          <label className="field">
            <span>{props.reasonLabel}</span>
            <textarea
              name="reason"
              required
              maxLength={500}
              value={reason}
              onChange={(e) => setReason(e.target.value)}
            />
          </label>
        ) : null}
        {props.typeToConfirm ? (
          <label className="field">
            <span>
              Type <code>{props.typeToConfirm}</code> to confirm
            </span>
            <input
              name="confirmation"
              autoComplete="off"
              value={typed}
              onChange={(e) => setTyped(e.target.value)}
            />
          </label>
        ) : null}
        {failure ? <ErrorNotice error={failure} /> : null}
        <div className="actions">
          <button type="button" onClick={props.onClose} disabled={busy}>
            Cancel
          </button>
          <button type="submit" className={props.danger ? "danger" : "primary"} disabled={!ready}>
            {busy ? "Working…" : props.confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}
