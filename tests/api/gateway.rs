//! The flowgate binary run as a process, for tests of what only a process shows: its log,
//! its answer to signals.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

/// The real binary serving a configuration written for it, its stderr captured.
pub struct Gateway {
    child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// `config(port, store path)` gives the TOML text; `env` is added (and `RUST_LOG` removed
    /// unless given).
    pub async fn start(config: impl FnOnce(u16, &str) -> String, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::nginx_support::free_port();
        let path = dir.path().join("flowgate.toml");
        let store = dir.path().join("flowgate.db").display().to_string();
        std::fs::write(&path, config(port, &store)).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowgate"));
        command
            .args(["serve", "--config"])
            .arg(&path)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = command.spawn().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while client.get(format!("{base}/healthz")).send().await.is_err() {
            assert!(Instant::now() < deadline, "flowgate did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            child,
            base,
            _dir: dir,
        }
    }

    /// The configuration file it serves (rewrite it, then reload).
    pub fn config_path(&self) -> std::path::PathBuf {
        self._dir.path().join("flowgate.toml")
    }

    /// The process id, to send it a signal.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit by itself.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    pub fn stop_and_read_log(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let mut logs = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut logs)
            .unwrap();
        logs
    }
}

/// A test that fails midway leaves no gateway running.
impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
