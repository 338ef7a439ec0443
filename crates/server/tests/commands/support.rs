//! What the tests that start the `biometric-passkey` binary share: a free
//! port, a child process killed when dropped, waiting for its health, and
//! SIGTERM.

use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A runtime started by a test: killed and reaped when dropped.
pub(crate) struct Running(pub(crate) Child);

impl Running {
    /// Sends SIGTERM, as an orchestrator stops a pod.
    pub(crate) fn terminate(&self) {
        let pid = self.0.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (up to a minute) until the runtime on `port` answers its health route.
pub(crate) async fn wait_for_health(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if reqwest::get(format!("http://127.0.0.1:{port}/api/health"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the runtime did not answer on port {port}");
}
