//! What the benches share: a reproducible random source, percentiles, and a fresh PostgreSQL database.

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

/// A fresh database named `{prefix}_{pid}`, made in the PostgreSQL server of admin URL `admin`: its URL.
pub async fn fresh_postgres(admin: &str, prefix: &str) -> anyhow::Result<String> {
    let (base, _) =
        admin.rsplit_once('/').ok_or_else(|| anyhow::anyhow!("{admin}: no database name at the end of the URL"))?;
    let name = format!("{prefix}_{}", std::process::id());
    let pool = sqlx::PgPool::connect(admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await?;
    Ok(format!("{base}/{name}"))
}
