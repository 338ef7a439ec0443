//! The Core API's rules: the flow policy (lifetimes, per-user limits,
//! recovery, possession policies), how long rows are kept, and the refusal
//! limits with the proxies trusted to name a caller's address.

use std::net::IpAddr;
use std::time::Duration;

use domain::retention::{MIN_FLOW_RETENTION, RetentionPolicy};
use domain::service::FlowPolicy;

use super::reader::parse_count;
use super::{PossessionPolicies, Reader};

/// The largest transaction context an operator may allow.
pub const MAX_TRANSACTION_CONTEXT_LIMIT: u32 = 64 * 1024;

fn std_duration(d: time::Duration) -> Duration {
    Duration::from_secs(d.whole_seconds().unsigned_abs())
}

/// A duration of at least a second.
fn positive(r: &mut Reader<'_>, variable: &'static str, default: time::Duration) -> time::Duration {
    let value = r.duration(variable, std_duration(default));
    if value < Duration::from_secs(1) {
        r.problem(variable, "must be at least 1s");
    }
    time::Duration::try_from(value).unwrap_or(time::Duration::MAX)
}

/// A count of at least one.
fn at_least_one(r: &mut Reader<'_>, variable: &'static str, default: u32) -> u32 {
    let value = r.parsed(variable, default, parse_count);
    if value == 0 {
        r.problem(variable, "must be at least 1");
    }
    value
}

pub(super) fn read_policy(r: &mut Reader<'_>) -> FlowPolicy {
    let defaults = FlowPolicy::default();
    let flow_ttl = positive(r, "BIOMETRIC_PASSKEY_FLOW_TTL", defaults.flow_ttl);
    let handoff_ttl = positive(r, "BIOMETRIC_PASSKEY_HANDOFF_TTL", defaults.handoff_ttl);
    let max_open = at_least_one(
        r,
        "BIOMETRIC_PASSKEY_FLOW_MAX_OPEN_PER_USER",
        defaults.max_open_flows_per_user,
    );
    let max_runs = at_least_one(
        r,
        "BIOMETRIC_PASSKEY_IDV_MAX_RUNS_PER_USER_PER_DAY",
        defaults.max_idv_runs_per_user_per_day,
    );
    let context = r.parsed(
        "BIOMETRIC_PASSKEY_TRANSACTION_CONTEXT_MAX_BYTES",
        u32::try_from(defaults.max_transaction_context_bytes).unwrap_or(4096),
        parse_count,
    );
    if context == 0 || context > MAX_TRANSACTION_CONTEXT_LIMIT {
        r.problem(
            "BIOMETRIC_PASSKEY_TRANSACTION_CONTEXT_MAX_BYTES",
            format!("must be from 1 to {MAX_TRANSACTION_CONTEXT_LIMIT}"),
        );
    }
    let reconcile_after = positive(
        r,
        "BIOMETRIC_PASSKEY_IDV_RECONCILE_AFTER",
        defaults.reconcile_after,
    );
    let revoke = r.bool(
        "BIOMETRIC_PASSKEY_RECOVERY_REVOKES_EXISTING_CREDENTIALS",
        defaults.recovery_revokes_existing,
    );
    let possession = PossessionPolicies::read(r, &defaults);
    let cleanup_attempts = at_least_one(
        r,
        "BIOMETRIC_PASSKEY_PROVIDER_CLEANUP_MAX_ATTEMPTS",
        defaults.provider_cleanup_max_attempts,
    );
    FlowPolicy {
        flow_ttl,
        handoff_ttl,
        max_open_flows_per_user: max_open,
        max_idv_runs_per_user_per_day: max_runs,
        max_transaction_context_bytes: context as usize,
        recovery_revokes_existing: revoke,
        reconcile_after,
        counter_policy: possession.counter,
        backup_policy: possession.backup,
        ceremony_ttl: time::Duration::try_from(possession.challenge_ttl)
            .unwrap_or(time::Duration::MAX),
        provider_cleanup_max_attempts: cleanup_attempts,
    }
}

/// The shortest webhook de-duplication retention accepted.
const MIN_PROVIDER_EVENT_RETENTION: Duration = Duration::from_secs(3600);

pub(super) fn read_retention(r: &mut Reader<'_>) -> RetentionPolicy {
    let defaults = RetentionPolicy::default();
    let at_least = |r: &mut Reader<'_>, variable: &'static str, default, min: Duration, shown| {
        let value = r.duration(variable, default);
        if value < min {
            r.problem(variable, format!("must be at least {shown}"));
        }
        time::Duration::try_from(value).unwrap_or(time::Duration::MAX)
    };
    RetentionPolicy {
        flows_after_expiry: at_least(
            r,
            "BIOMETRIC_PASSKEY_FLOW_RETENTION",
            std_duration(defaults.flows_after_expiry),
            std_duration(MIN_FLOW_RETENTION),
            "24h (the IDV run limit counts the flows of the last day)",
        ),
        provider_events: at_least(
            r,
            "BIOMETRIC_PASSKEY_PROVIDER_EVENT_RETENTION",
            std_duration(defaults.provider_events),
            MIN_PROVIDER_EVENT_RETENTION,
            "1h",
        ),
    }
}

/// The Core API's refusal limits (see `core_api::refusals`).
pub(super) fn read_refusal_limits(r: &mut Reader<'_>) -> core_api::refusals::RefusalLimits {
    use core_api::refusals::{DEFAULT_HANDOFF_REFUSALS, DEFAULT_WEBHOOK_REFUSALS, RefusalLimits};
    RefusalLimits {
        webhook_per_minute: r.parsed(
            "BIOMETRIC_PASSKEY_WEBHOOK_REFUSALS_PER_MINUTE",
            DEFAULT_WEBHOOK_REFUSALS,
            parse_count,
        ),
        handoff_per_minute: r.parsed(
            "BIOMETRIC_PASSKEY_HANDOFF_REFUSALS_PER_MINUTE",
            DEFAULT_HANDOFF_REFUSALS,
            parse_count,
        ),
        trusted_proxies: r.parsed(
            "BIOMETRIC_PASSKEY_TRUSTED_PROXIES",
            Vec::new(),
            parse_networks,
        ),
    }
}

/// Addresses and networks (`10.0.0.0/8`, `192.0.2.7`, `fd00::/8`), separated
/// by commas or spaces; a single address is a network of its own.
fn parse_networks(raw: &str) -> Result<Vec<ipnet::IpNet>, String> {
    raw.split([',', ' ', '\n', '\t'])
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    format!("{item:?} is not an IP address or a network such as 10.0.0.0/8")
                })
        })
        .collect()
}
