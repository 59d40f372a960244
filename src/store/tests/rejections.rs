use super::{entry, Fixture};
use crate::store::*;

fn rejection(ms: i64, route: &str, code: &str, client: &str) -> Rejection {
    Rejection {
        id: uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            (ms / 1000) as u64,
            ((ms % 1000) * 1_000_000) as u32,
        )),
        first_ms: ms,
        last_ms: ms,
        count: 1,
        route: route.into(),
        client: Some(client.into()),
        status: 422,
        code: code.into(),
        detail: "1 field is invalid".into(),
        field_errors: Some(serde_json::json!([{"field": "email", "message": "is not an email"}])),
        request_id: format!("req-{ms}"),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Some(br#"{"email":"x"}"#.to_vec()),
        body_size: 13,
        body_kept: true,
        authenticated: true,
        replayed: None,
        delivery_id: None,
    }
}

both! {
    async fn rejections_are_listed_newest_first_filtered_and_paged(fx) {
        let store = fx.open().await;
        let t0 = 1_800_000_000_000;
        for n in 0..10i64 {
            let (route, code) = if n % 2 == 0 {
                ("site", "validation_failed")
            } else {
                ("gh", "invalid_signature")
            };
            let client = format!("10.0.0.{}", n % 3);
            store
                .write_rejection(RejectionWrite::Insert(Box::new(rejection(
                    t0 + n * 1000,
                    route,
                    code,
                    &client,
                ))))
                .await
                .unwrap();
        }
        let page = |q: RejectionQuery| {
            let store = &store;
            async move { store.list_rejections(q).await.unwrap() }
        };
        let all = page(RejectionQuery {
            limit: 100,
            ..Default::default()
        })
        .await;
        let times: Vec<i64> = all.iter().map(|r| r.first_ms).collect();
        assert_eq!(
            times,
            (0..10).rev().map(|n| t0 + n * 1000).collect::<Vec<_>>()
        );
        assert!(
            all.iter().all(|r| r.body.is_none() && r.headers.is_empty()),
            "a list carries no bodies"
        );

        let first = page(RejectionQuery {
            route: Some("site".into()),
            limit: 3,
            ..Default::default()
        })
        .await;
        assert_eq!(first.len(), 3);
        let next = page(RejectionQuery {
            route: Some("site".into()),
            before: Some(first[2].id),
            limit: 3,
            ..Default::default()
        })
        .await;
        assert_eq!(next.len(), 2, "5 for the route, 3 on the first page");
        assert!(next.iter().all(|r| r.route == "site" && r.id < first[2].id));

        let window = page(RejectionQuery {
            code: Some("invalid_signature".into()),
            client: Some("10.0.0.1".into()),
            from_ms: Some(t0 + 1000),
            to_ms: Some(t0 + 8000),
            limit: 100,
            ..Default::default()
        })
        .await;
        // Odd n in [1, 8) with n % 3 == 1: 1 and 7.
        assert_eq!(
            window.iter().map(|r| r.first_ms).collect::<Vec<_>>(),
            vec![t0 + 7000, t0 + 1000]
        );

        let counts = store.rejection_counts(t0 + 5000).await.unwrap();
        let sum: u64 = counts.iter().map(|c| c.count).sum();
        assert_eq!(sum, 5);
    }
}

both! {
    async fn a_record_keeps_its_body_and_headers_counts_repeats_and_notes_a_replay(fx) {
        let store = fx.open().await;
        let r = rejection(1_800_000_000_000, "site", "validation_failed", "10.0.0.1");
        store
            .write_rejection(RejectionWrite::Insert(Box::new(r.clone())))
            .await
            .unwrap();
        store
            .write_rejection(RejectionWrite::AddCount {
                id: r.id,
                n: 41,
                last_ms: r.first_ms + 5000,
            })
            .await
            .unwrap();
        store
            .write_rejection(RejectionWrite::Replayed {
                id: r.id,
                at_ms: r.first_ms + 9000,
                outcome: "created".into(),
            })
            .await
            .unwrap();
        let got = store.get_rejection(r.id).await.unwrap().unwrap();
        assert_eq!(got.count, 42);
        assert_eq!(got.last_ms, r.first_ms + 5000);
        assert_eq!(got.body, r.body);
        assert_eq!(got.headers, r.headers);
        assert_eq!(got.field_errors, r.field_errors);
        assert_eq!(
            got.replayed,
            Some((r.first_ms + 9000, "created".to_owned()))
        );
        assert!(got.body_complete());
        assert_eq!(
            store.get_rejection(uuid::Uuid::now_v7()).await.unwrap(),
            None
        );
    }
}

both! {
    async fn pruning_keeps_the_newest_rows_and_drops_old_ones(fx) {
        let store = fx.open().await;
        let t0 = 1_800_000_000_000;
        for n in 0..20i64 {
            store
                .write_rejection(RejectionWrite::Insert(Box::new(rejection(
                    t0 + n,
                    "site",
                    "malformed_body",
                    "10.0.0.1",
                ))))
                .await
                .unwrap();
        }
        let pruned = store
            .write_rejection(RejectionWrite::Prune {
                before_ms: t0 + 5,
                keep: 10,
            })
            .await
            .unwrap();
        assert_eq!(pruned, 10, "5 too old, then 5 more beyond the newest 10");
        let left = store
            .list_rejections(RejectionQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(left.len(), 10);
        assert_eq!(left.last().map(|r| r.first_ms), Some(t0 + 10));
    }
}

both! {
    async fn a_discarded_entry_leaves_the_queue_and_the_counts(fx) {
        let store = fx.open().await;
        let queued = entry(1, 10);
        let dead = entry(2, 10);
        store.enqueue(queued.clone()).await.unwrap();
        store.enqueue(dead.clone()).await.unwrap();
        store.mark_dead(dead.id, "422".into()).await.unwrap();
        assert_eq!((store.counts().queued_total(), store.counts().dead), (1, 1));
        assert!(store.discard(queued.id, "test data".into()).await.unwrap());
        assert!(store
            .discard(dead.id, "fixed by hand".into())
            .await
            .unwrap());
        assert!(
            !store.discard(dead.id, "again".into()).await.unwrap(),
            "already gone"
        );
        assert_eq!((store.counts().queued_total(), store.counts().dead), (0, 0));
        assert!(store.due(100, 10).await.unwrap().is_empty());
        assert!(store.list(EntryState::Dead, 10).await.unwrap().is_empty());
    }
}
