//! Random search (upstream's `random`): each parameter drawn on its own, uniformly in its
//! sampling space (the logarithm for `logUniform`), from the trial's own seeded stream — so a
//! trial's values depend only on the seed and its index.

use rand::Rng;

use super::{internal_range, stream, to_value};
use crate::optimization::Parameter;

/// The stream purpose of random draws (TPE's candidates use another).
const PURPOSE: u64 = 1;

pub fn propose(parameters: &[Parameter], seed: u64, index: u32) -> Vec<f64> {
    let mut rng = stream(seed, index, PURPOSE);
    parameters
        .iter()
        .map(|p| {
            let (lo, hi) = internal_range(p);
            to_value(p, lo + (hi - lo) * rng.random::<f64>())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn the_same_seed_and_index_give_the_same_values_and_others_differ() {
        let ps = [log_uniform_lr(), batch_sizes()];
        assert_eq!(propose(&ps, 7, 3), propose(&ps, 7, 3));
        assert_ne!(propose(&ps, 7, 3), propose(&ps, 7, 4));
        assert_ne!(propose(&ps, 7, 3), propose(&ps, 8, 3));
    }

    #[test]
    fn draws_stay_in_the_space_and_cover_it() {
        let ps = [log_uniform_lr(), batch_sizes()];
        // 10 seeds x 400 trials.
        let draws: Vec<Vec<f64>> = (0..10u64)
            .flat_map(|seed| (0..400).map(move |i| (seed, i)))
            .map(|(seed, i)| propose(&ps, seed, i))
            .collect();
        for d in &draws {
            assert!((1e-4..=1e-1).contains(&d[0]), "{d:?}");
            assert!([16.0, 32.0, 64.0, 128.0].contains(&d[1]), "{d:?}");
        }
        // Log-uniform: a third of the draws in each decade (1333, sd 30).
        let below_1e3 = draws.iter().filter(|d| d[0] < 1e-3).count();
        assert!(
            (1220..1450).contains(&below_1e3),
            "{below_1e3} of 4000 below 1e-3"
        );
        // Categorical: a quarter each (1000, sd 27).
        for choice in [16.0, 32.0, 64.0, 128.0] {
            let n = draws.iter().filter(|d| d[1] == choice).count();
            assert!((900..1100).contains(&n), "{choice}: {n} of 4000");
        }
    }
}
