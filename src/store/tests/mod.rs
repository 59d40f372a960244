use serde_json::json;

use super::*;

fn entry(n: u32, created_at: i64) -> OutboxEntry {
    OutboxEntry {
        id: uuid::Uuid::new_v4(),
        route: "r".into(),
        deployment: "f/d".into(),
        parameters: serde_json::from_value(json!({"n": n, "email": "jo@example.com"})).unwrap(),
        tags: vec!["webhook".into()],
        name: Some(format!("run-{n}")),
        idempotency_key: format!("flowgate:f/d:r:sha256:{n}"),
        attempts: 0,
        created_at,
        next_attempt_at: created_at,
        last_error: "Prefect answered 503".into(),
    }
}

fn open(dir: &tempfile::TempDir, max_mb: u64) -> SqliteStore {
    SqliteStore::open(&dir.path().join("flowgate.db"), max_mb).unwrap()
}

/// A store to test, on each backend: a SQLite file in a temporary directory, or a fresh
/// database on the test PostgreSQL. `open` again reopens the same state.
enum Fixture {
    Sqlite(tempfile::TempDir),
    Postgres(PgConnect),
}

impl Fixture {
    fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().unwrap())
    }

    async fn postgres() -> Self {
        let (url, password) = pg::fresh_database().await;
        Self::Postgres(PgConnect {
            url,
            password: Some(password.into()),
            ca_file: None,
            pool_size: 4,
            lease: std::time::Duration::from_secs(30),
        })
    }

    async fn open(&self) -> Box<dyn Store> {
        match self {
            Self::Sqlite(dir) => Box::new(open(dir, 64)),
            Self::Postgres(connect) => Box::new(PgStore::open(connect).await.unwrap()),
        }
    }
}

#[path = "../../../tests/support/postgres.rs"]
mod pg;

/// Each test, once on SQLite and once on PostgreSQL: `both! { async fn name(fx) { … } }`.
macro_rules! both {
    ($(async fn $name:ident($fx:ident) $body:block)*) => {
        $(mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($fx: Fixture) $body
            #[tokio::test]
            async fn sqlite() {
                run(Fixture::sqlite()).await
            }
            #[tokio::test]
            async fn postgres() {
                run(Fixture::postgres().await).await
            }
        })*
    };
}

both! {
    async fn entries_come_back_oldest_first_and_leave_when_delivered_or_dead(fx) {
        let store = fx.open().await;
        let (a, b, c) = (entry(1, 100), entry(2, 90), entry(3, 200));
        for e in [&a, &b, &c] {
            store.enqueue(e.clone()).await.unwrap();
        }
        let due = store.due(150, 10).await.unwrap();
        assert_eq!(
            due,
            vec![b.clone(), a.clone()],
            "due at 150, oldest first, c not yet due"
        );
        assert_eq!(
            store.stats(300).await.unwrap(),
            OutboxStats {
                queued: 3,
                dead: 0,
                oldest_queued_age_secs: 210
            }
        );

        store
            .mark_delivered(b.id, uuid::Uuid::new_v4())
            .await
            .unwrap();
        store.reschedule(a.id, 500, "timeout".into()).await.unwrap();
        store.mark_dead(c.id, "too old".into()).await.unwrap();
        assert!(store.due(400, 10).await.unwrap().is_empty());
        let again = store.due(500, 10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(
            (again[0].attempts, again[0].last_error.as_str()),
            (1, "timeout")
        );
        assert_eq!(
            store.stats(600).await.unwrap(),
            OutboxStats {
                queued: 1,
                dead: 1,
                oldest_queued_age_secs: 500
            }
        );
    }
}

both! {
    async fn entries_survive_reopening(fx) {
        let e = entry(7, 10);
        {
            let store = fx.open().await;
            store.enqueue(e.clone()).await.unwrap();
            store
                .remember_delivery("r".into(), "d-1".into(), RememberedOutcome::Queued(e.id))
                .await
                .unwrap();
        }
        let store = fx.open().await;
        assert_eq!(store.due(10, 10).await.unwrap(), vec![e.clone()]);
        assert_eq!(
            store
                .recall_delivery("r".into(), "d-1".into(), 0)
                .await
                .unwrap(),
            Some(RememberedOutcome::Queued(e.id))
        );
        assert_eq!(
            store
                .recall_delivery("r".into(), "d-2".into(), 0)
                .await
                .unwrap(),
            None
        );
    }
}

#[tokio::test]
async fn a_full_store_refuses_and_recovers_when_space_frees() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, 1);
    let mut accepted = Vec::new();
    let refused = loop {
        let mut e = entry(accepted.len() as u32, 1);
        e.parameters = serde_json::from_value(json!({"padding": "x".repeat(4000)})).unwrap();
        match store.enqueue(e.clone()).await {
            Ok(()) => accepted.push(e),
            Err(err) => break err,
        }
        assert!(accepted.len() < 10_000, "a 1 MB store never filled");
    };
    assert!(matches!(refused, StoreError::Full), "{refused:?}");
    assert!(!accepted.is_empty());
    for e in &accepted {
        store
            .mark_delivered(e.id, uuid::Uuid::new_v4())
            .await
            .unwrap();
    }
    store.enqueue(entry(99_999, 1)).await.unwrap();
}

both! {
    async fn concurrent_enqueues_are_all_stored(fx) {
        let store = std::sync::Arc::<dyn Store>::from(fx.open().await);
        let handles: Vec<_> = (0..200)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move { store.enqueue(entry(n, 1)).await })
            })
            .collect();
        for h in handles {
            h.await.unwrap().unwrap();
        }
        assert_eq!(store.stats(1).await.unwrap().queued, 200);
    }
}

both! {
    async fn due_gives_each_route_its_oldest_entries_and_counts_are_per_route(fx) {
        let store = fx.open().await;
        let mut flood = Vec::new();
        for n in 0..50 {
            let mut e = entry(n, 10);
            e.route = "partner".into();
            store.enqueue(e.clone()).await.unwrap();
            flood.push(e);
        }
        let mut site = Vec::new();
        for n in 0..3 {
            let mut e = entry(100 + n, 20);
            e.route = "website".into();
            store.enqueue(e.clone()).await.unwrap();
            site.push(e);
        }
        let due = store.due(30, 5).await.unwrap();
        let of = |route: &str| -> Vec<OutboxEntry> {
            due.iter().filter(|e| e.route == route).cloned().collect()
        };
        assert_eq!(
            of("partner"),
            flood[..5].to_vec(),
            "same second: insertion order"
        );
        assert_eq!(
            of("website"),
            site,
            "the website is not behind the partner's 50"
        );
        let counts = store.counts();
        assert_eq!(
            (counts.queued("partner"), counts.queued("website")),
            (50, 3)
        );
        store
            .mark_delivered(site[0].id, uuid::Uuid::new_v4())
            .await
            .unwrap();
        store
            .mark_dead(flood[0].id, "refused".into())
            .await
            .unwrap();
        let counts = store.counts();
        assert_eq!(
            (
                counts.queued("partner"),
                counts.queued("website"),
                counts.dead
            ),
            (49, 2, 1),
            "kept as entries leave"
        );
        drop(store);
        assert_eq!(fx.open().await.counts(), counts, "counted again at open");
    }
}

both! {
    async fn a_deferred_entry_goes_behind_the_entries_due_before_it(fx) {
        let store = fx.open().await;
        let (a, b) = (entry(1, 10), entry(2, 20));
        store.enqueue(a.clone()).await.unwrap();
        store.enqueue(b.clone()).await.unwrap();
        store.reschedule(a.id, 30, "500".into()).await.unwrap();
        let due: Vec<_> = store
            .due(40, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(due, vec![b.id, a.id]);
        assert_eq!(store.stats(40).await.unwrap().oldest_queued_age_secs, 30);
    }
}

both! {
    async fn delivery_ids_are_forgotten_after_the_memory_in_batches(fx) {
        let store = fx.open().await;
        let id = uuid::Uuid::new_v4();
        for n in 0..25 {
            store
                .remember_delivery("r".into(), format!("d-{n}"), RememberedOutcome::Run(id))
                .await
                .unwrap();
        }
        let now = crate::pipeline::verify::unix_now();
        assert_eq!(
            store
                .recall_delivery("r".into(), "d-3".into(), now + 10)
                .await
                .unwrap(),
            None,
            "remembered before the window: not recalled even before pruning"
        );
        assert_eq!(
            store.prune_deliveries(now - 60, 10).await.unwrap(),
            0,
            "all recent"
        );
        assert_eq!(store.prune_deliveries(now + 10, 10).await.unwrap(), 10);
        assert_eq!(store.prune_deliveries(now + 10, 10).await.unwrap(), 10);
        assert_eq!(store.prune_deliveries(now + 10, 10).await.unwrap(), 5);
        assert_eq!(
            store
                .recall_delivery("r".into(), "d-24".into(), 0)
                .await
                .unwrap(),
            None,
            "gone from the file"
        );
    }
}

mod cost;

both! {
    async fn a_delivery_id_is_written_without_waiting_and_durable_after_a_flush(fx) {
        let id = uuid::Uuid::new_v4();
        {
            let store = fx.open().await;
            // Dropped unawaited, as the request path does: the write is already handed over.
            drop(store.remember_delivery("r".into(), "d-1".into(), RememberedOutcome::Run(id)));
            store.flush().await.unwrap();
            assert_eq!(
                store
                    .recall_delivery("r".into(), "d-1".into(), 0)
                    .await
                    .unwrap(),
                Some(RememberedOutcome::Run(id))
            );
        }
        let reopened = fx.open().await;
        assert_eq!(
            reopened
                .recall_delivery("r".into(), "d-1".into(), 0)
                .await
                .unwrap(),
            Some(RememberedOutcome::Run(id))
        );
    }
}
mod cost_postgres;
mod deliveries;
mod rejections;
mod replicas;
mod tls;
