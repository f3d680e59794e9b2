//! Text classifiers learned from a team's labelled tickets: one label per ticket (category, priority) or a
//! set of labels (skills), with a confidence for each answer.

use anyhow::bail;

use crate::linear::{LogReg, TrainConfig};
use crate::text::{Analyzer, FeatureUnion, Sparse, Tfidf};

/// Names the model family in reports.
pub const ENGINE: &str = "local:tfidf-logreg";

/// Word 1–2-grams and in-word character 2–5-grams, each block unit-length.
fn fit_features(texts: &[&str]) -> FeatureUnion {
    FeatureUnion::new(vec![
        Tfidf::fit(texts, Analyzer::Words { min: 1, max: 2 }, 1, 200_000),
        Tfidf::fit(texts, Analyzer::CharsInWords { min: 2, max: 5 }, 2, 300_000),
    ])
}

/// One label per text.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TextClassifier {
    features: FeatureUnion,
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
    pub fn train(texts: &[&str], labels: &[&str], cfg: TrainConfig) -> anyhow::Result<Self> {
        if texts.len() != labels.len() {
            bail!("{} texts but {} labels", texts.len(), labels.len());
        }
        let mut names: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        names.sort();
        names.dedup();
        if names.len() < 2 {
            bail!("need at least two different labels to learn from, got {}", names.len());
        }
        let features = fit_features(texts);
        let x: Vec<Sparse> = texts.iter().map(|t| features.transform(t)).collect();
        let y: Vec<usize> = labels.iter().map(|l| names.binary_search_by(|n| n.as_str().cmp(l)).unwrap_or(0)).collect();
        let model = LogReg::fit(&x, &y, names.len(), features.dimensions(), cfg);
        Ok(Self { features, model, labels: names })
    }

    /// The most likely label.
    pub fn predict(&self, text: &str) -> Scored {
        let p = self.model.predict_proba(&self.features.transform(text));
        let (best, confidence) = p.iter().copied().enumerate().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap_or((0, 0.0));
        Scored { label: self.labels[best].clone(), confidence }
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }
}

/// A set of labels per text: one yes/no model per label seen at least twice.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MultiLabelClassifier {
    features: FeatureUnion,
    models: Vec<(String, LogReg)>,
}

impl MultiLabelClassifier {
    pub fn train(texts: &[&str], labels: &[Vec<String>], cfg: TrainConfig) -> anyhow::Result<Self> {
        if texts.len() != labels.len() {
            bail!("{} texts but {} label sets", texts.len(), labels.len());
        }
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        labels.iter().flatten().for_each(|l| *counts.entry(l.as_str()).or_default() += 1);
        let kept: Vec<&str> = counts.into_iter().filter(|(_, n)| *n >= 2).map(|(l, _)| l).collect();
        if kept.is_empty() {
            bail!("no label occurs twice: nothing to learn");
        }
        let features = fit_features(texts);
        let x: Vec<Sparse> = texts.iter().map(|t| features.transform(t)).collect();
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
    pub fn predict(&self, text: &str, threshold: f32) -> Vec<Scored> {
        let x = self.features.transform(text);
        let mut all: Vec<Scored> = self
            .models
            .iter()
            .map(|(label, m)| Scored { label: label.clone(), confidence: m.predict_proba(&x)[1] })
            .collect();
        all.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        let n = all.iter().filter(|s| s.confidence >= threshold).count().max(1);
        all.truncate(n);
        all
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
        let c = TextClassifier::train(&texts, &labels, TrainConfig::default()).unwrap();
        let p = c.predict("my vpn keeps disconnecting");
        assert_eq!(p.label, "network");
        assert!(p.confidence > 1.0 / 3.0 && p.confidence <= 1.0);
        assert!(TextClassifier::train(&texts[..2], &labels[..2], TrainConfig::default()).is_err(), "one label only");

        let sets: Vec<Vec<String>> = labels.iter().map(|l| vec![(*l).to_owned(), "support".to_owned()]).collect();
        let m = MultiLabelClassifier::train(&texts, &sets, TrainConfig::default()).unwrap();
        let got: Vec<String> = m.predict("printer paper jam again", 0.5).into_iter().map(|s| s.label).collect();
        assert!(got.contains(&"hardware".to_owned()) && got.contains(&"support".to_owned()), "{got:?}");
        assert!(!got.contains(&"billing".to_owned()), "{got:?}");
    }
}
