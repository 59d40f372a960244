//! How the PostgreSQL store connects: the URL (never with a password in it), the password from
//! the environment or a file, TLS (rustls, certificate and host name checked) when the URL says
//! `sslmode=require`, and the pool.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::config::SslMode;

use super::super::StoreError;

/// Settings of every session: a transaction left idle 30 s ends (its locks with it).
const SESSION_OPTIONS: &str = "-c idle_in_transaction_session_timeout=30000";

/// Where and how to reach PostgreSQL. Debug output never shows the password.
#[derive(Debug, Clone)]
pub struct PgConnect {
    /// `postgres://user@host:port/db?sslmode=require`, without a password.
    pub url: String,
    pub password: Option<SecretString>,
    /// CA certificates (PEM) trusted for the database's TLS certificate besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Connections for reads and claims (the writer holds one more).
    pub pool_size: usize,
    /// How long a replica's claim on an outbox entry lasts.
    pub lease: Duration,
}

impl PgConnect {
    pub fn error(&self, reason: String) -> StoreError {
        StoreError::Open {
            path: self.url.clone(),
            reason,
        }
    }

    pub fn pool(&self) -> Result<Pool, StoreError> {
        let mut config =
            tokio_postgres::Config::from_str(&self.url).map_err(|e| self.error(e.to_string()))?;
        if config.get_password().is_some() {
            return Err(self.error(
                "the URL carries a password; give it in FLOWGATE_STORE_PASSWORD (or _FILE)".into(),
            ));
        }
        if let Some(password) = &self.password {
            config.password(password.expose_secret());
        }
        if config.get_application_name().is_none() {
            config.application_name("flowgate");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        // A replica that hangs mid-transaction (or whose network goes silent) must not hold
        // its row locks (a route's counts) for long: PostgreSQL ends such a session, and dead
        // peers are found by TCP keepalives within a minute.
        if config.get_options().is_none() {
            config.options(SESSION_OPTIONS);
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        // `sslmode=require`: TLS, the certificate checked against the roots and the host name
        // (libpq's verify-full). Otherwise plain TCP, as on a private network or loopback.
        let manager = if config.get_ssl_mode() == SslMode::Require {
            let tls = self.tls()?;
            Manager::from_config(config, tls, manager_config)
        } else {
            config.ssl_mode(SslMode::Disable);
            Manager::from_config(config, tokio_postgres::NoTls, manager_config)
        };
        Pool::builder(manager)
            .max_size(self.pool_size.max(2))
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| self.error(e.to_string()))
    }

    /// rustls with the system's roots plus `store.ca_file`.
    fn tls(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| self.error(format!("cannot read {}: {e}", path.display())))?;
            let mut found = 0;
            for cert in rustls_pemfile_certs(&pem) {
                let cert = cert.map_err(|e| self.error(format!("{}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| self.error(format!("{}: {e}", path.display())))?;
                found += 1;
            }
            if found == 0 {
                return Err(self.error(format!("{} holds no PEM certificate", path.display())));
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| self.error(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}

/// The certificates of a PEM bundle.
fn rustls_pemfile_certs(
    pem: &[u8],
) -> impl Iterator<Item = Result<rustls::pki_types::CertificateDer<'static>, String>> + '_ {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem).map(|c| c.map_err(|e| e.to_string()))
}
