//! Which waiting entry goes to Prefect next: each route's entries oldest first, routes taking
//! turns in proportion to their shares (smooth weighted round-robin, as in nginx), so one
//! partner's flood cannot starve the website route.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::store::{OutboxCounts, OutboxEntry};

#[derive(Debug, Default)]
struct RouteQueue {
    entries: VecDeque<OutboxEntry>,
    /// The round-robin's running weight.
    current: i64,
}

#[derive(Debug)]
pub struct Schedule {
    shares: HashMap<String, u32>,
    queues: BTreeMap<String, RouteQueue>,
    /// Held here or being delivered: a fresh read of the store must not hand them out again.
    known: HashSet<uuid::Uuid>,
    in_flight: usize,
    refill: bool,
}

impl Schedule {
    /// `shares` by route name; a route not listed (no longer configured) has share 1.
    pub fn new(shares: HashMap<String, u32>) -> Self {
        Self {
            shares,
            queues: BTreeMap::new(),
            known: HashSet::new(),
            in_flight: 0,
            refill: true,
        }
    }

    /// True when a route ran dry (or new work was announced) since the last read of the store.
    pub fn needs_refill(&self) -> bool {
        self.refill
    }

    pub fn request_refill(&mut self) {
        self.refill = true;
    }

    /// Entries being delivered now.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    #[cfg(test)]
    pub fn is_idle(&self) -> bool {
        self.in_flight == 0 && self.queues.is_empty()
    }

    /// Whether a read of the store is worth it after new entries arrived: the held entries run
    /// low, or a route has entries waiting that none of the held ones belong to.
    pub fn wants_more(&self, counts: &OutboxCounts) -> bool {
        let held: usize = self.queues.values().map(|q| q.entries.len()).sum();
        held <= self.in_flight.max(1)
            || counts
                .by_route()
                .any(|(route, n)| n > 0 && !self.queues.contains_key(route))
    }

    /// An attempt that left its entry due: back at the front of its route, in id order (ids
    /// are time-ordered), to be handed out again.
    pub fn put_back(&mut self, entry: OutboxEntry) {
        if !self.known.insert(entry.id) {
            return;
        }
        let queue = self.queues.entry(entry.route.clone()).or_default();
        let at = queue
            .entries
            .iter()
            .position(|e| e.id > entry.id)
            .unwrap_or(queue.entries.len());
        queue.entries.insert(at, entry);
    }

    /// Takes a fresh read of the store (each route's oldest due entries), skipping entries
    /// already held or in flight.
    pub fn offer(&mut self, due: Vec<OutboxEntry>) {
        self.refill = false;
        for entry in due {
            if self.known.insert(entry.id) {
                self.queues
                    .entry(entry.route.clone())
                    .or_default()
                    .entries
                    .push_back(entry);
            }
        }
    }

    /// The next entry to deliver, now counted in flight until `finished`.
    pub fn next(&mut self) -> Option<OutboxEntry> {
        let total: i64 = self.queues.keys().map(|r| share(&self.shares, r)).sum();
        let mut best: Option<(&String, i64)> = None;
        for (route, queue) in &mut self.queues {
            queue.current += share(&self.shares, route);
            if best.is_none_or(|(_, c)| queue.current > c) {
                best = Some((route, queue.current));
            }
        }
        let route = best?.0.clone();
        let queue = self.queues.get_mut(&route)?;
        queue.current -= total;
        let entry = queue.entries.pop_front();
        if queue.entries.is_empty() {
            self.queues.remove(&route);
            self.refill = true;
        }
        if entry.is_some() {
            self.in_flight += 1;
        }
        entry
    }

    /// The entry's attempt is over (delivered, dead or rescheduled).
    pub fn finished(&mut self, id: uuid::Uuid) {
        if self.known.remove(&id) {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
    }
}

/// A route's share; 1 for a route no longer configured.
fn share(shares: &HashMap<String, u32>, route: &str) -> i64 {
    shares.get(route).map_or(1, |&s| i64::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Parameters;

    fn entries(route: &str, n: usize) -> Vec<OutboxEntry> {
        (0..n)
            .map(|i| OutboxEntry {
                id: uuid::Uuid::now_v7(),
                route: route.into(),
                deployment: "f/d".into(),
                parameters: Parameters::default(),
                tags: vec![],
                name: Some(format!("{route}-{i}")),
                idempotency_key: format!("{route}-{i}"),
                attempts: 0,
                created_at: 0,
                next_attempt_at: 0,
                last_error: String::new(),
            })
            .collect()
    }

    fn drain(s: &mut Schedule, n: usize) -> Vec<String> {
        let mut names = Vec::new();
        while let Some(e) = (names.len() < n).then(|| s.next()).flatten() {
            s.finished(e.id);
            names.push(e.name.unwrap_or_default());
        }
        names
    }

    #[test]
    fn routes_take_turns_by_share_each_oldest_first() {
        let mut s = Schedule::new(HashMap::from([("site".into(), 3), ("partner".into(), 1)]));
        s.offer(entries("partner", 100));
        s.offer(entries("site", 6));
        let order = drain(&mut s, 8);
        let site: Vec<&String> = order.iter().filter(|n| n.starts_with("site")).collect();
        assert_eq!(site.len(), 6, "3 of every 4 turns: {order:?}");
        assert_eq!(
            site,
            ["site-0", "site-1", "site-2", "site-3", "site-4", "site-5"]
        );
        assert_eq!(
            order.iter().filter(|n| n.starts_with("partner-0")).count(),
            1
        );
        assert!(s.needs_refill(), "the site route ran dry");
        assert_eq!(drain(&mut s, 3), ["partner-2", "partner-3", "partner-4"]);
    }

    #[test]
    fn equal_shares_alternate() {
        let mut s = Schedule::new(HashMap::new());
        s.offer(entries("a", 3));
        s.offer(entries("b", 3));
        assert_eq!(drain(&mut s, 6), ["a-0", "b-0", "a-1", "b-1", "a-2", "b-2"]);
        assert!(s.is_idle());
    }

    #[test]
    fn a_fresh_read_does_not_hand_out_held_or_in_flight_entries_again() {
        let mut s = Schedule::new(HashMap::new());
        let all = entries("a", 3);
        s.offer(all.clone());
        let first = s.next().expect("an entry");
        s.offer(all.clone());
        assert_eq!(s.in_flight(), 1);
        assert_eq!(drain(&mut s, 10), ["a-1", "a-2"]);
        s.finished(first.id);
        assert!(s.is_idle());
        s.offer(all);
        assert_eq!(
            drain(&mut s, 10),
            ["a-0", "a-1", "a-2"],
            "once finished, it may come back"
        );
    }
}
