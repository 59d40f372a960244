//! A fresh database on the test PostgreSQL for each caller: the server is the one
//! `scripts/test` starts (`FLOWGATE_TEST_POSTGRES_URL`), or `scripts/local-postgres start 5440`
//! run here (idempotent) when the tests run on their own. Shared by the store's unit tests and
//! the integration tests.

use std::process::Command;

use tokio::sync::OnceCell;

static SERVER: OnceCell<(String, String)> = OnceCell::const_new();

/// The server's URL (without a password) and the password.
async fn server() -> &'static (String, String) {
    SERVER
        .get_or_init(|| async {
            let password = std::env::var("FLOWGATE_TEST_POSTGRES_PASSWORD")
                .unwrap_or_else(|_| "flowgate-test".into());
            if let Ok(url) = std::env::var("FLOWGATE_TEST_POSTGRES_URL") {
                return (url, password);
            }
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/local-postgres");
            let out = tokio::task::spawn_blocking(move || {
                Command::new(script).args(["start", "5440"]).output()
            })
            .await
            .expect("the start task runs")
            .expect("scripts/local-postgres runs");
            assert!(
                out.status.success(),
                "scripts/local-postgres start failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (url, password)
        })
        .await
}

/// The CA that signed the test server's TLS certificate (`scripts/local-postgres ca`).
pub async fn ca_file() -> std::path::PathBuf {
    let (url, _) = server().await;
    if let Ok(ca) = std::env::var("FLOWGATE_TEST_POSTGRES_CA") {
        return ca.into();
    }
    let port = url
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap_or("5440")
        .to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/local-postgres");
    let out = Command::new(script)
        .args(["ca", &port])
        .output()
        .expect("scripts/local-postgres runs");
    String::from_utf8_lossy(&out.stdout).trim().into()
}

/// Creates an empty database; answers its URL (no password) and the password.
pub async fn fresh_database() -> (String, String) {
    let (url, password) = server().await;
    let mut config: tokio_postgres::Config = url.parse().expect("a PostgreSQL URL");
    config.password(password.as_str());
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL at {url}: {e}"));
    tokio::spawn(connection);
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("CREATE DATABASE");
    let (base, _) = url.rsplit_once('/').expect("the URL names a database");
    (format!("{base}/{name}"), password.clone())
}
