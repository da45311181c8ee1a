//! The intent classifier: multinomial logistic regression over hashed word unigrams, word bigrams and character
//! n-grams of the utterance with its entities replaced by typed placeholders ([`crate::entities`]). Its classes
//! are the operations of the training data plus `none` (out of scope / not an operation), `chat:help` and
//! `chat:clear-history`. The model is trained by `cacheos-chat-train` from the data in `crates/chat/data` and the
//! utterance table, committed as `crates/chat/model/intent.bin` and compiled into the binary; nothing is fetched.
//!
//! Model file (little endian): magic `CCHATLR1`, u64 hash of the training data, f32 temperature, u32 classes,
//! each class as u16 length + UTF-8, u32 features, f32 weight scale, the features' hash buckets (u32, sorted), then
//! per feature one i8 weight per class, then one f32 bias per class.

/// Magic of the model file.
pub const MAGIC: &[u8; 8] = b"CCHATLR1";
/// Feature hash space (buckets).
pub const BUCKETS: u32 = 1 << 20;

fn fnv(s: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s {
        h ^= *b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h % BUCKETS
}

/// A 64-bit FNV-1a hash (for the training-data fingerprint).
pub fn fnv64(h: u64, s: &[u8]) -> u64 {
    let mut h = if h == 0 { 0xcbf2_9ce4_8422_2325 } else { h };
    for b in s {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The hashed features of a placeholder token sequence, sorted and without duplicates.
pub fn features(toks: &[String]) -> Vec<u32> {
    let mut out = Vec::with_capacity(toks.len() * 8);
    let mut key = String::with_capacity(64);
    let mut prev = "^";
    for t in toks.iter().take(64) {
        if t.starts_with('#') {
            // A reading of another parser (`#rule:drive.list`): one feature, no n-grams, not part of a bigram.
            key.clear();
            key.push_str("w:");
            key.push_str(t);
            out.push(fnv(key.as_bytes()));
            continue;
        }
        key.clear();
        key.push_str("w:");
        key.push_str(t);
        out.push(fnv(key.as_bytes()));
        key.clear();
        key.push_str("b:");
        key.push_str(prev);
        key.push(' ');
        key.push_str(t);
        out.push(fnv(key.as_bytes()));
        prev = t;
        if let Some(kinds) = t.strip_prefix('@') {
            // A name of two kinds also counts as each kind.
            if kinds.contains('|') {
                for k in kinds.split('|') {
                    key.clear();
                    key.push_str("w:@");
                    key.push_str(k);
                    out.push(fnv(key.as_bytes()));
                }
            }
            continue;
        }
        let chars: Vec<char> = std::iter::once('<')
            .chain(t.chars())
            .chain(std::iter::once('>'))
            .collect();
        if chars.len() > 24 {
            continue;
        }
        for n in 3..=5 {
            for w in chars.windows(n) {
                key.clear();
                key.push_str("c:");
                key.extend(w.iter());
                out.push(fnv(key.as_bytes()));
            }
        }
    }
    key.clear();
    key.push_str("b:");
    key.push_str(prev);
    key.push_str(" $");
    out.push(fnv(key.as_bytes()));
    out.sort_unstable();
    out.dedup();
    out
}

/// A trained model.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Fingerprint of the training data the model was made from.
    pub data_hash: u64,
    /// Softmax temperature (calibration).
    pub temperature: f32,
    /// Class names.
    pub classes: Vec<String>,
    /// Hash buckets of the known features, sorted.
    pub buckets: Vec<u32>,
    /// Weights, `buckets.len() × classes.len()`, quantised.
    pub weights: Vec<i8>,
    /// Scale of the quantised weights.
    pub scale: f32,
    /// Bias per class.
    pub bias: Vec<f32>,
}

impl Model {
    /// Class probabilities for the features, best first.
    pub fn predict(&self, feats: &[u32]) -> Vec<(usize, f32)> {
        let c = self.classes.len();
        let mut z: Vec<f32> = self.bias.clone();
        let mut hits = 0usize;
        let mut rows = Vec::with_capacity(feats.len());
        for f in feats {
            if let Ok(i) = self.buckets.binary_search(f) {
                rows.push(i);
                hits += 1;
            }
        }
        let norm = 1.0 / (feats.len().max(1) as f32).sqrt();
        for i in rows {
            let row = &self.weights[i * c..(i + 1) * c];
            for (zk, w) in z.iter_mut().zip(row) {
                *zk += *w as f32 * self.scale * norm;
            }
        }
        let _ = hits;
        softmax(&mut z, self.temperature);
        let mut out: Vec<(usize, f32)> = z.into_iter().enumerate().collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    /// The model as bytes (the committed file).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.data_hash.to_le_bytes());
        b.extend_from_slice(&self.temperature.to_le_bytes());
        b.extend_from_slice(&(self.classes.len() as u32).to_le_bytes());
        for c in &self.classes {
            b.extend_from_slice(&(c.len() as u16).to_le_bytes());
            b.extend_from_slice(c.as_bytes());
        }
        b.extend_from_slice(&(self.buckets.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.scale.to_le_bytes());
        for f in &self.buckets {
            b.extend_from_slice(&f.to_le_bytes());
        }
        b.extend(self.weights.iter().map(|w| *w as u8));
        for x in &self.bias {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b
    }

    /// Reads a model file.
    pub fn from_bytes(b: &[u8]) -> Result<Model, String> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], String> {
            let s = b.get(at..at + n).ok_or("model file truncated")?;
            at += n;
            Ok(s)
        };
        if take(8)? != MAGIC {
            return Err("not a CacheOS chat model".into());
        }
        let u32_ = |s: &[u8]| u32::from_le_bytes(s.try_into().unwrap_or([0; 4]));
        let f32_ = |s: &[u8]| f32::from_le_bytes(s.try_into().unwrap_or([0; 4]));
        let data_hash = u64::from_le_bytes(take(8)?.try_into().unwrap_or([0; 8]));
        let temperature = f32_(take(4)?);
        let n = u32_(take(4)?) as usize;
        if n > 4096 {
            return Err("too many classes".into());
        }
        let mut classes = Vec::with_capacity(n);
        for _ in 0..n {
            let l = u16::from_le_bytes(take(2)?.try_into().unwrap_or([0; 2])) as usize;
            classes.push(String::from_utf8(take(l)?.to_vec()).map_err(|e| e.to_string())?);
        }
        let nf = u32_(take(4)?) as usize;
        let scale = f32_(take(4)?);
        let mut buckets = Vec::with_capacity(nf);
        for _ in 0..nf {
            buckets.push(u32_(take(4)?));
        }
        let weights: Vec<i8> = take(nf * n)?.iter().map(|x| *x as i8).collect();
        let mut bias = Vec::with_capacity(n);
        for _ in 0..n {
            bias.push(f32_(take(4)?));
        }
        Ok(Model {
            data_hash,
            temperature,
            classes,
            buckets,
            weights,
            scale,
            bias,
        })
    }
}

fn softmax(z: &mut [f32], t: f32) {
    let t = if t > 0.0 { t } else { 1.0 };
    let m = z.iter().copied().fold(f32::MIN, f32::max);
    let mut s = 0.0;
    for x in z.iter_mut() {
        *x = ((*x - m) / t).exp();
        s += *x;
    }
    for x in z.iter_mut() {
        *x /= s;
    }
}

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct TrainConfig {
    /// Passes over the data.
    pub epochs: usize,
    /// Initial learning rate (AdaGrad).
    pub rate: f32,
    /// L2 regularisation per example.
    pub l2: f32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 40,
            rate: 0.5,
            l2: 1e-5,
        }
    }
}

/// Trains a model on `(features, class, weight)` examples: multinomial logistic regression with AdaGrad, in a
/// fixed order shuffled by a fixed seed, so the same data gives the same bytes.
pub fn train(examples: &[(Vec<u32>, usize, f32)], classes: Vec<String>, cfg: TrainConfig, data_hash: u64) -> Model {
    let c = classes.len();
    let mut buckets: Vec<u32> = examples.iter().flat_map(|e| e.0.iter().copied()).collect();
    buckets.sort_unstable();
    buckets.dedup();
    let idx = |f: u32| buckets.binary_search(&f).ok();
    let rows: Vec<(Vec<usize>, usize, f32)> = examples
        .iter()
        .map(|(fs, y, w)| (fs.iter().filter_map(|f| idx(*f)).collect(), *y, *w))
        .collect();
    let nf = buckets.len();
    let mut w = vec![0f32; nf * c];
    let mut g2 = vec![1e-6f32; nf * c];
    let mut b = vec![0f32; c];
    let mut gb = vec![1e-6f32; c];
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut z = vec![0f32; c];
    for _ in 0..cfg.epochs {
        for i in (1..order.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(i, (seed % (i as u64 + 1)) as usize);
        }
        for &r in &order {
            let (fs, y, weight) = &rows[r];
            let norm = 1.0 / (fs.len().max(1) as f32).sqrt();
            z.copy_from_slice(&b);
            for &f in fs {
                for k in 0..c {
                    z[k] += w[f * c + k] * norm;
                }
            }
            softmax(&mut z, 1.0);
            for k in 0..c {
                let g = (z[k] - if k == *y { 1.0 } else { 0.0 }) * weight;
                gb[k] += g * g;
                b[k] -= cfg.rate * g / gb[k].sqrt();
                if g.abs() < 1e-6 {
                    continue;
                }
                for &f in fs {
                    let j = f * c + k;
                    let gg = g * norm + cfg.l2 * w[j];
                    g2[j] += gg * gg;
                    w[j] -= cfg.rate * gg / g2[j].sqrt();
                }
            }
        }
    }
    let max = w.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    let scale = max / 127.0;
    let weights = w
        .iter()
        .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    Model {
        data_hash,
        temperature: 1.0,
        classes,
        buckets,
        weights,
        scale,
        bias: b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn learns_separable_classes_and_round_trips() {
        let data = [
            ("stoppe @sandbox", 0),
            ("halte @sandbox an", 0),
            ("stop @sandbox", 0),
            ("starte @sandbox", 1),
            ("start @sandbox", 1),
            ("fahr @sandbox hoch", 1),
            ("wie wird das wetter", 2),
            ("order a pizza", 2),
        ];
        let ex: Vec<_> = data.iter().map(|(t, y)| (features(&toks(t)), *y, 1.0)).collect();
        let m = train(
            &ex,
            vec!["sandbox.stop".into(), "sandbox.start".into(), "none".into()],
            TrainConfig::default(),
            42,
        );
        assert_eq!(m.predict(&features(&toks("stoppe @sandbox bitte")))[0].0, 0);
        assert_eq!(m.predict(&features(&toks("starte @sandbox")))[0].0, 1);
        let back = Model::from_bytes(&m.to_bytes()).unwrap();
        assert_eq!(back, m);
        assert!(Model::from_bytes(b"nonsense").is_err());
        assert!(Model::from_bytes(&m.to_bytes()[..20]).is_err());
    }
}
