//! The metrics history behind `system.history`: the metrics worker's samples kept at three resolutions (every
//! sample for an hour, one-minute means for a day, one-hour means for 30 days), each a bounded ring, and written
//! through to the [`Store`] so that a restart keeps them.
//!
//! Store layout: one record per kept point, kind `metrics.<resolution>` (`metrics.sample`, `metrics.minute`,
//! `metrics.hour`), key the point's time in ms as 20 zero-padded digits (so keys sort by time), value a
//! [`MetricSample`]. Each push writes the new points and deletes the evicted ones in one transaction, so the store
//! never holds more than the rings do. Sample points are written without fsync ([`Durability::Eventual`]); the
//! write that closes a minute is [`Durability::Immediate`], so a crash loses at most about a minute.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::{Durability, RecordChange, Store, StoreError};
use crate::system::MetricSample;

/// A resolution of the metrics history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    /// Every sample the metrics worker took (`metrics.sample_interval_secs` apart), for an hour.
    Sample,
    /// One-minute means, for a day.
    Minute,
    /// One-hour means, for 30 days.
    Hour,
}

impl Resolution {
    /// All, finest first.
    pub const ALL: [Resolution; 3] = [Resolution::Sample, Resolution::Minute, Resolution::Hour];

    /// The record kind its points are stored under.
    pub fn kind(self) -> &'static str {
        match self {
            Resolution::Sample => "metrics.sample",
            Resolution::Minute => "metrics.minute",
            Resolution::Hour => "metrics.hour",
        }
    }
}

/// How one resolution is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierSpec {
    /// Which.
    pub resolution: Resolution,
    /// Width of one bucket in ms (a point is the mean of the finer points in it); 0 keeps every sample.
    pub step_ms: u64,
    /// How far back points are kept, measured from the newest point.
    pub keep_ms: u64,
    /// At most this many points (the size bound, whatever the clock does).
    pub capacity: usize,
}

/// The default tiers for a sampling interval: every sample for an hour, minutes for a day, hours for 30 days.
pub fn default_tiers(sample_interval_secs: u64) -> [TierSpec; 3] {
    let hour = 3_600_000;
    let day = 24 * hour;
    [
        TierSpec {
            resolution: Resolution::Sample,
            step_ms: 0,
            keep_ms: hour,
            capacity: (3600 / sample_interval_secs.max(1)) as usize + 1,
        },
        TierSpec {
            resolution: Resolution::Minute,
            step_ms: 60_000,
            keep_ms: day,
            capacity: 24 * 60 + 1,
        },
        TierSpec {
            resolution: Resolution::Hour,
            step_ms: hour,
            keep_ms: 30 * day,
            capacity: 30 * 24 + 1,
        },
    ]
}

#[derive(Debug)]
struct Tier {
    spec: TierSpec,
    points: VecDeque<MetricSample>,
    /// The finer points of the bucket not yet closed (empty for the sample tier).
    pending: Vec<MetricSample>,
}

impl Tier {
    fn bucket(&self, time_ms: u64) -> u64 {
        time_ms / self.spec.step_ms.max(1)
    }

    /// Appends a point and evicts what falls out; returns the store changes.
    fn push(&mut self, p: MetricSample, changes: &mut Vec<RecordChange>) {
        let kind = self.spec.resolution.kind();
        let newest = p.time_ms;
        changes.push((
            kind,
            key(p.time_ms),
            Some(serde_json::to_value(&p).expect("a sample serialises")),
        ));
        self.points.push_back(p);
        while self.points.len() > self.spec.capacity
            || self
                .points
                .front()
                .is_some_and(|f| f.time_ms.saturating_add(self.spec.keep_ms) < newest)
        {
            let old = self.points.pop_front().expect("not empty");
            if old.time_ms != newest {
                changes.push((kind, key(old.time_ms), None));
            }
        }
    }

    /// The mean of the pending bucket, stamped with the bucket's start.
    fn pending_mean(&self) -> Option<MetricSample> {
        let first = self.pending.first()?;
        let mut m = mean(&self.pending);
        m.time_ms = self.bucket(first.time_ms) * self.spec.step_ms;
        Some(m)
    }
}

fn key(time_ms: u64) -> String {
    format!("{time_ms:020}")
}

/// The mean of samples (CPU over those that have it; totals from the last one).
fn mean(xs: &[MetricSample]) -> MetricSample {
    let n = xs.len().max(1) as f64;
    let cpus: Vec<f64> = xs.iter().filter_map(|x| x.cpu_percent).collect();
    let avg_u =
        |f: fn(&MetricSample) -> u64| (xs.iter().map(|x| f(x) as u128).sum::<u128>() / xs.len().max(1) as u128) as u64;
    let avg_f = |f: fn(&MetricSample) -> f64| xs.iter().map(f).sum::<f64>() / n;
    let last = xs.last().cloned().unwrap_or_default();
    MetricSample {
        time_ms: last.time_ms,
        cpu_percent: (!cpus.is_empty()).then(|| cpus.iter().sum::<f64>() / cpus.len() as f64),
        memory_used_bytes: avg_u(|x| x.memory_used_bytes),
        memory_total_bytes: last.memory_total_bytes,
        load_one: avg_f(|x| x.load_one),
        load_five: avg_f(|x| x.load_five),
        load_fifteen: avg_f(|x| x.load_fifteen),
        disk_used_bytes: avg_u(|x| x.disk_used_bytes),
        disk_total_bytes: last.disk_total_bytes,
    }
}

/// The metrics history: bounded rings per resolution, optionally written through to a store.
pub struct MetricsHistory {
    tiers: Mutex<Vec<Tier>>,
    store: Option<Arc<dyn Store>>,
}

impl std::fmt::Debug for MetricsHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsHistory")
            .field("persistent", &self.store.is_some())
            .finish()
    }
}

impl MetricsHistory {
    /// A history in memory only, keeping at most `capacity` samples (one hour) and the default coarser tiers.
    pub fn new(capacity: usize) -> Self {
        let mut tiers = default_tiers(1);
        tiers[0].capacity = capacity.max(1);
        Self::build(tiers.to_vec(), None)
    }

    /// The default tiers for `sample_interval_secs`, loaded from and written through to `store`.
    pub fn persistent(store: Arc<dyn Store>, sample_interval_secs: u64) -> Result<Self, StoreError> {
        Self::with_tiers(store, default_tiers(sample_interval_secs).to_vec())
    }

    /// Given tiers (finest first, the first one keeping every sample), loaded from and written through to `store`.
    /// Points beyond a tier's capacity (after a configuration change) and undecodable ones are deleted.
    pub fn with_tiers(store: Arc<dyn Store>, specs: Vec<TierSpec>) -> Result<Self, StoreError> {
        let h = Self::build(specs, Some(store.clone()));
        let mut changes = Vec::new();
        {
            let mut tiers = h.tiers.lock().unwrap();
            for t in tiers.iter_mut() {
                let kind = t.spec.resolution.kind();
                let mut pts = Vec::new();
                for (k, v) in store.list_records(kind)? {
                    match serde_json::from_value::<MetricSample>(v) {
                        Ok(s) => pts.push(s),
                        Err(e) => {
                            tracing::warn!(kind, key = %k, error = %e, "dropping an undecodable metrics point");
                            changes.push((kind, k, None));
                        }
                    }
                }
                pts.sort_by_key(|s| s.time_ms);
                let extra = pts.len().saturating_sub(t.spec.capacity);
                for s in pts.drain(..extra) {
                    changes.push((kind, key(s.time_ms), None));
                }
                t.points = pts.into();
            }
            // The bucket each coarser tier had open: the finer points after its last closed bucket.
            for i in 1..tiers.len() {
                let (lo, hi) = tiers.split_at_mut(i);
                let (finer, t) = (&lo[i - 1], &mut hi[0]);
                let Some(last) = finer.points.back() else { continue };
                let open = t.bucket(last.time_ms);
                let closed = t.points.back().map(|p| t.bucket(p.time_ms));
                if closed.is_some_and(|c| c >= open) {
                    continue;
                }
                t.pending = finer
                    .points
                    .iter()
                    .filter(|p| t.bucket(p.time_ms) == open)
                    .cloned()
                    .collect();
            }
        }
        if !changes.is_empty() {
            store.write_records(&changes, Durability::Immediate)?;
        }
        Ok(h)
    }

    fn build(specs: Vec<TierSpec>, store: Option<Arc<dyn Store>>) -> Self {
        let tiers = specs
            .into_iter()
            .map(|spec| Tier {
                spec,
                points: VecDeque::new(),
                pending: Vec::new(),
            })
            .collect();
        Self {
            tiers: Mutex::new(tiers),
            store,
        }
    }

    /// Appends a sample: kept at every resolution (closing a coarser bucket when the sample falls into a new one)
    /// and written to the store. A store failure is logged; the sample is still kept in memory.
    pub fn push(&self, sample: MetricSample) {
        if let Err(e) = self.try_push(sample) {
            tracing::warn!(error = %e, "metrics history not written to the store");
        }
    }

    /// [`MetricsHistory::push`], reporting a store failure.
    pub fn try_push(&self, sample: MetricSample) -> Result<(), StoreError> {
        let mut changes = Vec::new();
        let mut durability = Durability::Eventual;
        {
            let mut tiers = self.tiers.lock().unwrap();
            let mut carry = Some(sample);
            for (i, t) in tiers.iter_mut().enumerate() {
                let Some(p) = carry.take() else { break };
                if i == 0 {
                    t.push(p.clone(), &mut changes);
                    carry = Some(p);
                    continue;
                }
                let open = t.pending.first().map(|f| t.bucket(f.time_ms));
                if open.is_some_and(|b| b != t.bucket(p.time_ms)) {
                    let closed = t.pending_mean().expect("pending is not empty");
                    t.pending.clear();
                    t.push(closed.clone(), &mut changes);
                    carry = Some(closed);
                    durability = Durability::Immediate;
                }
                t.pending.push(p);
            }
        }
        match &self.store {
            Some(s) => s.write_records(&changes, durability),
            None => Ok(()),
        }
    }

    /// Samples taken at or after `since_ms` (all when `None`), oldest first, at the finest resolution that reaches
    /// back that far (every sample when `since_ms` is absent).
    pub fn since(&self, since_ms: Option<u64>) -> Vec<MetricSample> {
        self.query(since_ms, None)
    }

    /// The finest resolution whose points reach back to `since_ms` (measured from the newest sample).
    pub fn resolution_for(&self, since_ms: Option<u64>) -> Resolution {
        let tiers = self.tiers.lock().unwrap();
        let (Some(since), Some(newest)) = (since_ms, tiers[0].points.back().map(|p| p.time_ms)) else {
            return tiers[0].spec.resolution;
        };
        let span = newest.saturating_sub(since);
        tiers
            .iter()
            .find(|t| span <= t.spec.keep_ms)
            .unwrap_or_else(|| tiers.last().expect("at least one tier"))
            .spec
            .resolution
    }

    /// Points at `resolution` (chosen by [`MetricsHistory::resolution_for`] when `None`) at or after `since_ms`,
    /// oldest first. A coarser resolution ends with the mean of its bucket still open, so a chart reaches now.
    pub fn query(&self, since_ms: Option<u64>, resolution: Option<Resolution>) -> Vec<MetricSample> {
        let r = resolution.unwrap_or_else(|| self.resolution_for(since_ms));
        let tiers = self.tiers.lock().unwrap();
        let Some(t) = tiers.iter().find(|t| t.spec.resolution == r) else {
            return Vec::new();
        };
        t.points
            .iter()
            .cloned()
            .chain(t.pending_mean())
            .filter(|x| since_ms.is_none_or(|s| x.time_ms >= s))
            .collect()
    }

    /// How many points each resolution holds.
    pub fn lens(&self) -> Vec<(Resolution, usize)> {
        let tiers = self.tiers.lock().unwrap();
        tiers.iter().map(|t| (t.spec.resolution, t.points.len())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn s(time_ms: u64, cpu: f64) -> MetricSample {
        MetricSample {
            time_ms,
            cpu_percent: Some(cpu),
            memory_used_bytes: 100,
            memory_total_bytes: 1000,
            load_one: cpu / 100.0,
            ..Default::default()
        }
    }

    fn small() -> Vec<TierSpec> {
        vec![
            TierSpec {
                resolution: Resolution::Sample,
                step_ms: 0,
                keep_ms: 100,
                capacity: 11,
            },
            TierSpec {
                resolution: Resolution::Minute,
                step_ms: 100,
                keep_ms: 1000,
                capacity: 11,
            },
            TierSpec {
                resolution: Resolution::Hour,
                step_ms: 1000,
                keep_ms: 10_000,
                capacity: 11,
            },
        ]
    }

    #[test]
    fn samples_roll_up_into_bucket_means() {
        let h = MetricsHistory::build(small(), None);
        for t in (0..=300).step_by(10) {
            h.push(s(t, (t / 100) as f64 * 10.0));
        }
        let minute = h.query(None, Some(Resolution::Minute));
        let times: Vec<_> = minute.iter().map(|p| p.time_ms).collect();
        // Buckets 0, 100 and 200 are closed; 300 is open (one sample) and shown as its mean.
        assert_eq!(times, vec![0, 100, 200, 300]);
        assert_eq!(minute[1].cpu_percent, Some(10.0));
        assert_eq!(minute[2].memory_used_bytes, 100);
        // The sample tier keeps 100 ms: 200..=300.
        assert_eq!(h.query(None, Some(Resolution::Sample)).len(), 11);
    }

    #[test]
    fn the_resolution_follows_the_range() {
        let h = MetricsHistory::build(small(), None);
        for t in (0..=5000).step_by(10) {
            h.push(s(t, 1.0));
        }
        assert_eq!(h.resolution_for(Some(4950)), Resolution::Sample);
        assert_eq!(h.resolution_for(Some(4500)), Resolution::Minute);
        assert_eq!(h.resolution_for(Some(0)), Resolution::Hour);
        assert_eq!(h.resolution_for(None), Resolution::Sample);
        let hours: Vec<_> = h.since(Some(0)).iter().map(|p| p.time_ms).collect();
        // Hour 4000 is still open (its last minute closed at 5000); minute 5000 is not yet in it.
        assert_eq!(hours, vec![0, 1000, 2000, 3000, 4000]);
    }

    #[test]
    fn every_tier_and_the_store_stay_within_their_bound() {
        let store = Arc::new(MemoryStore::new());
        let h = MetricsHistory::with_tiers(store.clone(), small()).unwrap();
        for t in (0..200_000).step_by(10) {
            h.push(s(t, 2.0));
        }
        for (r, n) in h.lens() {
            assert!(n <= 11, "{r:?} holds {n}");
            assert_eq!(store.list_records(r.kind()).unwrap().len(), n, "{r:?}");
        }
        // A burst of samples with the same time (a stuck clock) is bounded by the capacity too.
        for _ in 0..100 {
            h.push(s(300_000, 2.0));
        }
        assert!(h.lens()[0].1 <= 11);
        assert!(store.list_records(Resolution::Sample.kind()).unwrap().len() <= 11);
    }

    #[test]
    fn the_default_tiers_hold_a_month_of_hours_and_no_more() {
        let store = Arc::new(MemoryStore::new());
        let h = MetricsHistory::persistent(store.clone(), 60).unwrap();
        // 40 days at one sample a minute.
        for m in 0..40 * 24 * 60u64 {
            h.push(s(m * 60_000, 3.0));
        }
        let lens: std::collections::HashMap<_, _> = h.lens().into_iter().collect();
        assert_eq!(lens[&Resolution::Sample], 61);
        assert_eq!(lens[&Resolution::Minute], 24 * 60 + 1);
        assert_eq!(lens[&Resolution::Hour], 30 * 24 + 1);
        let total: usize = Resolution::ALL
            .iter()
            .map(|r| store.list_records(r.kind()).unwrap().len())
            .sum();
        assert_eq!(total, 61 + 24 * 60 + 1 + 30 * 24 + 1);
    }

    #[test]
    fn a_reload_keeps_the_points_and_the_open_buckets() {
        let store = Arc::new(MemoryStore::new());
        let h = MetricsHistory::with_tiers(store.clone(), small()).unwrap();
        for t in (0..=250).step_by(10) {
            h.push(s(t, t as f64));
        }
        let before: Vec<_> = Resolution::ALL.iter().map(|r| h.query(None, Some(*r))).collect();
        drop(h);
        let h = MetricsHistory::with_tiers(store.clone(), small()).unwrap();
        let after: Vec<_> = Resolution::ALL.iter().map(|r| h.query(None, Some(*r))).collect();
        assert_eq!(before, after);
        // The open minute bucket (200..) continues where it was: 200..=250 and then 260..=290.
        for t in (260..=300).step_by(10) {
            h.push(s(t, t as f64));
        }
        let m = h.query(None, Some(Resolution::Minute));
        assert_eq!(m[2].time_ms, 200);
        assert_eq!(m[2].cpu_percent, Some(245.0));
    }

    #[test]
    fn undecodable_and_surplus_points_are_dropped_on_load() {
        let store = Arc::new(MemoryStore::new());
        store
            .put_record("metrics.sample", &key(5), &serde_json::json!({"nonsense": true}))
            .unwrap();
        for t in 0..20 {
            store
                .put_record(
                    "metrics.sample",
                    &key(100 + t),
                    &serde_json::to_value(s(100 + t, 1.0)).unwrap(),
                )
                .unwrap();
        }
        let h = MetricsHistory::with_tiers(store.clone(), small()).unwrap();
        assert_eq!(h.lens()[0].1, 11);
        let keys: Vec<_> = store
            .list_records("metrics.sample")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys.len(), 11);
        assert_eq!(keys[0], key(109));
    }
}
