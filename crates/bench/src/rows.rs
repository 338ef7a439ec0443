//! Whether the baseline writes what the product writes: after a run, the mean
//! size of each kind of row in the product's database against the baseline's.
//! A baseline that writes smaller rows gives PostgreSQL less to do and flatters
//! itself; the run fails when a kind of row differs by more than [`TOLERANCE`].

use std::collections::BTreeMap;
use std::fmt::Write;

use sqlx::PgConnection;

/// How far a mean row size may stray from the product's, as a fraction.
pub(crate) const TOLERANCE: f64 = 0.05;

/// Per table, the kinds of rows compared and the rows left out: flows by
/// type and state (a flow's row grows as it advances, and `POST /flows` alone
/// leaves flows open at each service's own rate), audit events by type, the
/// rest as one kind. Flows past their expiry are left out: the product's
/// retention clears their secrets (`ExpiredFlowSecrets`) after they were
/// written, and the baseline runs no retention, so in a run longer than a
/// flow's lifetime they no longer show what was written.
const KINDS: &[(&str, &str, &str)] = &[
    ("users", "''", "true"),
    ("flows", "flow_type || ' ' || state", "expires_at > now()"),
    ("credentials", "''", "true"),
    ("biometric_references", "''", "true"),
    ("provider_events", "''", "true"),
    ("audit_events", "event_type", "true"),
];

/// (table, kind) → (rows, mean bytes per row).
pub(crate) type Sizes = BTreeMap<(String, String), (i64, f64)>;

pub(crate) async fn measure(conn: &mut PgConnection) -> anyhow::Result<Sizes> {
    let mut sizes = Sizes::new();
    for (table, kind, kept) in KINDS {
        let rows: Vec<(String, i64, f64)> = sqlx::query_as(&format!(
            "SELECT {kind}::text, count(*), avg(pg_column_size(t.*))::float8 \
             FROM {table} t WHERE {kept} GROUP BY 1"
        ))
        .fetch_all(&mut *conn)
        .await?;
        for (kind, count, mean) in rows {
            sizes.insert(((*table).to_owned(), kind), (count, mean));
        }
    }
    Ok(sizes)
}

/// One kind of row both services wrote.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Compared {
    pub(crate) table: String,
    pub(crate) kind: String,
    pub(crate) product: (i64, f64),
    pub(crate) baseline: (i64, f64),
}

impl Compared {
    pub(crate) fn ratio(&self) -> f64 {
        self.product.1 / self.baseline.1
    }

    pub(crate) fn within_tolerance(&self) -> bool {
        (self.ratio() - 1.0).abs() <= TOLERANCE
    }
}

/// The kinds of rows present in both databases.
pub(crate) fn compare(product: &Sizes, baseline: &Sizes) -> Vec<Compared> {
    product
        .iter()
        .filter_map(|((table, kind), &p)| {
            let &b = baseline.get(&(table.clone(), kind.clone()))?;
            Some(Compared {
                table: table.clone(),
                kind: kind.clone(),
                product: p,
                baseline: b,
            })
        })
        .collect()
}

/// The report's section: one table per pair of databases.
pub(crate) fn markdown(pairs: &[(&str, Vec<Compared>)]) -> String {
    let mut out = format!(
        "\n### Rows written: mean bytes per row, product against baseline (tolerance ±{:.0} %)\n",
        TOLERANCE * 100.0
    );
    for (pair, compared) in pairs {
        let _ = write!(
            out,
            "\n{pair}\n\n| table | kind | product rows | product bytes | baseline rows | baseline bytes | ratio |\n|---|---|---:|---:|---:|---:|---:|\n"
        );
        for c in compared {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {} | {:.0} | {:.2}{} |",
                c.table,
                if c.kind.is_empty() { "–" } else { &c.kind },
                c.product.0,
                c.product.1,
                c.baseline.0,
                c.baseline.1,
                c.ratio(),
                if c.within_tolerance() { "" } else { " ✗" }
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(entries: &[(&str, &str, i64, f64)]) -> Sizes {
        entries
            .iter()
            .map(|&(t, k, n, m)| ((t.to_owned(), k.to_owned()), (n, m)))
            .collect()
    }

    #[test]
    fn only_kinds_both_wrote_are_compared_and_strays_are_marked() {
        let product = sizes(&[
            ("flows", "step_up", 10, 528.0),
            ("flows", "registration", 2, 672.0),
            ("users", "", 2, 190.0),
        ]);
        let baseline = sizes(&[
            ("flows", "step_up", 12, 312.0),
            ("users", "", 3, 188.0),
            ("audit_events", "flow.created", 3, 150.0),
        ]);
        let compared = compare(&product, &baseline);
        assert_eq!(compared.len(), 2);
        assert!(!compared[0].within_tolerance(), "{compared:?}");
        assert!(compared[1].within_tolerance(), "{compared:?}");
        let md = markdown(&[("product / baseline", compared)]);
        assert!(
            md.contains("| flows | step_up | 10 | 528 | 12 | 312 | 1.69 ✗ |"),
            "{md}"
        );
        assert!(
            md.contains("| users | – | 2 | 190 | 3 | 188 | 1.01 |"),
            "{md}"
        );
    }
}
