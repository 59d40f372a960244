//! Real nginx and TLS material for tests: a throwaway CA and a server certificate for
//! `localhost`/`127.0.0.1` made with the openssl CLI, and Debian's nginx run by this user from a
//! temporary prefix (its own pid file, logs and temp paths), stopped when dropped.
//!
//! ```text
//! let certs = make_certs(dir);                    // dir/ca.pem, dir/server.pem, dir/server.key
//! std::fs::write(dir.join("site.conf"), "server { listen 127.0.0.1:PORT ssl; ... }")?;
//! let conf = write_main_config(dir, &dir.join("site.conf"));
//! let nginx = Nginx::start(dir, &conf).await;     // listening; stopped on drop
//! ```

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Debian's nginx (`nginx-light` or `nginx`; `.ci/run` installs it when missing).
pub fn nginx_binary() -> PathBuf {
    let debian = PathBuf::from("/usr/sbin/nginx");
    if debian.exists() {
        return debian;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.exists())
        .expect("nginx not found: apt-get install nginx-light (.ci/run does)")
}

/// A port free right now on 127.0.0.1, for a server that binds it itself.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A CA and a server certificate it signed, as PEM files.
pub struct TestCerts {
    /// The CA certificate: what a client trusts.
    pub ca: PathBuf,
    /// The server certificate (SAN `DNS:localhost`, `IP:127.0.0.1`).
    pub cert: PathBuf,
    /// The server certificate's private key.
    pub key: PathBuf,
}

/// Makes a P-256 CA and a server certificate for `localhost` and `127.0.0.1` in `dir`, valid
/// for two days, with the extensions strict verifiers (rustls/webpki) require.
pub fn make_certs(dir: &Path) -> TestCerts {
    let certs = TestCerts {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    let ca_key = dir.join("ca.key");
    let csr = dir.join("server.csr");
    let extensions = dir.join("server.ext");
    std::fs::write(
        &extensions,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n\
         basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    openssl(
        Command::new("openssl")
            .args(["req", "-x509", "-new", "-nodes", "-days", "2"])
            .args(ec)
            .args(["-subj", "/CN=flowgate test CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&certs.ca),
    );
    openssl(
        Command::new("openssl")
            .args(["req", "-new", "-nodes", "-subj", "/CN=localhost"])
            .args(ec)
            .arg("-keyout")
            .arg(&certs.key)
            .arg("-out")
            .arg(&csr),
    );
    openssl(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&certs.ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-CAserial")
            .arg(dir.join("ca.srl"))
            .arg("-extfile")
            .arg(&extensions)
            .arg("-out")
            .arg(&certs.cert),
    );
    certs
}

fn openssl(command: &mut Command) {
    let out = command
        .output()
        .expect("openssl runs (Debian: /usr/bin/openssl)");
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A main `nginx.conf` in `prefix` whose `http {}` includes `http_conf`: pid, error log and
/// temp paths inside `prefix`. The `http {}` block starts with what Debian's
/// `/etc/nginx/nginx.conf` sets before its includes (its access log goes to
/// `prefix/debian-access.log`), so an included file that clashes with Debian's fails here too.
pub fn write_main_config(prefix: &Path, http_conf: &Path) -> PathBuf {
    let p = prefix.display();
    // As root, workers would switch to `nobody`, who cannot enter a private temp dir.
    let user = if running_as_root() { "user root;" } else { "" };
    for dir in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(prefix.join("tmp").join(dir)).unwrap();
    }
    let conf = prefix.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "{user}
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log warn;
events {{
    worker_connections 512;
}}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    default_type application/octet-stream;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    access_log {p}/debian-access.log;
    gzip on;
    client_body_temp_path {p}/tmp/body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
    include {http};
}}
",
            http = http_conf.display()
        ),
    )
    .unwrap();
    conf
}

fn running_as_root() -> bool {
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// `nginx -t` on the main config `conf` with prefix `prefix`.
pub fn check_config(prefix: &Path, conf: &Path) -> Output {
    Command::new(nginx_binary())
        .arg("-t")
        .arg("-p")
        .arg(prefix)
        .arg("-e")
        .arg(prefix.join("error.log"))
        .arg("-c")
        .arg(conf)
        .output()
        .expect("nginx -t runs")
}

/// A running nginx (master in the foreground as this process's child); stopped on drop.
pub struct Nginx {
    child: Child,
    prefix: PathBuf,
    conf: PathBuf,
}

impl Nginx {
    /// Starts nginx with the main config `conf` (see `write_main_config`) and returns once it
    /// listens: nginx writes its pid file after binding every listening socket.
    pub async fn start(prefix: &Path, conf: &Path) -> Self {
        let log = |name: &str| std::fs::File::create(prefix.join(name)).unwrap();
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(prefix)
            .arg("-e")
            .arg(prefix.join("error.log"))
            .arg("-c")
            .arg(conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(log("nginx.stdout"))
            .stderr(log("nginx.stderr"))
            .spawn()
            .expect("nginx starts");
        let mut nginx = Self {
            child,
            prefix: prefix.to_path_buf(),
            conf: conf.to_path_buf(),
        };
        let pid_file = prefix.join("nginx.pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::fs::read_to_string(&pid_file).is_ok_and(|pid| !pid.trim().is_empty()) {
                return nginx;
            }
            if let Some(status) = nginx.child.try_wait().unwrap() {
                panic!("nginx exited ({status}): {}", nginx.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx not listening after 10 s: {}",
                nginx.error_log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What nginx wrote to its error log (and stderr) so far.
    pub fn error_log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.prefix.join(name)).unwrap_or_default();
        format!("{}{}", read("error.log"), read("nginx.stderr"))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // `nginx -s stop` signals the master through its pid file; it stops its workers.
        let _ = Command::new(nginx_binary())
            .arg("-p")
            .arg(&self.prefix)
            .arg("-e")
            .arg(self.prefix.join("error.log"))
            .arg("-c")
            .arg(&self.conf)
            .args(["-s", "stop"])
            .output();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
