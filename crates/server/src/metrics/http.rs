//! Requests by runtime, route template, method and status class, and their
//! latency. The route is axum's `MatchedPath` (`/api/core/v1/flows/{flow_id}`),
//! never the request's own path; a request no route matched (an unknown path,
//! a dashboard page) is `unmatched`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::SharedString;

use super::Metrics;

/// The label of requests no route template matched.
pub const UNMATCHED: &str = "unmatched";

#[derive(Clone)]
struct Meter {
    metrics: Metrics,
    runtime: &'static str,
    routes: Arc<RouteLabels>,
}

/// Each route template's label value, made once: the set is the router's
/// routes, so after the first request of each the hot path allocates none.
#[derive(Default)]
struct RouteLabels(RwLock<HashMap<String, SharedString>>);

impl RouteLabels {
    fn get(&self, route: &str) -> SharedString {
        if let Ok(known) = self.0.read()
            && let Some(label) = known.get(route)
        {
            return label.clone();
        }
        let label = SharedString::from_shared(Arc::<str>::from(route));
        if let Ok(mut known) = self.0.write() {
            known.insert(route.to_owned(), label.clone());
        }
        label
    }
}

impl Metrics {
    /// Measures every request `router` answers, labelled with `runtime`.
    pub fn measure_http(&self, router: Router, runtime: &'static str) -> Router {
        if !self.is_on() {
            return router;
        }
        router.layer(axum::middleware::from_fn_with_state(
            Meter {
                metrics: self.clone(),
                runtime,
                routes: Arc::default(),
            },
            measure,
        ))
    }
}

async fn measure(State(meter): State<Meter>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let elapsed = started.elapsed().as_secs_f64();
    let status = status_class(response.status().as_u16());
    let route = match &route {
        Some(route) => meter.routes.get(route.as_str()),
        None => SharedString::const_str(UNMATCHED),
    };
    meter.metrics.record(|| {
        metrics::counter!(
            "biometric_passkey_http_requests_total",
            "runtime" => meter.runtime,
            "route" => route.clone(),
            "method" => method,
            "status" => status,
        )
        .increment(1);
        metrics::histogram!(
            "biometric_passkey_http_request_duration_seconds",
            "runtime" => meter.runtime,
            "route" => route,
            "method" => method,
        )
        .record(elapsed);
    });
    response
}

/// The standard methods by name; anything else is `other`, so a client
/// cannot mint label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_and_methods_come_from_closed_sets() {
        assert_eq!(status_class(101), "1xx");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(304), "3xx");
        assert_eq!(status_class(421), "4xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
