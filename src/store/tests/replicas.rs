//! Two replicas on one PostgreSQL database: claims, leases, counts and the named lease.

use std::time::Duration;

use super::{entry, Fixture};

#[tokio::test]
async fn replicas_never_hold_one_entry_at_once_and_a_dead_replicas_claims_come_back() {
    let fx = Fixture::postgres().await;
    let (a, b) = (fx.open().await, fx.open().await);
    let entries: Vec<_> = (0..6).map(|n| entry(n, 10)).collect();
    for e in &entries {
        a.enqueue(e.clone()).await.unwrap();
    }
    b.flush().await.unwrap();
    let first = a.due(20, 4).await.unwrap();
    assert_eq!(first, entries[..4].to_vec(), "a claims the oldest four");
    let second = b.due(20, 4).await.unwrap();
    assert_eq!(
        second,
        entries[4..].to_vec(),
        "b gets only what a did not claim"
    );
    assert_eq!(
        b.due(25, 4).await.unwrap(),
        entries[4..].to_vec(),
        "b sees its own claims again, none of a's"
    );
    assert_eq!(
        a.due(25, 4).await.unwrap(),
        entries[..4].to_vec(),
        "a's own claims come back to a (its lease renewed)"
    );
    // a dies: 30 s later (the fixture's lease) its claims are b's.
    drop(a);
    let taken = b.due(25 + 31, 10).await.unwrap();
    assert_eq!(
        taken, entries,
        "b takes a's claims after the lease, and keeps its own"
    );
    for e in &taken {
        b.mark_delivered(e.id, uuid::Uuid::new_v4()).await.unwrap();
    }
    assert_eq!(b.counts().queued_total(), 0);
}

#[tokio::test]
async fn concurrent_claims_by_three_replicas_hand_out_each_entry_once() {
    let fx = Fixture::postgres().await;
    let replicas = [fx.open().await, fx.open().await, fx.open().await];
    for n in 0..300 {
        replicas[0].enqueue(entry(n, 10)).await.unwrap();
    }
    let claims = futures_util::future::join_all(
        replicas
            .iter()
            .enumerate()
            .flat_map(|(i, r)| (0..5).map(move |_| async move { (i, r.due(20, 40).await) })),
    )
    .await;
    // A replica may see its own claims again; no entry may be held by two replicas.
    let mut holder = std::collections::HashMap::new();
    for (replica, claimed) in claims {
        for e in claimed.unwrap() {
            let first = *holder.entry(e.id).or_insert(replica);
            assert_eq!(first, replica, "entry {} handed to two replicas", e.id);
        }
    }
    let per_replica: Vec<usize> = (0..3)
        .map(|i| holder.values().filter(|r| **r == i).count())
        .collect();
    assert!(
        per_replica.iter().filter(|n| **n > 0).count() > 1,
        "the replicas shared the work: {per_replica:?}"
    );
}

#[tokio::test]
async fn counts_written_by_one_replica_reach_the_others() {
    let fx = Fixture::postgres().await;
    let (a, b) = (fx.open().await, fx.open().await);
    for n in 0..3 {
        a.enqueue(entry(n, 10)).await.unwrap();
    }
    assert_eq!(
        a.counts().queued("r"),
        3,
        "the writer's own commits at once"
    );
    let mut seen = b.counts().queued("r");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen != 3 && tokio::time::Instant::now() < deadline {
        // The other replica reads the counts back every second.
        b.flush().await.unwrap();
        tokio::task::yield_now().await;
        seen = b.counts().queued("r");
        if seen != 3 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(seen, 3);
}

#[tokio::test]
async fn one_replica_at_a_time_holds_a_named_lease() {
    let fx = Fixture::postgres().await;
    let (a, b) = (fx.open().await, fx.open().await);
    let ttl = Duration::from_millis(300);
    assert!(a.lead("reconciler", ttl).await.unwrap());
    assert!(!b.lead("reconciler", ttl).await.unwrap(), "a holds it");
    assert!(a.lead("reconciler", ttl).await.unwrap(), "a renews it");
    drop(a);
    let mut taken = false;
    for _ in 0..50 {
        if b.lead("reconciler", ttl).await.unwrap() {
            taken = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(taken, "b takes the lease once a's runs out");
}

#[tokio::test]
async fn a_graceful_stop_and_a_deferral_give_claims_back_at_once() {
    let fx = Fixture::postgres().await;
    let (a, b) = (fx.open().await, fx.open().await);
    let entries: Vec<_> = (0..3).map(|n| entry(n, 10)).collect();
    for e in &entries {
        a.enqueue(e.clone()).await.unwrap();
    }
    assert_eq!(a.due(20, 10).await.unwrap(), entries);
    // Deferred by a's attempt: due again at 30, claimed by no one.
    a.reschedule(entries[0].id, 30, "Prefect answered 500".into())
        .await
        .unwrap();
    // Still due now (the pace waits): a keeps it.
    a.reschedule(entries[1].id, 10, "Prefect answered 503".into())
        .await
        .unwrap();
    assert!(b.due(20, 10).await.unwrap().is_empty(), "a holds the rest");
    let at_30: Vec<_> = b.due(30, 10).await.unwrap().iter().map(|e| e.id).collect();
    assert_eq!(at_30, vec![entries[0].id], "the deferred one is anyone's");
    assert_eq!(
        a.release_claims().await.unwrap(),
        2,
        "a stops: its two claims go back"
    );
    let taken: Vec<_> = b.due(30, 10).await.unwrap().iter().map(|e| e.id).collect();
    assert_eq!(
        taken.len(),
        3,
        "b takes them without waiting for the lease: {taken:?}"
    );
}
