//! Both runtimes over real HTTP, on both stores, and `dev` as a newcomer runs it.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use serde_json::Value;
use server::app::Shutdown;
use server::config::LogLevel;
use server::dev::{self, DevOptions};
use testkit::{STORES, spawn_core, spawn_management};

#[tokio::test]
async fn both_runtimes_serve_the_service_endpoints_on_both_stores() {
    for store in STORES {
        for app in [spawn_core(store).await, spawn_management(store).await] {
            let health = app.get("/api/health").await;
            assert_eq!(health.status(), 200, "{store:?}");
            let ready: Value = app.get("/api/ready").await.json().await.unwrap();
            assert_eq!(ready["database"], "ok", "{store:?}");
            let version = app.get("/api/version").await;
            assert_eq!(version.headers()["cache-control"], "no-store");
            assert_eq!(version.headers()["x-content-type-options"], "nosniff");
            let version: Value = version.json().await.unwrap();
            assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
            assert!(
                version.get("commit").is_none() && version.get("build_time").is_none(),
                "the version only, unless the operator enables the detail: {version}"
            );

            let missing = app.get("/api/core/v0/nothing").await;
            assert_eq!(missing.status(), 404);
            assert_eq!(missing.headers()["cache-control"], "no-store");
            assert_eq!(missing.headers()["x-content-type-options"], "nosniff");
            let id = missing.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            let body: Value = missing.json().await.unwrap();
            assert_eq!(body["error"]["code"], "route_not_found");
            assert_eq!(body["error"]["correlation_id"], id.as_str());
        }
    }
}

#[tokio::test]
async fn the_version_detail_is_shown_where_the_operator_enables_it() {
    let mut config = testkit::management_config();
    config.common.version_detail = true;
    let app = testkit::spawn_management_with(testkit::Store::Sqlite, config).await;
    let version: Value = app.get("/api/version").await.json().await.unwrap();
    assert!(version["commit"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(
        version["build_time"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
}

#[tokio::test]
async fn management_serves_runtime_config_uncached() {
    let app = spawn_management(testkit::Store::Sqlite).await;
    let response = app.get("/runtime-config.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let config: Value = response.json().await.unwrap();
    assert_eq!(
        config["oidc"]["clientId"],
        "biometric-passkey-management-ui"
    );
    assert_eq!(config["apiBaseUrl"], "");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn dev_serves_both_runtimes_on_loopback_and_keeps_its_key() {
    let data = tempfile::tempdir().unwrap();
    let options = DevOptions {
        data_dir: data.path().join("dev"),
        core_port: free_port(),
        management_port: free_port(),
        metrics_port: free_port(),
        log_level: LogLevel::Error,
        possession: server::config::PossessionConfig::External,
        metadata_file: None,
    };
    let shutdown = Shutdown::default();
    let servers = dev::start(&options, &shutdown).await.unwrap();
    assert_eq!(
        servers.core.addr(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, options.core_port))
    );
    assert_eq!(
        servers.management.addr(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, options.management_port))
    );
    for addr in [servers.core.addr(), servers.management.addr()] {
        let health = reqwest::get(format!("http://{addr}/api/health"))
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        let version: Value = reqwest::get(format!("http://{addr}/api/version"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            version["runtime"], "dev",
            "impossible to mistake for production"
        );
    }

    // Both runtimes' metrics on one loopback listener of their own, by runtime.
    let metrics = servers.metrics.as_ref().expect("served on --metrics-port");
    assert_eq!(
        metrics.addr(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, options.metrics_port))
    );
    let text = reqwest::get(format!("http://{}/metrics", metrics.addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for runtime in ["core", "management"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("biometric_passkey_http_requests_total{")
                    && l.contains(&format!("runtime=\"{runtime}\""))
                    && l.contains("route=\"/api/health\"")),
            "{runtime} in:\n{text}"
        );
    }

    let key_file = options.data_dir.join("data-encryption-key");
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(key.len(), 43, "unpadded base64url of 32 bytes");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), async {
        servers.core.stopped().await.unwrap();
        servers.management.stopped().await.unwrap();
        servers.metrics.unwrap().stopped().await.unwrap();
    })
    .await
    .unwrap();

    // A second start reuses the same key and database.
    let shutdown = Shutdown::default();
    let again = dev::start(&options, &shutdown).await.unwrap();
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
    shutdown.trigger();
    again.core.stopped().await.unwrap();
    again.management.stopped().await.unwrap();
}

#[tokio::test]
async fn configured_api_keys_are_required_on_the_core_api() {
    use core_api::auth::ApiKeys;
    use domain::service::FlowPolicy;

    let key = "integration-key-0123456789abcdefghijkl";
    let app = testkit::spawn_core_configured(
        testkit::Store::Sqlite,
        FlowPolicy::default(),
        ApiKeys::new([key]),
    )
    .await;
    let body = serde_json::json!({ "type": "registration", "external_user_id": "keyed" });

    let (status, error) = app.post("/api/core/v1/flows", body.clone()).await;
    assert_eq!(status, 401);
    assert_eq!(error["error"]["code"], "unauthorized");
    let wrong = app
        .client
        .post(app.url("/api/core/v1/flows"))
        .bearer_auth("integration-key-0123456789abcdefghijkX")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().contains_key("www-authenticate"));

    let (status, _) = app
        .send(
            app.client
                .post(app.url("/api/core/v1/flows"))
                .bearer_auth(key)
                .json(&body),
        )
        .await;
    assert_eq!(status, 201);
    // Service endpoints stay open for probes.
    assert_eq!(app.get("/api/health").await.status(), 200);
}

#[tokio::test]
async fn dev_answers_only_requests_addressed_to_a_loopback_name() {
    let data = tempfile::tempdir().unwrap();
    let options = DevOptions {
        data_dir: data.path().join("dev"),
        core_port: free_port(),
        management_port: free_port(),
        metrics_port: free_port(),
        log_level: LogLevel::Error,
        possession: server::config::PossessionConfig::External,
        metadata_file: None,
    };
    let shutdown = Shutdown::default();
    let servers = dev::start(&options, &shutdown).await.unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let core = servers.core.addr();
    let management = servers.management.addr();
    let flow = serde_json::json!({ "type": "registration", "external_user_id": "rebound" });

    // A page under a rebound DNS name reaches 127.0.0.1 with its own name as Host.
    for (addr, path) in [
        (core, "/api/health"),
        (core, "/api/core/v1/users/rebound"),
        (management, "/api/health"),
        (management, "/runtime-config.json"),
        (management, "/.well-known/openid-configuration"),
    ] {
        for host in [
            "evil.example".to_owned(),
            format!("evil.example:{}", addr.port()),
            format!("localhost.evil.example:{}", addr.port()),
        ] {
            let response = client
                .get(format!("http://{addr}{path}"))
                .header(reqwest::header::HOST, &host)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 421, "{path} with Host {host}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "host_not_allowed");
        }
    }
    let refused = client
        .post(format!("http://{core}/api/core/v1/flows"))
        .header(reqwest::header::HOST, "evil.example")
        .json(&flow)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 421);
    let user = client
        .get(format!("http://{core}/api/core/v1/users/rebound"))
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), 404, "the refused call created nothing");

    // Loopback names, with any case and port, are served; dev needs no API key.
    for (addr, path) in [(core, "/api/health"), (management, "/runtime-config.json")] {
        for host in [
            format!("localhost:{}", addr.port()),
            format!("LOCALHOST:{}", addr.port()),
            format!("127.0.0.1:{}", addr.port()),
            format!("[::1]:{}", addr.port()),
            "localhost".to_owned(),
        ] {
            let response = client
                .get(format!("http://{addr}{path}"))
                .header(reqwest::header::HOST, &host)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path} with Host {host}");
        }
    }
    let created = client
        .post(format!("http://{core}/api/core/v1/flows"))
        .header(reqwest::header::HOST, format!("localhost:{}", core.port()))
        .json(&flow)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    shutdown.trigger();
    servers.core.stopped().await.unwrap();
    servers.management.stopped().await.unwrap();
}

#[tokio::test]
async fn dev_reads_the_authenticator_metadata_file() {
    let data = tempfile::tempdir().unwrap();
    let options = |metadata_file| DevOptions {
        data_dir: data.path().join("dev"),
        core_port: 0,
        management_port: 0,
        metrics_port: 0,
        log_level: LogLevel::Error,
        possession: server::config::PossessionConfig::External,
        metadata_file,
    };
    // A file that is not authenticator metadata: dev does not start, and says why.
    let bad = data.path().join("metadata.txt");
    std::fs::write(&bad, "not metadata").unwrap();
    let shutdown = Shutdown::default();
    let Err(err) = dev::start(&options(Some(bad)), &shutdown).await else {
        panic!("dev started with a metadata file it cannot read");
    };
    assert!(
        format!("{err:#}").contains("BIOMETRIC_PASSKEY_WEBAUTHN_METADATA_FILE"),
        "{err:#}"
    );
    // A name list: dev starts.
    let list = data.path().join("aaguids.json");
    std::fs::write(
        &list,
        r#"{"fbfc3007-154e-4ecc-8c0b-6e020557d7bd": {"name": "iCloud Keychain"}}"#,
    )
    .unwrap();
    let servers = dev::start(&options(Some(list)), &shutdown).await.unwrap();
    let health = reqwest::get(format!("http://{}/api/health", servers.management.addr()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    shutdown.trigger();
}
