//! Text classifiers learned from a team's labelled tickets: one label per ticket (category, priority) or a
//! set of labels (skills), with a confidence for each answer.

use anyhow::bail;

use crate::linear::{LogReg, TrainConfig};
use crate::text::{Analyzer, FeatureUnion, Sparse, Tfidf, prose};

/// What a model sees of a ticket: word 1–2-grams and in-word character 2–5-grams (each block unit-length),
/// plus the ticket's sentence embedding when the model was trained with embeddings.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Features {
    lexical: FeatureUnion,
    /// Length of the dense block (0: lexical only).
    dense: usize,
    /// Whether the words are read from the ticket's [`prose`] (code blocks and addresses set aside); models
    /// saved before this existed read the raw text and keep doing so.
    #[serde(default)]
    prose: bool,
}

impl Features {
    /// Fits the features on `texts` (with their embeddings, when given: then every text needs one of the same
    /// length) and returns them with each text's row, reading each text's prose once.
    fn fit_rows(texts: &[&str], vectors: Option<&[&[f32]]>) -> anyhow::Result<(Self, Vec<Sparse>)> {
        let dense = dense_len(vectors, texts.len())?;
        let texts: Vec<String> = texts.iter().map(|t| prose(t)).collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let lexical = FeatureUnion::new(vec![
            Tfidf::fit(&texts, Analyzer::Words { min: 1, max: 2 }, 1, 200_000),
            Tfidf::fit(&texts, Analyzer::CharsInWords { min: 2, max: 5 }, 2, 300_000),
        ]);
        let features = Self { lexical, dense, prose: true };
        let rows = texts.iter().enumerate().map(|(i, t)| features.row_of_words(t, vectors.map(|v| v[i]))).collect();
        Ok((features, rows))
    }

    fn dimensions(&self) -> usize {
        self.lexical.dimensions() + self.dense
    }

    /// One row; a missing or wrongly sized embedding leaves the dense block empty.
    fn row(&self, text: &str, vector: Option<&[f32]>) -> Sparse {
        if self.prose { self.row_of_words(&prose(text), vector) } else { self.row_of_words(text, vector) }
    }

    /// [`Features::row`] of the text the words are read from (the prose, or the raw text for older models).
    fn row_of_words(&self, words: &str, vector: Option<&[f32]>) -> Sparse {
        let mut x = self.lexical.transform(words);
        if let Some(v) = vector.filter(|v| v.len() == self.dense) {
            let offset = self.lexical.dimensions() as u32;
            x.extend(v.iter().enumerate().map(|(i, &value)| (offset + i as u32, value * DENSE_WEIGHT)));
        }
        x
    }
}

/// How much the (unit-length) embedding block weighs against each (unit-length) lexical block.
const DENSE_WEIGHT: f32 = 1.0;

/// The embeddings for `n` texts, if every one has one of the same length.
fn dense_len(vectors: Option<&[&[f32]]>, n: usize) -> anyhow::Result<usize> {
    match vectors {
        None => Ok(0),
        Some(v) if v.len() != n => bail!("{n} texts but {} vectors", v.len()),
        Some(v) => {
            let d = v.first().map_or(0, |x| x.len());
            if v.iter().any(|x| x.len() != d) {
                bail!("vectors differ in length");
            }
            Ok(d)
        }
    }
}

/// One label per text.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TextClassifier {
    features: Features,
    model: LogReg,
    labels: Vec<String>,
}

/// A label with how sure the model is, in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub label: String,
    pub confidence: f32,
}

impl TextClassifier {
    /// Learns from `texts` (with their embeddings, when given: then every text needs one).
    pub fn train(
        texts: &[&str],
        vectors: Option<&[&[f32]]>,
        labels: &[&str],
        cfg: TrainConfig,
    ) -> anyhow::Result<Self> {
        if texts.len() != labels.len() {
            bail!("{} texts but {} labels", texts.len(), labels.len());
        }
        let mut names: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        names.sort();
        names.dedup();
        if names.len() < 2 {
            bail!("need at least two different labels to learn from, got {}", names.len());
        }
        let (features, x) = Features::fit_rows(texts, vectors)?;
        let y: Vec<usize> = labels.iter().map(|l| names.binary_search_by(|n| n.as_str().cmp(l)).unwrap_or(0)).collect();
        let model = LogReg::fit(&x, &y, names.len(), features.dimensions(), cfg);
        Ok(Self { features, model, labels: names })
    }

    /// The most likely label.
    pub fn predict(&self, text: &str, vector: Option<&[f32]>) -> Scored {
        let p = self.model.predict_proba(&self.features.row(text, vector));
        let (best, confidence) = p.iter().copied().enumerate().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap_or((0, 0.0));
        Scored { label: self.labels[best].clone(), confidence }
    }

    /// The probability of every label, in the order of [`Self::labels`].
    pub fn probabilities(&self, text: &str, vector: Option<&[f32]>) -> Vec<f32> {
        self.model.predict_proba(&self.features.row(text, vector))
    }

    /// Whether the model was trained with sentence embeddings.
    pub fn uses_vectors(&self) -> bool {
        self.features.dense > 0
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }
}

/// A set of labels per text: one yes/no model per label seen at least twice.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MultiLabelClassifier {
    features: Features,
    models: Vec<(String, LogReg)>,
}

impl MultiLabelClassifier {
    pub fn train(
        texts: &[&str],
        vectors: Option<&[&[f32]]>,
        labels: &[Vec<String>],
        cfg: TrainConfig,
    ) -> anyhow::Result<Self> {
        if texts.len() != labels.len() {
            bail!("{} texts but {} label sets", texts.len(), labels.len());
        }
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        labels.iter().flatten().for_each(|l| *counts.entry(l.as_str()).or_default() += 1);
        let kept: Vec<&str> = counts.into_iter().filter(|(_, n)| *n >= 2).map(|(l, _)| l).collect();
        if kept.is_empty() {
            bail!("no label occurs twice: nothing to learn");
        }
        let (features, x) = Features::fit_rows(texts, vectors)?;
        let dims = features.dimensions();
        let models = kept
            .into_iter()
            .map(|label| {
                let y: Vec<usize> = labels.iter().map(|ls| usize::from(ls.iter().any(|l| l == label))).collect();
                (label.to_owned(), LogReg::fit(&x, &y, 2, dims, cfg))
            })
            .collect();
        Ok(Self { features, models })
    }

    /// Labels whose probability is at least `threshold`, most likely first; at least the single most likely one.
    pub fn predict(&self, text: &str, vector: Option<&[f32]>, threshold: f32) -> Vec<Scored> {
        let mut all = self.probabilities(text, vector);
        all.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        let n = all.iter().filter(|s| s.confidence >= threshold).count().max(1);
        all.truncate(n);
        all
    }

    /// Every known label with its probability, in training order.
    pub fn probabilities(&self, text: &str, vector: Option<&[f32]>) -> Vec<Scored> {
        let x = self.features.row(text, vector);
        self.models
            .iter()
            .map(|(label, m)| Scored { label: label.clone(), confidence: m.predict_proba(&x)[1] })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_single_and_multiple_labels() {
        let texts = [
            "printer jam on floor 2",
            "the printer shows paper jam",
            "vpn disconnects hourly",
            "cannot connect to vpn",
            "invoice amount is wrong",
            "refund my invoice",
        ];
        let labels = ["hardware", "hardware", "network", "network", "billing", "billing"];
        let c = TextClassifier::train(&texts, None, &labels, TrainConfig::default()).unwrap();
        let p = c.predict("my vpn keeps disconnecting", None);
        assert_eq!(p.label, "network");
        assert!(p.confidence > 1.0 / 3.0 && p.confidence <= 1.0);
        assert!(
            TextClassifier::train(&texts[..2], None, &labels[..2], TrainConfig::default()).is_err(),
            "one label only"
        );

        let sets: Vec<Vec<String>> = labels.iter().map(|l| vec![(*l).to_owned(), "support".to_owned()]).collect();
        let m = MultiLabelClassifier::train(&texts, None, &sets, TrainConfig::default()).unwrap();
        let got: Vec<String> = m.predict("printer paper jam again", None, 0.5).into_iter().map(|s| s.label).collect();
        assert!(got.contains(&"hardware".to_owned()) && got.contains(&"support".to_owned()), "{got:?}");
        assert!(!got.contains(&"billing".to_owned()), "{got:?}");
    }

    #[test]
    fn an_embedding_block_can_carry_the_signal() {
        // The words say nothing; only the (made-up) two-dimensional vectors separate the classes.
        let texts = ["same words", "same words", "same words", "same words"];
        let vectors: [&[f32]; 4] = [&[1.0, 0.0], &[0.9, 0.1], &[0.0, 1.0], &[0.1, 0.9]];
        let labels = ["left", "left", "right", "right"];
        let c = TextClassifier::train(&texts, Some(&vectors), &labels, TrainConfig::default()).unwrap();
        assert!(c.uses_vectors());
        assert_eq!(c.predict("same words", Some(&[0.95, 0.05])).label, "left");
        assert_eq!(c.predict("same words", Some(&[0.05, 0.95])).label, "right");
        let bad: [&[f32]; 4] = [&[1.0], &[0.9, 0.1], &[0.0, 1.0], &[0.1, 0.9]];
        assert!(TextClassifier::train(&texts, Some(&bad), &labels, TrainConfig::default()).is_err());
    }
}
