//! Offline evaluation on labelled JSON Lines files: train/test or K-fold cross-validation with
//! group-preserving folds, reporting accuracy, macro-F1, training time and per-ticket latency.

use anyhow::{Context, bail};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Instant;

use crate::triage::{
    Context as TriageContext, Label, MIN_LABELS, PRIORITIES, Past, Repr, Taxonomy, Trained, ZeroShot, triage,
};

/// One labelled ticket.
#[derive(Debug, Clone)]
pub struct Example {
    pub text: String,
    pub labels: Vec<String>,
    pub group: Option<String>,
    /// The `answer` field (the resolution), empty when absent.
    pub answer: String,
    /// The text's sentence embedding, when the model is available.
    pub vector: Option<Vec<f32>>,
    /// What computing `vector` cost, in milliseconds.
    pub embed_ms: f64,
}

/// Reads `subject`, `body`, `answer` (when present), the label field (a string, or a list for multi-label) and optionally a group field.
/// Returns the examples and whether the label is multi-label. Rows without the label are refused with their line.
pub fn load_jsonl(path: &Path, label: &str, group: Option<&str>) -> anyhow::Result<(Vec<Example>, bool)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    let mut multi = false;
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
        let labels = match v.get(label) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => {
                multi = true;
                a.iter().filter_map(Value::as_str).map(str::to_owned).collect()
            }
            Some(Value::Number(n)) => vec![n.to_string()],
            _ => bail!("{}:{}: no `{label}` label", path.display(), i + 1),
        };
        let group = group
            .map(|g| v.get(g).map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned)).unwrap_or_default());
        out.push(Example {
            text: format!("{}\n{}", s("subject"), s("body")),
            labels,
            group,
            answer: s("answer").to_owned(),
            vector: None,
            embed_ms: 0.0,
        });
    }
    if out.is_empty() {
        bail!("{} holds no examples", path.display());
    }
    Ok((out, multi))
}

/// Splits indices into `k` folds. With groups, a whole group lands in one fold (so paraphrases never
/// straddle train and test); otherwise examples are dealt out round-robin per label (stratified).
pub fn folds(examples: &[Example], k: usize) -> Vec<Vec<usize>> {
    let k = k.max(2);
    let mut folds = vec![Vec::new(); k];
    if examples.iter().all(|e| e.group.is_some()) {
        let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, e) in examples.iter().enumerate() {
            groups.entry(e.group.as_deref().unwrap_or("")).or_default().push(i);
        }
        // Largest groups first, each into the currently smallest fold; ties by name for determinism.
        let mut gs: Vec<(&str, Vec<usize>)> = groups.into_iter().collect();
        gs.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
        for (_, members) in gs {
            let smallest = (0..k).min_by_key(|&f| folds[f].len()).unwrap_or(0);
            folds[smallest].extend(members);
        }
    } else {
        let mut by_label: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
        for (i, e) in examples.iter().enumerate() {
            by_label.entry(e.labels.join("|")).or_default().push(i);
        }
        let mut next = 0;
        for members in by_label.into_values() {
            for i in members {
                folds[next % k].push(i);
                next += 1;
            }
        }
    }
    folds.iter_mut().for_each(|f| f.sort_unstable());
    folds
}

/// Predictions for a test set and what they cost.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub predicted: Vec<Vec<String>>,
    pub actual: Vec<Vec<String>>,
    pub train_seconds: f64,
    pub ms_per_ticket: Vec<f64>,
    pub n_train: usize,
}

/// Which triage field a label plays: priority when its values are priorities, skills when it is a list,
/// otherwise category.
pub fn field_of(train: &[Example], multi: bool) -> Field {
    if multi {
        Field::Skills
    } else if train.iter().all(|e| e.labels.iter().all(|l| PRIORITIES.contains(&l.as_str()))) {
        Field::Priority
    } else {
        Field::Category
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field {
    Category,
    Priority,
    Skills,
}

/// The examples as labelled past tickets (numbered by position), their labels in `field`.
pub fn past_of(examples: &[Example], field: Field) -> Vec<Past> {
    examples
        .iter()
        .enumerate()
        .map(|(i, e)| Past {
            number: i as i64,
            title: String::new(),
            text: e.text.clone(),
            repr: Repr::new(&e.text, e.vector.clone()),
            category: (field == Field::Category).then(|| e.labels.first().cloned()).flatten(),
            priority: (field == Field::Priority).then(|| e.labels.first().cloned()).flatten(),
            skills: if field == Field::Skills { e.labels.clone() } else { Vec::new() },
            resolution: None,
        })
        .collect()
}

/// Trains the triage engine on `train` exactly as from history and predicts `test`, calling `tick` after each
/// prediction. Vectors (`Example::vector`) are used when present; each example's `embed_ms` is added to its
/// prediction time, so the latency includes embedding.
pub fn train_and_predict(
    train: &[Example],
    test: &[Example],
    multi: bool,
    engine: &str,
    tick: &mut dyn FnMut(),
) -> anyhow::Result<Run> {
    let field = field_of(train, multi);
    let past = past_of(train, field);
    let mut names: Vec<String> = train.iter().flat_map(|e| e.labels.iter().cloned()).collect();
    names.sort();
    names.dedup();
    let labels = |names: &[String]| -> Vec<Label> {
        names.iter().map(|n| Label { name: n.clone(), ..Default::default() }).collect()
    };
    let taxonomy = match field {
        Field::Skills => Taxonomy { categories: Vec::new(), skills: labels(&names) },
        Field::Category => Taxonomy { categories: labels(&names), skills: Vec::new() },
        Field::Priority => Taxonomy::default(),
    };
    let started = Instant::now();
    let trained = Trained::train(&past);
    let train_seconds = started.elapsed().as_secs_f64();
    if field != Field::Skills && trained.category.is_none() && trained.priority.is_none() {
        bail!("need at least {MIN_LABELS} labelled examples with two different labels");
    }
    // No descriptions in a file: the zero-shot signal stays silent and the labels' names alone do not vote.
    let zero_shot = ZeroShot::default();
    let ctx = TriageContext {
        taxonomy: &taxonomy,
        zero_shot: &zero_shot,
        trained: Some(&trained),
        past: &past,
        engine,
        tuned: None,
    };
    let mut run = Run { n_train: train.len(), train_seconds, ..Default::default() };
    for e in test {
        let t = Instant::now();
        let repr = Repr::new(&e.text, e.vector.clone());
        let triage = triage(&ctx, &e.text, &repr, None);
        let predicted = match field {
            Field::Category => triage.category.map(|g| vec![g.value]).unwrap_or_default(),
            Field::Priority => vec![triage.priority.value],
            Field::Skills => triage.skills.into_iter().map(|g| g.value).collect(),
        };
        run.ms_per_ticket.push(t.elapsed().as_secs_f64() * 1e3 + e.embed_ms);
        run.predicted.push(predicted);
        run.actual.push(e.labels.clone());
        tick();
    }
    Ok(run)
}

/// The summary `eval classify` prints as its last line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub label: String,
    pub n_train: usize,
    pub n_test: usize,
    /// Exact-match accuracy (for multi-label: the predicted set equals the true set).
    pub accuracy: f64,
    /// Mean over labels of per-label F1.
    pub macro_f1: f64,
    /// Seconds to train one model (the mean over folds in cross-validation).
    pub train_seconds: f64,
    pub ms_per_ticket_p50: f64,
    pub ms_per_ticket_p99: f64,
    pub engine: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folds: Option<usize>,
    /// What fine-tuning did, per split (absent when it was not tried).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finetune: Option<Vec<crate::tune::Outcome>>,
}

/// Pools runs (one, or one per fold) into a report.
pub fn report(label: &str, runs: &[Run], folds: Option<usize>, engine: &str) -> Report {
    let predicted: Vec<&Vec<String>> = runs.iter().flat_map(|r| &r.predicted).collect();
    let actual: Vec<&Vec<String>> = runs.iter().flat_map(|r| &r.actual).collect();
    let n = actual.len().max(1) as f64;
    let same =
        |a: &Vec<String>, b: &Vec<String>| a.iter().collect::<BTreeSet<_>>() == b.iter().collect::<BTreeSet<_>>();
    let accuracy = predicted.iter().zip(&actual).filter(|(p, a)| same(p, a)).count() as f64 / n;
    let all: BTreeSet<&String> = actual.iter().flat_map(|a| a.iter()).collect();
    let f1s: Vec<f64> = all
        .iter()
        .map(|label| {
            let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
            for (p, a) in predicted.iter().zip(&actual) {
                match (p.contains(label), a.contains(label)) {
                    (true, true) => tp += 1.0,
                    (true, false) => fp += 1.0,
                    (false, true) => fn_ += 1.0,
                    (false, false) => {}
                }
            }
            if tp == 0.0 { 0.0 } else { 2.0 * tp / (2.0 * tp + fp + fn_) }
        })
        .collect();
    let mut ms: Vec<f64> = runs.iter().flat_map(|r| r.ms_per_ticket.iter().copied()).collect();
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| if ms.is_empty() { 0.0 } else { ms[((ms.len() - 1) as f64 * p).round() as usize] };
    let k = runs.len().max(1) as f64;
    Report {
        label: label.to_owned(),
        n_train: (runs.iter().map(|r| r.n_train).sum::<usize>() as f64 / k).round() as usize,
        n_test: actual.len(),
        accuracy,
        macro_f1: f1s.iter().sum::<f64>() / f1s.len().max(1) as f64,
        train_seconds: runs.iter().map(|r| r.train_seconds).sum::<f64>() / k,
        ms_per_ticket_p50: pct(0.5),
        ms_per_ticket_p99: pct(0.99),
        engine: engine.to_owned(),
        folds,
        finetune: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(label: &str, group: Option<&str>) -> Example {
        Example {
            text: String::new(),
            labels: vec![label.into()],
            group: group.map(Into::into),
            answer: String::new(),
            vector: None,
            embed_ms: 0.0,
        }
    }

    #[test]
    fn group_folds_never_split_a_group() {
        let e: Vec<Example> = (0..30).map(|i| ex("a", Some(&format!("g{}", i / 3)))).collect();
        let f = folds(&e, 5);
        assert_eq!(f.iter().map(Vec::len).sum::<usize>(), 30);
        for fold in &f {
            for &i in fold {
                let g = &e[i].group;
                assert!(e.iter().enumerate().filter(|(_, x)| &x.group == g).all(|(j, _)| fold.contains(&j)));
            }
        }
    }

    #[test]
    fn stratified_folds_spread_every_label() {
        let e: Vec<Example> = (0..20).map(|i| ex(if i < 10 { "x" } else { "y" }, None)).collect();
        for fold in folds(&e, 5) {
            assert_eq!(fold.len(), 4);
            assert_eq!(fold.iter().filter(|&&i| e[i].labels[0] == "x").count(), 2);
        }
    }

    #[test]
    fn macro_f1_and_accuracy() {
        let v = |s: &str| vec![s.to_owned()];
        let run = Run {
            predicted: vec![v("a"), v("a"), v("b"), v("b")],
            actual: vec![v("a"), v("b"), v("b"), v("b")],
            ..Default::default()
        };
        let r = report("l", &[run], None, "test");
        assert!((r.accuracy - 0.75).abs() < 1e-9);
        // a: tp1 fp1 fn0 → 2/3; b: tp2 fp0 fn1 → 0.8.
        assert!((r.macro_f1 - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-9);
    }
}
