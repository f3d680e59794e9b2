//! The in-memory vector index: every ticket's stored embedding, quantised to one byte per dimension, with what
//! visibility and filters need (requester, assignee, status, priority), scanned exactly.
//!
//! Each process keeps its own: built from the database on start, then brought up to date before each query by
//! reading the tickets whose `updated_at` moved (indexed), so several processes sharing one PostgreSQL database
//! each see the others' changes. One million tickets take 384 MB of codes plus ~70 bytes of metadata each.

use smart_ticket_domain::{Priority, Status};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, RwLock};
use tokio::sync::Mutex;

use crate::db::{Db, IndexRow, StoreResult};
use crate::model::{Ts, User, UserId};

/// Rows read per page while catching up.
const PAGE: i64 = 10_000;
/// A transaction may commit a little after the time it stamped: catching up looks back this far.
const LOOKBACK_SECONDS: i64 = 5;

/// What a query may filter on, per ticket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Meta {
    pub number: i64,
    pub created_by: UserId,
    pub assigned_to: Option<UserId>,
    pub status: Status,
    pub priority: Priority,
    pub merged: bool,
    /// Whether it carries a resolution (resolved, or closed after being resolved).
    pub has_resolution: bool,
}

impl Meta {
    /// The same rule as [`crate::model::Ticket::visible_to`].
    pub fn visible_to(&self, user: &User) -> bool {
        crate::model::may_see(user, self.created_by, self.assigned_to)
    }
}

#[derive(Default)]
struct Inner {
    dim: usize,
    meta: Vec<Meta>,
    /// `dim` signed bytes per ticket: the unit vector times 127 / its largest component.
    codes: Vec<i8>,
    /// Per ticket: multiply a code dot product by this (and the query's) to get the cosine back.
    scales: Vec<f32>,
    slot: HashMap<i64, usize>,
    synced: Option<Ts>,
}

impl Inner {
    fn upsert(&mut self, meta: Meta, vector: Option<&[f32]>) {
        let Some(v) = vector.filter(|v| self.dim == 0 || v.len() == self.dim) else {
            self.remove(meta.number);
            return;
        };
        if self.dim == 0 {
            self.dim = v.len();
        }
        let (code, scale) = quantise(v);
        match self.slot.get(&meta.number) {
            Some(&i) => {
                self.meta[i] = meta;
                self.codes[i * self.dim..(i + 1) * self.dim].copy_from_slice(&code);
                self.scales[i] = scale;
            }
            None => {
                self.slot.insert(meta.number, self.meta.len());
                self.meta.push(meta);
                self.codes.extend_from_slice(&code);
                self.scales.push(scale);
            }
        }
    }

    /// Moves the last entry into the removed one's slot.
    fn remove(&mut self, number: i64) {
        let Some(i) = self.slot.remove(&number) else { return };
        let last = self.meta.len() - 1;
        if i != last {
            self.meta.swap(i, last);
            self.scales.swap(i, last);
            let (head, tail) = self.codes.split_at_mut(last * self.dim);
            head[i * self.dim..(i + 1) * self.dim].copy_from_slice(&tail[..self.dim]);
            self.slot.insert(self.meta[i].number, i);
        }
        self.meta.pop();
        self.scales.pop();
        self.codes.truncate(last * self.dim);
    }
}

/// Scales `v` so that its largest component becomes ±127 and rounds: one byte per dimension.
pub fn quantise(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        return (vec![0; v.len()], 0.0);
    }
    let k = 127.0 / max;
    (v.iter().map(|x| (x * k).round().clamp(-127.0, 127.0) as i8).collect(), max / 127.0)
}

fn dot(a: &[i8], b: &[i8]) -> i32 {
    // Widened to i32 lane by lane: the compiler vectorises this (pmaddwd).
    a.iter().zip(b).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum()
}

/// Below this many tickets one thread scans; above, every core takes a share.
const PARALLEL_FROM: usize = 50_000;

#[derive(Default)]
pub struct VectorIndex {
    inner: Arc<RwLock<Inner>>,
    /// One catch-up at a time; queries meanwhile read the index as it was.
    syncing: Mutex<()>,
}

impl std::fmt::Debug for VectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VectorIndex")
    }
}

impl VectorIndex {
    /// Reads every ticket changed since the last catch-up (all of them the first time).
    pub async fn sync(&self, db: &Db) -> StoreResult<()> {
        let _one = self.syncing.lock().await;
        // Keyset pages over (change time, number), so any number of tickets changed at one instant page through.
        let synced = { self.inner.read().unwrap_or_else(|p| p.into_inner()).synced };
        let mut since = synced.map(|t| (t + chrono::Duration::seconds(-LOOKBACK_SECONDS), 0));
        loop {
            let rows = db.index_rows_since(since, PAGE).await?;
            let full = rows.len() as i64 == PAGE;
            let last = rows.last().map(|r| (r.updated_at, r.number));
            let decoded: Vec<(Meta, Option<Vec<f32>>)> = rows
                .iter()
                .map(|r| (r.meta(), r.embedding.as_deref().and_then(crate::db::vector_from_bytes)))
                .collect();
            {
                // A std lock, held for no await.
                let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
                for (meta, v) in &decoded {
                    inner.upsert(*meta, v.as_deref());
                }
                inner.synced = inner.synced.max(last.map(|l| l.0));
            }
            if !full {
                break;
            }
            since = last;
        }
        Ok(())
    }

    /// Number of tickets with a vector.
    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).meta.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `k` tickets most like `query` (a unit vector) among those `keep` accepts: (number, cosine), best
    /// first. An exact scan of the one-byte codes, off the async runtime, on every core for a large index.
    pub async fn nearest(
        &self,
        query: &[f32],
        k: usize,
        keep: impl Fn(&Meta) -> bool + Send + Sync + 'static,
    ) -> Vec<(i64, f32)> {
        let inner = self.inner.clone();
        let query = query.to_vec();
        tokio::task::spawn_blocking(move || {
            let inner = inner.read().unwrap_or_else(|p| p.into_inner());
            nearest_in(&inner, &query, k, &keep)
        })
        .await
        .unwrap_or_else(|e| {
            // A scan cannot fail short of a bug: answer without semantic matches, but say so.
            tracing::error!(error = %e, "the vector index scan failed");
            Vec::new()
        })
    }
}

fn nearest_in(inner: &Inner, query: &[f32], k: usize, keep: &(dyn Fn(&Meta) -> bool + Sync)) -> Vec<(i64, f32)> {
    if inner.dim != query.len() || k == 0 || inner.meta.is_empty() {
        return Vec::new();
    }
    let (q, q_scale) = quantise(query);
    let dim = inner.dim;
    let n = inner.meta.len();
    let threads =
        if n < PARALLEL_FROM { 1 } else { std::thread::available_parallelism().map_or(1, |t| t.get()).min(8) };
    let share = n.div_ceil(threads);
    let scan = |from: usize| {
        let to = (from + share).min(n);
        let mut best: BinaryHeap<Reverse<(Score, i64)>> = BinaryHeap::with_capacity(k + 1);
        let metas = &inner.meta[from..to];
        let codes = inner.codes[from * dim..to * dim].chunks_exact(dim);
        for ((meta, code), scale) in metas.iter().zip(codes).zip(&inner.scales[from..to]) {
            if !keep(meta) {
                continue;
            }
            let s = dot(&q, code) as f32 * scale * q_scale;
            if best.len() < k {
                best.push(Reverse((Score(s), meta.number)));
            } else if best.peek().is_some_and(|w| s > w.0.0.0) {
                best.pop();
                best.push(Reverse((Score(s), meta.number)));
            }
        }
        best.into_vec()
    };
    let parts: Vec<Vec<Reverse<(Score, i64)>>> = if threads == 1 {
        vec![scan(0)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> =
                (0..threads).map(|t| t * share).filter(|f| *f < n).map(|f| s.spawn(move || scan(f))).collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        })
    };
    let mut out: Vec<(i64, f32)> = parts.into_iter().flatten().map(|Reverse((s, n))| (n, s.0)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
    out.truncate(k);
    out
}

/// An f32 ordered for the heap (scores are never NaN: finite codes and scales).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Score(f32);
impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl IndexRow {
    fn meta(&self) -> Meta {
        Meta {
            number: self.number,
            created_by: self.created_by,
            assigned_to: self.assigned_to,
            status: self.status.parse().unwrap_or(Status::Open),
            priority: self.priority.parse().unwrap_or(Priority::Medium),
            merged: self.merged_into.is_some(),
            has_resolution: self.has_resolution,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    fn meta(number: i64) -> Meta {
        Meta {
            number,
            created_by: UserId(uuid::Uuid::nil()),
            assigned_to: None,
            status: Status::Open,
            priority: Priority::Medium,
            merged: false,
            has_resolution: false,
        }
    }

    #[test]
    fn quantised_cosine_is_close_to_the_exact_one() {
        let a = unit(&(0..384).map(|i| ((i * 7 % 13) as f32 - 6.0) / 3.0).collect::<Vec<_>>());
        let b = unit(&(0..384).map(|i| ((i * 5 % 11) as f32 - 5.0) / 2.0 + a[i]).collect::<Vec<_>>());
        let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let (qa, sa) = quantise(&a);
        let (qb, sb) = quantise(&b);
        let approx = dot(&qa, &qb) as f32 * sa * sb;
        assert!((exact - approx).abs() < 0.01, "{exact} vs {approx}");
    }

    #[tokio::test]
    async fn nearest_ranks_filters_updates_and_removes() {
        let index = VectorIndex::default();
        {
            let mut inner = index.inner.write().unwrap();
            inner.upsert(meta(1), Some(&unit(&[1.0, 0.0, 0.0])));
            inner.upsert(meta(2), Some(&unit(&[0.9, 0.1, 0.0])));
            inner.upsert(meta(3), Some(&unit(&[0.0, 1.0, 0.0])));
            inner.upsert(Meta { status: Status::Resolved, ..meta(4) }, Some(&unit(&[0.0, 0.0, 1.0])));
        }
        let q = unit(&[1.0, 0.05, 0.0]);
        let top: Vec<i64> = index.nearest(&q, 2, |_| true).await.into_iter().map(|(n, _)| n).collect();
        assert_eq!(top, vec![1, 2]);
        let resolved = index.nearest(&q, 5, |m| m.status == Status::Resolved).await;
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].0, 4);
        {
            let mut inner = index.inner.write().unwrap();
            // Ticket 3 now reads like the query; ticket 1 lost its vector; the last slot moves into 1's.
            inner.upsert(meta(3), Some(&unit(&[1.0, 0.04, 0.0])));
            inner.upsert(meta(1), None);
        }
        let top: Vec<i64> = index.nearest(&q, 3, |_| true).await.into_iter().map(|(n, _)| n).collect();
        assert_eq!(top, vec![3, 2, 4]);
        assert_eq!(index.len(), 3);
    }
}
