import { useCallback, useEffect, useRef, useState } from "react";

export type Load<T> =
  { state: "loading" } | { state: "ready"; value: T } | { state: "failed"; error: unknown };

/** Runs `load` whenever `key` changes; the newest answer wins. */
export function useLoad<T>(load: () => Promise<T>, key: string): Load<T> & { reload: () => void } {
  const [result, setResult] = useState<Load<T>>({ state: "loading" });
  const [round, setRound] = useState(0);
  const latest = useRef(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    const ticket = ++latest.current;
    setResult({ state: "loading" });
    loadRef.current().then(
      (value) => ticket === latest.current && setResult({ state: "ready", value }),
      (error: unknown) => ticket === latest.current && setResult({ state: "failed", error }),
    );
  }, [key, round]);

  const reload = useCallback(() => setRound((r) => r + 1), []);
  return { ...result, reload };
}
