//! The in-memory vector index: every ticket's stored embedding, quantised to one byte per dimension, with what
//! visibility and filters need (requester, assignee, status, priority), scanned exactly, on every core, with
//! AVX2 where the processor has it (chosen at run time).
//!
//! Each process keeps its own: built from the database on start, then brought up to date before each query by
//! reading the tickets whose `updated_at` moved (indexed), so several processes sharing one PostgreSQL database
//! each see the others' changes. One million tickets take 384 MB of codes plus ~75 bytes of metadata each.
//!
//! With the multilingual model (see [`Space`]) the index holds multilingual vectors and compares them with
//! each language's mean taken out ([`smart_ticket_ai::retrieval::Centering`], so a German ticket meets its
//! Spanish twin rather than every other German ticket). The means are kept from the codes themselves and
//! refreshed as the index grows; the scan stays one byte-code dot product per ticket: for a query `u` (its
//! own language's mean already out), `(u·d − u·μ_lang(d)) / |d − μ_lang(d)|`, the second term one number per
//! language and the norm one number per ticket.

use smart_ticket_domain::{Priority, Status, access};
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
    /// [`access::may_see`], as for a stored ticket.
    pub fn visible_to(&self, user: &User) -> bool {
        access::may_see(user.viewer(), self.created_by, self.assigned_to)
    }
}

/// Which vectors the index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Space {
    /// The English model's `embedding` of each ticket, compared as they are.
    #[default]
    English,
    /// The multilingual model's `search_vector`, centred per language.
    Multilingual,
}

impl Space {
    /// Below this cosine a ticket is no semantic match for a search: the nearest tickets to any text exist,
    /// relevant or not. The multilingual model's centred cosines run much lower than the English model's: a short
    /// query and a ticket that means the same score about 0.1 to 0.5 there, unrelated tickets mostly below zero.
    pub fn search_min_cosine(self) -> f32 {
        match self {
            Space::English => 0.35,
            Space::Multilingual => 0.08,
        }
    }

    /// Below this cosine a resolved ticket is almost never the same problem, so suggestions never offer it
    /// (calibrated per model: [`smart_ticket_ai::retrieval::FLOOR_E5`], [`smart_ticket_ai::retrieval::FLOOR_MINILM`]).
    pub fn suggest_min_cosine(self) -> f32 {
        match self {
            Space::English => smart_ticket_ai::retrieval::FLOOR_MINILM,
            Space::Multilingual => smart_ticket_ai::retrieval::FLOOR_E5,
        }
    }
}

/// A ticket whose language is unknown (or not one of [`LANGUAGES`]): it loses the mean of all tickets.
const NO_LANGUAGE: u8 = LANGUAGES.len() as u8;
use smart_ticket_ai::lang::LANGUAGES;
use smart_ticket_ai::retrieval::Centering;

fn language_code(lang: Option<&str>) -> u8 {
    lang.and_then(|l| LANGUAGES.iter().position(|c| *c == l)).map_or(NO_LANGUAGE, |i| i as u8)
}

/// A centring's means as the scan reads them: per language of [`LANGUAGES`], then [`NO_LANGUAGE`] (all).
fn layout(c: &Centering) -> Vec<Vec<f32>> {
    LANGUAGES
        .iter()
        .map(|l| Some(*l))
        .chain([None])
        .map(|l| c.mean(l).map(<[f32]>::to_vec).unwrap_or_default())
        .collect()
}

/// Below this many tickets the language means are refreshed after every catch-up that changed something;
/// above, once a fiftieth of the index changed.
const REFRESH_ALWAYS_BELOW: usize = 20_000;

#[derive(Default)]
struct Inner {
    dim: usize,
    /// Per ticket: its language (index into [`LANGUAGES`], or [`NO_LANGUAGE`]).
    langs: Vec<u8>,
    /// Per ticket: 1 / |vector − its language's mean| (1 without centring).
    inv_norms: Vec<f32>,
    /// Per language, then for all tickets ([`NO_LANGUAGE`]): the mean taken out (empty until refreshed;
    /// never in the English space).
    means: Vec<Vec<f32>>,
    /// Where the means are shrunk towards (the model's own means over neutral texts), if anywhere.
    prior: Option<Centering>,
    /// The means as a centring (what articles are compared in), and how many times they were refreshed.
    centering: Option<(u64, Arc<Centering>)>,
    /// Tickets upserted or removed since the means were last refreshed.
    changed: usize,
    meta: Vec<Meta>,
    /// `dim` signed bytes per ticket: the unit vector times 127 / its largest component.
    codes: Vec<i8>,
    /// Per ticket: multiply a code dot product by this (and the query's) to get the cosine back.
    scales: Vec<f32>,
    slot: HashMap<i64, usize>,
    synced: Option<Ts>,
}

impl Inner {
    fn upsert(&mut self, meta: Meta, vector: Option<&[f32]>, lang: u8) {
        let Some(v) = vector.filter(|v| self.dim == 0 || v.len() == self.dim) else {
            self.remove(meta.number);
            return;
        };
        if self.dim == 0 {
            self.dim = v.len();
        }
        let (code, scale) = quantise(v);
        let inv_norm = self.inv_norm(v, lang);
        self.changed += 1;
        match self.slot.get(&meta.number) {
            Some(&i) => {
                self.meta[i] = meta;
                self.codes[i * self.dim..(i + 1) * self.dim].copy_from_slice(&code);
                self.scales[i] = scale;
                self.langs[i] = lang;
                self.inv_norms[i] = inv_norm;
            }
            None => {
                self.slot.insert(meta.number, self.meta.len());
                self.meta.push(meta);
                self.codes.extend_from_slice(&code);
                self.scales.push(scale);
                self.langs.push(lang);
                self.inv_norms.push(inv_norm);
            }
        }
    }

    /// The mean taken out of vectors in language `lang`, if any.
    fn mean(&self, lang: u8) -> Option<&[f32]> {
        self.means.get(usize::from(lang)).map(Vec::as_slice).filter(|m| m.len() == self.dim)
    }

    fn inv_norm(&self, v: &[f32], lang: u8) -> f32 {
        let Some(mean) = self.mean(lang) else { return 1.0 };
        let n = v.iter().zip(mean).map(|(x, m)| (x - m) * (x - m)).sum::<f32>().sqrt();
        if n > 1e-6 { 1.0 / n } else { 1.0 }
    }

    /// Recomputes each language's mean from the codes (shrunk towards zero as
    /// [`smart_ticket_ai::retrieval::Centering`] does), then every ticket's norm.
    fn refresh_means(&mut self) {
        let dim = self.dim;
        let all = usize::from(NO_LANGUAGE);
        let mut sums = vec![vec![0f64; dim]; all + 1];
        let mut counts = vec![0usize; all + 1];
        for ((code, scale), &lang) in self.codes.chunks_exact(dim).zip(&self.scales).zip(&self.langs) {
            for l in [usize::from(lang), all].into_iter().take(if usize::from(lang) == all { 1 } else { 2 }) {
                counts[l] += 1;
                for (s, c) in sums[l].iter_mut().zip(code) {
                    *s += f64::from(*c) * f64::from(*scale);
                }
            }
        }
        let seen = (0..all).filter(|&l| counts[l] > 0).map(|l| (LANGUAGES[l], sums[l].clone(), counts[l])).collect();
        let centring = Centering::from_sums(self.prior.as_ref(), seen, sums[all].clone(), counts[all]);
        self.means = layout(&centring);
        let generation = self.centering.as_ref().map_or(0, |(g, _)| g + 1);
        self.centering = Some((generation, Arc::new(centring)));
        let mut v = vec![0f32; dim];
        for i in 0..self.meta.len() {
            let scale = self.scales[i];
            for (x, c) in v.iter_mut().zip(&self.codes[i * dim..(i + 1) * dim]) {
                *x = f32::from(*c) * scale;
            }
            self.inv_norms[i] = self.inv_norm(&v, self.langs[i]);
        }
        self.changed = 0;
    }

    /// Moves the last entry into the removed one's slot.
    fn remove(&mut self, number: i64) {
        let Some(i) = self.slot.remove(&number) else { return };
        let last = self.meta.len() - 1;
        self.changed += 1;
        if i != last {
            self.meta.swap(i, last);
            self.scales.swap(i, last);
            self.langs.swap(i, last);
            self.inv_norms.swap(i, last);
            let (head, tail) = self.codes.split_at_mut(last * self.dim);
            head[i * self.dim..(i + 1) * self.dim].copy_from_slice(&tail[..self.dim]);
            self.slot.insert(self.meta[i].number, i);
        }
        self.meta.pop();
        self.scales.pop();
        self.langs.pop();
        self.inv_norms.pop();
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

#[inline(always)]
fn dot(a: &[i8], b: &[i8]) -> i32 {
    // Widened to i32 lane by lane: vectorised (vpmaddwd) where compiled for AVX2, as the scan is; the baseline
    // x86-64 build has no instruction that suits it and runs it several times slower.
    a.iter().zip(b).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum()
}

/// Below this many tickets one thread scans; above, every core takes a share.
const PARALLEL_FROM: usize = 50_000;

#[derive(Default)]
pub struct VectorIndex {
    space: Space,
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
    /// An index of `space`; in the multilingual one, `prior` gives each language's starting mean (see
    /// [`smart_ticket_ai::e5::E5::seed_centering`]).
    pub fn new(space: Space, prior: Option<&smart_ticket_ai::retrieval::Centering>) -> Self {
        let index = Self { space, ..Self::default() };
        if let (Space::Multilingual, Some(prior)) = (space, prior) {
            let mut inner = index.inner.write().unwrap_or_else(|p| p.into_inner());
            inner.means = layout(prior);
            inner.dim = inner.means.iter().map(Vec::len).max().unwrap_or(0);
            inner.prior = Some(prior.clone());
            inner.centering = Some((0, Arc::new(prior.clone())));
        }
        index
    }

    /// The language means taken out of the team's tickets (the model's own until tickets refine them), and
    /// their generation (a new one after each refresh); `None` outside the multilingual space.
    pub fn centering(&self) -> Option<(u64, Arc<Centering>)> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).centering.clone()
    }

    pub fn space(&self) -> Space {
        self.space
    }

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
            let space = self.space;
            let decoded: Vec<(Meta, Option<Vec<f32>>, u8)> = rows
                .iter()
                .map(|r| match space {
                    Space::English => {
                        (Meta::of(r), r.embedding.as_deref().and_then(crate::db::vector_from_bytes), NO_LANGUAGE)
                    }
                    Space::Multilingual => (
                        Meta::of(r),
                        r.search_vector.as_deref().and_then(crate::db::vector_from_bytes),
                        language_code(r.language.as_deref()),
                    ),
                })
                .collect();
            {
                // A std lock, held for no await.
                let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
                for (meta, v, lang) in &decoded {
                    inner.upsert(*meta, v.as_deref(), *lang);
                }
                inner.synced = inner.synced.max(last.map(|l| l.0));
            }
            if !full {
                break;
            }
            since = last;
        }
        if self.space == Space::Multilingual {
            let inner = self.inner.clone();
            // Off the async runtime: a refresh of a large index reads every code.
            tokio::task::spawn_blocking(move || {
                let mut inner = inner.write().unwrap_or_else(|p| p.into_inner());
                let n = inner.meta.len();
                if inner.changed > 0 && (n < REFRESH_ALWAYS_BELOW || inner.changed * 50 >= n) {
                    inner.refresh_means();
                }
            })
            .await
            .unwrap_or_else(|e| tracing::error!(error = %e, "refreshing the vector index's language means failed"));
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

    /// The `k` tickets most like `query` (a unit vector, in language `lang` when known) among those `keep`
    /// accepts: (number, cosine), best first. An exact scan of the one-byte codes, off the async runtime, on
    /// every core for a large index.
    pub async fn nearest(
        &self,
        query: &[f32],
        lang: Option<&str>,
        k: usize,
        keep: impl Fn(&Meta) -> bool + Send + Sync + 'static,
    ) -> Vec<(i64, f32)> {
        let inner = self.inner.clone();
        let query = query.to_vec();
        let lang = language_code(lang);
        tokio::task::spawn_blocking(move || {
            let inner = inner.read().unwrap_or_else(|p| p.into_inner());
            nearest_in(&inner, &query, lang, k, &keep)
        })
        .await
        .unwrap_or_else(|e| {
            // A scan cannot fail short of a bug: answer without semantic matches, but say so.
            tracing::error!(error = %e, "the vector index scan failed");
            Vec::new()
        })
    }
}

fn nearest_in(
    inner: &Inner,
    query: &[f32],
    lang: u8,
    k: usize,
    keep: &(dyn Fn(&Meta) -> bool + Sync),
) -> Vec<(i64, f32)> {
    if inner.dim != query.len() || k == 0 || inner.meta.is_empty() {
        return Vec::new();
    }
    // The query less its language's mean; per language, what that mean contributes to a dot product.
    let u: Vec<f32> = match inner.mean(lang) {
        Some(mean) => query.iter().zip(mean).map(|(x, m)| x - m).collect(),
        None => query.to_vec(),
    };
    let u_norm = u.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    let mut offsets = [0f32; LANGUAGES.len() + 1];
    for (l, offset) in offsets.iter_mut().enumerate() {
        if let Some(mean) = inner.mean(l as u8) {
            *offset = u.iter().zip(mean).map(|(x, m)| x * m).sum();
        }
    }
    let (q, q_scale) = quantise(&u);
    let q_scale = q_scale / u_norm;
    let offsets = offsets.map(|o| o / u_norm);
    let n = inner.meta.len();
    let threads =
        if n < PARALLEL_FROM { 1 } else { std::thread::available_parallelism().map_or(1, |t| t.get()).min(8) };
    let share = n.div_ceil(threads);
    // Each share runs with the widest vector instructions this processor has (AVX2 where present: about four
    // times the byte dot products per cycle of the baseline x86-64 build), chosen at run time.
    let scan = |from: usize| {
        let to = (from + share).min(n);
        pulp::Arch::new().dispatch(ScanPart { inner, q: &q, q_scale, offsets: &offsets, k, keep, range: from..to })
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

/// One thread's share of a scan: the `k` best of tickets `range` that `keep` accepts.
struct ScanPart<'a> {
    inner: &'a Inner,
    q: &'a [i8],
    q_scale: f32,
    offsets: &'a [f32],
    k: usize,
    keep: &'a (dyn Fn(&Meta) -> bool + Sync),
    range: std::ops::Range<usize>,
}

impl pulp::WithSimd for ScanPart<'_> {
    /// A heap's contents.
    type Output = Vec<Reverse<(Score, i64)>>;

    /// Always inlined: compiled once per instruction set [`pulp::Arch::dispatch`] chooses from (a closure
    /// would be compiled once, for the baseline, and merely called).
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> Self::Output {
        let Self { inner, q, q_scale, offsets, k, keep, range } = self;
        let dim = inner.dim;
        let mut best: BinaryHeap<Reverse<(Score, i64)>> = BinaryHeap::with_capacity(k + 1);
        let metas = &inner.meta[range.clone()];
        let codes = &inner.codes[range.start * dim..range.end * dim];
        let scales = &inner.scales[range.clone()];
        let langs = &inner.langs[range.clone()];
        let inv_norms = &inner.inv_norms[range];
        for (j, meta) in metas.iter().enumerate() {
            if !keep(meta) {
                continue;
            }
            let code = &codes[j * dim..(j + 1) * dim];
            let raw = dot(q, code) as f32 * scales[j] * q_scale;
            let s = (raw - offsets[usize::from(langs[j])]) * inv_norms[j];
            if best.len() < k {
                best.push(Reverse((Score(s), meta.number)));
            } else if best.peek().is_some_and(|w| s > w.0.0.0) {
                best.pop();
                best.push(Reverse((Score(s), meta.number)));
            }
        }
        best.into_vec()
    }
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

impl Meta {
    /// What the index keeps of a stored row.
    fn of(row: &IndexRow) -> Meta {
        Meta {
            number: row.number,
            created_by: row.created_by,
            assigned_to: row.assigned_to,
            status: row.status.parse().unwrap_or(Status::Open),
            priority: row.priority.parse().unwrap_or(Priority::Medium),
            merged: row.merged_into.is_some(),
            has_resolution: row.has_resolution,
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
            inner.upsert(meta(1), Some(&unit(&[1.0, 0.0, 0.0])), NO_LANGUAGE);
            inner.upsert(meta(2), Some(&unit(&[0.9, 0.1, 0.0])), NO_LANGUAGE);
            inner.upsert(meta(3), Some(&unit(&[0.0, 1.0, 0.0])), NO_LANGUAGE);
            inner.upsert(Meta { status: Status::Resolved, ..meta(4) }, Some(&unit(&[0.0, 0.0, 1.0])), NO_LANGUAGE);
        }
        let q = unit(&[1.0, 0.05, 0.0]);
        let top: Vec<i64> = index.nearest(&q, None, 2, |_| true).await.into_iter().map(|(n, _)| n).collect();
        assert_eq!(top, vec![1, 2]);
        let resolved = index.nearest(&q, None, 5, |m| m.status == Status::Resolved).await;
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].0, 4);
        {
            let mut inner = index.inner.write().unwrap();
            // Ticket 3 now reads like the query; ticket 1 lost its vector; the last slot moves into 1's.
            inner.upsert(meta(3), Some(&unit(&[1.0, 0.04, 0.0])), NO_LANGUAGE);
            inner.upsert(meta(1), None, NO_LANGUAGE);
        }
        let top: Vec<i64> = index.nearest(&q, None, 3, |_| true).await.into_iter().map(|(n, _)| n).collect();
        assert_eq!(top, vec![3, 2, 4]);
        assert_eq!(index.len(), 3);
    }

    #[tokio::test]
    async fn the_multilingual_space_compares_vectors_less_their_languages_mean() {
        // Each "language" shares a large direction (axis 0, opposite signs); topics lie on axes 1 and 2.
        let (de_printer, de_billing) = (unit(&[0.9, 0.3, 0.0]), unit(&[0.9, 0.0, 0.3]));
        let en_printer = unit(&[-0.9, 0.3, 0.0]);
        let index = VectorIndex::new(Space::Multilingual, None);
        {
            let mut inner = index.inner.write().unwrap();
            let (de, en) = (language_code(Some("de")), language_code(Some("en")));
            for i in 0..200 {
                let (v, lang) = match i % 4 {
                    0 => (&de_printer, de),
                    1 => (&de_billing, de),
                    2 => (&en_printer, en),
                    _ => (&unit(&[-0.9, 0.0, 0.3]), en),
                };
                inner.upsert(meta(i), Some(v), lang);
            }
            // Before the means are known, the German tickets are each other's nearest.
            assert_eq!(nearest_in(&inner, &de_printer, de, 1, &|m| m.number % 4 != 0)[0].0 % 4, 1);
            inner.refresh_means();
            let top = nearest_in(&inner, &de_printer, de, 1, &|m| m.number % 4 != 0);
            assert_eq!(top[0].0 % 4, 2, "the English printer ticket, not the German billing one: {top:?}");
            assert!(top[0].1 > 0.7, "{top:?}");
        }
        // The English space has no means: cosines as they are, whatever the language.
        let english = VectorIndex::new(Space::English, None);
        english.inner.write().unwrap().upsert(meta(1), Some(&de_printer), NO_LANGUAGE);
        let s = english.nearest(&de_printer, Some("de"), 1, |_| true).await;
        assert!((s[0].1 - 1.0).abs() < 0.01, "{s:?}");
    }
}
