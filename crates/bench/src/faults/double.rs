//! The provider double for the replicas, behind a front listener an outage
//! can close, and its outage switch.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

/// Serves the provider double for the Core API replicas (`onfido` mode),
/// delivering webhooks to `webhook_url` and retrying a failed delivery for
/// about a minute, as the provider does; writes to `info`, one a line, its
/// API's base URL (behind a front listener an outage can close), its
/// control's URL and its outage switch's URL (see [`outage_switch`]), and
/// serves until killed.
pub(crate) async fn double(webhook_url: String, info: &Path) -> anyhow::Result<()> {
    let double = Arc::new(
        testkit::onfido_double::OnfidoDouble::start(testkit::onfido_double::OnfidoDoubleConfig {
            webhook_url: Some(webhook_url),
            webhook_retries: 600,
            ..Default::default()
        })
        .await,
    );
    let backend: std::net::SocketAddr = url::Url::parse(&double.base_url())?
        .socket_addrs(|| None)?
        .into_iter()
        .next()
        .context("the double's address")?;
    let front = reusable_listener("127.0.0.1:0".parse()?)?;
    let front_addr = front.local_addr()?;
    let (open, opened) = tokio::sync::watch::channel(true);
    tokio::spawn(serve_front(front, backend, opened));
    let switch = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let switch_url = format!("http://{}", switch.local_addr()?);
    let app = outage_switch(double.clone(), Arc::new(open));
    tokio::spawn(async move {
        let _ = axum::serve(switch, app).await;
    });
    std::fs::write(
        info,
        format!(
            "http://{front_addr}/v3.6\n{}\n{switch_url}\n",
            double.control_url()
        ),
    )?;
    std::future::pending::<()>().await;
    Ok(())
}

/// How the provider double answers during an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outage {
    /// Answers normally.
    None,
    /// Its API's port refuses connections (open ones are cut).
    Refused,
    /// Every API call is answered 500 with the provider's error envelope,
    /// and nothing is processed.
    Failing,
    /// Every API call is processed and answered after [`SLOW_ANSWER`],
    /// beyond the product's per-call timeout (10 s).
    Slow,
}

/// How late the double answers while [`Outage::Slow`].
pub(crate) const SLOW_ANSWER: Duration = Duration::from_secs(11);

impl Outage {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "none" => Some(Self::None),
            "refused" => Some(Self::Refused),
            "failing" => Some(Self::Failing),
            "slow" => Some(Self::Slow),
            _ => None,
        }
    }

    fn fault(self) -> Option<testkit::onfido_double::Fault> {
        match self {
            Self::Failing => Some(testkit::onfido_double::Fault::ServerError),
            Self::Slow => Some(testkit::onfido_double::Fault::Delay(SLOW_ANSWER)),
            Self::None | Self::Refused => None,
        }
    }
}

/// Every API route of the double an outage affects.
const ROUTES: [testkit::onfido_double::Route; 6] = [
    testkit::onfido_double::Route::CreateApplicant,
    testkit::onfido_double::Route::DeleteApplicant,
    testkit::onfido_double::Route::CreateRun,
    testkit::onfido_double::Route::ReadRun,
    testkit::onfido_double::Route::ListRuns,
    testkit::onfido_double::Route::BiometricTokens,
];

/// Puts the double into `outage`: its front open or closed, and every route
/// faulted or not.
fn set_outage(
    double: &testkit::onfido_double::OnfidoDouble,
    open: &tokio::sync::watch::Sender<bool>,
    outage: Outage,
) {
    for route in ROUTES {
        match outage.fault() {
            Some(fault) => double.set_route_fault(route, fault, usize::MAX),
            None => double.set_route_fault(route, testkit::onfido_double::Fault::ServerError, 0),
        }
    }
    let _ = open.send(outage != Outage::Refused);
}

/// The double's outage switch: `POST /outage/{none|refused|failing|slow}`,
/// and `GET /runs`, every run the double holds (`id`, `created_at`).
fn outage_switch(
    double: Arc<testkit::onfido_double::OnfidoDouble>,
    open: Arc<tokio::sync::watch::Sender<bool>>,
) -> axum::Router {
    use axum::extract::Path as UrlPath;
    use axum::http::StatusCode;
    let switched = double.clone();
    axum::Router::new()
        .route(
            "/outage/{mode}",
            axum::routing::post(move |UrlPath(mode): UrlPath<String>| async move {
                match Outage::parse(&mode) {
                    Some(outage) => {
                        set_outage(&switched, &open, outage);
                        StatusCode::NO_CONTENT
                    }
                    None => StatusCode::NOT_FOUND,
                }
            }),
        )
        .route(
            "/runs",
            axum::routing::get(move || async move {
                let runs: Vec<Value> = double
                    .run_ids()
                    .into_iter()
                    .filter_map(|id| double.run(&id))
                    .map(
                        |run| serde_json::json!({"id": run["id"], "created_at": run["created_at"]}),
                    )
                    .collect();
                axum::Json(runs)
            }),
        )
}

/// A listener on `addr` that may be bound again as soon as it is closed.
fn reusable_listener(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Forwards connections on `listener` to `backend` while `open` says so;
/// when it turns false the port is closed (connections to it are refused)
/// and open connections are cut, and when it turns true again the same port
/// is bound again.
async fn serve_front(
    listener: tokio::net::TcpListener,
    backend: std::net::SocketAddr,
    mut open: tokio::sync::watch::Receiver<bool>,
) {
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    let mut listener = Some(listener);
    loop {
        let current = match listener.take() {
            Some(current) => current,
            None => {
                while !*open.borrow_and_update() {
                    if open.changed().await.is_err() {
                        return;
                    }
                }
                match reusable_listener(addr) {
                    Ok(bound) => bound,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                }
            }
        };
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = current.accept() => {
                    if let Ok((mut inbound, _)) = accepted {
                        connections.spawn(async move {
                            if let Ok(mut outbound) = tokio::net::TcpStream::connect(backend).await {
                                let _ = inbound.set_nodelay(true);
                                let _ = outbound.set_nodelay(true);
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                    }
                }
                changed = open.changed() => {
                    if changed.is_err() || !*open.borrow_and_update() {
                        break;
                    }
                }
                Some(_) = connections.join_next() => {}
            }
        }
        drop(current);
        connections.shutdown().await;
    }
}
