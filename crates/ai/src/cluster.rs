//! Repeated problems among resolved tickets: the clusters a knowledge-base article is proposed for.
//!
//! Two tickets are alike when their problems *and* their resolutions agree: the similarity of a pair is a
//! weighted mean of the cosines of their problem vectors and of their resolution vectors (a ticket without a
//! resolution is compared by its problem alone). Clusters are average-linkage agglomerative clusters of that
//! similarity, cut where the best remaining merge falls below a threshold, computed with the nearest-neighbour
//! chain (O(n²) time and memory, exact for average linkage). No cluster count is needed: a team's history
//! decides how many problems repeat.

use crate::e5::E5;
use crate::embed::cosine;
use crate::retrieval::Centering;

/// One resolved ticket: unit-length vectors of its problem and, when it has one, its resolution (both
/// centred per language with the multilingual model, so translations meet).
#[derive(Debug, Clone)]
pub struct Item {
    pub problem: Vec<f32>,
    pub answer: Option<Vec<f32>>,
}

/// Where clusters are cut and how a pair's two cosines are weighed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Average similarity below which two clusters stay apart.
    pub threshold: f32,
    /// Weight of the resolutions' cosine (the problems' is `1 − answer_weight`).
    pub answer_weight: f32,
    /// How far below `threshold` a repeated problem that stands apart still holds together (0: off). Clusters
    /// the cut at `threshold − isolation` joins stay joined when that union's average similarity to every other
    /// cluster of the lower cut is below `threshold − 2·isolation`: a problem asked in five languages agrees
    /// less with itself than paraphrases in one do, but it is still far from everything else.
    pub isolation: f32,
}

impl Default for Params {
    /// Calibrated on helpdesk-tickets/dev.jsonl with `eval cluster --sweep` (docs/benchmarks.md).
    fn default() -> Self {
        Params { threshold: 0.6, answer_weight: 0.5, isolation: 0.1 }
    }
}

/// Tickets' problems and resolutions (an empty resolution: none) as items: multilingual-e5-small vectors, each
/// less its language's mean (fitted on these texts, from the model's own seed means), as the service's vector
/// index compares tickets.
pub fn embed_items(e5: &E5, problems: &[&str], answers: &[&str]) -> Vec<Item> {
    let answered: Vec<usize> =
        (0..problems.len()).filter(|&i| answers.get(i).is_some_and(|a| !a.trim().is_empty())).collect();
    let answer_texts: Vec<&str> = answered.iter().map(|&i| answers[i]).collect();
    let mut answer_vectors = vec![None; problems.len()];
    for (&i, v) in answered.iter().zip(centred(e5, &answer_texts)) {
        answer_vectors[i] = Some(v);
    }
    centred(e5, problems).into_iter().zip(answer_vectors).map(|(problem, answer)| Item { problem, answer }).collect()
}

/// Unit vectors of `texts`, each less its language's mean.
fn centred(e5: &E5, texts: &[&str]) -> Vec<Vec<f32>> {
    let vectors = e5.embed_batch(texts);
    let langs: Vec<Option<&'static str>> = texts.iter().map(|t| crate::lang::detect(t)).collect();
    let centering =
        Centering::fit_towards(Some(e5.seed_centering()), langs.iter().zip(&vectors).map(|(l, v)| (*l, v.as_slice())));
    langs.iter().zip(&vectors).map(|(l, v)| centering.apply(*l, v)).collect()
}

/// The most tickets clustered at once (the similarity matrix is n² floats: 6,000 tickets take 144 MB).
pub const MAX_ITEMS: usize = 6_000;

/// The similarity of two tickets under `p`.
pub fn similarity(a: &Item, b: &Item, p: &Params) -> f32 {
    let problem = cosine(&a.problem, &b.problem);
    match (&a.answer, &b.answer) {
        (Some(x), Some(y)) => (1.0 - p.answer_weight) * problem + p.answer_weight * cosine(x, y),
        _ => problem,
    }
}

/// Every ticket's cluster: groups of indexes into `items` (singletons included), largest first, ties by
/// first member. `items` beyond [`MAX_ITEMS`] are left out (the caller passes the most recent first).
pub fn clusters(items: &[Item], p: &Params) -> Vec<Vec<usize>> {
    let items = &items[..items.len().min(MAX_ITEMS)];
    let sim = similarities(items, p);
    let mut out = Linkage::new(sim.clone(), items.len()).run(p.threshold);
    if p.isolation > 0.0 {
        let coarse = Linkage::new(sim, items.len()).run(p.threshold - p.isolation);
        out = isolated_unions(items, p, out, coarse, p.threshold - 2.0 * p.isolation);
    }
    out.iter_mut().for_each(|c| c.sort_unstable());
    out.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    out
}

/// `members` (indexes into `items`) from the most typical to the least: by their average similarity to the
/// others, the first being the cluster's medoid.
pub fn typical_order(items: &[Item], members: &[usize], p: &Params) -> Vec<usize> {
    let mean = |i: usize| -> f32 {
        let others = members.iter().filter(|&&j| j != i);
        others.map(|&j| similarity(&items[i], &items[j], p)).sum::<f32>() / (members.len().max(2) - 1) as f32
    };
    let mut scored: Vec<(usize, f32)> = members.iter().map(|&i| (i, mean(i))).collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.into_iter().map(|(i, _)| i).collect()
}

/// The dense matrix of every pair's [`similarity`].
fn similarities(items: &[Item], p: &Params) -> Vec<f32> {
    let n = items.len();
    let mut sim = vec![0f32; n * n];
    for i in 0..n {
        for j in i + 1..n {
            let s = similarity(&items[i], &items[j], p);
            sim[i * n + j] = s;
            sim[j * n + i] = s;
        }
    }
    sim
}

/// `fine`'s clusters, joined where one cluster of `coarse` (a lower cut) holds them and that cluster stands
/// apart: the similarity of its mean vectors to every other coarse cluster's is below `apart`.
fn isolated_unions(
    items: &[Item],
    p: &Params,
    fine: Vec<Vec<usize>>,
    coarse: Vec<Vec<usize>>,
    apart: f32,
) -> Vec<Vec<usize>> {
    let dim = items.first().map_or(0, |i| i.problem.len());
    let means: Vec<(Vec<f32>, Vec<f32>)> = coarse
        .iter()
        .map(|c| {
            let (mut pm, mut am) = (vec![0f32; dim], vec![0f32; dim]);
            for &i in c {
                pm.iter_mut().zip(&items[i].problem).for_each(|(m, x)| *m += x / c.len() as f32);
                if let Some(a) = &items[i].answer {
                    am.iter_mut().zip(a).for_each(|(m, x)| *m += x / c.len() as f32);
                }
            }
            (pm, am)
        })
        .collect();
    let between = |a: usize, b: usize| {
        (1.0 - p.answer_weight) * cosine(&means[a].0, &means[b].0) + p.answer_weight * cosine(&means[a].1, &means[b].1)
    };
    let isolated: Vec<bool> = (0..coarse.len())
        .map(|a| coarse[a].len() < 2 || (0..coarse.len()).filter(|&b| b != a).all(|b| between(a, b) < apart))
        .collect();
    let mut owner = vec![0usize; items.len()];
    for (k, c) in coarse.iter().enumerate() {
        c.iter().for_each(|&i| owner[i] = k);
    }
    let mut joined: Vec<Vec<usize>> = vec![Vec::new(); coarse.len()];
    let mut out = Vec::new();
    for c in fine {
        let k = owner[c[0]];
        if isolated[k] { joined[k].extend(c) } else { out.push(c) }
    }
    out.extend(joined.into_iter().filter(|c| !c.is_empty()));
    out
}

/// Average-linkage clustering by the nearest-neighbour chain over a dense similarity matrix.
struct Linkage {
    sim: Vec<f32>,
    n: usize,
    members: Vec<Vec<usize>>,
    active: Vec<bool>,
}

impl Linkage {
    fn new(sim: Vec<f32>, n: usize) -> Self {
        Linkage { sim, n, members: (0..n).map(|i| vec![i]).collect(), active: vec![true; n] }
    }

    /// The most similar other active cluster to `i`, and the similarity.
    fn nearest(&self, i: usize) -> Option<(usize, f32)> {
        let row = &self.sim[i * self.n..(i + 1) * self.n];
        (0..self.n)
            .filter(|&j| j != i && self.active[j])
            .map(|j| (j, row[j]))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
    }

    /// Merges `j` into `i`, the new cluster's similarity to each other being the size-weighted mean of the two
    /// (Lance–Williams for average linkage).
    fn merge(&mut self, i: usize, j: usize) {
        let (a, b) = (self.members[i].len() as f32, self.members[j].len() as f32);
        for k in (0..self.n).filter(|&k| self.active[k] && k != i && k != j) {
            let s = (a * self.sim[i * self.n + k] + b * self.sim[j * self.n + k]) / (a + b);
            self.sim[i * self.n + k] = s;
            self.sim[k * self.n + i] = s;
        }
        let moved = std::mem::take(&mut self.members[j]);
        self.members[i].extend(moved);
        self.active[j] = false;
    }

    /// Merges until no two active clusters reach `threshold`. A cluster whose nearest neighbour is below it is
    /// final: average linkage never raises a similarity by merging (a merged cluster's similarity is a mean of
    /// its parts'), so nothing could join it later.
    fn run(mut self, threshold: f32) -> Vec<Vec<usize>> {
        let mut done: Vec<Vec<usize>> = Vec::new();
        let mut chain: Vec<usize> = Vec::new();
        loop {
            if chain.is_empty() {
                match (0..self.n).find(|&i| self.active[i]) {
                    Some(start) => chain.push(start),
                    None => break,
                }
            }
            let top = chain[chain.len() - 1];
            match self.nearest(top) {
                Some((next, s)) if s >= threshold => {
                    if chain.len() >= 2 && chain[chain.len() - 2] == next {
                        chain.truncate(chain.len() - 2);
                        self.merge(next.min(top), next.max(top));
                    } else {
                        chain.push(next);
                    }
                }
                _ => {
                    chain.clear();
                    self.active[top] = false;
                    done.push(std::mem::take(&mut self.members[top]));
                }
            }
        }
        done
    }
}

/// How well `predicted` clusters agree with `truth` labels (one per item): the adjusted Rand index (1 for the
/// same partition, about 0 for a random one) and purity (the share of items in their cluster's majority label).
pub fn agreement(predicted: &[Vec<usize>], truth: &[String]) -> (f64, f64) {
    use std::collections::HashMap;
    let n = truth.len() as f64;
    let pairs = |x: f64| x * (x - 1.0) / 2.0;
    let mut label_sizes: HashMap<&str, f64> = HashMap::new();
    truth.iter().for_each(|t| *label_sizes.entry(t.as_str()).or_default() += 1.0);
    let (mut index, mut majority, mut cluster_pairs) = (0.0, 0.0, 0.0);
    for c in predicted {
        let mut counts: HashMap<&str, f64> = HashMap::new();
        c.iter().for_each(|&i| *counts.entry(truth[i].as_str()).or_default() += 1.0);
        index += counts.values().map(|&x| pairs(x)).sum::<f64>();
        majority += counts.values().fold(0.0f64, |m, &x| m.max(x));
        cluster_pairs += pairs(c.len() as f64);
    }
    let label_pairs: f64 = label_sizes.values().map(|&x| pairs(x)).sum();
    let expected = cluster_pairs * label_pairs / pairs(n).max(1.0);
    let max = (cluster_pairs + label_pairs) / 2.0;
    let ari = if (max - expected).abs() < 1e-12 { 1.0 } else { (index - expected) / (max - expected) };
    (ari, majority / n.max(1.0))
}

/// Spherical k-means (k-means++ seeding from a fixed seed, at most `rounds` rounds) on unit vectors: the plain
/// baseline `eval cluster --kmeans` reports beside the linkage clustering. Returns the clusters, largest first.
pub fn kmeans(vectors: &[Vec<f32>], k: usize, rounds: usize) -> Vec<Vec<usize>> {
    let n = vectors.len();
    let k = k.clamp(1, n.max(1));
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut centres: Vec<Vec<f32>> = vec![vectors[0].clone()];
    let mut dist: Vec<f64> = vectors.iter().map(|v| f64::from(1.0 - cosine(v, &centres[0]))).collect();
    while centres.len() < k {
        let total: f64 = dist.iter().sum();
        let mut pick = next() * total;
        let i = dist.iter().position(|&d| {
            pick -= d;
            pick <= 0.0
        });
        let c = vectors[i.unwrap_or(n - 1)].clone();
        dist.iter_mut().zip(vectors).for_each(|(d, v)| *d = d.min(f64::from(1.0 - cosine(v, &c))));
        centres.push(c);
    }
    let mut assign = vec![usize::MAX; n];
    for _ in 0..rounds {
        let new: Vec<usize> = vectors
            .iter()
            .map(|v| (0..k).max_by(|&a, &b| cosine(v, &centres[a]).total_cmp(&cosine(v, &centres[b]))).unwrap_or(0))
            .collect();
        if new == assign {
            break;
        }
        assign = new;
        for (c, centre) in centres.iter_mut().enumerate() {
            let mut sum = vec![0f32; centre.len()];
            assign.iter().zip(vectors).filter(|(a, _)| **a == c).for_each(|(_, v)| {
                sum.iter_mut().zip(v).for_each(|(s, x)| *s += x);
            });
            let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 1e-6 {
                *centre = sum.into_iter().map(|x| x / norm).collect();
            }
        }
    }
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); k];
    assign.iter().enumerate().for_each(|(i, &c)| out[c.min(k - 1)].push(i));
    out.retain(|c| !c.is_empty());
    out.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    out
}

/// The vector k-means sees for a ticket: problem and resolution side by side, weighted as [`similarity`]
/// weighs them, so its cosine is the same similarity.
pub fn joint_vector(item: &Item, p: &Params) -> Vec<f32> {
    let w = p.answer_weight.clamp(0.0, 1.0);
    let answer = item.answer.clone().unwrap_or_else(|| item.problem.clone());
    let mut v: Vec<f32> = item.problem.iter().map(|x| x * (1.0 - w).sqrt()).collect();
    v.extend(answer.iter().map(|x| x * w.sqrt()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit vector near axis `axis` of `dims`, nudged by `noise` along axis `wobble`.
    fn near(dims: usize, axis: usize, wobble: usize, noise: f32) -> Vec<f32> {
        let mut v = vec![0f32; dims];
        v[axis] = 1.0;
        v[wobble] += noise;
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }

    /// 40 tickets: three repeated problems (9, 6 and 4 tickets whose problems and resolutions agree) among 21
    /// one-off tickets, and a pair whose problems agree but whose resolutions do not.
    fn planted() -> (Vec<Item>, Vec<String>) {
        let dims = 64;
        let mut items = Vec::new();
        let mut truth = Vec::new();
        for (problem, count) in [(0, 9), (1, 6), (2, 4)] {
            for t in 0..count {
                let wobble = 40 + t;
                items.push(Item {
                    problem: near(dims, problem, wobble, 0.3),
                    answer: Some(near(dims, 10 + problem, wobble + 10, 0.3)),
                });
                truth.push(format!("p{problem}"));
            }
        }
        for t in 0..19 {
            items.push(Item { problem: near(dims, 3 + t % 7, 20 + t, 1.0), answer: Some(near(dims, 20 + t, 3, 0.1)) });
            truth.push(format!("one-off {t}"));
        }
        for t in 0..2 {
            items.push(Item { problem: near(dims, 63, 60 + t, 0.1), answer: Some(near(dims, 52 + t, 3, 0.0)) });
            truth.push(format!("unlike answers {t}"));
        }
        (items, truth)
    }

    #[test]
    fn planted_repeats_come_out_largest_first_and_nothing_else_groups() {
        let (items, truth) = planted();
        assert_eq!(items.len(), 40);
        // Plain linkage: with isolation the pair whose problems agree and resolutions do not (0.495, just under
        // the cut) is joined too, nothing else being near it (a known cost of isolation; see docs/benchmarks.md).
        let found = clusters(&items, &Params { threshold: 0.5, answer_weight: 0.5, isolation: 0.0 });
        let repeated: Vec<&Vec<usize>> = found.iter().filter(|c| c.len() >= 2).collect();
        assert_eq!(repeated.len(), 3, "{found:?}");
        assert_eq!(*repeated[0], (0..9).collect::<Vec<_>>());
        assert_eq!(*repeated[1], (9..15).collect::<Vec<_>>());
        assert_eq!(*repeated[2], (15..19).collect::<Vec<_>>());
        let (ari, purity) = agreement(&found, &truth);
        assert!((ari - 1.0).abs() < 1e-9 && (purity - 1.0).abs() < 1e-9, "{ari} {purity}");
    }

    #[test]
    fn the_medoid_comes_first() {
        let (items, _) = planted();
        let p = Params::default();
        let order = typical_order(&items, &[0, 1, 2, 20], &p);
        assert_eq!(order.len(), 4);
        assert_eq!(order[3], 20, "the one-off ticket is the least typical: {order:?}");
    }

    #[test]
    fn agreement_scores_known_partitions() {
        let truth: Vec<String> = ["a", "a", "b", "b"].iter().map(|s| s.to_string()).collect();
        assert_eq!(agreement(&[vec![0, 1], vec![2, 3]], &truth), (1.0, 1.0));
        let (ari, purity) = agreement(&[vec![0, 2], vec![1, 3]], &truth);
        assert!(ari < 0.0 && (purity - 0.5).abs() < 1e-9, "{ari}");
        let (ari, purity) = agreement(&[vec![0, 1, 2, 3]], &truth);
        assert!(ari.abs() < 1e-9 && (purity - 0.5).abs() < 1e-9);
    }

    #[test]
    fn kmeans_recovers_separated_groups() {
        let (items, truth) = planted();
        let p = Params::default();
        let vectors: Vec<Vec<f32>> = items[..19].iter().map(|i| joint_vector(i, &p)).collect();
        let found = kmeans(&vectors, 3, 20);
        let (ari, _) = agreement(&found, &truth[..19]);
        assert!(ari > 0.99, "{found:?}");
    }
}
