//! What the outbox holds, kept in memory as entries come and go, so metrics, readiness and the
//! queue-or-dispatch decision never count rows.

use std::collections::HashMap;

/// Queued entries per route and dead entries in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    queued: HashMap<String, u64>,
    pub dead: u64,
}

/// One committed change to the counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Queued(String),
    Settled(String),
    Died(String),
    Revived(String),
    /// Taken out of the outbox by an operator, from the queue or from the dead.
    Discarded {
        route: String,
        was_dead: bool,
    },
}

impl OutboxCounts {
    pub fn queued(&self, route: &str) -> u64 {
        self.queued.get(route).copied().unwrap_or(0)
    }

    pub fn queued_total(&self) -> u64 {
        self.queued.values().sum()
    }

    /// Routes with entries queued, and how many.
    pub fn by_route(&self) -> impl Iterator<Item = (&str, u64)> {
        self.queued.iter().map(|(r, n)| (r.as_str(), *n))
    }

    pub(crate) fn set_queued(&mut self, route: String, n: u64) {
        if n > 0 {
            self.queued.insert(route, n);
        }
    }

    pub(crate) fn apply(&mut self, change: &Change) {
        if let Change::Discarded { route, was_dead } = change {
            if *was_dead {
                self.dead = self.dead.saturating_sub(1);
            } else {
                self.apply(&Change::Settled(route.clone()));
            }
            return;
        }
        match change {
            Change::Queued(route) | Change::Revived(route) => {
                *self.queued.entry(route.clone()).or_insert(0) += 1;
            }
            Change::Settled(route) | Change::Died(route) => {
                if let Some(n) = self.queued.get_mut(route) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.queued.remove(route);
                    }
                }
            }
            Change::Discarded { .. } => {}
        }
        match change {
            Change::Died(_) => self.dead += 1,
            Change::Revived(_) => self.dead = self.dead.saturating_sub(1),
            Change::Queued(_) | Change::Settled(_) | Change::Discarded { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_move_entries_between_routes_and_dead() {
        let mut c = OutboxCounts::default();
        c.apply(&Change::Queued("a".into()));
        c.apply(&Change::Queued("a".into()));
        c.apply(&Change::Queued("b".into()));
        c.apply(&Change::Died("a".into()));
        assert_eq!((c.queued("a"), c.queued("b"), c.dead), (1, 1, 1));
        c.apply(&Change::Settled("a".into()));
        assert_eq!(c.by_route().count(), 1, "a route with none left is gone");
        c.apply(&Change::Revived("a".into()));
        assert_eq!((c.queued("a"), c.queued_total(), c.dead), (1, 2, 0));
    }
}
