//! Refusal limits: a source that keeps being refused is answered `429
//! too_many_refused_requests` for the rest of its minute, before any work.
//!
//! Two routes take requests whose refusal costs the sender nothing: the
//! webhook (anyone on the internet can post a forged delivery) and hand-off
//! claims (whoever holds the Core API's key can guess codes). What counts is
//! refusals, not requests, so the provider's and the customer's real traffic
//! is never slowed however much of it there is:
//!
//! - webhook deliveries answered `4xx` (bad signature, malformed), per source
//!   address, `BIOMETRIC_PASSKEY_WEBHOOK_REFUSALS_PER_MINUTE`. Authentic
//!   deliveries, stale ones included, are never counted.
//! - hand-off claims answered `4xx`, per API key and user,
//!   `BIOMETRIC_PASSKEY_HANDOFF_REFUSALS_PER_MINUTE`. The claim comes from the
//!   customer's backend, whose one address carries every user's claims: a
//!   limit per address would let one user's guesses block everyone's.
//!
//! The source address is the connection's peer, unless the peer is one of
//! `BIOMETRIC_PASSKEY_TRUSTED_PROXIES`: then it is the right-most address of
//! `X-Forwarded-For` that is not a trusted proxy (the left-most entries are
//! the client's to write). IPv6 addresses count per /64, the block one host
//! is usually given.
//!
//! Windows are kept in memory, per replica: counting in the database would
//! spend the database on exactly the traffic the limit keeps from it. A
//! replica tracks at most [`MAX_TRACKED`] sources; past that, sources it does
//! not track yet are served as usual (their refusals are still counted in
//! the audit tally), so the limit's memory stays bounded. Ingress limits in
//! front of the Core API remain recommended.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::Clock;
use domain::audit::Actor;
use domain::service::FlowService;
use domain::tally::TallyKind;
use http_common::ApiError;
use proto::ErrorCode;
use time::{Duration, OffsetDateTime};

/// How long a window of refusals lasts.
pub const WINDOW: Duration = Duration::minutes(1);
/// `BIOMETRIC_PASSKEY_WEBHOOK_REFUSALS_PER_MINUTE`'s default.
pub const DEFAULT_WEBHOOK_REFUSALS: u32 = 60;
/// `BIOMETRIC_PASSKEY_HANDOFF_REFUSALS_PER_MINUTE`'s default.
pub const DEFAULT_HANDOFF_REFUSALS: u32 = 10;
/// The most sources one limit tracks at once, per replica.
pub const MAX_TRACKED: usize = 65_536;

/// The refusal limits of one Core API replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalLimits {
    /// Refused webhook deliveries per source address and minute; 0 for no limit.
    pub webhook_per_minute: u32,
    /// Refused hand-off claims per API key and user and minute; 0 for no limit.
    pub handoff_per_minute: u32,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for RefusalLimits {
    fn default() -> Self {
        Self {
            webhook_per_minute: DEFAULT_WEBHOOK_REFUSALS,
            handoff_per_minute: DEFAULT_HANDOFF_REFUSALS,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: OffsetDateTime,
    refusals: u32,
}

/// Refusals per source over fixed one-minute windows.
#[derive(Debug)]
pub struct RefusalCounter<K> {
    limit: u32,
    windows: Mutex<HashMap<K, Window>>,
}

impl<K: Hash + Eq> RefusalCounter<K> {
    /// At most `limit` refusals per source and minute; 0 for no limit.
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// How long `source` is still refused at `now`, if it is over its limit.
    pub fn blocked(&self, source: &K, now: OffsetDateTime) -> Option<Duration> {
        if self.limit == 0 {
            return None;
        }
        let windows = self.windows.lock().ok()?;
        let window = windows.get(source)?;
        let ends = window.start + WINDOW;
        (window.refusals >= self.limit && now >= window.start && now < ends).then(|| ends - now)
    }

    /// Counts one refusal of `source` at `now`.
    pub fn refused(&self, source: K, now: OffsetDateTime) {
        if self.limit == 0 {
            return;
        }
        let Ok(mut windows) = self.windows.lock() else {
            return;
        };
        let current = |w: &Window| now >= w.start && now - w.start < WINDOW;
        if !windows.contains_key(&source) && windows.len() >= MAX_TRACKED {
            windows.retain(|_, w| current(w));
            if windows.len() >= MAX_TRACKED {
                return;
            }
        }
        let window = windows.entry(source).or_insert(Window {
            start: now,
            refusals: 0,
        });
        if !current(window) {
            *window = Window {
                start: now,
                refusals: 0,
            };
        }
        window.refusals = window.refusals.saturating_add(1);
    }
}

/// The `429` for a source over its limit, with `Retry-After` in seconds.
pub fn too_many(retry_in: Duration) -> Response {
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooManyRefusedRequests,
        "too many requests from this source were refused; retry later",
    )
    .into_response();
    let seconds = retry_in.whole_seconds().clamp(1, WINDOW.whole_seconds());
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// The address a request came from (see the module's documentation).
pub fn source_address(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return per_host(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect::<Vec<_>>();
    let mut source = peer;
    for entry in forwarded.into_iter().rev() {
        let Ok(ip) = entry.trim().parse::<IpAddr>() else {
            // Not an address: nothing left of it can be believed.
            break;
        };
        source = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    per_host(source)
}

/// IPv6 addresses count per /64; IPv4-mapped ones as their IPv4 address.
fn per_host(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// What the webhook route's limit needs.
pub struct WebhookGate {
    pub counter: RefusalCounter<IpAddr>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub clock: Arc<dyn Clock>,
    pub flows: Arc<FlowService>,
}

/// Middleware on the webhook route: a source over its limit is answered
/// `429` at once (and counted in the audit tally as `source_limited`); a
/// `4xx` answer counts against the source.
pub async fn limit_webhook(
    State(gate): State<Arc<WebhookGate>>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let Some(peer) = peer else {
        return next.run(request).await;
    };
    let source = source_address(peer, request.headers(), &gate.trusted_proxies);
    if let Some(retry_in) = gate.counter.blocked(&source, gate.clock.now()) {
        if let Err(e) = gate
            .flows
            .note_refusal(TallyKind::Rejected, "source_limited", &Actor::Provider)
            .await
        {
            tracing::warn!(error = %e, "counts of refused requests were not recorded");
        }
        return too_many(retry_in);
    }
    let response = next.run(request).await;
    if response.status().is_client_error() {
        gate.counter.refused(source, gate.clock.now());
    }
    response
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-12-06 10:00:00 UTC);

    #[test]
    fn a_source_is_refused_once_over_its_limit_until_its_minute_ends() {
        let counter = RefusalCounter::new(3);
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(counter.blocked(&ip, T0), None);
            counter.refused(ip, T0);
        }
        assert_eq!(
            counter.blocked(&ip, T0 + Duration::seconds(20)),
            Some(Duration::seconds(40))
        );
        let other: IpAddr = "203.0.113.8".parse().unwrap();
        assert_eq!(counter.blocked(&other, T0), None, "others are not");
        assert_eq!(counter.blocked(&ip, T0 + WINDOW), None, "the minute ended");
        counter.refused(ip, T0 + WINDOW);
        assert_eq!(counter.blocked(&ip, T0 + WINDOW), None, "a new window");
    }

    #[test]
    fn no_limit_counts_nothing() {
        let counter = RefusalCounter::new(0);
        for _ in 0..100 {
            counter.refused(1u8, T0);
        }
        assert_eq!(counter.blocked(&1, T0), None);
        assert!(counter.windows.lock().unwrap().is_empty());
    }

    #[test]
    fn the_number_of_sources_tracked_is_bounded() {
        let counter = RefusalCounter::new(1);
        for n in 0..MAX_TRACKED as u32 {
            counter.refused(n, T0);
        }
        counter.refused(u32::MAX, T0);
        assert_eq!(counter.blocked(&u32::MAX, T0), None, "not tracked");
        assert!(counter.blocked(&0, T0).is_some());
        // Once their windows have ended, room is made.
        let later = T0 + WINDOW;
        counter.refused(u32::MAX, later);
        assert!(counter.blocked(&u32::MAX, later).is_some());
        assert_eq!(counter.windows.lock().unwrap().len(), 1);
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn forwarded_addresses_are_believed_from_trusted_proxies_only() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let spoofed = forwarded("198.51.100.1, 203.0.113.7");
        assert_eq!(
            source_address(ip("192.0.2.9"), &spoofed, &trusted),
            ip("192.0.2.9"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            source_address(ip("10.1.2.3"), &spoofed, &trusted),
            ip("203.0.113.7"),
            "the right-most untrusted entry, not what the client wrote on the left"
        );
        assert_eq!(
            source_address(
                ip("10.1.2.3"),
                &forwarded("203.0.113.7, 10.9.9.9"),
                &trusted
            ),
            ip("203.0.113.7"),
            "proxies in a chain are skipped"
        );
        assert_eq!(
            source_address(ip("10.1.2.3"), &forwarded("203.0.113.7, junk"), &trusted),
            ip("10.1.2.3"),
            "nothing left of an entry that is not an address is believed"
        );
        assert_eq!(
            source_address(ip("10.1.2.3"), &HeaderMap::new(), &trusted),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn ipv6_sources_count_per_64() {
        let a = source_address("2001:db8:1:2::1".parse().unwrap(), &HeaderMap::new(), &[]);
        let b = source_address(
            "2001:db8:1:2:ffff::9".parse().unwrap(),
            &HeaderMap::new(),
            &[],
        );
        let c = source_address("2001:db8:1:3::1".parse().unwrap(), &HeaderMap::new(), &[]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mapped = source_address("::ffff:192.0.2.1".parse().unwrap(), &HeaderMap::new(), &[]);
        assert_eq!(mapped, "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
