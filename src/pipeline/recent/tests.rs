use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;

use super::{Found, Recent};

type Memory = Recent<String, u32, String>;

fn memory(ttl: Duration, capacity: usize) -> Memory {
    Recent::new(ttl, capacity)
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_second_call_gets_the_first_outcome_without_running() {
    let recent = memory(HOUR, 10);
    let runs = AtomicUsize::new(0);
    let work = |v: u32| {
        let runs = &runs;
        move || async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(v)
        }
    };
    assert_eq!(
        recent.get_or_run("a".into(), work(1)).await,
        Ok(Found::Fresh(1))
    );
    assert_eq!(
        recent.get_or_run("a".into(), work(2)).await,
        Ok(Found::Earlier(1))
    );
    assert_eq!(
        recent.get_or_run("b".into(), work(3)).await,
        Ok(Found::Fresh(3))
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(recent.recorded(), 2);
}

#[tokio::test]
async fn concurrent_callers_share_one_run() {
    let recent = memory(HOUR, 10);
    let (release, released) = oneshot::channel::<()>();
    let first = recent.get_or_run("k".into(), || async move {
        released.await.map_err(|e| e.to_string())?;
        Ok(7)
    });
    let second = recent.get_or_run("k".into(), || async { Ok(8) });
    let (a, b, ()) = tokio::join!(first, second, async {
        tokio::task::yield_now().await;
        release.send(()).ok();
    });
    assert_eq!(a, Ok(Found::Fresh(7)));
    assert_eq!(
        b,
        Ok(Found::Earlier(7)),
        "the waiter got the running call's outcome"
    );
}

#[tokio::test]
async fn a_failure_is_shared_with_waiters_but_not_recorded() {
    let recent = memory(HOUR, 10);
    let (release, released) = oneshot::channel::<()>();
    let first = recent.get_or_run("k".into(), || async move {
        released.await.map_err(|e| e.to_string())?;
        Err::<u32, _>("prefect down".to_owned())
    });
    let second = recent.get_or_run("k".into(), || async { Ok(8) });
    let (a, b, ()) = tokio::join!(first, second, async {
        tokio::task::yield_now().await;
        release.send(()).ok();
    });
    assert_eq!(a, Err("prefect down".to_owned()));
    assert_eq!(b, Err("prefect down".to_owned()));
    assert_eq!(recent.recorded(), 0);
    assert_eq!(
        recent.get_or_run("k".into(), || async { Ok(9) }).await,
        Ok(Found::Fresh(9)),
        "a later call runs again"
    );
}

#[tokio::test]
async fn a_waiter_runs_the_work_when_the_running_call_is_dropped() {
    let recent = memory(HOUR, 10);
    let (_never, never) = oneshot::channel::<()>();
    let mut first = Box::pin(recent.get_or_run("k".into(), || async move {
        never.await.map_err(|e| e.to_string())?;
        Ok(1)
    }));
    // Start the first call (it holds the slot), then drop it mid-work.
    assert!(futures_util::poll!(first.as_mut()).is_pending());
    let second = recent.get_or_run("k".into(), || async { Ok(2) });
    let mut second = Box::pin(second);
    assert!(
        futures_util::poll!(second.as_mut()).is_pending(),
        "waits on the first"
    );
    drop(first);
    assert_eq!(second.await, Ok(Found::Fresh(2)));
}

#[tokio::test]
async fn the_oldest_entries_go_beyond_the_capacity() {
    let recent = memory(HOUR, 3);
    for n in 0..5u32 {
        recent
            .get_or_run(format!("k{n}"), || async move { Ok(n) })
            .await
            .unwrap();
    }
    assert_eq!(recent.recorded(), 3);
    assert_eq!(
        recent.get_or_run("k4".into(), || async { Ok(99) }).await,
        Ok(Found::Earlier(4))
    );
    assert_eq!(
        recent.get_or_run("k0".into(), || async { Ok(99) }).await,
        Ok(Found::Fresh(99)),
        "evicted: runs again"
    );
}

#[tokio::test]
async fn entries_expire_after_the_time_to_live() {
    let recent = memory(Duration::ZERO, 10);
    recent
        .get_or_run("k".into(), || async { Ok(1) })
        .await
        .unwrap();
    assert_eq!(
        recent.get_or_run("k".into(), || async { Ok(2) }).await,
        Ok(Found::Fresh(2))
    );
    assert_eq!(recent.recorded(), 0, "expired entries leave the queue too");
}
