//! Lexical features: TF-IDF over word n-grams and character n-grams, as sparse unit vectors.

use std::collections::HashMap;

/// A sparse vector: sorted feature indices with their values.
pub type Sparse = Vec<(u32, f32)>;

/// What the vectoriser counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Analyzer {
    /// Word n-grams of lengths `min..=max` (lower-cased alphanumeric words).
    Words { min: usize, max: usize },
    /// Character n-grams of lengths `min..=max` inside each word padded with spaces (scikit-learn's `char_wb`),
    /// robust to typos, inflection and unseen compounds.
    CharsInWords { min: usize, max: usize },
}

/// Lower-cased words: runs of letters and digits.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

impl Analyzer {
    /// Calls `f` with each term of `text`.
    fn terms(self, text: &str, mut f: impl FnMut(&str)) {
        let ws = words(text);
        match self {
            Analyzer::Words { min, max } => {
                let mut buf = String::new();
                for n in min.max(1)..=max {
                    for w in ws.windows(n) {
                        buf.clear();
                        for (i, part) in w.iter().enumerate() {
                            if i > 0 {
                                buf.push(' ');
                            }
                            buf.push_str(part);
                        }
                        f(&buf);
                    }
                }
            }
            Analyzer::CharsInWords { min, max } => {
                let mut buf = String::new();
                for w in &ws {
                    let chars: Vec<char> = std::iter::once(' ').chain(w.chars()).chain(std::iter::once(' ')).collect();
                    for n in min.max(1)..=max {
                        if n > chars.len() {
                            break;
                        }
                        for g in chars.windows(n) {
                            buf.clear();
                            buf.extend(g);
                            f(&buf);
                        }
                    }
                }
            }
        }
    }
}

/// A fitted TF-IDF vectoriser: sublinear term frequency, smoothed IDF, L2-normalised rows.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Tfidf {
    analyzer: Analyzer,
    vocab: HashMap<String, u32>,
    idf: Vec<f32>,
}

impl Tfidf {
    /// Learns the vocabulary (terms in at least `min_df` documents, the `max_features` most frequent) and IDF.
    pub fn fit(docs: &[&str], analyzer: Analyzer, min_df: usize, max_features: usize) -> Self {
        let mut df: HashMap<String, usize> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for d in docs {
            seen.clear();
            analyzer.terms(d, |t| {
                if !seen.contains(t) {
                    seen.insert(t.to_owned());
                }
            });
            for t in seen.drain() {
                *df.entry(t).or_default() += 1;
            }
        }
        let mut kept: Vec<(String, usize)> = df.into_iter().filter(|(_, n)| *n >= min_df.max(1)).collect();
        // Most frequent first, then alphabetical, so the vocabulary does not depend on hash order.
        kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        kept.truncate(max_features);
        let n = docs.len() as f32;
        let idf = kept.iter().map(|(_, d)| ((1.0 + n) / (1.0 + *d as f32)).ln() + 1.0).collect();
        let vocab = kept.into_iter().enumerate().map(|(i, (t, _))| (t, i as u32)).collect();
        Self { analyzer, vocab, idf }
    }

    pub fn dimensions(&self) -> usize {
        self.idf.len()
    }

    /// The unit-length TF-IDF vector of `text` (empty when it has no known term).
    pub fn transform(&self, text: &str) -> Sparse {
        let mut tf: HashMap<u32, f32> = HashMap::new();
        self.analyzer.terms(text, |t| {
            if let Some(&i) = self.vocab.get(t) {
                *tf.entry(i).or_default() += 1.0;
            }
        });
        let mut v: Sparse = tf.into_iter().map(|(i, c)| (i, (1.0 + c.ln()) * self.idf[i as usize])).collect();
        v.sort_unstable_by_key(|e| e.0);
        let norm = v.iter().map(|e| e.1 * e.1).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|e| e.1 /= norm);
        }
        v
    }
}

/// Several vectorisers side by side, each block unit-length, indices offset into one space.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FeatureUnion {
    parts: Vec<Tfidf>,
}

impl FeatureUnion {
    pub fn new(parts: Vec<Tfidf>) -> Self {
        Self { parts }
    }

    pub fn dimensions(&self) -> usize {
        self.parts.iter().map(Tfidf::dimensions).sum()
    }

    pub fn transform(&self, text: &str) -> Sparse {
        let mut out = Sparse::new();
        let mut offset = 0u32;
        for p in &self.parts {
            out.extend(p.transform(text).into_iter().map(|(i, v)| (i + offset, v)));
            offset += p.dimensions() as u32;
        }
        out
    }
}

/// The prose of a ticket for word features: each fenced code block (```` ``` ````…```` ``` ````, as pasted logs,
/// stack traces and snippets usually are) becomes the one word `codeblock`, and each web address the word `url`.
/// Their content is mostly noise to a classifier (paths, numbers, identifiers that never recur) and, in long
/// technical tickets, drowns the sentences that say what the ticket is; that there was code or a link is kept.
/// An unclosed fence is left as it is.
pub fn prose(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("```") {
        let Some(close) = rest[open + 3..].find("```") else { break };
        out.push_str(&rest[..open]);
        out.push_str(" codeblock ");
        rest = &rest[open + 3 + close + 3..];
    }
    out.push_str(rest);
    if !out.contains("://") {
        return out;
    }
    out.split_inclusive(char::is_whitespace)
        .map(|w| {
            let t = w.trim_end();
            if t.starts_with("http://") || t.starts_with("https://") {
                format!("url{}", &w[t.len()..])
            } else {
                w.to_owned()
            }
        })
        .collect()
}

/// A vocabulary-free lexical vector: words and in-word character 3–5-grams hashed into 2^20 buckets,
/// sublinear term frequency, unit length. Needs no fitting, so it works from the first ticket on.
pub fn hashed(text: &str) -> Sparse {
    const BITS: u32 = 20;
    let mut tf: HashMap<u32, f32> = HashMap::new();
    let mut add = |term: &str, salt: u64, weight: f32| {
        // FNV-1a: stable across runs and platforms (std's hasher is randomly seeded).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
        for b in term.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        *tf.entry((h >> (64 - BITS)) as u32).or_default() += weight;
    };
    Analyzer::Words { min: 1, max: 1 }.terms(text, |t| add(t, 1, 1.0));
    Analyzer::CharsInWords { min: 3, max: 5 }.terms(text, |t| add(t, 2, 0.25));
    let mut v: Sparse = tf.into_iter().map(|(i, c)| (i, 1.0 + c.ln().max(0.0))).collect();
    v.sort_unstable_by_key(|e| e.0);
    let norm = v.iter().map(|e| e.1 * e.1).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|e| e.1 /= norm);
    }
    v
}

/// The dot product of two sparse vectors (their cosine when both are unit length).
pub fn sparse_dot(a: &Sparse, b: &Sparse) -> f32 {
    let (mut i, mut j, mut sum) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                sum += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prose_drops_code_blocks_and_addresses() {
        let t = "Crash on start\nSee https://example.com/x?y=1 and\n```\nat foo.bar(Baz.java:12)\n```\nthen ```x``` ok ```open";
        assert_eq!(prose(t), "Crash on start\nSee url and\n codeblock \nthen  codeblock  ok ```open");
        assert_eq!(prose("no code here"), "no code here");
        assert_eq!(prose("``````"), " codeblock ");
    }

    #[test]
    fn word_and_char_terms() {
        let mut t = Vec::new();
        Analyzer::Words { min: 1, max: 2 }.terms("VPN down, VPN!", |s| t.push(s.to_owned()));
        assert_eq!(t, ["vpn", "down", "vpn", "vpn down", "down vpn"]);
        t.clear();
        Analyzer::CharsInWords { min: 2, max: 3 }.terms("ab", |s| t.push(s.to_owned()));
        assert_eq!(t, [" a", "ab", "b ", " ab", "ab "]);
    }

    #[test]
    fn rare_terms_weigh_more_and_rows_are_unit_length() {
        let docs = ["printer jam", "printer offline", "printer toner", "vpn offline"];
        let v = Tfidf::fit(&docs, Analyzer::Words { min: 1, max: 1 }, 1, 100);
        assert_eq!(v.dimensions(), 5);
        let x = v.transform("printer vpn");
        let w = |term: &str| x.iter().find(|e| e.0 == v.vocab[term]).unwrap().1;
        assert!(w("vpn") > w("printer"), "vpn is rarer");
        assert!((x.iter().map(|e| e.1 * e.1).sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(v.transform("nothing known").is_empty());
        let min2 = Tfidf::fit(&docs, Analyzer::Words { min: 1, max: 1 }, 2, 100);
        assert_eq!(min2.dimensions(), 2, "printer and offline appear twice or more");
    }

    #[test]
    fn a_union_offsets_each_block() {
        let docs = ["alpha beta", "beta gamma"];
        let a = Tfidf::fit(&docs, Analyzer::Words { min: 1, max: 1 }, 1, 100);
        let b = Tfidf::fit(&docs, Analyzer::CharsInWords { min: 3, max: 3 }, 1, 100);
        let (da, db) = (a.dimensions(), b.dimensions());
        let u = FeatureUnion::new(vec![a, b]);
        assert_eq!(u.dimensions(), da + db);
        let x = u.transform("alpha");
        assert!(x.iter().any(|e| (e.0 as usize) < da) && x.iter().any(|e| (e.0 as usize) >= da));
        let norm: f32 = x.iter().map(|e| e.1 * e.1).sum();
        assert!((norm - 2.0).abs() < 1e-4, "two unit blocks");
    }

    #[test]
    fn hashed_vectors_compare_texts_without_a_vocabulary() {
        let a = hashed("The printer on floor 3 jams");
        let b = hashed("printer jams on the third floor");
        let c = hashed("refund my invoice please");
        assert!((sparse_dot(&a, &a) - 1.0).abs() < 1e-5);
        assert!(sparse_dot(&a, &b) > 0.5, "{}", sparse_dot(&a, &b));
        assert!(sparse_dot(&a, &c) < 0.2, "{}", sparse_dot(&a, &c));
        assert_eq!(a, hashed("The printer on floor 3 jams"), "deterministic");
        assert!(hashed("  ").is_empty());
    }
}
