//! A counter and a latency histogram that every request writes: one cell per shard, each on its
//! own cache line, summed when `/metrics` is read. A worker thread writes its own shard, so two
//! workers counting the same route no longer pass one line (or the histogram's lock) between
//! their cores on every request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

use crate::metrics::LATENCY_BUCKETS;

/// Shards per metric: more than the workers of a 2–8 core machine, so threads rarely share one.
const SHARDS: usize = 8;

/// This thread's shard, given out in turn as threads first count.
fn shard() -> usize {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static MINE: usize = (NEXT.fetch_add(1, Ordering::Relaxed) as usize) % SHARDS;
    }
    MINE.with(|m| *m)
}

/// One cache line's worth (two, against the adjacent-line prefetcher).
#[derive(Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// A monotonic count, sharded.
#[derive(Clone, Default)]
pub struct ShardedCounter(Arc<[Padded<AtomicU64>; SHARDS]>);

impl ShardedCounter {
    pub fn inc(&self) {
        self.0[shard()].0.fetch_add(1, Ordering::Relaxed);
    }

    /// The sum of the shards.
    pub fn get(&self) -> u64 {
        self.0.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

impl std::fmt::Debug for ShardedCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ShardedCounter").field(&self.get()).finish()
    }
}

impl TypedMetric for ShardedCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for ShardedCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Per bucket of [`LATENCY_BUCKETS`] and `+Inf`.
const BUCKETS: usize = LATENCY_BUCKETS.len() + 1;

/// One shard of a histogram: non-cumulative bucket counts, the sum (f64 bits) and the count.
#[derive(Default)]
struct HistogramShard {
    buckets: [AtomicU64; BUCKETS],
    sum_bits: AtomicU64,
    count: AtomicU64,
}

/// A latency histogram with [`LATENCY_BUCKETS`], sharded.
#[derive(Clone, Default)]
pub struct ShardedHistogram(Arc<[Padded<HistogramShard>; SHARDS]>);

impl ShardedHistogram {
    pub fn observe(&self, seconds: f64) {
        let shard = &self.0[shard()].0;
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|upper| seconds <= *upper)
            .unwrap_or(BUCKETS - 1);
        shard.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        // Only this thread writes its shard (a thread shares one only past `SHARDS` threads),
        // so the loop settles at once.
        let _ = shard
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + seconds).to_bits())
            });
        shard.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Sum, count and the bucket counts (upper bound, count in it), over all shards.
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .map(|upper| (upper, 0))
            .collect();
        let (mut sum, mut count) = (0.0, 0);
        for shard in self.0.iter() {
            let shard = &shard.0;
            for (total, cell) in buckets.iter_mut().zip(&shard.buckets) {
                total.1 += cell.load(Ordering::Relaxed);
            }
            sum += f64::from_bits(shard.sum_bits.load(Ordering::Relaxed));
            count += shard.count.load(Ordering::Relaxed);
        }
        (sum, count, buckets)
    }
}

impl std::fmt::Debug for ShardedHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (sum, count, _) = self.snapshot();
        f.debug_struct("ShardedHistogram")
            .field("sum", &sum)
            .field("count", &count)
            .finish()
    }
}

impl TypedMetric for ShardedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for ShardedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    fn text(register: impl FnOnce(&mut Registry)) -> String {
        let mut registry = Registry::default();
        register(&mut registry);
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let counter = ShardedCounter::default();
        let histogram = ShardedHistogram::default();
        std::thread::scope(|s| {
            for _ in 0..(2 * SHARDS) {
                s.spawn(|| {
                    for _ in 0..1_000 {
                        counter.inc();
                        histogram.observe(0.5);
                    }
                });
            }
        });
        assert_eq!(counter.get(), 16_000);
        let (sum, count, _) = histogram.snapshot();
        assert_eq!(count, 16_000);
        assert!((sum - 8_000.0).abs() < 1e-6, "{sum}");
    }

    #[test]
    fn it_reads_as_the_unsharded_metrics_do() {
        let observations = [0.0005, 0.003, 0.003, 0.2, 7.0, 30.0];
        let (counter, histogram) = (ShardedCounter::default(), ShardedHistogram::default());
        let (plain_counter, plain_histogram) = (
            prometheus_client::metrics::counter::Counter::<u64>::default(),
            Histogram::new(LATENCY_BUCKETS),
        );
        for v in observations {
            counter.inc();
            histogram.observe(v);
            plain_counter.inc();
            plain_histogram.observe(v);
        }
        let sharded = text(|r| {
            r.register("requests", "Requests", counter);
            r.register("duration_seconds", "Time", histogram);
        });
        let plain = text(|r| {
            r.register("requests", "Requests", plain_counter);
            r.register("duration_seconds", "Time", plain_histogram);
        });
        assert_eq!(sharded, plain);
        assert!(
            sharded.contains("duration_seconds_bucket{le=\"+Inf\"} 6"),
            "{sharded}"
        );
    }
}
