//! What each series means, as `# HELP` and `# TYPE` lines tell a scrape.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// A series' kind, name, unit and help text.
struct Described {
    kind: Kind,
    name: &'static str,
    unit: Option<Unit>,
    help: &'static str,
}

const CATALOGUE: &[Described] = &[
    Described {
        kind: Kind::Counter,
        name: "biometric_passkey_trace_exports_failed_total",
        unit: None,
        help: "Batches of spans the OTLP exporter could not send (traces on only).",
    },
    Described {
        kind: Kind::Gauge,
        name: "biometric_passkey_build_info",
        unit: None,
        help: "The running build: its version and commit (always 1).",
    },
    Described {
        kind: Kind::Gauge,
        name: "process_start_time_seconds",
        unit: Some(Unit::Seconds),
        help: "When the process started, in seconds since the Unix epoch.",
    },
    Described {
        kind: Kind::Gauge,
        name: "process_resident_memory_bytes",
        unit: Some(Unit::Bytes),
        help: "Resident memory of the process, sampled on scrape.",
    },
    Described {
        kind: Kind::Gauge,
        name: "process_open_fds",
        unit: None,
        help: "Open file descriptors of the process, sampled on scrape.",
    },
    Described {
        kind: Kind::Counter,
        name: "biometric_passkey_http_requests_total",
        unit: None,
        help: "HTTP requests answered, by runtime, route template, method and status class.",
    },
    Described {
        kind: Kind::Histogram,
        name: "biometric_passkey_http_request_duration_seconds",
        unit: Some(Unit::Seconds),
        help: "Time to answer an HTTP request, by runtime, route template and method.",
    },
    Described {
        kind: Kind::Counter,
        name: "biometric_passkey_flows_created_total",
        unit: None,
        help: "Flows created, by flow type.",
    },
    Described {
        kind: Kind::Counter,
        name: "biometric_passkey_flows_completed_total",
        unit: None,
        help: "Flows completed, by flow type.",
    },
    Described {
        kind: Kind::Counter,
        name: "biometric_passkey_flows_failed_total",
        unit: None,
        help: "Flows failed, by flow type and failure reason.",
    },
    Described {
        kind: Kind::Counter,
        name: "biometric_passkey_flows_expired_total",
        unit: None,
        help: "Flows expired, by flow type.",
    },
    Described {
        kind: Kind::Counter,
        name: "biometric_passkey_flows_cancelled_total",
        unit: None,
        help: "Flows cancelled, by flow type.",
    },
    Described {
        kind: Kind::Counter,
        name: "biometric_passkey_flow_requests_rejected_total",
        unit: None,
        help: "Requests about a flow refused and audited, by error code.",
    },
    Described {
        kind: Kind::Counter,
        name: "biometric_passkey_possession_proofs_refused_total",
        unit: None,
        help: "Possession proofs (passkey registrations and assertions) refused, by error code.",
    },
    Described {
        kind: Kind::Counter,
        name: "biometric_passkey_audit_events_total",
        unit: None,
        help: "Audit events written, by event type and outcome.",
    },
    Described {
        kind: Kind::Counter,
        name: "biometric_passkey_webhook_deliveries_total",
        unit: None,
        help: "IDV provider deliveries, by outcome (and reason, when rejected).",
    },
    Described {
        kind: Kind::Gauge,
        name: "biometric_passkey_provider_cleanups",
        unit: None,
        help: "Deleted users the IDV provider has yet to forget, by state (pending: still \
                 tried; retrying: pending and failed at least once; dead: given up), counted \
                 by the Core API every 30 seconds.",
    },
    Described {
        kind: Kind::Counter,
        name: "biometric_passkey_store_errors_total",
        unit: None,
        help: "Repository calls that failed, by error kind.",
    },
    Described {
        kind: Kind::Counter,
        name: "biometric_passkey_idv_requests_total",
        unit: None,
        help: "Calls to the IDV provider, by provider, operation and outcome.",
    },
    Described {
        kind: Kind::Histogram,
        name: "biometric_passkey_idv_request_duration_seconds",
        unit: Some(Unit::Seconds),
        help: "Time a call to the IDV provider took, by provider and operation.",
    },
    Described {
        kind: Kind::Gauge,
        name: "biometric_passkey_db_pool_connections",
        unit: None,
        help: "Database pool connections, by state (open, idle, in_use), sampled on scrape.",
    },
    Described {
        kind: Kind::Gauge,
        name: "biometric_passkey_db_pool_max_connections",
        unit: None,
        help: "The database pool's bound.",
    },
    Described {
        kind: Kind::Gauge,
        name: "biometric_passkey_db_pool_waiters",
        unit: None,
        help: "Tasks waiting for a database connection, sampled on scrape.",
    },
    Described {
        kind: Kind::Histogram,
        name: "biometric_passkey_db_pool_acquire_duration_seconds",
        unit: Some(Unit::Seconds),
        help: "Time taken to get a connection from the database pool, waiting included.",
    },
    Described {
        kind: Kind::Counter,
        name: "biometric_passkey_audit_maintenance_runs_total",
        unit: None,
        help: "Runs of the audit trail's maintenance, by outcome (success, failure, elsewhere: \
                 another replica held the lease).",
    },
    Described {
        kind: Kind::Gauge,
        name: "biometric_passkey_audit_maintenance_last_success_timestamp_seconds",
        unit: Some(Unit::Seconds),
        help: "When this replica last maintained the audit trail successfully (Unix time).",
    },
    Described {
        kind: Kind::Counter,
        name: "biometric_passkey_audit_partitions_created_total",
        unit: None,
        help: "Monthly audit partitions created.",
    },
    Described {
        kind: Kind::Counter,
        name: "biometric_passkey_audit_months_dropped_total",
        unit: None,
        help: "Audit months dropped by retention (archived first).",
    },
    Described {
        kind: Kind::Counter,
        name: "biometric_passkey_audit_events_sealed_total",
        unit: None,
        help: "Audit events sealed.",
    },
    Described {
        kind: Kind::Gauge,
        name: "biometric_passkey_audit_partitions_ahead",
        unit: None,
        help: "Monthly audit partitions beyond the current month at the last run (PostgreSQL).",
    },
    Described {
        kind: Kind::Gauge,
        name: "biometric_passkey_audit_events_awaiting_sealing",
        unit: None,
        help: "Audit events no seal covered yet when the last run ended.",
    },
    Described {
        kind: Kind::Gauge,
        name: "biometric_passkey_audit_retention_blocked_months",
        unit: None,
        help: "Months past the retention window kept at the last run: no archive, or rows \
                 that differ from it.",
    },
];

/// Describes every series to the recorder in scope (see `Metrics::record`).
pub(super) fn describe_all() {
    for series in CATALOGUE {
        let (name, help) = (series.name, series.help);
        match (series.kind, series.unit) {
            (Kind::Counter, Some(unit)) => describe_counter!(name, unit, help),
            (Kind::Counter, None) => describe_counter!(name, help),
            (Kind::Gauge, Some(unit)) => describe_gauge!(name, unit, help),
            (Kind::Gauge, None) => describe_gauge!(name, help),
            (Kind::Histogram, Some(unit)) => describe_histogram!(name, unit, help),
            (Kind::Histogram, None) => describe_histogram!(name, help),
        }
    }
}
