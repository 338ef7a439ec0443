/** A timestamp in the operator's locale, with the zone; "—" when absent. */
export function when(value: string | null | undefined): string {
  if (!value) return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return value;
  return date.toLocaleString(undefined, {
    dateStyle: "medium",
    timeStyle: "medium",
  });
}

/** Turns a snake_case code into words: `step_up` → `step up`. */
export function words(value: string): string {
  return value.replace(/_/g, " ");
}

/** A date input's value (YYYY-MM-DD) as the start of that day in UTC, RFC 3339. */
export function dayStart(value: string): string | undefined {
  return /^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : undefined;
}
