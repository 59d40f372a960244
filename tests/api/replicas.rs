//! Three replicas (the binary, one process each) on one PostgreSQL store behind the shipped
//! nginx (its upstream as `nginx/flowgate.conf` documents it for replicas), a real Prefect, and
//! senders that retry like partners: a burst of signed events, during which one replica is
//! killed with SIGKILL (holding claims, with a POST in its socket) and another is stopped with
//! SIGTERM and started again. Every acknowledged event has exactly one flow run, nothing is
//! left in the outbox, and the entries the killed replica had claimed are delivered by the
//! others once its lease runs out.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::auth::github_headers;
use crate::helpers::*;
use crate::nginx::edge::{render_edge_upstream, replica_servers};
use crate::nginx_support::{free_port, make_certs, Nginx};
use crate::real_prefect;

#[path = "../support/postgres.rs"]
#[allow(dead_code)]
mod pg;

/// This test's own Prefect (no runner: runs stay SCHEDULED).
const PREFECT_PORT: u16 = 4395;
/// Events in the burst.
const EVENTS: usize = 480;
/// Concurrent senders, each from its own address (nginx limits 10 requests/s per address).
const SENDERS: usize = 24;
/// Between one sender's events: 24 senders send about 100 events/s, more than Prefect creates
/// (about 45 runs/s at best), so entries wait in the outbox while replicas die and restart.
const PACE: Duration = Duration::from_millis(240);
/// Attempts per event before a sender gives up (its retries take up to about 35 s).
const MAX_ATTEMPTS: u32 = 40;
/// A replica's claim on an entry; one delivery attempt (prefect.timeout_ms +
/// prefect.request_budget_ms below) must fit in it.
const LEASE_SECS: u64 = 5;
const SECRET: &str = "replicas-partner-secret";
const ROUTE_NAME: &str = "partner-events";

/// One flowgate process (`flowgate serve --config FILE`) on its own port.
struct Replica {
    name: &'static str,
    config: PathBuf,
    log: PathBuf,
    port: u16,
    password: String,
    child: Option<Child>,
    /// Its id in the store (the holder of its claims), once started.
    id: Option<uuid::Uuid>,
}

impl Replica {
    fn new(dir: &Path, name: &'static str, store: (&str, &str), api: &str, tag: &str) -> Self {
        let (store_url, password) = store;
        let port = free_port();
        let config = dir.join(format!("flowgate-{name}.toml"));
        // Each replica names its connections, so the test can see them in pg_stat_activity.
        let url = format!("{store_url}?application_name=flowgate-{name}");
        std::fs::write(&config, replica_config(port, &url, api, tag)).unwrap();
        Self {
            name,
            config,
            log: dir.join(format!("flowgate-{name}.log")),
            port,
            password: password.to_owned(),
            child: None,
            id: None,
        }
    }

    /// Starts the process and returns once it answers `/healthz` and its heartbeat (a
    /// `replica:ID` lease) is in the store; `known` holds every replica id seen so far.
    async fn start(&mut self, db: &tokio_postgres::Client, known: &mut HashSet<uuid::Uuid>) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_flowgate"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("FLOWGATE_STORE_PASSWORD", &self.password)
            .env("REPLICAS_PARTNER_SECRET", SECRET)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let health = format!("http://127.0.0.1:{}/healthz", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if reqwest::get(&health)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "replica {} exited ({status}): {}",
                    self.name,
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "replica {} not healthy after 30 s: {}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        loop {
            let holders: Vec<uuid::Uuid> = db
                .query("SELECT holder FROM leases WHERE name LIKE 'replica:%'", &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            let new: Vec<uuid::Uuid> = holders.into_iter().filter(|h| !known.contains(h)).collect();
            if let [id] = new[..] {
                known.insert(id);
                self.id = Some(id);
                return;
            }
            assert!(new.len() < 2, "two new replicas at once: {new:?}");
            assert!(
                Instant::now() < deadline,
                "replica {} has no heartbeat in the store: {}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn id(&self) -> uuid::Uuid {
        self.id.expect("started")
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the exit; answers its status.
    async fn stop(&mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "replica {} still running 30 s after SIGTERM: {}",
                self.name,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A replica's whole configuration: the signed partner route, the store on PostgreSQL with a
/// short lease, and Prefect's budgets made to fit in it.
fn replica_config(port: u16, store_url: &str, api: &str, tag: &str) -> String {
    // The signup form's fields (what the served deployment declares), read from the shipped
    // config so they stay what the flow takes.
    let shipped = std::fs::read_to_string(repo_path("config/default.toml")).unwrap();
    let (_, fields) = shipped
        .split_once("[routes.christmas-signup.fields]\n")
        .expect("config/default.toml has the signup's fields");
    format!(
        r#"
[server]
host = "127.0.0.1"
port = {port}
trusted_proxies = ["127.0.0.1/32"]
shutdown_timeout_secs = 10

[prefect]
api_url = "{api}"
timeout_ms = 3000
request_budget_ms = 1500

[store]
url = "{store_url}"
pool_size = 4
lease_secs = {LEASE_SECS}

[delivery]
probe_every_secs = 1
retry_base_delay_ms = 200
retry_max_delay_ms = 2000

[limits]
per_ip = {{ per_minute = 100000, burst = 10000 }}

[admin]
enabled = false

[telemetry]
format = "json"
level = "warn"

# A partner that signs as GitHub does; its delivery id names the run.
[routes.{ROUTE_NAME}]
deployment = "christmas-signup-handler/website"
auth = {{ type = "hmac", scheme = "github", secrets = [{{ env = "REPLICAS_PARTNER_SECRET" }}] }}
content_types = ["application/json"]
unknown_fields = "drop"
tags = ["webhook", "source:replicas-test", "{tag}"]
run_name = "event-{{delivery}}"

[routes.{ROUTE_NAME}.fields]
delivery = {{ type = "string", header = "X-GitHub-Delivery" }}
{fields}"#
    )
}

/// One event as its partner sends it, every time (same body, same signature, same delivery id).
struct Event {
    delivery: String,
    email: String,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

/// What the senders saw.
#[derive(Default)]
struct Seen {
    /// Delivery id → the acknowledging answer's status and body `status`.
    acked: BTreeMap<String, (u16, String)>,
    /// Events given up after `MAX_ATTEMPTS`.
    given_up: Vec<String>,
    /// Non-2xx answers by status, and whether flowgate (X-Request-Id) or nginx gave them.
    refused: BTreeMap<(u16, &'static str), usize>,
    connection_errors: usize,
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    event: &Event,
    seen: &Mutex<Seen>,
    acked: &AtomicUsize,
) {
    for attempt in 1..=MAX_ATTEMPTS {
        let mut request = client.post(url).body(event.body.clone());
        for (k, v) in &event.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                let outcome = body["status"].as_str().unwrap_or_default().to_owned();
                seen.lock()
                    .unwrap()
                    .acked
                    .insert(event.delivery.clone(), (status, outcome));
                acked.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Ok(response) => {
                let by = if response.headers().contains_key("x-request-id") {
                    "flowgate"
                } else {
                    "nginx"
                };
                *seen
                    .lock()
                    .unwrap()
                    .refused
                    .entry((response.status().as_u16(), by))
                    .or_default() += 1;
            }
            Err(_) => seen.lock().unwrap().connection_errors += 1,
        }
        // A partner's backoff, shortened: 100 ms doubling up to 1 s.
        let backoff = 100u64 << attempt.min(4);
        tokio::time::sleep(Duration::from_millis(backoff.min(1_000))).await;
    }
    seen.lock().unwrap().given_up.push(event.delivery.clone());
}

/// Polls `condition` every 20 ms until it holds; fails after `within` with `what`.
async fn until<F, Fut>(within: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !condition().await {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a connection to `port` on 127.0.0.1 holds received bytes its process has not read
/// (`/proc/net/tcp`: state 01 is established, `rx_queue` the unread bytes), accepted or still
/// in the listen backlog.
fn request_waiting_at(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).any(|line| {
        let columns: Vec<&str> = line.split_whitespace().collect();
        let local_port = columns[1]
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok());
        let unread = columns[4]
            .split(':')
            .nth(1)
            .and_then(|q| u64::from_str_radix(q, 16).ok());
        local_port == Some(port) && columns[3] == "01" && unread.is_some_and(|n| n > 0)
    })
}

async fn count(
    db: &tokio_postgres::Client,
    sql: &str,
    args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> i64 {
    db.query_one(sql, args).await.unwrap().get(0)
}

#[tokio::test]
async fn three_replicas_on_one_database_lose_and_duplicate_nothing_when_one_is_killed_and_one_restarted(
) {
    let started = Instant::now();
    let api = real_prefect::start(PREFECT_PORT).await;
    let tag = format!("test:{}", uuid::Uuid::new_v4());
    let (store_url, password) = pg::fresh_database().await;
    let db = {
        let mut config: tokio_postgres::Config = store_url.parse().unwrap();
        config.password(password.as_str());
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    };

    // Three replicas, started one after the other (the first applies the migrations).
    let dir = tempfile::tempdir().unwrap();
    let mut replicas: Vec<Replica> = ["a", "b", "c"]
        .into_iter()
        .map(|name| Replica::new(dir.path(), name, (&store_url, &password), &api, &tag))
        .collect();
    let mut known = HashSet::new();
    for replica in &mut replicas {
        replica.start(&db, &mut known).await;
    }

    // The shipped edge, its upstream the three replicas as flowgate.conf documents it.
    let edge_dir = tempfile::tempdir().unwrap();
    let certs = make_certs(edge_dir.path());
    let https = free_port();
    let ports: Vec<u16> = replicas.iter().map(|r| r.port).collect();
    let conf = render_edge_upstream(
        edge_dir.path(),
        &certs,
        free_port(),
        https,
        &replica_servers(&ports),
        true,
    );
    let nginx = Nginx::start(edge_dir.path(), &conf).await;
    let url = format!("https://127.0.0.1:{https}/hooks/{ROUTE_NAME}");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&certs.ca).unwrap()).unwrap();

    // The events: each a signup with its own email, signed, with its own delivery id.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let events: Arc<Vec<Event>> = Arc::new(
        (0..EVENTS)
            .map(|i| {
                let delivery = uuid::Uuid::new_v4().to_string();
                let email = format!("replica-{i}-{run}@example.com");
                let body = signup(&email).to_string().into_bytes();
                let headers = github_headers(SECRET.as_bytes(), &body, &delivery);
                Event {
                    delivery,
                    email,
                    body,
                    headers,
                }
            })
            .collect(),
    );
    let seen = Arc::new(Mutex::new(Seen::default()));
    let acked = Arc::new(AtomicUsize::new(0));
    let burst_started = Instant::now();
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let (events, seen, acked, url) =
                (events.clone(), seen.clone(), acked.clone(), url.clone());
            let client = reqwest::Client::builder()
                .tls_certs_only([ca.clone()])
                .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 100 + s as u8)))
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            tokio::spawn(async move {
                let mut pace = tokio::time::interval(PACE);
                pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                for event in events.iter().skip(s).step_by(SENDERS) {
                    pace.tick().await;
                    send(&client, &url, event, &seen, &acked).await;
                }
            })
        })
        .collect();

    // A fifth into the burst: replica a is killed while it holds claims. It is frozen
    // (SIGSTOP) to look at its claims, and killed only when it holds some.
    until(
        Duration::from_secs(60),
        "a fifth of the burst acknowledged",
        || {
            let acked = acked.clone();
            async move { acked.load(Ordering::SeqCst) >= EVENTS / 5 }
        },
    )
    .await;
    let a = replicas[0].id();
    let claim_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        replicas[0].signal("-STOP");
        let held = count(
            &db,
            "SELECT count(*) FROM outbox WHERE claimed_by = $1 AND state = 'queued'",
            &[&a],
        )
        .await;
        if held > 0 {
            break;
        }
        replicas[0].signal("-CONT");
        assert!(
            Instant::now() < claim_deadline,
            "replica a never held a claim: {}",
            replicas[0].log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Frozen, it reads nothing: a request nginx hands it now waits in its socket. Killed once
    // one does, so a POST dies with the replica it reached (nginx answers 502, never sends it
    // elsewhere, and its sender retries). Well within nginx's 2 s read timeout.
    let port = replicas[0].port;
    until(
        Duration::from_millis(1500),
        "a request waiting at the frozen replica",
        || async move { request_waiting_at(port) },
    )
    .await;
    replicas[0].kill9();
    let acked_at_kill = acked.load(Ordering::SeqCst);
    // Once its connections are gone, nothing of a's can still commit: what it holds now is
    // what the others must deliver.
    until(
        Duration::from_secs(10),
        "replica a's connections closed",
        || {
            let db = &db;
            async move {
                count(
                    db,
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'flowgate-a'",
                    &[],
                )
                .await
                    == 0
            }
        },
    )
    .await;
    // Each with the end of its lease (unix seconds).
    let claimed_by_killed: Vec<(uuid::Uuid, i64)> = db
        .query(
            "SELECT id, claimed_until FROM outbox WHERE claimed_by = $1 AND state = 'queued'",
            &[&a],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        !claimed_by_killed.is_empty(),
        "the killed replica held claims when it died"
    );

    // Three tenths in: replica b stops gracefully (giving back its claims), then starts again.
    until(Duration::from_secs(60), "three tenths acknowledged", || {
        let acked = acked.clone();
        async move { acked.load(Ordering::SeqCst) >= EVENTS * 3 / 10 }
    })
    .await;
    let b = replicas[1].id();
    let acked_at_stop = acked.load(Ordering::SeqCst);
    let stopping = Instant::now();
    let status = replicas[1].stop().await;
    let stopped_in = stopping.elapsed();
    assert!(
        status.success(),
        "replica b exits 0 on SIGTERM ({status}): {}",
        replicas[1].log_text()
    );
    let kept_by_stopped = count(
        &db,
        "SELECT count(*) FROM outbox WHERE claimed_by = $1",
        &[&b],
    )
    .await;
    assert_eq!(kept_by_stopped, 0, "a graceful stop gives back every claim");
    let starting = Instant::now();
    replicas[1].start(&db, &mut known).await;
    let started_in = starting.elapsed();
    let acked_at_restart = acked.load(Ordering::SeqCst);

    for sender in senders {
        sender.await.unwrap();
    }
    let burst = burst_started.elapsed();

    // The drain: the outbox empties across the replicas left.
    let drain_deadline = Duration::from_secs(240);
    until(drain_deadline, "the outbox drained", || {
        let db = &db;
        async move {
            count(
                db,
                "SELECT count(*) FROM outbox WHERE state = 'queued'",
                &[],
            )
            .await
                == 0
        }
    })
    .await;
    let drained = burst_started.elapsed();
    let states: Vec<(String, i64)> = db
        .query("SELECT state, count(*) FROM outbox GROUP BY state", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(states.is_empty(), "nothing dead or left behind: {states:?}");

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        seen.given_up.is_empty(),
        "{} event(s) never acknowledged in {MAX_ATTEMPTS} attempts: {:?}; refused {:?}",
        seen.given_up.len(),
        seen.given_up,
        seen.refused
    );
    assert_eq!(seen.acked.len(), EVENTS, "every event acknowledged once");
    assert!(
        seen.refused.get(&(502, "nginx")).is_some_and(|&n| n >= 1),
        "the POST waiting at the killed replica got nginx's 502: {:?}",
        seen.refused
    );

    // Exactly one run per acknowledged event, named by its delivery id, with its email.
    real_prefect::wait_for_runs(&api, &tag, EVENTS as u64, Duration::from_secs(60)).await;
    let runs = real_prefect::runs_with_tag(&api, &tag).await;
    let mut by_name: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for run in &runs {
        by_name
            .entry(run["name"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push(run);
    }
    for event in events.iter() {
        let name = format!("event-{}", event.delivery);
        let found = by_name.get(&name).map_or(&[][..], Vec::as_slice);
        assert_eq!(
            found.len(),
            1,
            "{} (acknowledged {:?}) has {} run(s)",
            event.delivery,
            seen.acked.get(&event.delivery),
            found.len()
        );
        assert_eq!(found[0]["parameters"]["email"], event.email.as_str());
    }
    assert_eq!(runs.len(), seen.acked.len(), "no run beyond the events");
    let emails: BTreeSet<&str> = runs
        .iter()
        .filter_map(|r| r["parameters"]["email"].as_str())
        .collect();
    assert_eq!(emails.len(), EVENTS, "one run per email");

    // The killed replica's claims were delivered by the others (it was dead by then).
    let run_ids: HashSet<String> = runs
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    // Not before their lease ran out: until then no other replica takes them.
    for (id, lease_end) in &claimed_by_killed {
        let row = db
            .query_opt(
                "SELECT flow_run_id, delivered_at FROM delivered WHERE id = $1",
                &[id],
            )
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id}, claimed by the killed replica, was not delivered"));
        let (flow_run, delivered_at): (uuid::Uuid, i64) = (row.get(0), row.get(1));
        assert!(run_ids.contains(&flow_run.to_string()), "{id}: {flow_run}");
        assert!(
            delivered_at > *lease_end,
            "{id} delivered at {delivered_at}, within the killed replica's lease (to {lease_end})"
        );
    }
    let delivered: Vec<(uuid::Uuid, uuid::Uuid)> = db
        .query("SELECT id, flow_run_id FROM delivered", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let delivered_runs: HashSet<String> = delivered.iter().map(|(_, r)| r.to_string()).collect();
    assert!(
        delivered_runs.is_subset(&run_ids),
        "every delivered entry names one of the runs"
    );

    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for (status, outcome) in seen.acked.values() {
        *outcomes.entry(format!("{status} {outcome}")).or_default() += 1;
    }
    eprintln!(
        "replicas: {EVENTS} events from {SENDERS} senders acknowledged in {:.1} s ({outcomes:?}); \
         refused on the way {:?}, {} connection error(s); replica a killed at {acked_at_kill} acks \
         holding {} claim(s), all delivered by the others after its lease; replica b stopped at {acked_at_stop} and \
         back at {acked_at_restart} (exit {:.1} s after SIGTERM, serving {:.1} s after start); outbox empty after {:.1} s; {} delivered entries for {} runs \
         ({} entries shared a run through their idempotency key); whole test {:.1} s",
        burst.as_secs_f64(),
        seen.refused,
        seen.connection_errors,
        claimed_by_killed.len(),
        stopped_in.as_secs_f64(),
        started_in.as_secs_f64(),
        drained.as_secs_f64(),
        delivered.len(),
        delivered_runs.len(),
        delivered.len() - delivered_runs.len(),
        started.elapsed().as_secs_f64()
    );
    drop(nginx);
    drop(replicas);
    real_prefect::stop(PREFECT_PORT).await;
}
