//! Live configuration: `POST /admin/reload` (and `SIGHUP`) switch routes and secrets without a
//! restart. A sender looping on a signed route sees a secret rotated by two reloads with no
//! refusal of a live secret; an invalid file leaves the running configuration serving; a route
//! added serves at once, a removed one is unknown.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::auth::github_headers;
use crate::fakes::FreshFlowRun;
use crate::helpers::*;

const ADMIN: &str = "reload-admin-token-0123456789";

/// A Prefect stand-in that makes a run of every create (the reload is what is tested).
async fn prefect() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DEPLOYMENT_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(deployment_body(
            "21e9741f-0000-4000-8000-0000000000bb",
            &["event"],
        )))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(CREATE_PATH_REGEX))
        .respond_with(FreshFlowRun)
        .mount(&server)
        .await;
    Mock::given(path("/api/health"))
        .respond_with(ResponseTemplate::new(200).set_body_string("true"))
        .mount(&server)
        .await;
    server
}

struct Files {
    dir: tempfile::TempDir,
    api: String,
}

impl Files {
    fn config(&self) -> PathBuf {
        self.dir.path().join("flowgate.toml")
    }

    fn secret(&self, name: &str, value: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, value).unwrap();
        p
    }

    /// Writes the configuration: the route `gh` with `secrets`, and `extra` routes.
    fn write(&self, secrets: &[&Path], extra: &str) {
        let secrets: Vec<String> = secrets
            .iter()
            .map(|p| format!("{{ file = \"{}\" }}", p.display()))
            .collect();
        let store = self.dir.path().join("flowgate.db");
        std::fs::write(
            self.config(),
            format!(
                r#"
[server]
port = 0
[prefect]
api_url = "{api}"
[admin]
port = 0
[store]
path = "{store}"
[limits.per_ip]
per_minute = 1000000
burst = 100000
[routes.gh]
deployment = "christmas-signup-handler/website"
unknown_fields = "drop"
auth = {{ type = "hmac", scheme = "github", secrets = [{secrets}] }}
[routes.gh.fields]
event = {{ type = "string" }}
{extra}
"#,
                api = self.api,
                store = store.display(),
                secrets = secrets.join(", "),
            ),
        )
        .unwrap();
    }

    async fn start(&self) -> TestApp {
        let mut config =
            flowgate::configuration::Configuration::load(Some(&self.config())).unwrap();
        config.admin_token = Some(secrecy::SecretString::from(ADMIN));
        start_config(config).await
    }
}

async fn setup() -> (MockServer, Files) {
    let server = prefect().await;
    let files = Files {
        dir: tempfile::tempdir().unwrap(),
        api: format!("{}/api", server.uri()),
    };
    (server, files)
}

async fn reload(app: &TestApp) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}/admin/reload", app.admin_address))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

static DELIVERY: AtomicU64 = AtomicU64::new(0);

async fn send(app: &TestApp, secret: &[u8]) -> u16 {
    let body = br#"{"event":"push"}"#;
    let delivery = format!("d-{}", DELIVERY.fetch_add(1, Ordering::Relaxed));
    post_signed(app, "gh", &github_headers(secret, body, &delivery), body)
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_secret_rotated_by_two_reloads_under_load_never_refuses_a_live_secret() {
    let (_prefect, files) = setup().await;
    let old = files.secret("old", "old-secret");
    let new = files.secret("new", "new-secret");
    files.write(&[&old], "");
    let app = Arc::new(files.start().await);

    // A sender loops, signing with the old secret until told to switch to the new one.
    let use_new = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (app, use_new, stop) = (app.clone(), use_new.clone(), stop.clone());
        tokio::spawn(async move {
            let mut refused = Vec::new();
            let mut sent = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let fresh = use_new.load(Ordering::Relaxed);
                let secret: &[u8] = if fresh { b"new-secret" } else { b"old-secret" };
                let status = send(&app, secret).await;
                sent += 1;
                if status != 202 {
                    refused.push((fresh, status));
                }
            }
            (sent, refused)
        })
    };

    // Both secrets live, then the sender moves to the new one, then the old one goes.
    files.write(&[&new, &old], "");
    let (status, first) = reload(&app).await;
    assert_eq!(
        (status, first["generation"].as_u64()),
        (200, Some(2)),
        "{first}"
    );
    for _ in 0..20 {
        assert_eq!(send(&app, b"old-secret").await, 202, "old still live");
        assert_eq!(send(&app, b"new-secret").await, 202, "new live");
    }
    use_new.store(true, Ordering::Relaxed);
    files.write(&[&new], "");
    let (status, second) = reload(&app).await;
    assert_eq!(
        (status, second["generation"].as_u64()),
        (200, Some(3)),
        "{second}"
    );
    for _ in 0..20 {
        assert_eq!(
            send(&app, b"old-secret").await,
            401,
            "removed secret refused"
        );
        assert_eq!(send(&app, b"new-secret").await, 202);
    }
    stop.store(true, Ordering::Relaxed);
    let (sent, refused) = sender.await.unwrap();
    assert!(sent > 20, "the sender kept sending ({sent})");
    assert!(
        refused.is_empty(),
        "requests signed by a live secret were refused: {refused:?} of {sent}"
    );
}

#[tokio::test]
async fn an_invalid_file_leaves_the_running_configuration_and_says_why() {
    let (_prefect, files) = setup().await;
    let secret = files.secret("s", "the-secret");
    files.write(&[&secret], "");
    let app = files.start().await;
    assert_eq!(send(&app, b"the-secret").await, 202);

    files.write(
        &[&files.dir.path().join("missing-secret")],
        "[routes.broken]\nauth = 3\n",
    );
    let (status, refused) = reload(&app).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (422, Some("reload_failed")),
        "{refused}"
    );
    let fields: Vec<&str> = refused["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap_or_default())
        .collect();
    assert!(!fields.is_empty(), "{refused}");
    assert_eq!(
        send(&app, b"the-secret").await,
        202,
        "the old configuration serves"
    );

    let ready: Value = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["config"]["generation"], 1, "{ready}");
    assert_eq!(ready["config"]["last_reload"], "failed", "{ready}");
    let metrics = app
        .client
        .get(format!("{}/metrics", app.admin_address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("flowgate_config_reloads_total{outcome=\"failed\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_route_added_by_reload_serves_at_once_and_a_removed_one_is_unknown() {
    let (_prefect, files) = setup().await;
    let secret = files.secret("s", "the-secret");
    let added = "[routes.signup2]\ndeployment = \"christmas-signup-handler/website\"\nauth = \"none\"\nunknown_fields = \"drop\"\n[routes.signup2.fields]\nevent = { type = \"string\" }\n";
    files.write(&[&secret], "");
    let app = files.start().await;
    let post = |route: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(format!("{}/hooks/{route}", app.address))
                .json(&serde_json::json!({"event": "x"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(post("signup2").await, 404);
    files.write(&[&secret], added);
    let (status, answer) = reload(&app).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(post("signup2").await, 202, "served at once");

    files.write(&[&secret], "");
    assert_eq!(reload(&app).await.0, 200);
    let gone = app
        .client
        .post(format!("{}/hooks/signup2", app.address))
        .json(&serde_json::json!({"event": "x"}))
        .send()
        .await
        .unwrap();
    problem(gone, 404, "unknown_route").await;
    let routes: Value = app
        .client
        .get(format!("{}/admin/routes", app.admin_address))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(routes["generation"], 3, "{routes}");
}

#[tokio::test]
async fn rate_limit_state_survives_a_reload_unless_the_rate_changed() {
    let (_prefect, files) = setup().await;
    let secret = files.secret("s", "the-secret");
    let limited = |burst: u32| {
        format!(
            "[routes.limited]\ndeployment = \"christmas-signup-handler/website\"\nauth = \"none\"\nunknown_fields = \"drop\"\nlimit = {{ per_minute = 1, burst = {burst} }}\n[routes.limited.fields]\nevent = {{ type = \"string\" }}\n"
        )
    };
    files.write(&[&secret], &limited(2));
    let app = files.start().await;
    let post = || async {
        app.client
            .post(format!("{}/hooks/limited", app.address))
            .json(&serde_json::json!({"event": "x"}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!((post().await, post().await, post().await), (202, 202, 429));
    assert_eq!(reload(&app).await.0, 200);
    assert_eq!(
        post().await,
        429,
        "the same rate: the bucket is still empty"
    );
    files.write(&[&secret], &limited(5));
    assert_eq!(reload(&app).await.0, 200);
    assert_eq!(post().await, 202, "a new rate starts a new bucket");
}

#[tokio::test]
async fn sighup_reloads_the_running_binary() {
    let route = |name: &str| {
        format!("[routes.{name}]\ndeployment = \"flow/{name}\"\nauth = \"none\"\nunknown_fields = \"drop\"\n")
    };
    let base = |port: u16, store: &str| {
        format!(
            "[server]\nport = {port}\n[admin]\nenabled = false\n[store]\npath = \"{store}\"\n[prefect]\napi_url = \"http://127.0.0.1:9/api\"\n"
        )
    };
    let first = route("a");
    let gw =
        crate::gateway::Gateway::start(|port, store| format!("{}{first}", base(port, store)), &[])
            .await;
    let ready = || async {
        reqwest::get(format!("{}/readyz", gw.base))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    assert_eq!(ready().await["config"]["generation"], 1);
    let text = std::fs::read_to_string(gw.config_path()).unwrap();
    std::fs::write(gw.config_path(), format!("{text}{}", route("b"))).unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = ready().await;
        if r["config"]["generation"] == 2 {
            assert_eq!(r["routes"], 2, "{r}");
            assert_eq!(r["config"]["last_reload"], "ok", "{r}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reload within 10 s: {r}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
