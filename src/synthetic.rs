//! Seeded random numbers for synthetic data — the demo's traffic, the labelled fixture
//! archives, the benchmarks: the same seed gives the same data on every machine and
//! release (xoshiro256++, whose output `rand_xoshiro` fixes, with `rand_distr`'s normal and
//! Poisson samplers). The judges themselves draw no random numbers, but for Kayenta's noise
//! on constant series, which is the JDK-exact `java.util.Random` port in `judge::transform`.

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Gamma, Normal, Poisson};
use rand_xoshiro::Xoshiro256PlusPlus;

/// A seeded generator of the distributions synthetic data needs.
pub struct Synth(Xoshiro256PlusPlus);

impl Synth {
    pub fn new(seed: u64) -> Self {
        Synth(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    /// Uniform on `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// Normal with this mean and standard deviation (`sd ≥ 0`).
    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        Normal::new(mean, sd.max(0.0)).map_or(mean, |n| n.sample(&mut self.0))
    }

    /// `n` normal values.
    pub fn normals(&mut self, n: usize, mean: f64, sd: f64) -> Vec<f64> {
        (0..n).map(|_| self.normal(mean, sd)).collect()
    }

    /// This generator as a function returning uniform values on `[0, 1)`.
    pub fn into_uniforms(mut self) -> impl FnMut() -> f64 {
        move || self.uniform()
    }

    /// Gamma with this shape and scale (mean `shape · scale`; 0 when either is not positive).
    pub fn gamma(&mut self, shape: f64, scale: f64) -> f64 {
        Gamma::new(shape, scale).map_or(0.0, |g| g.sample(&mut self.0))
    }

    /// Poisson with mean `lambda` (0 for `lambda ≤ 0`).
    pub fn poisson(&mut self, lambda: f64) -> f64 {
        Poisson::new(lambda).map_or(0.0, |p| p.sample(&mut self.0))
    }
}
