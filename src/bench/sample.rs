//! Random numbers for the generator: a small fast PRNG and the access patterns (uniform, Zipf)
//! that pick which flow the next packet belongs to.
//!
//! [`SplitMix64`] is Vigna's SplitMix64: one `u64` of state, a handful of instructions per
//! number, good enough statistically for choosing flows (it passes BigCrush), and seedable so
//! a run can be repeated.
//!
//! [`Zipf`] samples ranks `0..n` with `P(k) ∝ 1/(k+1)^s` by rejection-inversion (Hörmann and
//! Derflinger, "Rejection-inversion to generate variates from monotone discrete distributions",
//! 1996): O(1) memory and expected time for any `n`, so 10 million flows cost no table. Rank 0 is
//! the most popular. [`Pattern::pick`] then scatters ranks over flow indices with a fixed
//! bijection, so that popular flows are not also neighbours in the flow table's slab (they were
//! created in index order).

use std::fmt;
use std::str::FromStr;

/// SplitMix64 (Vigna): a seedable 64-bit generator.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0), by multiply-shift: no division, and a bias below
    /// `n / 2^64`, far under anything a run of a few seconds can see.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Zipf-distributed ranks `0..n` with exponent `s >= 0` (rejection-inversion).
#[derive(Clone, Debug)]
pub struct Zipf {
    n: f64,
    s: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    cut: f64,
}

/// `log1p(x) / x`, continuous at 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// `expm1(x) / x`, continuous at 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    }
}

impl Zipf {
    /// Ranks `0..n` (`n >= 1`) with exponent `s` (`s >= 0`; 0 is uniform).
    pub fn new(n: u64, s: f64) -> Zipf {
        let s = if s.is_finite() && s > 0.0 { s } else { 0.0 };
        let mut z = Zipf {
            n: n.max(1) as f64,
            s,
            h_integral_x1: 0.0,
            h_integral_n: 0.0,
            cut: 0.0,
        };
        z.h_integral_x1 = z.h_integral(1.5) - 1.0;
        z.h_integral_n = z.h_integral(z.n + 0.5);
        z.cut = 2.0 - z.h_integral_inverse(z.h_integral(2.5) - z.h(2.0));
        z
    }

    /// `x^-s`.
    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }

    /// An antiderivative of `h`: `(x^(1-s) - 1) / (1 - s)` (`ln x` at `s = 1`).
    fn h_integral(&self, x: f64) -> f64 {
        let lx = x.ln();
        helper2((1.0 - self.s) * lx) * lx
    }

    fn h_integral_inverse(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.s)).max(-1.0);
        (helper1(t) * x).exp()
    }

    /// One rank in `0..n`.
    #[inline]
    pub fn sample(&self, rng: &mut SplitMix64) -> u64 {
        loop {
            let u = self.h_integral_n + rng.next_f64() * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inverse(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.cut || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64 - 1;
            }
        }
    }
}

/// Which flow the next packet belongs to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PatternKind {
    /// Every flow equally likely.
    Uniform,
    /// Zipf with this exponent (1.0 when written `zipf` alone).
    Zipf(f64),
}

impl FromStr for PatternKind {
    type Err = String;
    fn from_str(s: &str) -> Result<PatternKind, String> {
        match s.split_once(':') {
            None if s == "uniform" => Ok(PatternKind::Uniform),
            None if s == "zipf" => Ok(PatternKind::Zipf(1.0)),
            Some(("zipf", e)) => match e.parse::<f64>() {
                Ok(v) if v.is_finite() && (0.0..=10.0).contains(&v) => Ok(PatternKind::Zipf(v)),
                _ => Err(format!(
                    "`{e}`: the Zipf exponent must be a number from 0 to 10"
                )),
            },
            _ => Err(format!(
                "`{s}`: give uniform, zipf or zipf:EXPONENT (e.g. zipf:0.99)"
            )),
        }
    }
}

impl fmt::Display for PatternKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternKind::Uniform => f.write_str("uniform"),
            PatternKind::Zipf(s) => write!(f, "zipf:{s}"),
        }
    }
}

/// A pattern over `n` flows, ready to draw from.
#[derive(Clone, Debug)]
pub struct Pattern {
    n: u64,
    zipf: Option<Zipf>,
    /// Multiplier of the rank → index bijection (coprime with `n`).
    spread: u64,
}

/// A large prime: `rank * SPREAD mod n` is a bijection whenever `n` is not a multiple of it.
const SPREAD: u64 = 2_654_435_761;

impl Pattern {
    /// `kind` over flows `0..n` (`n >= 1`).
    pub fn new(kind: PatternKind, n: u64) -> Pattern {
        let n = n.max(1);
        Pattern {
            n,
            zipf: match kind {
                PatternKind::Uniform => None,
                PatternKind::Zipf(s) => Some(Zipf::new(n, s)),
            },
            spread: if n % SPREAD == 0 { 1 } else { SPREAD % n },
        }
    }

    /// The next flow index in `0..n`.
    #[inline]
    pub fn pick(&self, rng: &mut SplitMix64) -> u64 {
        match &self.zipf {
            None => rng.below(self.n),
            Some(z) => {
                let rank = z.sample(rng);
                ((u128::from(rank) * u128::from(self.spread)) % u128::from(self.n)) as u64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_deterministic_and_below_stays_in_range() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            let v = a.below(10);
            counts[v as usize] += 1;
        }
        assert!(
            counts.iter().all(|c| (9_500..10_500).contains(c)),
            "{counts:?}"
        );
        assert_eq!(a.below(0), 0);
        let f = a.next_f64();
        assert!((0.0..1.0).contains(&f));
    }

    /// Exact Zipf probabilities of ranks 0..n.
    fn exact(n: u64, s: f64) -> Vec<f64> {
        let w: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-s)).collect();
        let total: f64 = w.iter().sum();
        w.iter().map(|x| x / total).collect()
    }

    #[test]
    fn zipf_matches_the_exact_distribution() {
        for (n, s) in [(100u64, 1.0), (1000, 0.99), (50, 1.5), (20, 0.0), (10, 3.0)] {
            let z = Zipf::new(n, s);
            let mut rng = SplitMix64::new(42);
            let draws = 400_000;
            let mut counts = vec![0u64; n as usize];
            for _ in 0..draws {
                let k = z.sample(&mut rng);
                assert!(k < n);
                counts[k as usize] += 1;
            }
            let p = exact(n, s);
            // Chi-square over ranks with an expected count of at least 20.
            let mut chi2 = 0.0;
            let mut dof = 0;
            for (c, p) in counts.iter().zip(&p) {
                let e = p * draws as f64;
                if e >= 20.0 {
                    chi2 += (*c as f64 - e).powi(2) / e;
                    dof += 1;
                }
            }
            // Generous bound: mean dof, sd sqrt(2 dof); 6 sd is never hit by a correct sampler.
            let bound = dof as f64 + 6.0 * (2.0 * dof as f64).sqrt();
            assert!(chi2 < bound, "n={n} s={s}: chi2 {chi2:.1} over {dof} dof");
            // The head is where Zipf matters: rank 0 within 1% absolute.
            let head = counts[0] as f64 / draws as f64;
            assert!(
                (head - p[0]).abs() < 0.01,
                "n={n} s={s}: {head} vs {}",
                p[0]
            );
        }
    }

    #[test]
    fn zipf_handles_ten_million_ranks() {
        let z = Zipf::new(10_000_000, 1.0);
        let mut rng = SplitMix64::new(1);
        let mut top = 0;
        for _ in 0..100_000 {
            let k = z.sample(&mut rng);
            assert!(k < 10_000_000);
            if k == 0 {
                top += 1;
            }
        }
        // P(rank 0) = 1 / H(10^7) ≈ 0.0600.
        assert!((5_400..6_600).contains(&top), "{top}");
    }

    #[test]
    fn pattern_spreads_ranks_over_every_index() {
        for n in [1u64, 7, 1000, 65_536] {
            let p = Pattern::new(PatternKind::Zipf(1.0), n);
            let mut seen: Vec<u64> = (0..n)
                .map(|r| ((u128::from(r) * u128::from(p.spread)) % u128::from(n)) as u64)
                .collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len() as u64, n, "a bijection on 0..{n}");
        }
        let p = Pattern::new(PatternKind::Uniform, 5);
        let mut rng = SplitMix64::new(3);
        assert!((0..1000).all(|_| p.pick(&mut rng) < 5));
    }

    #[test]
    fn pattern_parses() {
        assert_eq!("uniform".parse::<PatternKind>(), Ok(PatternKind::Uniform));
        assert_eq!("zipf".parse::<PatternKind>(), Ok(PatternKind::Zipf(1.0)));
        assert_eq!(
            "zipf:0.99".parse::<PatternKind>(),
            Ok(PatternKind::Zipf(0.99))
        );
        assert!("zipf:x".parse::<PatternKind>().is_err());
        assert!("pareto".parse::<PatternKind>().is_err());
        assert_eq!(PatternKind::Zipf(1.2).to_string(), "zipf:1.2");
    }
}
