import { useCallback, useEffect, useRef, useState } from "react";

export type Load<T> =
  { state: "loading" } | { state: "ready"; value: T } | { state: "failed"; error: unknown };

/**
 * Runs `load` whenever `key` changes; the newest answer wins. An answer for an
 * earlier key is never shown: until the new one arrives, the state is loading.
 */
export function useLoad<T>(load: () => Promise<T>, key: string): Load<T> & { reload: () => void } {
  const [result, setResult] = useState<{ key: string; round: number; load: Load<T> }>({
    key,
    round: 0,
    load: { state: "loading" },
  });
  const [round, setRound] = useState(0);
  const latest = useRef(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    const ticket = ++latest.current;
    setResult({ key, round, load: { state: "loading" } });
    loadRef.current().then(
      (value) => ticket === latest.current && setResult({ key, round, load: { state: "ready", value } }),
      (error: unknown) =>
        ticket === latest.current && setResult({ key, round, load: { state: "failed", error } }),
    );
  }, [key, round]);

  const reload = useCallback(() => setRound((r) => r + 1), []);
  const current: Load<T> = result.key === key ? result.load : { state: "loading" };
  return { ...current, reload };
}
