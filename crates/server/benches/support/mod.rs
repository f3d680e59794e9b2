//! What the benches share: a reproducible random source and percentiles.

/// The multilingual model's vector width.
pub const DIM: usize = 384;

/// xorshift64*: reproducible, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A random unit vector of [`DIM`] floats.
    pub fn unit_vector(&mut self) -> Vec<f32> {
        let v: Vec<f32> = (0..DIM).map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }
}

/// The `p` quantile (0 to 1) of ascending `sorted`.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
