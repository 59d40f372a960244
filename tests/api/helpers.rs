use std::path::PathBuf;

use flowgate::configuration::{read_settings, Configuration, PrefectAuth, Settings};
use flowgate::startup::{AppHandle, Application};
use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const ROUTE: &str = "christmas-signup";
pub const DEPLOYMENT_PATH: &str = "/api/deployments/name/christmas-signup-handler/website";
pub const CREATE_PATH_REGEX: &str = r"^/api/deployments/[0-9a-f-]+/create_flow_run$";

pub const SIGNUP_FIELDS: [&str; 14] = [
    "email",
    "first_name",
    "business_name",
    "assessment_score",
    "red_systems",
    "orange_systems",
    "yellow_systems",
    "green_systems",
    "gps_score",
    "money_score",
    "marketing_score",
    "weakest_system_1",
    "weakest_system_2",
    "revenue_leak_total",
];

pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// `config/default.toml` as shipped, listening on a free port, talking to `prefect_api`.
pub fn shipped_settings(prefect_api: &str) -> Settings {
    let mut settings =
        read_settings(&repo_path("config/default.toml")).expect("config/default.toml reads");
    settings.server.port = 0;
    settings.admin.port = 0;
    settings.prefect.api_url = prefect_api.to_owned();
    settings
}

/// The shipped settings with millisecond retry delays, for a mock Prefect.
pub fn default_settings(prefect_api: &str) -> Settings {
    let mut settings = shipped_settings(prefect_api);
    settings.prefect.retry_base_delay_ms = 1;
    settings.prefect.retry_max_delay_ms = 5;
    settings
}

pub struct TestApp {
    /// Holds the store file for the app's lifetime.
    _data: tempfile::TempDir,
    pub address: String,
    /// The admin listener (`/metrics`).
    pub admin_address: String,
    pub client: reqwest::Client,
    handle: AppHandle,
    running: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// Stops the app gracefully and waits until it has (the store flushed and closed).
    pub async fn stop(mut self) {
        self.handle.stop(true).await;
        if let Some(running) = self.running.take() {
            running.await.expect("the app ran").expect("the app served");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

pub async fn spawn_app(settings: Settings) -> TestApp {
    spawn_app_with_auth(settings, PrefectAuth::None).await
}

pub async fn spawn_app_with_auth(settings: Settings, auth: PrefectAuth) -> TestApp {
    start(Configuration::from_settings(settings, auth).expect("settings are valid")).await
}

impl TestApp {
    pub async fn post_json(&self, route: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/hooks/{route}", self.address))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_form(&self, route: &str, fields: &[(&str, String)]) -> reqwest::Response {
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.client
            .post(format!("{}/hooks/{route}", self.address))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("request sent")
    }
}

/// A valid signup, distinct per `email`.
pub fn signup(email: &str) -> Value {
    json!({
        "email": email,
        "first_name": "Jo",
        "business_name": "Jo's Bakery",
        "assessment_score": 65,
        "red_systems": 1,
        "orange_systems": 2,
        "yellow_systems": 3,
        "green_systems": 0,
        "gps_score": 50,
        "money_score": 70,
        "marketing_score": 75,
        "weakest_system_1": "GPS",
        "weakest_system_2": "Money",
        "revenue_leak_total": 624
    })
}

/// The same signup as form fields, every value a string (as a browser sends it).
pub fn signup_form(email: &str) -> Vec<(&'static str, String)> {
    let json = signup(email);
    SIGNUP_FIELDS
        .iter()
        .map(|&k| {
            let v = &json[k];
            (
                k,
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect()
}

/// A deployment body as Prefect returns it for the served flow, declaring `params` with the
/// flow's types (the signup's scores and counts are integers, the rest strings).
pub fn deployment_body(id: &str, params: &[&str]) -> Value {
    let properties: serde_json::Map<String, Value> = params
        .iter()
        .map(|p| {
            let numeric = signup("x@example.com").get(*p).is_some_and(Value::is_i64);
            let kind = if numeric { "integer" } else { "string" };
            (p.to_string(), json!({"title": p, "type": kind}))
        })
        .collect();
    json!({
        "id": id,
        "name": "website",
        "flow_id": "a5b59a30-0000-4000-8000-000000000000",
        "paused": false,
        "status": "READY",
        "enforce_parameter_schema": true,
        "parameter_openapi_schema": {"type": "object", "properties": properties, "required": params},
    })
}

pub fn flow_run_body(id: &str) -> Value {
    json!({"id": id, "name": "signup", "state_type": "SCHEDULED"})
}

/// A mock Prefect whose deployment lookup (expected `lookups` times) and create both succeed.
pub async fn happy_prefect(lookups: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DEPLOYMENT_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(deployment_body(
            "21e9741f-0000-4000-8000-000000000001",
            &SIGNUP_FIELDS,
        )))
        .expect(lookups)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(CREATE_PATH_REGEX))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(flow_run_body("e72bf8dd-0000-4000-8000-000000000001")),
        )
        .mount(&server)
        .await;
    server
}

/// Asserts a problem+json response and returns its body.
pub async fn problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status for {code}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let header_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert_eq!(
        body["request_id"],
        header_id.as_str(),
        "request_id in body matches X-Request-Id"
    );
    body
}

/// The `field` names of a 422 body, sorted.
pub fn error_fields(body: &Value) -> Vec<String> {
    let mut fields: Vec<String> = body["errors"]
        .as_array()
        .expect("errors list")
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    fields.sort();
    fields
}

/// The shipped config plus `extra` TOML (more routes), for a mock Prefect.
pub fn settings_with(prefect_api: &str, extra: &str) -> Settings {
    let shipped = std::fs::read_to_string(repo_path("config/default.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("test.toml");
    std::fs::write(&file, format!("{shipped}\n{extra}")).unwrap();
    let mut settings = read_settings(&file).expect("test config reads");
    settings.server.port = 0;
    settings.admin.port = 0;
    settings.prefect.api_url = prefect_api.to_owned();
    settings.prefect.retry_base_delay_ms = 1;
    settings.prefect.retry_max_delay_ms = 5;
    settings
}

/// The shipped Prefect retry delays again, for a real Prefect on SQLite: it answers 503
/// "database is locked" to a write that meets another test's, for longer than the mocks'
/// 1–5 ms delays last; a production client waits that out, and so must these.
pub fn real_prefect_retries(settings: &mut Settings) {
    let shipped = flowgate::configuration::PrefectSettings::default();
    settings.prefect.retry_base_delay_ms = shipped.retry_base_delay_ms;
    settings.prefect.retry_max_delay_ms = shipped.retry_max_delay_ms;
}

/// Starts the app with route secrets looked up in `env` instead of the process environment.
pub async fn spawn_app_with_env(settings: Settings, env: &[(&str, &str)]) -> TestApp {
    let env: std::collections::HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |name: &str| env.get(name).cloned();
    let config = Configuration::from_settings_with_env(settings, PrefectAuth::None, &lookup)
        .expect("settings are valid");
    start(config).await
}

/// A local port that refuses connections for as long as this lives: bound but not listening,
/// so no other process can take it meanwhile (a port only closed again can be).
pub struct RefusingPort {
    _socket: tokio::net::TcpSocket,
    pub port: u16,
}

impl RefusingPort {
    /// A Prefect API URL on this port: every call to it is refused.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}/api", self.port)
    }
}

pub fn refusing_port() -> RefusingPort {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(([127, 0, 0, 1], 0).into())
        .expect("a local port binds");
    let port = socket.local_addr().expect("a bound address").port();
    RefusingPort {
        _socket: socket,
        port,
    }
}

/// A client for flowgate whose pool drops idle connections before flowgate closes them
/// (`startup::KEEP_ALIVE`): a request that meets the close gets no answer, as nginx's would.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(flowgate::startup::KEEP_ALIVE - std::time::Duration::from_secs(1))
        .build()
        .expect("a default client builds")
}

/// Starts the app from a configuration built by the test.
pub async fn start_config(config: Configuration) -> TestApp {
    start(config).await
}

async fn start(mut config: Configuration) -> TestApp {
    let data = tempfile::tempdir().unwrap();
    if config.settings.store.path == flowgate::configuration::StoreSettings::default().path {
        config.settings.store.path = data.path().join("flowgate.db").display().to_string();
    }
    let app = Application::build(config)
        .await
        .expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let admin_address = format!(
        "http://127.0.0.1:{}",
        app.admin_port().expect("admin listener on")
    );
    let handle = app.handle();
    let running = Some(tokio::spawn(app.run_until_stopped()));
    TestApp {
        _data: data,
        address,
        admin_address,
        client: client(),
        handle,
        running,
    }
}

/// A mock Prefect for partner routes: deployment declares `event`; creates expected `creates` times.
pub async fn partner_prefect(creates: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DEPLOYMENT_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(deployment_body(
            "21e9741f-0000-4000-8000-0000000000aa",
            &["event"],
        )))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(CREATE_PATH_REGEX))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(flow_run_body("e72bf8dd-0000-4000-8000-0000000000aa")),
        )
        .expect(creates)
        .mount(&server)
        .await;
    server
}

/// Posts `body` with `headers` to `/hooks/{route}`.
pub async fn post_signed(
    app: &TestApp,
    route: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}/hooks/{route}", app.address))
        .body(body.to_vec());
    for (k, v) in headers {
        request = request.header(k.as_str(), v.as_str());
    }
    request.send().await.expect("request sent")
}

/// Makes the signup route answer upstream failures instead of queueing them.
pub fn without_queue(mut settings: Settings) -> Settings {
    settings.routes.get_mut(ROUTE).unwrap().queue = false;
    settings
}

/// Starts the app with an admin token for `/admin/…`.
pub async fn spawn_app_with_admin_token(settings: Settings, token: &str) -> TestApp {
    let mut config =
        Configuration::from_settings(settings, PrefectAuth::None).expect("settings are valid");
    config.admin_token = Some(secrecy::SecretString::from(token));
    start(config).await
}

/// A mock Prefect that must receive nothing (`expect(0)`, checked on drop).
/// A Prefect that must see no call but the background health probe.
pub async fn untouchable_prefect() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::path("/api/health"))
        .respond_with(ResponseTemplate::new(200).set_body_string("true"))
        .mount(&server)
        .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    server
}

/// A gauge read from the admin listener's `/metrics`.
pub async fn gauge(app: &TestApp, name: &str) -> i64 {
    gauge_at(&app.admin_address, name).await
}

/// A gauge read from `/metrics` at an admin address.
pub async fn gauge_at(admin_address: &str, name: &str) -> i64 {
    let text = reqwest::get(format!("{admin_address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("flowgate_{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no flowgate_{name} in:\n{text}"))
}

/// Polls `/metrics` until `flowgate_{name}` reads `want` (fails after 30 s).
pub async fn wait_for_gauge(app: &TestApp, name: &str, want: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let value = gauge(app, name).await;
        if value == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "flowgate_{name} is {value}, expected {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
