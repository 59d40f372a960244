//! The limit against a simulated Prefect: a call started while more than `capacity` calls are
//! in flight is an overload (SQLite's "database is locked"); others are served.

use std::collections::VecDeque;

use super::*;

struct Model {
    limit: ConcurrencyLimit,
    in_flight: VecDeque<(Permit, Signal)>,
    trace: Vec<usize>,
    overloads: usize,
}

impl Model {
    fn new(min: usize, max: usize) -> Self {
        Self {
            limit: ConcurrencyLimit::new(LimitMode::Adaptive, min, max),
            in_flight: VecDeque::new(),
            trace: Vec::new(),
            overloads: 0,
        }
    }

    /// Keeps the limit full (the outbox has a backlog) and finishes `calls` calls, oldest first.
    /// `capacity` None is an outage: every call fails.
    fn run(&mut self, calls: usize, capacity: Option<usize>) {
        for _ in 0..calls {
            while let Some(permit) = self.limit.try_acquire() {
                let busy = self.in_flight.len() + 1;
                let signal = match capacity {
                    Some(c) if busy <= c => Signal::Served,
                    _ => Signal::Overloaded,
                };
                self.in_flight.push_back((permit, signal));
            }
            let (permit, signal) = self.in_flight.pop_front().expect("a call is in flight");
            if signal == Signal::Overloaded {
                self.overloads += 1;
            }
            permit.record(signal);
            self.trace.push(self.limit.snapshot().limit);
        }
    }

    fn share_at(&self, from: usize, limit: usize) -> f64 {
        let tail = &self.trace[from..];
        tail.iter().filter(|&&l| l == limit).count() as f64 / tail.len() as f64
    }
}

#[test]
fn a_one_writer_prefect_settles_at_one_with_rare_probes() {
    let mut m = Model::new(1, 4);
    m.run(20_000, Some(1));
    assert!(m.share_at(2_000, 1) > 0.99, "{}", m.share_at(2_000, 1));
    assert!(
        m.trace.iter().all(|&l| l <= 2),
        "never past one failed probe"
    );
    // Probes after 16, 32, 64 … 4,096 successes, each costing the probe and the call after it:
    // about 0.1 % of 20,000 calls.
    assert!(
        m.overloads <= 24,
        "{} overloads, trace changes {:?}",
        m.overloads,
        m.trace
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[0] != w[1])
            .map(|(i, w)| (i, w[1]))
            .collect::<Vec<_>>()
    );
    assert!(
        m.overloads >= 10,
        "it keeps probing: {} overloads",
        m.overloads
    );
}

#[test]
fn a_scaling_prefect_is_used_up_to_its_capacity_and_not_far_past_it() {
    let mut m = Model::new(1, 32);
    m.run(30_000, Some(6));
    let late = &m.trace[10_000..];
    assert!(
        late.iter().all(|&l| (4..=7).contains(&l)),
        "{:?}",
        &late[..50]
    );
    assert!(m.share_at(10_000, 6) > 0.9, "{}", m.share_at(10_000, 6));
    assert!(m.overloads < 60, "{} overloads", m.overloads);
}

#[test]
fn an_outage_drops_the_limit_to_its_minimum_and_it_climbs_back_fast() {
    let mut m = Model::new(1, 32);
    m.run(30_000, Some(6));
    m.run(20, None);
    assert_eq!(m.limit.snapshot().limit, 1);
    let before = m.trace.len();
    m.run(400, Some(6));
    // Below the level of the last failed probe it climbs at the base pace: 16 · (1 + 2 + 3 + 4)
    // calls to 5, plus the calls in flight at each step. (The last step may be a slowed probe.)
    let back = m.trace[before..].iter().position(|&l| l == 5);
    assert!(
        back.is_some_and(|at| at <= 200),
        "back at 6 after {back:?} calls: {:?}",
        changes(&m.trace[before..])
    );
}

#[test]
fn the_limit_stays_within_its_bounds() {
    let mut m = Model::new(2, 3);
    m.run(5_000, Some(10));
    assert!(m.trace.iter().all(|&l| (2..=3).contains(&l)));
    assert_eq!(m.limit.snapshot().limit, 3);
    m.run(50, None);
    assert_eq!(m.limit.snapshot().limit, 2);
}

#[test]
fn a_fixed_limit_never_moves() {
    let limit = ConcurrencyLimit::new(LimitMode::Fixed, 1, 3);
    let permits: Vec<Permit> = std::iter::from_fn(|| limit.try_acquire()).collect();
    assert_eq!(permits.len(), 3);
    for p in permits {
        p.record(Signal::Overloaded);
    }
    let s = limit.snapshot();
    assert_eq!((s.limit, s.in_flight, s.overloads), (3, 0, 3));
}

#[test]
fn signals_from_calls_started_under_an_older_limit_are_ignored() {
    // Ten calls in flight all fail together: the limit is cut once, not ten times.
    let limit = ConcurrencyLimit::new(LimitMode::Adaptive, 1, 100);
    let mut m = Model::new(1, 100);
    m.limit = limit.clone();
    while limit.snapshot().limit < 10 {
        m.run(1, Some(100));
    }
    drop(m);
    let permits: Vec<Permit> = std::iter::from_fn(|| limit.try_acquire()).collect();
    assert_eq!(permits.len(), 10);
    for p in permits {
        p.record(Signal::Overloaded);
    }
    assert_eq!(limit.snapshot().limit, 7);
}

#[tokio::test]
async fn a_waiting_call_gets_the_slot_a_finished_call_frees() {
    let limit = ConcurrencyLimit::new(LimitMode::Fixed, 1, 1);
    let held = limit.try_acquire().expect("a free slot");
    assert!(limit.try_acquire().is_none());
    let waiter = {
        let limit = limit.clone();
        tokio::spawn(async move {
            limit
                .acquire(Instant::now() + std::time::Duration::from_secs(30))
                .await
                .map(drop)
                .is_some()
        })
    };
    drop(held);
    assert!(waiter.await.expect("the waiter finishes"));
    assert_eq!(limit.snapshot().in_flight, 0);
    let deadline = Instant::now();
    let _held = limit.try_acquire();
    assert!(limit.acquire(deadline).await.is_none());
}

fn changes(trace: &[usize]) -> Vec<(usize, usize)> {
    trace
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] != w[1])
        .map(|(i, w)| (i + 1, w[1]))
        .collect()
}

#[test]
fn a_fast_prefect_is_used_up_to_the_maximum_within_a_few_thousand_calls() {
    let mut m = Model::new(1, 64);
    m.run(4_000, Some(10_000));
    assert_eq!(
        m.limit.snapshot().limit,
        64,
        "slow start reaches the maximum"
    );
    assert_eq!(m.overloads, 0);
    let mut sqlite = Model::new(1, 64);
    sqlite.run(20_000, Some(1));
    assert!(
        sqlite.share_at(2_000, 1) > 0.99,
        "the same maximum still settles at one on a one-writer Prefect: {}",
        sqlite.share_at(2_000, 1)
    );
}

#[test]
fn replicas_divide_the_maximum_among_them() {
    let mut m = Model::new(1, 12);
    m.run(20_000, Some(100));
    assert_eq!(
        m.limit.snapshot().limit,
        12,
        "one replica grows to the maximum"
    );
    m.limit.share_among(3);
    assert_eq!(
        m.limit.snapshot().limit,
        4,
        "a third of it with three replicas"
    );
    m.run(20_000, Some(100));
    assert!(
        m.trace.iter().rev().take(20_000).all(|&l| l <= 4),
        "and never past it"
    );
    m.limit.share_among(1);
    m.run(20_000, Some(100));
    assert_eq!(m.limit.snapshot().limit, 12, "all of it again when alone");
    m.limit.share_among(50);
    assert_eq!(m.limit.snapshot().limit, 1, "never below the minimum");

    let fixed = ConcurrencyLimit::new(LimitMode::Fixed, 1, 10);
    fixed.share_among(3);
    let permits: Vec<Permit> = std::iter::from_fn(|| fixed.try_acquire()).collect();
    assert_eq!(permits.len(), 4, "⌈10 / 3⌉");
}
