//! A safety net for a future that returns `Pending` without leaving its waker where an event
//! will find it (the body stage's first poll, see [`crate::pipeline::body::read_body`]). The
//! waker is kept here until the future's next poll takes it back; a background thread wakes
//! every waker still kept at its next sweep, at most [`SWEEP`] later, so such a future is never
//! left waiting for nothing.
//!
//! Nearly always the next poll comes in the same turn of the connection, so the net costs two
//! short locks nobody else takes per request: each thread keeps its own list.

use std::cell::Cell;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::Waker;
use std::time::Duration;

/// The longest a kept waker waits for a sweep.
pub const SWEEP: Duration = Duration::from_millis(500);

type List = Mutex<Vec<(u64, Waker)>>;

/// Every thread's list, for the sweeper; a finished thread's entry is dropped at a sweep.
static LISTS: Mutex<Vec<Weak<List>>> = Mutex::new(Vec::new());

/// Whether the sweeper thread runs (started by the first keep).
static SWEEPER: OnceLock<bool> = OnceLock::new();

thread_local! {
    static OWN: Arc<List> = register();
    static NEXT: Cell<u64> = const { Cell::new(0) };
}

/// A kept waker, taken back with [`release`].
#[must_use = "a kept waker is released on the next poll"]
pub struct Kept(u64);

/// Keeps `waker` until [`release`] or the next sweep. `None` when no sweeper could be started:
/// the caller then wakes the future itself.
pub fn keep(waker: &Waker) -> Option<Kept> {
    if !*SWEEPER.get_or_init(start_sweeper) {
        return None;
    }
    let id = NEXT.with(|next| {
        let id = next.get();
        next.set(id.wrapping_add(1));
        id
    });
    OWN.with(|own| locked(own).push((id, waker.clone())));
    Some(Kept(id))
}

/// Takes a kept waker back (a no-op when a sweep has woken it already).
pub fn release(kept: Kept) {
    OWN.with(|own| {
        let mut list = locked(own);
        // Kept and released in the same turn: nearly always the last entry.
        if let Some(i) = list.iter().rposition(|(id, _)| *id == kept.0) {
            list.swap_remove(i);
        }
    });
}

fn register() -> Arc<List> {
    let own = Arc::new(Mutex::new(Vec::new()));
    locked(&LISTS).push(Arc::downgrade(&own));
    own
}

fn start_sweeper() -> bool {
    // This module's tests sweep by hand, at the moments they check.
    if cfg!(test) {
        return true;
    }
    let started = std::thread::Builder::new()
        .name("flowgate-watchdog".into())
        .spawn(|| loop {
            std::thread::sleep(SWEEP);
            sweep();
        });
    match started {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "the watchdog thread did not start; body reads wake themselves");
            false
        }
    }
}

/// Wakes every waker kept now.
fn sweep() {
    let lists: Vec<Arc<List>> = {
        let mut all = locked(&LISTS);
        all.retain(|list| list.strong_count() > 0);
        all.iter().filter_map(Weak::upgrade).collect()
    };
    for list in lists {
        let kept = std::mem::take(&mut *locked(&list));
        for (_, waker) in kept {
            waker.wake();
        }
    }
}

/// A list stays usable after a panic elsewhere: its entries are plain values.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_kept_waker_is_woken_by_a_sweep_unless_released_first() {
        let kept = Arc::new(Counter(AtomicUsize::new(0)));
        let released = Arc::new(Counter(AtomicUsize::new(0)));
        let first = keep(&Waker::from(kept.clone())).unwrap();
        let second = keep(&Waker::from(released.clone())).unwrap();
        release(second);
        // Only the kept one is left on this thread's list.
        assert_eq!(OWN.with(|own| locked(own).len()), 1);
        sweep();
        assert_eq!(kept.0.load(Ordering::SeqCst), 1);
        assert_eq!(released.0.load(Ordering::SeqCst), 0);
        // Released after the sweep woke it: nothing left to take, nothing woken twice.
        release(first);
        sweep();
        assert_eq!(kept.0.load(Ordering::SeqCst), 1);
        assert_eq!(OWN.with(|own| locked(own).len()), 0);
    }
}
