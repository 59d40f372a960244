use super::{entry, Fixture};

both! {
    async fn a_delivery_id_shows_where_it_stands_until_pruned(fx) {
        let store = fx.open().await;
        let queued = entry(1, 10);
        let dead = entry(2, 10);
        let delivered = entry(3, 10);
        for e in [&queued, &dead, &delivered] {
            store.enqueue(e.clone()).await.unwrap();
        }
        store
            .reschedule(queued.id, 99, "Prefect answered 503".into())
            .await
            .unwrap();
        store
            .mark_dead(dead.id, "Prefect refused the parameters".into())
            .await
            .unwrap();
        let run = uuid::Uuid::new_v4();
        store.mark_delivered(delivered.id, run).await.unwrap();

        let q = store.delivery(queued.id).await.unwrap().unwrap();
        assert_eq!(
            (
                q.state.as_str(),
                q.attempts,
                q.next_attempt_at,
                q.last_error.as_deref()
            ),
            ("queued", 1, Some(99), Some("Prefect answered 503"))
        );
        let d = store.delivery(dead.id).await.unwrap().unwrap();
        assert_eq!(d.state, "dead");
        assert_eq!(
            d.last_error.as_deref(),
            Some("Prefect refused the parameters")
        );
        let ok = store.delivery(delivered.id).await.unwrap().unwrap();
        assert_eq!(
            (ok.state.as_str(), ok.flow_run_id),
            ("delivered", Some(run))
        );
        assert_eq!(ok.route, "r");
        assert_eq!(store.delivery(uuid::Uuid::new_v4()).await.unwrap(), None);
        assert_eq!(
            store.counts().queued_total(),
            1,
            "the delivered one left the queue"
        );

        let now = crate::pipeline::verify::unix_now();
        store.prune_deliveries(now + 10, 100).await.unwrap();
        assert_eq!(
            store.delivery(delivered.id).await.unwrap(),
            None,
            "forgotten after the retention"
        );
        assert!(
            store.delivery(queued.id).await.unwrap().is_some(),
            "entries waiting stay"
        );
    }
}
