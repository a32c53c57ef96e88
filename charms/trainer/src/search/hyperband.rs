//! Hyperband (Li et al., 2018) in its asynchronous form (ASHA, Li et al., 2020), which suits
//! trials that run side by side and report epoch by epoch. Each trial trains towards the template's
//! `epochs` (the most any trial gets); trial `i` belongs to bracket `i mod brackets`, and bracket
//! `b` has rungs at `minEpochs·eta^(b+k)` epochs below that. When a trial reaches a rung, it goes
//! on only if its objective there is among the best `⌈n/eta⌉` of the `n` trials of its bracket
//! that reached the rung so far (itself included); otherwise it is stopped. Bracket 0 stops
//! earliest and most often; the last bracket has no rung and runs every trial to the end, which is
//! Hyperband's hedge against metrics that start slow and end well.
//!
//! Parameters are drawn as random search draws them; this module only decides who stops.

use crate::optimization::{Direction, OptimizationJobSpec, ParameterName};

pub const DEFAULT_ETA: u32 = 3;
pub const DEFAULT_MIN_EPOCHS: u32 = 1;

/// The rung schedule of one search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub min_epochs: u32,
    pub max_epochs: u32,
    pub eta: u32,
}

impl Schedule {
    /// From the spec (after [`check`] passed).
    pub fn of(spec: &OptimizationJobSpec) -> Schedule {
        let algorithm = &spec.search_algorithm;
        Schedule {
            min_epochs: algorithm.min_epochs.unwrap_or(DEFAULT_MIN_EPOCHS).max(1),
            max_epochs: spec.train_job_template.epochs.unwrap_or(0),
            eta: algorithm.eta.unwrap_or(DEFAULT_ETA).max(2),
        }
    }

    /// How many brackets: one more than the times `eta` fits between min and max epochs.
    pub fn brackets(&self) -> u32 {
        let mut s = 0;
        let mut r = u64::from(self.min_epochs) * u64::from(self.eta);
        while r <= u64::from(self.max_epochs) {
            s += 1;
            r *= u64::from(self.eta);
        }
        s + 1
    }

    pub fn bracket(&self, trial: u32) -> u32 {
        trial % self.brackets()
    }

    /// The epochs at which trial `trial` is judged, ascending (below `max_epochs`).
    pub fn rungs(&self, trial: u32) -> Vec<u32> {
        let mut r = u64::from(self.min_epochs) * u64::from(self.eta).pow(self.bracket(trial));
        let mut rungs = Vec::new();
        while r < u64::from(self.max_epochs) {
            rungs.push(r as u32);
            r *= u64::from(self.eta);
        }
        rungs
    }
}

/// True when a trial whose objective at a rung is `value` should stop, given the values the other
/// trials of its bracket had at that rung.
pub fn should_stop(value: f64, others: &[f64], eta: u32, direction: Direction) -> bool {
    let n = others.len() + 1;
    let keep = n.div_ceil(eta.max(2) as usize);
    let better = others
        .iter()
        .filter(|o| direction.better(**o, value))
        .count();
    better >= keep
}

/// What a hyperband spec needs beyond the common checks.
pub fn check(spec: &OptimizationJobSpec) -> Vec<String> {
    let mut errors = Vec::new();
    let algorithm = &spec.search_algorithm;
    if spec
        .parameters
        .iter()
        .any(|p| p.name == ParameterName::Epochs)
    {
        errors.push(
            "spec.parameters: hyperband decides how long trials train; remove the epochs \
             parameter and set spec.trainJobTemplate.epochs (the most a trial trains)"
                .into(),
        );
    }
    match spec.train_job_template.epochs {
        None => errors.push(
            "spec.trainJobTemplate.epochs: hyperband needs it (the most a trial trains)".into(),
        ),
        Some(max) => {
            let min = algorithm.min_epochs.unwrap_or(DEFAULT_MIN_EPOCHS);
            if min >= max {
                errors.push(format!(
                    "spec.searchAlgorithm.minEpochs: {min} leaves no rung below the template's \
                     {max} epochs; lower it or raise spec.trainJobTemplate.epochs"
                ));
            }
        }
    }
    if algorithm.eta.is_some_and(|eta| eta < 2) {
        errors.push("spec.searchAlgorithm.eta: must be at least 2".into());
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_and_rungs_follow_eta() {
        let s = Schedule {
            min_epochs: 1,
            max_epochs: 27,
            eta: 3,
        };
        // 1, 3, 9, 27: three times eta fits, four brackets.
        assert_eq!(s.brackets(), 4);
        assert_eq!(s.rungs(0), [1, 3, 9]);
        assert_eq!(s.rungs(1), [3, 9]);
        assert_eq!(s.rungs(2), [9]);
        assert_eq!(s.rungs(3), Vec::<u32>::new());
        assert_eq!(s.rungs(4), [1, 3, 9], "trial 4 is in bracket 0 again");
    }

    #[test]
    fn only_the_best_third_goes_on_at_a_rung() {
        let max = Direction::Maximize;
        // The first to reach a rung always goes on.
        assert!(!should_stop(0.1, &[], 3, max));
        // Of two, keep one: the worse stops, the better goes on.
        assert!(should_stop(0.5, &[0.8], 3, max));
        assert!(!should_stop(0.9, &[0.8], 3, max));
        // Of four, keep two.
        assert!(!should_stop(0.7, &[0.8, 0.6, 0.5], 3, max));
        assert!(should_stop(0.55, &[0.8, 0.6, 0.7], 3, max));
        // For a loss, lower is better.
        assert!(should_stop(0.9, &[0.3], 3, Direction::Minimize));
        assert!(!should_stop(0.2, &[0.3], 3, Direction::Minimize));
    }
}
