//! The ops page at `/admin/` on the admin listener: sign-in with the admin token (a strict,
//! HTTP-only session cookie), CSRF tokens on every form that changes something, security
//! headers on every answer, sender-controlled text escaped, and a replay from the page.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fakes::FreshFlowRun;
use crate::helpers::*;

const TOKEN: &str = "ops-page-token";
const DEP_ID: &str = "21e9741f-0000-4000-8000-000000000001";

/// A refused form: what it is, the cookie sent, the fields.
type Case<'a> = (&'a str, Option<&'a str>, Vec<(&'a str, &'a str)>);

/// A browser without redirects followed, so 303s and their cookies can be looked at.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn post_form(
    client: &reqwest::Client,
    url: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(fields).unwrap());
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

async fn get_page(client: &reqwest::Client, url: &str, cookie: Option<&str>) -> (u16, String) {
    let mut request = client.get(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    assert_security_headers(&response);
    (status, response.text().await.unwrap())
}

fn assert_security_headers(response: &reqwest::Response) {
    let h = response.headers();
    let header = |name: &str| {
        h.get(name)
            .unwrap_or_else(|| panic!("{name} on {}", response.url()))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("referrer-policy"), "no-referrer");
    let csp = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("script-src"), "no script allowed: {csp}");
}

/// Signs in; returns the `Cookie` header value to send and the session's CSRF token.
async fn sign_in(app: &TestApp) -> (String, String) {
    let client = browser();
    let response = post_form(
        &client,
        &format!("{}/admin/session", app.admin_address),
        None,
        &[("token", TOKEN)],
    )
    .await;
    assert_eq!(response.status().as_u16(), 303);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let cookie = set_cookie.split(';').next().unwrap().trim().to_owned();
    let (status, page) = get_page(
        &client,
        &format!("{}/admin/", app.admin_address),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    (cookie, csrf_of(&page))
}

fn csrf_of(page: &str) -> String {
    let re = regex::Regex::new(r#"name="csrf" value="([0-9a-f]{64})""#).unwrap();
    re.captures(page)
        .unwrap_or_else(|| panic!("a CSRF token on the page: {page}"))[1]
        .to_owned()
}

fn is_sign_in_form(page: &str) -> bool {
    page.contains(r#"action="/admin/session""#) && page.contains(r#"type="password""#)
}

/// The admin API's newest rejection ids with `code`, waiting until there is one.
async fn rejection_ids(app: &TestApp, code: &str) -> Vec<String> {
    for _ in 0..100 {
        let body: Value = app
            .client
            .get(format!(
                "{}/admin/rejections?code={code}",
                app.admin_address
            ))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ids: Vec<String> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        if !ids.is_empty() {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {code} rejection was recorded");
}

async fn signup_prefect() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(DEPLOYMENT_PATH))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(deployment_body(DEP_ID, &SIGNUP_FIELDS)),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(CREATE_PATH_REGEX))
        .respond_with(FreshFlowRun)
        .mount(&server)
        .await;
    server
}

async fn app_with_token() -> (TestApp, MockServer) {
    let prefect = signup_prefect().await;
    let app =
        spawn_app_with_admin_token(default_settings(&format!("{}/api", prefect.uri())), TOKEN)
            .await;
    (app, prefect)
}

#[tokio::test]
async fn a_wrong_token_gets_the_form_again_and_no_cookie() {
    let (app, _prefect) = app_with_token().await;
    let client = browser();
    for wrong in [
        "",
        "ops-page-toke",
        "ops-page-token-and-more",
        "OPS-PAGE-TOKEN",
    ] {
        let response = post_form(
            &client,
            &format!("{}/admin/session", app.admin_address),
            None,
            &[("token", wrong)],
        )
        .await;
        assert_eq!(response.status().as_u16(), 401, "{wrong:?}");
        assert!(response.headers().get("set-cookie").is_none(), "{wrong:?}");
        assert_security_headers(&response);
        let page = response.text().await.unwrap();
        assert!(is_sign_in_form(&page), "{page}");
        assert!(page.contains("not the admin token"), "{page}");
    }
}

#[tokio::test]
async fn the_right_token_opens_a_strict_http_only_session_and_sign_out_ends_it() {
    let (app, _prefect) = app_with_token().await;
    let client = browser();
    let response = post_form(
        &client,
        &format!("{}/admin/session", app.admin_address),
        None,
        &[("token", TOKEN)],
    )
    .await;
    assert_eq!(response.status().as_u16(), 303);
    assert_security_headers(&response);
    assert_eq!(response.headers()["location"], "/admin/");
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    let parts: Vec<&str> = set_cookie.split(';').map(str::trim).collect();
    let (name, id) = parts[0].split_once('=').unwrap();
    assert_eq!(name, "flowgate_session");
    assert_eq!(id.len(), 64, "256 bits as hex: {id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(parts.contains(&"HttpOnly"), "{set_cookie}");
    assert!(parts.contains(&"SameSite=Strict"), "{set_cookie}");
    assert!(parts.contains(&"Path=/admin"), "{set_cookie}");
    let cookie = parts[0].to_owned();

    let (status, page) = get_page(
        &client,
        &format!("{}/admin/", app.admin_address),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!is_sign_in_form(&page), "{page}");
    for section in [
        "Recent rejections",
        "Outbox",
        "Routes",
        "christmas-signup",
        "Configuration generation 1, loaded",
    ] {
        assert!(page.contains(section), "{section}: {page}");
    }
    // Without the trailing slash too.
    let (status, page) = get_page(
        &client,
        &format!("{}/admin", app.admin_address),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, 200);
    assert!(page.contains("Recent rejections"));

    let csrf = csrf_of(&page);
    let out = post_form(
        &client,
        &format!("{}/admin/session/delete", app.admin_address),
        Some(&cookie),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(out.status().as_u16(), 303);
    let cleared = out.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("flowgate_session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let (_, page) = get_page(
        &client,
        &format!("{}/admin/", app.admin_address),
        Some(&cookie),
    )
    .await;
    assert!(
        is_sign_in_form(&page),
        "the session is gone server-side: {page}"
    );
}

#[tokio::test]
async fn pages_without_a_session_show_the_sign_in_form_and_no_data() {
    let (app, _prefect) = app_with_token().await;
    let refused = app
        .post_json(ROUTE, &json!({"email": "not-an-email"}))
        .await;
    assert_eq!(refused.status().as_u16(), 422);
    let id = rejection_ids(&app, "validation_failed").await.remove(0);
    let client = browser();
    let bogus = format!("flowgate_session={}", "ab".repeat(32));
    for cookie in [None, Some(bogus.as_str()), Some("flowgate_session=short")] {
        for page in ["/admin/", "/admin", &format!("/admin/r/{id}")] {
            let (status, body) =
                get_page(&client, &format!("{}{page}", app.admin_address), cookie).await;
            assert_eq!(status, 200, "{page}");
            assert!(is_sign_in_form(&body), "{page}: {body}");
            for data in ["validation_failed", id.as_str(), "christmas-signup", "csrf"] {
                assert!(!body.contains(data), "{page} shows {data} signed out");
            }
        }
    }
}

#[tokio::test]
async fn forms_without_the_sessions_csrf_token_are_refused() {
    let (app, _prefect) = app_with_token().await;
    let refused = app
        .post_json(ROUTE, &json!({"email": "not-an-email"}))
        .await;
    assert_eq!(refused.status().as_u16(), 422);
    let id = rejection_ids(&app, "validation_failed").await.remove(0);
    let (cookie, csrf) = sign_in(&app).await;
    let (_, other_csrf) = sign_in(&app).await;
    assert_ne!(csrf, other_csrf, "a token per session");
    let entry = uuid::Uuid::now_v7();
    let client = browser();
    let zeros = "0".repeat(64);
    let forms = [
        format!("/admin/r/{id}/replay"),
        format!("/admin/o/{entry}/retry"),
        format!("/admin/o/{entry}/discard"),
        "/admin/session/delete".to_owned(),
    ];
    for form in &forms {
        let url = format!("{}{form}", app.admin_address);
        let cases: [Case; 5] = [
            ("no token", Some(&cookie), vec![("reason", "x")]),
            (
                "empty token",
                Some(&cookie),
                vec![("csrf", ""), ("reason", "x")],
            ),
            (
                "wrong token",
                Some(&cookie),
                vec![("csrf", &zeros), ("reason", "x")],
            ),
            (
                "another session's token",
                Some(&cookie),
                vec![("csrf", &other_csrf), ("reason", "x")],
            ),
            ("no session", None, vec![("csrf", &csrf), ("reason", "x")]),
        ];
        for (case, cookie, fields) in cases {
            let response = post_form(&client, &url, cookie, &fields).await;
            assert_eq!(response.status().as_u16(), 403, "{form}: {case}");
            assert!(response.headers().get("set-cookie").is_none());
            assert_security_headers(&response);
            let body = response.text().await.unwrap();
            assert!(body.contains("csrf_failed"), "{form}: {case}: {body}");
        }
    }
    // Nothing was replayed, and the session still works.
    let detail: Value = app
        .client
        .get(format!("{}/admin/rejections/{id}", app.admin_address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(detail["replayed"].is_null(), "{detail}");
    let (status, page) = get_page(
        &client,
        &format!("{}/admin/", app.admin_address),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!is_sign_in_form(&page));
}

#[tokio::test]
async fn a_script_in_a_rejected_request_is_shown_as_text() {
    let (app, _prefect) = app_with_token().await;
    let script = r#"<script>alert("owned")</script>"#;
    let mut bad = signup("not-an-email");
    bad["business_name"] = json!(script);
    let refused = app
        .client
        .post(format!("{}/hooks/{ROUTE}", app.address))
        .header("x-note", "<img src=x onerror=alert(1)>")
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 422);
    let id = rejection_ids(&app, "validation_failed").await.remove(0);
    let (cookie, _) = sign_in(&app).await;
    let (status, page) = get_page(
        &browser(),
        &format!("{}/admin/r/{id}", app.admin_address),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains("<script"), "{page}");
    assert!(!page.contains("<img"), "{page}");
    // Escaped as entities (askama writes them numerically): shown as text, never run.
    let text = page.replace("&#60;", "&lt;").replace("&#62;", "&gt;");
    assert!(
        text.contains("&lt;script&gt;alert(") && text.contains("&lt;/script&gt;"),
        "the body is there, escaped: {page}"
    );
    assert!(
        text.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    assert!(
        page.contains("id=\"replay-button\""),
        "a 422 can be replayed"
    );
}

#[tokio::test]
async fn the_page_answers_only_on_the_admin_listener_and_only_with_a_token_configured() {
    let (app, prefect) = app_with_token().await;
    let client = browser();
    let public = client
        .get(format!("{}/admin/", app.address))
        .send()
        .await
        .unwrap();
    problem(public, 404, "not_found").await;
    let public = post_form(
        &client,
        &format!("{}/admin/session", app.address),
        None,
        &[("token", TOKEN)],
    )
    .await;
    assert!(public.headers().get("set-cookie").is_none());
    problem(public, 404, "not_found").await;

    let closed = spawn_app(default_settings(&format!("{}/api", prefect.uri()))).await;
    let page = client
        .get(format!("{}/admin/", closed.admin_address))
        .send()
        .await
        .unwrap();
    problem(page, 404, "not_found").await;
    let signin = post_form(
        &client,
        &format!("{}/admin/session", closed.admin_address),
        None,
        &[("token", "")],
    )
    .await;
    problem(signin, 404, "not_found").await;
}

#[tokio::test]
async fn a_replay_from_the_page_after_a_fix_shows_the_new_flow_run() {
    let prefect = signup_prefect().await;
    let data = tempfile::tempdir().unwrap();
    let settings = |unknown_fields: &str| {
        let mut s = default_settings(&format!("{}/api", prefect.uri()));
        s.store.path = data.path().join("flowgate.db").display().to_string();
        s.routes.get_mut(ROUTE).unwrap().unknown_fields = unknown_fields.into();
        s
    };
    let mut extra = signup("jo@example.com");
    extra["utm_source"] = json!("newsletter");

    let before = spawn_app_with_admin_token(settings("reject"), TOKEN).await;
    assert_eq!(before.post_json(ROUTE, &extra).await.status().as_u16(), 422);
    let id = rejection_ids(&before, "validation_failed").await.remove(0);
    // The same config refuses the replay the same way, and the page says so.
    let (cookie, csrf) = sign_in(&before).await;
    let client = browser();
    let again = post_form(
        &client,
        &format!("{}/admin/r/{id}/replay", before.admin_address),
        Some(&cookie),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(again.status().as_u16(), 200);
    assert_security_headers(&again);
    let page = again.text().await.unwrap();
    assert!(page.contains(r#"id="replay-result""#), "{page}");
    assert!(
        page.contains(r#"data-outcome="validation_failed""#),
        "{page}"
    );
    assert!(page.contains("utm_source"), "{page}");
    before.stop().await;

    // The fix: unknown fields dropped. The record survives the restart; the replay makes a run.
    let after = spawn_app_with_admin_token(settings("drop"), TOKEN).await;
    let (cookie, csrf) = sign_in(&after).await;
    let (status, list) = get_page(
        &client,
        &format!("{}/admin/?code=validation_failed", after.admin_address),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, 200);
    assert!(list.contains(&format!("/admin/r/{id}")), "{list}");
    let replayed = post_form(
        &client,
        &format!("{}/admin/r/{id}/replay", after.admin_address),
        Some(&cookie),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(replayed.status().as_u16(), 200);
    let page = replayed.text().await.unwrap();
    assert!(page.contains(r#"data-outcome="created""#), "{page}");
    let re = regex::Regex::new(r#"id="replay-flow-run-id">([0-9a-f-]{36})<"#).unwrap();
    let run = re.captures(&page).expect("a flow run id")[1].to_owned();
    let creates: Vec<Value> = prefect
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(creates.len(), 1, "one run, from the replay");
    assert!(
        creates[0]["parameters"].get("utm_source").is_none(),
        "{}",
        creates[0]
    );
    // The record notes the replay, shown on the page.
    assert!(page.contains("Last replay"), "{page}");
    assert!(uuid::Uuid::parse_str(&run).is_ok());
}

#[tokio::test]
async fn discard_needs_a_reason_and_an_unknown_entry_is_not_found() {
    let (app, _prefect) = app_with_token().await;
    let (cookie, csrf) = sign_in(&app).await;
    let client = browser();
    let entry = uuid::Uuid::now_v7();
    let url = format!("{}/admin/o/{entry}/discard", app.admin_address);
    let blank = post_form(
        &client,
        &url,
        Some(&cookie),
        &[("csrf", &csrf), ("reason", " ")],
    )
    .await;
    assert_eq!(blank.status().as_u16(), 400);
    assert_security_headers(&blank);
    let unknown = post_form(
        &client,
        &url,
        Some(&cookie),
        &[("csrf", &csrf), ("reason", "test")],
    )
    .await;
    assert_eq!(unknown.status().as_u16(), 404);
    let retry = post_form(
        &client,
        &format!("{}/admin/o/{entry}/retry", app.admin_address),
        Some(&cookie),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(retry.status().as_u16(), 404);
}
