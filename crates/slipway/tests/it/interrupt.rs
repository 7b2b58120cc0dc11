//! Ctrl-C in the middle of an apply, for real: a loopback proxy in front of moto holds the
//! provider's CreateQueue request, so the test knows the engine is mid-apply when it sends
//! slipway the interrupt, and decides when the cloud answers.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::common::{example, sandbox, slipway_process, slipway_run};

/// Forwards loopback connections to `target`; the first request that contains `needle` is
/// held until the test says so.
pub(crate) struct HoldingProxy {
    pub(crate) port: u16,
    pub(crate) held: mpsc::Receiver<()>,
    pub(crate) release: mpsc::Sender<()>,
}

impl HoldingProxy {
    pub(crate) fn start(target_port: u16, needle: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (held_tx, held_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let hold = Arc::new(Mutex::new(Some((held_tx, release_rx))));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    return;
                };
                let (mut client_read, mut server_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let hold = Arc::clone(&hold);
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 16384];
                    let mut recent = Vec::new();
                    loop {
                        let n = match client_read.read(&mut buffer) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        recent.extend_from_slice(&buffer[..n]);
                        if recent.len() > 65536 {
                            recent.drain(..recent.len() - 8192);
                        }
                        if String::from_utf8_lossy(&recent).contains(needle) {
                            if let Some((held, release)) = hold.lock().unwrap().take() {
                                let _ = held.send(());
                                let _ = release.recv();
                            }
                            recent.clear();
                        }
                        if server_write.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = server_write.shutdown(Shutdown::Write);
                });
                let (mut server_read, mut client_write) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server_read, &mut client_write);
                    let _ = client_write.shutdown(Shutdown::Write);
                });
            }
        });
        Self {
            port,
            held: held_rx,
            release: release_tx,
        }
    }

    /// `env` with the sandbox's endpoint moved to the proxy.
    pub(crate) fn env(&self, env: &[(String, String)]) -> Vec<(String, String)> {
        let mut env = env.to_vec();
        for (key, value) in &mut env {
            if key == "SLIPWAY_SANDBOX_ENDPOINT" {
                *value = format!("http://127.0.0.1:{}", self.port);
            }
        }
        env
    }
}

#[test]
fn ctrl_c_mid_apply_lets_terraform_save_state_and_names_the_instance() {
    let (_sandbox, moto) = sandbox();
    let proxy = HoldingProxy::start(moto.port(), "Action=CreateQueue");
    let project = example("webshop");
    let child = slipway_process(project.path(), &proxy.env(&moto.env()))
        .args(["apply", "--stage", "dev", "--stack", "queue"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // The provider is now waiting for the cloud to create the queue: mid-apply.
    proxy
        .held
        .recv_timeout(Duration::from_secs(300))
        .expect("the apply reaches CreateQueue");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    // Let the cloud answer only once Terraform has been told to stop: it must finish the
    // operation in flight and save it in the state.
    let log_dir = project.path().join(".slipway/runs");
    let log_says_interrupted = || {
        crate::failures::walk(&log_dir).iter().any(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .contains("sent one interrupt")
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !log_says_interrupted() {
        assert!(
            std::time::Instant::now() < deadline,
            "slipway forwards the interrupt"
        );
        std::thread::yield_now();
    }
    proxy.release.send(()).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("! dev/queue: interrupted mid-apply"),
        "{stderr}"
    );
    assert!(stderr.contains("left mid-apply: dev/queue"), "{stderr}");

    // Terraform saved what it created before stopping.
    let state = std::fs::read_to_string(
        project
            .path()
            .join(".slipway/state/dev/queue/terraform.tfstate"),
    )
    .unwrap();
    assert!(
        state.contains("webshop-dev-orders"),
        "the queue is in the state"
    );
    assert_eq!(
        moto.inventory().unwrap().sqs_queues,
        vec!["webshop-dev-orders"]
    );

    // The next apply says what happened before, and converges from the saved state.
    let again = slipway_run(
        project.path(),
        &moto.env(),
        &["apply", "--stage", "dev", "--stack", "queue"],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains("was left mid-apply by an earlier run"),
        "{}",
        again.stderr
    );
}
