use super::*;
use crate::load::{READ, Step};

fn shape(rounds: u32) -> crate::run::Shape {
    crate::run::Shape {
        duration: Duration::from_secs(1),
        rounds,
        clients: 4,
        users_per_client: 2,
        pool: 4,
        metrics_cost: false,
    }
}

#[test]
fn pairs_are_compared_round_by_round() {
    let ratios = pair_ratios(&[300.0, 400.0, 350.0], &[400.0, 400.0, 0.0]);
    assert_eq!(ratios, vec![0.75, 1.0]);
}

#[test]
fn the_median_takes_the_middle_or_the_mean_of_the_two_middle_values() {
    assert_eq!(median(&[]), None);
    assert_eq!(median(&[0.9]), Some(0.9));
    assert_eq!(median(&[1.2, 0.8, 0.9]), Some(0.9));
    assert_eq!(median(&[1.0, 0.25, 0.75, 0.5]), Some(0.625));
}

#[test]
fn the_round_by_round_table_shows_each_pair_and_their_spread() {
    let mut report = Report::new(shape(3));
    for (product, baseline) in [(300.0, 400.0), (450.0, 450.0), (360.0, 400.0)] {
        report.add_max_round(Scenario::Recovery, "product", product);
        report.add_max_round(Scenario::Recovery, "baseline", baseline);
    }
    let mut out = String::new();
    report.max_rates_markdown(&mut out);
    assert!(
        out.contains(
            "| recovery | 300, 450, 360 | 400, 450, 400 | 0.75, 1.00, 0.90 | 0.90 (0.75 – 1.00) |"
        ),
        "{out}"
    );
    let json = report.json();
    assert_eq!(json["max_rounds"][0]["service"], "baseline");
    assert_eq!(json["max_rounds"][3]["flows_per_s"], 300.0);
    assert_eq!(json["max_rounds"][4]["round"], 2);
}

/// A half-rate round of sign-in's `step` with these latencies (ms).
fn half_rate(report: &mut Report, service: &'static str, step: Step, latencies_ms: &[u64]) {
    let mut recorder = Recorder::default();
    let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
    for ms in latencies_ms {
        h.record(ms * 1000).unwrap();
    }
    recorder.steps.insert(step, h);
    let stats = ProcessStats::default();
    report.add(
        (Phase::Half, Scenario::SignIn, service),
        recorder,
        Duration::from_secs(1),
        stats,
        stats,
    );
}

#[test]
fn a_call_meets_the_latency_target_with_under_one_percent_over_10_ms() {
    let mut report = Report::new(shape(1));
    // The product: 1 of 200 assertions over 10 ms (0.5 %), 2 of 100
    // reads (2 %); the baseline: none, and 10 ms itself is not over.
    let mut assertions = vec![2; 199];
    assertions.push(11);
    let mut reads = vec![1; 98];
    reads.extend([12, 40]);
    half_rate(
        &mut report,
        "product",
        "POST /flows/{id}/possession",
        &assertions,
    );
    half_rate(&mut report, "product", READ, &reads);
    half_rate(
        &mut report,
        "baseline",
        "POST /flows/{id}/possession",
        &[3, 10],
    );
    let mut out = String::new();
    report.slow_calls_markdown(&mut out);
    assert!(
        out.contains("### Calls over 10 ms at half the maximum rate"),
        "{out}"
    );
    assert!(
        out.contains("| sign_in | `POST /flows/{id}/possession` | 0.50 % | 0.00 % |"),
        "{out}"
    );
    assert!(
        out.contains("| sign_in | `GET /flows/{id}` | 2.00 % | – |"),
        "{out}"
    );
    assert!(
        out.contains("- product: p99 under 10 ms for 1 of the 2 calls measured"),
        "{out}"
    );
    assert!(
        out.contains("- baseline: p99 under 10 ms for 1 of the 1 calls measured"),
        "{out}"
    );
    let json = report.json();
    // Runs are listed by phase, flow and service: the baseline's first.
    assert_eq!(json["runs"][1]["service"], "product");
    assert_eq!(json["runs"][1]["steps"][READ]["slow_calls"], 2);
}

#[test]
fn without_half_rate_rounds_there_is_no_verdict() {
    let mut out = String::new();
    Report::new(shape(1)).slow_calls_markdown(&mut out);
    assert_eq!(out, "");
}

#[test]
fn the_metrics_verdict_counts_the_flows_within_their_spread_and_gives_the_range() {
    let mut out = String::new();
    metrics_cost_summary(
        &mut out,
        &[
            ("sign_in", -4.8, false),
            ("recovery", 6.5, true),
            ("step_up", -5.3, true),
        ],
    );
    assert!(out.contains("2 of 3 flows within the spread"), "{out}");
    assert!(
        out.contains("-1.2 % on average, from -5.3 % (step_up) to +6.5 % (recovery)"),
        "{out}"
    );

    let mut out = String::new();
    metrics_cost_summary(&mut out, &[]);
    assert!(out.is_empty());
}
