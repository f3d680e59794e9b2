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
use crate::triage::{Past, Repr, Trained};

/// One labelling to learn: `labels[i]` are example i's classes (`None`: unlabelled for this task), one per
/// example unless `multi`.
#[derive(Debug, Clone)]
pub struct Task {
    pub classes: usize,
    pub multi: bool,
    pub labels: Vec<Option<Vec<usize>>>,
}

/// Settings of a run; the defaults are what the product and `eval classify` use.
#[derive(Debug, Clone, Copy)]
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
}

impl Default for TuneConfig {
    fn default() -> Self {
        Self { layers: 1, max_epochs: 6, batch: 32, lr: 1e-4, head_lr: 3e-3, decay: 0.01, scale: 20.0, patience: 1 }
    }
}

/// The tuned top layers: replace the encoder's layers from `from` on.
#[derive(Clone)]
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
    let pools = crate::encoder::pool_with_norms(&x, &lens, h);
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
    let params: Vec<&mut Vec<f32>> = top.iter_mut().flat_map(params_mut).collect();
    let g: Vec<Vec<f32>> = grads.iter_mut().flat_map(|l| params_mut(l).into_iter().map(std::mem::take)).collect();
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
    /// The supervised models' mean accuracy over their fields on the held-back slice, trained on the rest
    /// with the frozen and with the tuned vectors.
    pub frozen_accuracy: f64,
    pub tuned_accuracy: f64,
    /// The heads' held-back accuracy after each pass.
    pub passes: Vec<f64>,
    pub seconds: f64,
}

/// Fewer labelled examples than this and fine-tuning is not tried (the held-back slice would be too small
/// to tell a better model from luck).
pub const MIN_EXAMPLES: usize = 200;

/// A proven fine-tune: the tuned top layers and every past ticket's vector through them, in order.
pub struct Proven {
    pub top: TunedTop,
    pub vectors: Vec<Vec<f32>>,
}

/// The tasks the labels of `past` allow, in the order category, priority, skills (each with two classes and
/// [`crate::triage::MIN_LABELS`] labelled tickets at least).
fn tasks_of(past: &[Past]) -> Vec<Task> {
    let single = |get: &dyn Fn(&Past) -> Option<&String>| -> Option<Task> {
        let mut names: Vec<&String> = past.iter().filter_map(get).collect();
        names.sort();
        names.dedup();
        let labelled = past.iter().filter(|p| get(p).is_some()).count();
        (names.len() >= 2 && labelled >= crate::triage::MIN_LABELS).then(|| Task {
            classes: names.len(),
            multi: false,
            labels: past.iter().map(|p| get(p).map(|l| vec![names.binary_search(&l).unwrap_or(0)])).collect(),
        })
    };
    let mut skills: Vec<&String> = past.iter().flat_map(|p| &p.skills).collect();
    skills.sort();
    skills.dedup();
    let labelled = past.iter().filter(|p| !p.skills.is_empty()).count();
    let multi = (skills.len() >= 2 && labelled >= crate::triage::MIN_LABELS).then(|| Task {
        classes: skills.len(),
        multi: true,
        labels: past
            .iter()
            .map(|p| {
                (!p.skills.is_empty()).then(|| p.skills.iter().map(|s| skills.binary_search(&s).unwrap_or(0)).collect())
            })
            .collect(),
    });
    [single(&|p| p.category.as_ref()), single(&|p| p.priority.as_ref()), multi].into_iter().flatten().collect()
}

/// Whether a model's answer for a past ticket (with its vector) is right; `None`: it has no such label.
type Answer<'a> = dyn Fn(&Past, Option<&[f32]>) -> Option<bool> + 'a;

/// The supervised models' mean accuracy on `held` (category and priority exactly, skills as the exact set),
/// trained on `train` with each past ticket's vector from `vector`.
fn held_back_accuracy(
    past: &[Past],
    train: &[usize],
    held: &[usize],
    vector: &dyn Fn(usize) -> Option<Vec<f32>>,
) -> f64 {
    let with = |i: usize| Past { repr: Repr::new(&past[i].text, vector(i)), ..past[i].clone() };
    let trained = Trained::train(&train.iter().map(|&i| with(i)).collect::<Vec<_>>());
    let mut scores = Vec::new();
    let mut score = |right: &Answer| {
        let answers: Vec<bool> = held.iter().filter_map(|&i| right(&past[i], vector(i).as_deref())).collect();
        if !answers.is_empty() {
            scores.push(answers.iter().filter(|a| **a).count() as f64 / answers.len() as f64);
        }
    };
    if let Some(m) = &trained.category {
        score(&|p, v| p.category.as_ref().map(|c| m.predict(&p.text, v).label == *c));
    }
    if let Some(m) = &trained.priority {
        score(&|p, v| p.priority.as_ref().map(|c| m.predict(&p.text, v).label == *c));
    }
    if let Some(m) = &trained.skills {
        score(&|p, v| {
            let mut got: Vec<String> = m.predict(&p.text, v, 0.5).into_iter().map(|s| s.label).collect();
            got.sort();
            let mut want = p.skills.clone();
            want.sort();
            (!want.is_empty()).then_some(got == want)
        });
    }
    if scores.is_empty() { 0.0 } else { scores.iter().sum::<f64>() / scores.len() as f64 }
}

/// The whole procedure on a team's labelled tickets (their `repr.dense` the frozen embeddings): tune the top
/// layers with a head per task, then keep them only if the supervised models on their vectors beat those on
/// the frozen ones on the held-back slice by more than `min_gain`. `tick(pass, passes)` after each pass.
pub fn tune_past(
    model: &crate::MiniLm,
    past: &[Past],
    cfg: &TuneConfig,
    min_gain: f64,
    tick: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<(Outcome, Option<Proven>)> {
    let started = std::time::Instant::now();
    let tasks = tasks_of(past);
    anyhow::ensure!(!tasks.is_empty() && past.len() >= MIN_EXAMPLES, "too few labelled tickets to fine-tune on");
    let texts: Vec<&str> = past.iter().map(|p| p.text.as_str()).collect();
    let ids = model.token_ids(&texts)?;
    let encoder = model.encoder();
    let from = encoder.layers.len().saturating_sub(cfg.layers.max(1));
    let frozen = Frozen { states: model.lower_states(&ids, from), from };
    tracing::info!(tickets = ids.len(), seconds = started.elapsed().as_secs_f64(), "fine-tuning: lower layers run");
    let (tr, held) = hold_back(&tasks[0]);
    let top = self::train(encoder, &frozen, &tasks, &tr, &held, cfg, tick);
    let vectors = top_vectors(encoder, &frozen, &top.layers, &(0..past.len()).collect::<Vec<_>>());
    tracing::info!(passes = ?top.history, seconds = started.elapsed().as_secs_f64(), "fine-tuning: trained");
    let frozen_accuracy = held_back_accuracy(past, &tr, &held, &|i| past[i].repr.dense.clone());
    let tuned_accuracy = held_back_accuracy(past, &tr, &held, &|i| Some(vectors[i].clone()));
    let used = tuned_accuracy > frozen_accuracy + min_gain;
    let outcome = Outcome {
        used,
        held_back: held.len(),
        frozen_accuracy,
        tuned_accuracy,
        passes: top.history.clone(),
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(?outcome, "fine-tuning: compared on the held-back slice");
    Ok((outcome, used.then_some(Proven { top, vectors })))
}

/// `eval classify`'s fine-tuning, the product's procedure ([`tune_past`]) on a labelled file: when it proves
/// itself, every example's vector is replaced by the tuned one (`train`'s from the run, `test`'s embedded one
/// at a time and timed, as triage embeds them). `train`'s vectors must be the frozen model's on entry.
pub fn tune_examples(
    model: &crate::MiniLm,
    train: &mut [Example],
    test: &mut [Example],
    multi: bool,
    cfg: &TuneConfig,
    tick: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<Outcome> {
    let past = crate::eval::past_of(train, crate::eval::field_of(train, multi));
    let (outcome, proven) = tune_past(model, &past, cfg, 0.0, tick)?;
    if let Some(Proven { top, vectors }) = proven {
        train.iter_mut().zip(vectors).for_each(|(e, v)| e.vector = Some(v));
        for e in test.iter_mut() {
            let t = std::time::Instant::now();
            let ids = model.token_ids(&[e.text.as_str()])?;
            e.vector = model.embed_ids_with(&ids, Some(&top)).pop();
            e.embed_ms = t.elapsed().as_secs_f64() * 1e3;
        }
    }
    Ok(outcome)
}

/// A ticket's number and its vector.
pub type NumberedVector = (i64, Vec<f32>);

/// The stored form of a proven fine-tune: the tuned layers' values (their shapes are the base model's) and
/// the vectors of the tickets it was proven on, by ticket number, little-endian.
pub fn encode_state(top: &TunedTop, vectors: &[(i64, Vec<f32>)]) -> Vec<u8> {
    let mut out = b"STTUNE1\0".to_vec();
    let put_u32 = |out: &mut Vec<u8>, v: usize| out.extend_from_slice(&(v as u32).to_le_bytes());
    put_u32(&mut out, top.from);
    put_u32(&mut out, top.layers.len());
    let mut layers = top.layers.clone();
    for l in &mut layers {
        for p in params_mut(l) {
            put_u32(&mut out, p.len());
            p.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
    }
    put_u32(&mut out, vectors.len());
    for (number, v) in vectors {
        out.extend_from_slice(&number.to_le_bytes());
        put_u32(&mut out, v.len());
        v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
    }
    out
}

/// Reads [`encode_state`]'s bytes back, the layers shaped like `base`'s; fails (never panics) on bytes that
/// do not fit.
pub fn decode_state(bytes: &[u8], base: &Encoder) -> anyhow::Result<(TunedTop, Vec<NumberedVector>)> {
    let mut r = Bytes { bytes, at: 0 };
    anyhow::ensure!(r.take(8)? == b"STTUNE1\0", "not a tuned model");
    let (from, n) = (r.u32()?, r.u32()?);
    anyhow::ensure!(n >= 1 && from + n == base.layers.len(), "the tuned model does not fit this encoder");
    let mut layers = base.layers[from..].to_vec();
    for l in &mut layers {
        for p in params_mut(l) {
            let len = r.u32()?;
            anyhow::ensure!(len == p.len(), "a tuned layer's shape differs from the encoder's");
            *p = r.floats(len)?;
        }
    }
    let count = r.u32()?;
    let mut vectors = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        let number = i64::from_le_bytes(r.take(8)?.try_into()?);
        let len = r.u32()?;
        vectors.push((number, r.floats(len)?));
    }
    Ok((TunedTop { from, layers, history: Vec::new() }, vectors))
}

/// Little-endian reads that fail (not panic) past the end.
struct Bytes<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| anyhow::anyhow!("the tuned model is cut short"))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self) -> anyhow::Result<usize> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?) as usize)
    }

    fn floats(&mut self, n: usize) -> anyhow::Result<Vec<f32>> {
        let b = self.take(n.checked_mul(4).ok_or_else(|| anyhow::anyhow!("a tensor size overflows"))?)?;
        Ok(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
}
