//! Fine-tuning the sentence model's top layers on a team's labelled tickets, so that tickets with the same
//! label land closer together than a general-purpose model puts them.
//!
//! The procedure: run the frozen lower layers once over every ticket and keep their output; hold back a
//! slice (a tenth, spread over the labels); train the top `layers` layers with one classification head per
//! task (category, priority, skills…) on a normalised mean of the tokens, a minibatch at a time with AdamW;
//! after each pass score the held-back slice and keep the best pass, stopping when it no longer improves.
//! The caller decides whether the tuned layers serve (see [`TunedTop`] and the swap rule where it is used):
//! only when the classifiers trained on their vectors beat those on the frozen ones on the held-back slice.

use rayon::prelude::*;

use crate::encoder::{Encoder, Layer, spans};
use crate::eval::Example;
use crate::finetune::{Adam, Cache, params_mut, zeros_like};

/// One labelling to learn: `labels[i]` are example i's classes (`None`: unlabelled for this task), one per
/// example unless `multi`.
#[derive(Debug, Clone)]
pub struct Task {
    pub classes: usize,
    pub multi: bool,
    pub labels: Vec<Option<Vec<usize>>>,
}

/// Settings of a run; the defaults are what the product and `eval classify` use.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct TuneConfig {
    /// How many top layers are trained.
    pub layers: usize,
    pub max_epochs: usize,
    pub batch: usize,
    pub lr: f32,
    pub head_lr: f32,
    pub decay: f32,
    /// Logit scale on the normalised vector.
    pub scale: f32,
    /// Passes without improvement on the held-back slice before stopping.
    pub patience: usize,
    /// Threads the run may use (the pool it runs in is built with this many).
    pub threads: usize,
}

impl Default for TuneConfig {
    fn default() -> Self {
        Self {
            layers: 1,
            max_epochs: 6,
            batch: 32,
            lr: 1e-4,
            head_lr: 3e-3,
            decay: 0.01,
            scale: 20.0,
            patience: 1,
            threads: 2,
        }
    }
}

/// The tuned top layers: replace the encoder's layers from `from` on.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct TunedTop {
    pub from: usize,
    pub layers: Vec<Layer>,
    /// The held-back accuracy of the heads after each pass (for the report).
    pub history: Vec<f64>,
}

/// A linear head on the scaled, normalised mean of the tokens.
struct Head {
    w: Vec<f32>,
    b: Vec<f32>,
    classes: usize,
}

/// Frozen lower-layer output of each example: `[len, hidden]`.
pub struct Frozen {
    pub states: Vec<Vec<f32>>,
    pub from: usize,
}

/// Example indexes split into (train, held back): every tenth example of each task-0 label is held back.
pub fn hold_back(task: &Task) -> (Vec<usize>, Vec<usize>) {
    let mut seen = std::collections::HashMap::new();
    let (mut train, mut held) = (Vec::new(), Vec::new());
    for (i, l) in task.labels.iter().enumerate() {
        let key = l.as_ref().and_then(|l| l.first().copied());
        let n = seen.entry(key).or_insert(0usize);
        *n += 1;
        if *n % 10 == 5 { held.push(i) } else { train.push(i) }
    }
    (train, held)
}

/// Trains the top layers on `train` (indexes into `frozen`) for `tasks`, early-stopped on `held` by task 0's
/// accuracy; `tick(pass, passes)` after each pass. Returns the best pass's layers.
pub fn train(
    encoder: &Encoder,
    frozen: &Frozen,
    tasks: &[Task],
    train: &[usize],
    held: &[usize],
    cfg: &TuneConfig,
    tick: &mut dyn FnMut(usize, usize),
) -> TunedTop {
    let mut top: Vec<Layer> = encoder.layers[frozen.from..].to_vec();
    let mut heads: Vec<Head> = tasks.iter().map(|t| head(encoder.hidden, t.classes)).collect();
    let (mut opt, mut head_opt) = (Adam::new(cfg.lr, cfg.decay), Adam::new(cfg.head_lr, 0.0));
    let mut best = (f64::NEG_INFINITY, top.clone());
    let mut history = Vec::new();
    let mut order = train.to_vec();
    let mut seed = 0x5eed_u64;
    let mut stale = 0;
    for epoch in 0..cfg.max_epochs {
        shuffle(&mut order, &mut seed);
        for chunk in order.chunks(cfg.batch.max(1)) {
            step(encoder, frozen, &mut top, &mut heads, tasks, chunk, cfg, &mut opt, &mut head_opt);
        }
        let score = accuracy(encoder, frozen, &top, &heads, &tasks[0], held, cfg.scale);
        tracing::info!(pass = epoch + 1, held_back_accuracy = score, "fine-tuning: pass done");
        history.push(score);
        tick(epoch + 1, cfg.max_epochs);
        if score > best.0 {
            best = (score, top.clone());
            stale = 0;
        } else {
            stale += 1;
            if stale > cfg.patience {
                break;
            }
        }
    }
    TunedTop { from: frozen.from, layers: best.1, history }
}

fn head(hidden: usize, classes: usize) -> Head {
    Head { w: vec![0f32; classes * hidden], b: vec![0f32; classes], classes }
}

/// A deterministic Fisher–Yates shuffle.
fn shuffle(order: &mut [usize], seed: &mut u64) {
    for i in (1..order.len()).rev() {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        order.swap(i, (*seed >> 33) as usize % (i + 1));
    }
}

/// The packed top-layer input of some examples, and their lengths.
fn pack(frozen: &Frozen, ids: &[usize], hidden: usize) -> (Vec<f32>, Vec<usize>) {
    let x: Vec<f32> = ids.iter().flat_map(|&i| frozen.states[i].iter().copied()).collect();
    (x, ids.iter().map(|&i| frozen.states[i].len() / hidden).collect())
}

/// Each text's normalised mean vector of the rows of `y`, with the norm of its mean.
fn pooled(y: &[f32], lens: &[usize], h: usize) -> Vec<(Vec<f32>, f32)> {
    spans(lens)
        .into_iter()
        .map(|(s, e)| {
            let mut m = vec![0f32; h];
            for row in y[s * h..e * h].chunks_exact(h) {
                m.iter_mut().zip(row).for_each(|(a, b)| *a += b);
            }
            m.iter_mut().for_each(|v| *v /= (e - s) as f32);
            let norm = m.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            m.iter_mut().for_each(|v| *v /= norm);
            (m, norm)
        })
        .collect()
}

fn logits(head: &Head, v: &[f32], scale: f32) -> Vec<f32> {
    let h = v.len();
    (0..head.classes)
        .map(|c| scale * head.w[c * h..(c + 1) * h].iter().zip(v).map(|(a, b)| a * b).sum::<f32>() + head.b[c])
        .collect()
}

/// The loss's gradient by the logits for one example and task (softmax cross-entropy, or a sigmoid per class
/// for multi-label), averaged over the batch of `n`.
fn logit_grad(z: &[f32], labels: &[usize], multi: bool, n: f32) -> Vec<f32> {
    if multi {
        return z
            .iter()
            .enumerate()
            .map(|(c, &x)| (1.0 / (1.0 + (-x).exp()) - f32::from(labels.contains(&c))) / n)
            .collect();
    }
    let p = crate::linear::softmax(z);
    p.iter().enumerate().map(|(c, &x)| (x - f32::from(labels.first() == Some(&c))) / n).collect()
}

/// One minibatch: forward through the top layers and the heads, backward, and an optimiser step.
#[allow(clippy::too_many_arguments)]
fn step(
    encoder: &Encoder,
    frozen: &Frozen,
    top: &mut [Layer],
    heads: &mut [Head],
    tasks: &[Task],
    ids: &[usize],
    cfg: &TuneConfig,
    opt: &mut Adam,
    head_opt: &mut Adam,
) {
    let h = encoder.hidden;
    let (mut x, lens) = pack(frozen, ids, h);
    let mut caches: Vec<Cache> = Vec::new();
    for l in top.iter() {
        let (y, c) = encoder.forward_keep(l, x, &lens);
        caches.push(c);
        x = y;
    }
    let pools = pooled(&x, &lens, h);
    let mut d_pool = vec![vec![0f32; h]; ids.len()];
    let mut head_grads: Vec<(Vec<f32>, Vec<f32>)> =
        heads.iter().map(|hd| (vec![0f32; hd.w.len()], vec![0f32; hd.classes])).collect();
    for (t, task) in tasks.iter().enumerate() {
        let n = ids.iter().filter(|&&i| task.labels[i].is_some()).count().max(1) as f32;
        for (j, &i) in ids.iter().enumerate() {
            let Some(labels) = &task.labels[i] else { continue };
            let v = &pools[j].0;
            let dz = logit_grad(&logits(&heads[t], v, cfg.scale), labels, task.multi, n);
            let (gw, gb) = &mut head_grads[t];
            for (c, &d) in dz.iter().enumerate() {
                gb[c] += d;
                let w = &heads[t].w[c * h..(c + 1) * h];
                for k in 0..h {
                    gw[c * h + k] += d * cfg.scale * v[k];
                    d_pool[j][k] += d * cfg.scale * w[k];
                }
            }
        }
    }
    let dy = unpool(&pools, &d_pool, &lens, h);
    let mut grads: Vec<Layer> = top.iter().map(zeros_like).collect();
    let mut d = dy;
    for k in (0..top.len()).rev() {
        d = encoder.backward(&top[k], &caches[k], &d, &lens, &mut grads[k]);
    }
    let params: Vec<&mut Vec<f32>> = top.iter_mut().flat_map(|l| params_mut(l)).collect();
    let g: Vec<Vec<f32>> =
        grads.iter_mut().flat_map(|l| params_mut(l).into_iter().map(|p| std::mem::take(p))).collect();
    opt.step(params, g.iter().collect());
    let hp: Vec<&mut Vec<f32>> = heads.iter_mut().flat_map(|hd| [&mut hd.w, &mut hd.b]).collect();
    let hg: Vec<&Vec<f32>> = head_grads.iter().flat_map(|(w, b)| [w, b]).collect();
    head_opt.step(hp, hg);
}

/// The gradient of every token's output from the gradient of its text's normalised mean.
fn unpool(pools: &[(Vec<f32>, f32)], d_pool: &[Vec<f32>], lens: &[usize], h: usize) -> Vec<f32> {
    let mut dy = vec![0f32; lens.iter().sum::<usize>() * h];
    for (((v, norm), dv), (s, e)) in pools.iter().zip(d_pool).zip(spans(lens)) {
        // v = m / |m|: dm = (dv − v (v · dv)) / |m|; m is the mean of the rows.
        let dot: f32 = v.iter().zip(dv).map(|(a, b)| a * b).sum();
        let dm: Vec<f32> = v.iter().zip(dv).map(|(a, b)| (b - a * dot) / norm / (e - s) as f32).collect();
        for row in dy[s * h..e * h].chunks_exact_mut(h) {
            row.copy_from_slice(&dm);
        }
    }
    dy
}

/// Task `task`'s accuracy on `ids` (a multi-label example counts when its set is predicted exactly).
fn accuracy(
    encoder: &Encoder,
    frozen: &Frozen,
    top: &[Layer],
    heads: &[Head],
    task: &Task,
    ids: &[usize],
    scale: f32,
) -> f64 {
    let vectors = top_vectors(encoder, frozen, top, ids);
    let head = &heads[0];
    let right = ids
        .par_iter()
        .zip(vectors.par_iter())
        .filter(|(i, v)| {
            let Some(labels) = &task.labels[**i] else { return false };
            let z = logits(head, v, scale);
            if task.multi {
                let set: Vec<usize> = (0..z.len()).filter(|&c| z[c] > 0.0).collect();
                set == *labels
            } else {
                let best = (0..z.len()).max_by(|&a, &b| z[a].total_cmp(&z[b]));
                best == labels.first().copied()
            }
        })
        .count();
    right as f64 / ids.iter().filter(|&&i| task.labels[i].is_some()).count().max(1) as f64
}

/// The unit-length sentence vectors of `ids` through the given top layers.
pub fn top_vectors(encoder: &Encoder, frozen: &Frozen, top: &[Layer], ids: &[usize]) -> Vec<Vec<f32>> {
    let h = encoder.hidden;
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(crate::embed::BATCH_TEXTS) {
        let (mut x, lens) = pack(frozen, chunk, h);
        top.iter().for_each(|l| encoder.layer(l, &mut x, &lens));
        out.extend(encoder.pool(&x, &lens));
    }
    out
}

/// What fine-tuning did in an evaluation: whether the tuned vectors were used, and the held-back scores
/// that decided it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Outcome {
    pub used: bool,
    pub held_back: usize,
    /// The triage classifier's macro-F1 on the held-back slice with the frozen and the tuned vectors.
    pub frozen_accuracy: f64,
    pub tuned_accuracy: f64,
    /// The heads' held-back accuracy after each pass.
    pub passes: Vec<f64>,
    pub seconds: f64,
}

/// Fewer labelled examples than this and fine-tuning is not tried (the held-back slice would be too small
/// to tell a better model from luck).
pub const MIN_EXAMPLES: usize = 200;

/// The task of a labelled set (labels by name, in sorted order of names).
pub fn task_of(examples: &[crate::eval::Example], multi: bool) -> Task {
    let mut names: Vec<&String> = examples.iter().flat_map(|e| &e.labels).collect();
    names.sort();
    names.dedup();
    let index: std::collections::HashMap<&String, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let labels = examples.iter().map(|e| Some(e.labels.iter().map(|l| index[l]).collect())).collect();
    Task { classes: names.len(), multi, labels }
}

/// Fine-tunes `model`'s top layers on `train`'s labels and, when the triage classifier on the tuned vectors
/// beats the one on the frozen vectors on the held-back slice (by macro-F1), replaces every example's vector
/// (`train`'s in batches, `test`'s one at a time and timed, as triage embeds them) with the tuned one.
/// `train`'s vectors must be the frozen model's on entry.
pub fn tune_examples(
    model: &crate::MiniLm,
    train: &mut [Example],
    test: &mut [Example],
    multi: bool,
    engine: &str,
    cfg: &TuneConfig,
    tick: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<(Outcome, Option<TunedTop>)> {
    let started = std::time::Instant::now();
    let texts: Vec<&str> = train.iter().map(|e| e.text.as_str()).collect();
    let ids = model.token_ids(&texts)?;
    let encoder = model.encoder();
    let from = encoder.layers.len().saturating_sub(cfg.layers.max(1));
    let frozen = Frozen { states: model.lower_states(&ids, from), from };
    tracing::info!(examples = ids.len(), seconds = started.elapsed().as_secs_f64(), "fine-tuning: lower layers run");
    let task = task_of(train, multi);
    let (tr, held) = hold_back(&task);
    let top = self::train(encoder, &frozen, std::slice::from_ref(&task), &tr, &held, cfg, tick);
    let all: Vec<usize> = (0..train.len()).collect();
    let tuned = top_vectors(encoder, &frozen, &top.layers, &all);
    tracing::info!(passes = ?top.history, seconds = started.elapsed().as_secs_f64(), "fine-tuning: trained");
    let score = |vectors: &dyn Fn(usize) -> Option<Vec<f32>>| -> anyhow::Result<f64> {
        let pick = |ids: &[usize]| -> Vec<Example> {
            ids.iter().map(|&i| Example { vector: vectors(i), ..train[i].clone() }).collect()
        };
        let run = crate::eval::train_and_predict(&pick(&tr), &pick(&held), multi, engine, &mut || {})?;
        Ok(crate::eval::report("", &[run], None, engine).macro_f1)
    };
    let frozen_accuracy = score(&|i| train[i].vector.clone())?;
    let tuned_accuracy = score(&|i| Some(tuned[i].clone()))?;
    tracing::info!(frozen_accuracy, tuned_accuracy, seconds = started.elapsed().as_secs_f64(), "fine-tuning: compared");
    let used = tuned_accuracy > frozen_accuracy;
    if used {
        train.iter_mut().zip(tuned).for_each(|(e, v)| e.vector = Some(v));
        for e in test.iter_mut() {
            let t = std::time::Instant::now();
            let ids = model.token_ids(&[e.text.as_str()])?;
            e.vector = model.embed_ids_with(&ids, Some(&top)).pop();
            e.embed_ms = t.elapsed().as_secs_f64() * 1e3;
        }
    }
    let outcome = Outcome {
        used,
        held_back: held.len(),
        frozen_accuracy,
        tuned_accuracy,
        passes: top.history.clone(),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((outcome, used.then_some(top)))
}
