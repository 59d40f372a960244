//! The edge under test: flowgate configured as the README's *Deploying* section configures it,
//! behind the shipped nginx files rendered for test ports, paths and a test certificate; and
//! curl as the client.

use std::path::{Path, PathBuf};
use std::time::Duration;

use flowgate::configuration::{read_settings, Settings};
use serde_json::Value;
use tempfile::TempDir;
use tokio::time::Instant;

use crate::e2e::prefect_api;
use crate::helpers::*;
use crate::nginx_support::{free_port, make_certs, write_main_config, Nginx, TestCerts};

/// The address nginx connects to flowgate from, and so flowgate's only trusted proxy.
const TRUSTED_PROXY: &str = "127.0.0.1/32";
pub(super) const SERVER_NAME: &str = "flowgate.example.com";
/// The line of `nginx/flowgate.conf` that serves `/api/v1/` publicly (the documented switch).
const API_INCLUDE: &str = "include /etc/nginx/flowgate/api-v1.conf;";
pub(super) const ADMIN_TOKEN: &str = "edge-test-admin-token";
/// flowgate's cap on an `/api/v1` trigger body (`src/api/trigger.rs`).
pub(super) const API_MAX_BODY: usize = 256 * 1024;

/// flowgate's settings as *Deploying* makes them: `config/default.toml` with its
/// `trusted_proxies` line set to nginx's address (the README's `sed`), on free ports.
fn deployed_settings(prefect_api: &str) -> Settings {
    let shipped = std::fs::read_to_string(repo_path("config/default.toml")).unwrap();
    let lines: Vec<&str> = shipped
        .lines()
        .filter(|l| l.starts_with("trusted_proxies = "))
        .collect();
    assert_eq!(lines.len(), 1, "one trusted_proxies line to set");
    let deployed = shipped.replace(
        lines[0],
        &format!("trusted_proxies = [\"{TRUSTED_PROXY}\"]"),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flowgate.toml");
    std::fs::write(&file, deployed).unwrap();
    let mut settings = read_settings(&file).expect("the deployed config reads");
    settings.server.port = 0;
    settings.admin.port = 0;
    settings.prefect.api_url = prefect_api.to_owned();
    settings
}

/// Replaces each `from` (which must occur) by its `to`.
fn render(template: &str, replacements: &[(&str, String)]) -> String {
    replacements
        .iter()
        .fold(template.to_owned(), |text, (from, to)| {
            assert!(
                text.contains(from),
                "nginx/flowgate.conf no longer has {from:?}: update the rendering here"
            );
            text.replace(from, to)
        })
}

pub(super) struct Ports {
    pub(super) http: u16,
    pub(super) https: u16,
    pub(super) flowgate: u16,
}

/// Renders the shipped nginx files into `dir` for `ports` and `certs`; returns the main config.
/// Only listen addresses (IPv4 loopback, no IPv6), the upstream port, the certificate, the
/// includes' directory and the access log's path change.
pub(super) fn render_edge(
    dir: &Path,
    certs: &TestCerts,
    ports: &Ports,
    api_public: bool,
) -> PathBuf {
    let upstream = format!("server 127.0.0.1:{};", ports.flowgate);
    render_edge_upstream(dir, certs, ports.http, ports.https, &upstream, api_public)
}

/// `render_edge` with the upstream's `server` line replaced by `servers` (e.g. one line per
/// replica: `replica_servers`).
pub(crate) fn render_edge_upstream(
    dir: &Path,
    certs: &TestCerts,
    http: u16,
    https: u16,
    servers: &str,
    api_public: bool,
) -> PathBuf {
    let includes = dir.join("flowgate");
    std::fs::create_dir_all(&includes).unwrap();
    let include_dir = format!("{}/", includes.display());
    for entry in std::fs::read_dir(repo_path("nginx/flowgate")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            includes.join(path.file_name().unwrap()),
            text.replace("/etc/nginx/flowgate/", &include_dir),
        )
        .unwrap();
    }
    let shipped = std::fs::read_to_string(repo_path("nginx/flowgate.conf")).unwrap();
    let mut replacements = vec![
        ("listen 80;", format!("listen 127.0.0.1:{http};")),
        ("listen [::]:80;", String::new()),
        ("listen 443 ssl;", format!("listen 127.0.0.1:{https} ssl;")),
        ("listen [::]:443 ssl;", String::new()),
        ("server 127.0.0.1:8080;", servers.to_owned()),
        (
            "/etc/letsencrypt/live/flowgate.example.com/fullchain.pem",
            certs.cert.display().to_string(),
        ),
        (
            "/etc/letsencrypt/live/flowgate.example.com/privkey.pem",
            certs.key.display().to_string(),
        ),
        (
            "/var/log/nginx/flowgate.access.log",
            dir.join("flowgate.access.log").display().to_string(),
        ),
    ];
    if !api_public {
        replacements.push((API_INCLUDE, String::new()));
    }
    replacements.push(("/etc/nginx/flowgate/", include_dir));
    let http_conf = dir.join("flowgate.conf");
    std::fs::write(&http_conf, render(&shipped, &replacements)).unwrap();
    write_main_config(dir, &http_conf)
}

/// The upstream's `server` lines for several replicas as `nginx/flowgate.conf` documents them
/// (its commented example, one line per replica, parameters as written), each pointed at one of
/// `ports` on 127.0.0.1.
pub(crate) fn replica_servers(ports: &[u16]) -> String {
    let shipped = std::fs::read_to_string(repo_path("nginx/flowgate.conf")).unwrap();
    let examples: Vec<&str> = shipped
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .map(str::trim)
        .filter(|l| l.starts_with("server 10.0.0."))
        .collect();
    assert_eq!(
        examples.len(),
        ports.len(),
        "nginx/flowgate.conf's example has one server line per replica: {examples:?}"
    );
    examples
        .iter()
        .zip(ports)
        .map(|(line, port)| {
            let (address, parameters) = line
                .strip_prefix("server ")
                .and_then(|l| l.split_once(' '))
                .unwrap_or_else(|| panic!("not `server ADDRESS PARAMETERS;`: {line}"));
            assert!(address.ends_with(":8080"), "{line}");
            format!("server 127.0.0.1:{port} {parameters}")
        })
        .collect::<Vec<_>>()
        .join("\n    ")
}

/// An answer as curl saw it.
pub(super) struct Answer {
    pub(super) status: u16,
    headers: Vec<(String, String)>,
    pub(super) body: String,
}

impl Answer {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether flowgate answered (it sets `X-Request-Id` on every answer; nginx never does).
    pub(super) fn by_flowgate(&self) -> bool {
        self.header("x-request-id").is_some()
    }

    pub(super) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// flowgate behind the shipped nginx.
pub(super) struct Edge {
    pub(super) app: TestApp,
    nginx: Nginx,
    pub(super) dir: TempDir,
    ports: Ports,
    pub(super) ca: PathBuf,
}

impl Edge {
    /// The API served publicly (as shipped), flowgate's settings changed by `adjust`.
    pub(super) async fn start(adjust: impl FnOnce(&mut Settings)) -> Self {
        Self::start_with(true, adjust).await
    }

    pub(super) async fn start_with(api_public: bool, adjust: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = deployed_settings(prefect_api().await);
        adjust(&mut settings);
        Self::start_upstream(settings, api_public, |flowgate| {
            format!("server 127.0.0.1:{flowgate};")
        })
        .await
    }

    /// flowgate as deployed (Prefect at `prefect_api`) behind the shipped edge, whose upstream's
    /// `server` lines are `servers(flowgate's port)`.
    pub(super) async fn start_in_front_of(
        prefect_api: &str,
        servers: impl FnOnce(u16) -> String,
    ) -> Self {
        Self::start_upstream(deployed_settings(prefect_api), true, servers).await
    }

    async fn start_upstream(
        settings: Settings,
        api_public: bool,
        servers: impl FnOnce(u16) -> String,
    ) -> Self {
        let app = spawn_app_with_admin_token(settings, ADMIN_TOKEN).await;
        let flowgate = app
            .address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("flowgate's port");
        let dir = tempfile::tempdir().unwrap();
        let certs = make_certs(dir.path());
        let ports = Ports {
            http: free_port(),
            https: free_port(),
            flowgate,
        };
        let conf = render_edge_upstream(
            dir.path(),
            &certs,
            ports.http,
            ports.https,
            &servers(flowgate),
            api_public,
        );
        let nginx = Nginx::start(dir.path(), &conf).await;
        Self {
            app,
            nginx,
            dir,
            ports,
            ca: certs.ca,
        }
    }

    pub(super) fn https(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.ports.https)
    }

    pub(super) fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.http)
    }

    /// curl with `args`, as a client connecting from `from` (a 127.0.0.0/8 address).
    pub(super) async fn curl_from(&self, from: &str, args: &[&str], body: Option<&[u8]>) -> Answer {
        let mut command = tokio::process::Command::new("curl");
        command
            .args(["-sS", "-i", "--path-as-is", "--max-time", "20"])
            // No `Expect: 100-continue` round trip for larger bodies.
            .args(["-H", "Expect:", "--interface", from, "--cacert"])
            .arg(&self.ca)
            .args(args);
        if let Some(body) = body {
            let file = self
                .dir
                .path()
                .join(format!("body-{}", uuid::Uuid::new_v4()));
            std::fs::write(&file, body).unwrap();
            command
                .arg("--data-binary")
                .arg(format!("@{}", file.display()));
        }
        let out = command.output().await.expect("curl runs");
        assert!(
            out.status.success(),
            "curl {args:?}: {}\nnginx: {}",
            String::from_utf8_lossy(&out.stderr),
            self.nginx.error_log()
        );
        parse_answer(&out.stdout)
    }

    pub(super) async fn curl(&self, args: &[&str], body: Option<&[u8]>) -> Answer {
        self.curl_from("127.0.0.1", args, body).await
    }

    pub(super) async fn get(&self, path: &str) -> Answer {
        self.curl(&[&self.https(path)], None).await
    }

    pub(super) async fn post_json(&self, path: &str, body: &[u8]) -> Answer {
        self.curl(
            &["-H", "content-type: application/json", &self.https(path)],
            Some(body),
        )
        .await
    }

    /// What nginx wrote to its error log so far.
    pub(super) fn error_log(&self) -> String {
        self.nginx.error_log()
    }

    pub(super) fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("flowgate.access.log")).unwrap_or_default()
    }

    /// The access log line of the answer with `request_id`, once nginx has written it.
    pub(super) async fn access_log_line(&self, request_id: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.access_log();
            if let Some(line) = log
                .lines()
                .find(|l| l.ends_with(&format!("id={request_id}")))
            {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no access log line for {request_id} in:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn parse_answer(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// The largest body flowgate takes on `/hooks/` in the shipped configs.
pub(super) fn largest_hook_cap() -> usize {
    ["config/default.toml", "config/examples/partners.toml"]
        .iter()
        .map(|file| read_settings(&repo_path(file)).unwrap())
        .flat_map(|s| {
            let server = s.server.max_body_bytes;
            let routes: Vec<usize> = s
                .routes
                .values()
                .map(|r| r.max_body_bytes.unwrap_or(server))
                .collect();
            routes.into_iter().chain([server])
        })
        .max()
        .unwrap()
}
