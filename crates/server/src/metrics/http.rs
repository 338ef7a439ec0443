//! Requests by runtime, route template, method and status class, and their
//! latency. The route is axum's `MatchedPath` (`/api/core/v1/flows/{flow_id}`),
//! never the request's own path; a request no route matched (an unknown path,
//! a dashboard page) is `unmatched`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::Router;
use axum::extract::MatchedPath;
use axum::http::Method;
use axum::response::Response;
use metrics::{Counter, Histogram, SharedString};
use tower::{Layer, Service};

use super::Metrics;

/// The label of requests no route template matched.
pub const UNMATCHED: &str = "unmatched";

struct Meter {
    metrics: Metrics,
    runtime: &'static str,
    series: Series,
}

/// The counter and histogram of a route, method and status class.
type Handles = (Counter, Histogram);

/// A route's handles by method and status class.
type RouteSeries = HashMap<(&'static str, &'static str), Handles>;

/// Each series' handles, registered on its first request: the routes,
/// methods and status classes are closed sets, so afterwards a request only
/// looks its handles up, allocating and hashing labels no more.
#[derive(Default)]
struct Series(RwLock<HashMap<String, RouteSeries>>);

impl Meter {
    fn handles(&self, route: &str, method: &'static str, status: &'static str) -> Option<Handles> {
        if let Ok(known) = self.series.0.read()
            && let Some(handles) = known.get(route).and_then(|m| m.get(&(method, status)))
        {
            return Some(handles.clone());
        }
        let route_label = SharedString::from_shared(Arc::<str>::from(route));
        let runtime = self.runtime;
        let handles = self.metrics.register(|| {
            let counter = metrics::counter!(
                "biometric_passkey_http_requests_total",
                "runtime" => runtime,
                "route" => route_label.clone(),
                "method" => method,
                "status" => status,
            );
            let histogram = metrics::histogram!(
                "biometric_passkey_http_request_duration_seconds",
                "runtime" => runtime,
                "route" => route_label,
                "method" => method,
            );
            (counter, histogram)
        })?;
        if let Ok(mut known) = self.series.0.write() {
            known
                .entry(route.to_owned())
                .or_default()
                .insert((method, status), handles.clone());
        }
        Some(handles)
    }

    fn answered(&self, route: Option<&MatchedPath>, method: &'static str, status: u16, took: f64) {
        let route = route.map_or(UNMATCHED, MatchedPath::as_str);
        if let Some((counter, histogram)) = self.handles(route, method, status_class(status)) {
            counter.increment(1);
            histogram.record(took);
        }
    }
}

impl Metrics {
    /// Measures every request `router` answers, labelled with `runtime`.
    pub fn measure_http(&self, router: Router, runtime: &'static str) -> Router {
        if !self.is_on() {
            return router;
        }
        router.layer(MeasureLayer(Arc::new(Meter {
            metrics: self.clone(),
            runtime,
            series: Series::default(),
        })))
    }
}

/// Wraps each route in [`Measured`]. A hand-written layer rather than
/// `axum::middleware::from_fn`, which clones and boxes the inner service
/// and boxes the handler's future on every request: this one only wraps the
/// future, so measuring costs a clock read, a look-up and two atomic updates.
#[derive(Clone)]
struct MeasureLayer(Arc<Meter>);

impl<S> Layer<S> for MeasureLayer {
    type Service = Measured<S>;

    fn layer(&self, inner: S) -> Measured<S> {
        Measured {
            inner,
            meter: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct Measured<S> {
    inner: S,
    meter: Arc<Meter>,
}

impl<S, B> Service<axum::http::Request<B>> for Measured<S>
where
    S: Service<axum::http::Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = MeasuredFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let method = method_label(request.method());
        let route = request.extensions().get::<MatchedPath>().cloned();
        MeasuredFuture {
            inner: self.inner.call(request),
            meter: self.meter.clone(),
            started,
            method,
            route,
        }
    }
}

pin_project_lite::pin_project! {
    /// A route's response, recorded when it is ready.
    struct MeasuredFuture<F> {
        #[pin]
        inner: F,
        meter: Arc<Meter>,
        started: Instant,
        method: &'static str,
        route: Option<MatchedPath>,
    }
}

impl<F, E> Future for MeasuredFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            let took = this.started.elapsed().as_secs_f64();
            this.meter.answered(
                this.route.as_ref(),
                this.method,
                response.status().as_u16(),
                took,
            );
        }
        Poll::Ready(result)
    }
}

/// The standard methods by name; anything else is `other`, so a client
/// cannot mint label values.
pub fn method_label(method: &Method) -> &'static str {
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
