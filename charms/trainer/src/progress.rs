//! The progress format: one JSON object per line on the training container's stdout, one line
//! per epoch. The built-in trainer writes it (`train::EpochReport`); any container may:
//!
//! ```text
//! {"epoch": 1, "loss": 0.52, "accuracy": 0.81}
//! {"epoch": 2, "loss": 0.41, "accuracy": 0.85, "train_accuracy": 0.86}
//! ```
//!
//! `epoch` (a whole number) is required; `loss`, `accuracy` (held-out accuracy; the built-in
//! trainer's `test_accuracy` is read as it) and `train_accuracy` are optional numbers; other keys
//! are ignored, and so is every line that is not such an object (ordinary log output). The
//! operator reads these lines from the pod's log into `status.epochs` while the job runs, and
//! takes the final metrics from the termination message (`WHARF_METRICS_FILE`, which holds one
//! such line or the built-in trainer's summary) or else from the last epoch.
//!
//! This module is the one parser of the format; nothing else reads these lines.

use serde::Deserialize;

use crate::crd::{EpochMetrics, TrainMetrics};

/// How many epochs `status.epochs` keeps (the most recent): a curve for any run wharf's users
/// start, while the status stays far below the API server's object size limit (~60 KB at 500).
pub const MAX_EPOCHS: usize = 500;

/// One line as written; `accuracy` and `test_accuracy` are two names for the same number.
#[derive(Deserialize)]
struct Line {
    epoch: u32,
    #[serde(default)]
    loss: Option<f64>,
    #[serde(default)]
    accuracy: Option<f64>,
    #[serde(default)]
    test_accuracy: Option<f64>,
    #[serde(default)]
    train_accuracy: Option<f64>,
}

/// The epoch a line reports, or None for any other line.
pub fn parse_line(line: &str) -> Option<EpochMetrics> {
    let line = line.trim();
    if !line.starts_with('{') {
        return None;
    }
    let l: Line = serde_json::from_str(line).ok()?;
    Some(EpochMetrics {
        epoch: l.epoch,
        loss: l.loss,
        accuracy: l.accuracy.or(l.test_accuracy),
        train_accuracy: l.train_accuracy,
    })
}

/// Every epoch line in `text` (a log, or part of one), in order.
pub fn parse(text: &str) -> Vec<EpochMetrics> {
    text.lines().filter_map(parse_line).collect()
}

/// `history` with `new` merged in: one entry per epoch (a later report of an epoch replaces the
/// earlier one, e.g. a retried pod), ordered by epoch, the most recent `MAX_EPOCHS` kept.
pub fn merge(history: &[EpochMetrics], new: Vec<EpochMetrics>) -> Vec<EpochMetrics> {
    let mut by_epoch: std::collections::BTreeMap<u32, EpochMetrics> =
        history.iter().map(|e| (e.epoch, e.clone())).collect();
    for e in new {
        by_epoch.insert(e.epoch, e);
    }
    let skip = by_epoch.len().saturating_sub(MAX_EPOCHS);
    by_epoch.into_values().skip(skip).collect()
}

/// Final metrics from one epoch's line, when it has both a loss and an accuracy.
pub fn final_metrics(last: &EpochMetrics) -> Option<TrainMetrics> {
    Some(TrainMetrics {
        test_accuracy: last.accuracy?,
        train_accuracy: last.train_accuracy,
        loss: last.loss?,
        epochs: last.epoch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::EpochReport;

    fn epoch(n: u32, loss: f64) -> EpochMetrics {
        EpochMetrics {
            epoch: n,
            loss: Some(loss),
            ..EpochMetrics::default()
        }
    }

    #[test]
    fn the_built_in_trainers_report_is_the_same_format() {
        let report = EpochReport {
            epoch: 3,
            loss: 0.25,
            train_accuracy: 0.91,
            test_accuracy: 0.88,
            seconds: 1.5,
            samples_per_second: 4000.0,
        };
        let line = serde_json::to_string(&report).unwrap();
        assert_eq!(
            parse_line(&line),
            Some(EpochMetrics {
                epoch: 3,
                loss: Some(0.25),
                accuracy: Some(0.88),
                train_accuracy: Some(0.91),
            })
        );
    }

    #[test]
    fn other_lines_are_ignored() {
        let log = "starting\n{\"epoch\":1,\"loss\":0.5,\"accuracy\":0.8}\n\
                   {\"step\":10,\"loss\":0.4}\n[1, 2]\n{\"epoch\":\"two\"}\n{not json\n\
                   {\"epoch\":2,\"loss\":0.4,\"extra\":\"ok\"}\r\n";
        let epochs = parse(log);
        assert_eq!(epochs.len(), 2, "{epochs:?}");
        assert_eq!(epochs[0].accuracy, Some(0.8));
        assert_eq!((epochs[1].epoch, epochs[1].accuracy), (2, None));
    }

    #[test]
    fn merging_replaces_repeated_epochs_and_keeps_the_most_recent() {
        let history: Vec<_> = (1..=3).map(|n| epoch(n, 1.0)).collect();
        let merged = merge(&history, vec![epoch(3, 0.5), epoch(4, 0.4)]);
        let seen: Vec<_> = merged.iter().map(|e| (e.epoch, e.loss)).collect();
        assert_eq!(
            seen,
            [
                (1, Some(1.0)),
                (2, Some(1.0)),
                (3, Some(0.5)),
                (4, Some(0.4))
            ]
        );
        let long: Vec<_> = (1..=MAX_EPOCHS as u32 + 20)
            .map(|n| epoch(n, 0.1))
            .collect();
        let capped = merge(&merged, long);
        assert_eq!(capped.len(), MAX_EPOCHS);
        assert_eq!(capped[0].epoch, 21);
        assert_eq!(capped.last().unwrap().epoch, MAX_EPOCHS as u32 + 20);
    }

    #[test]
    fn final_metrics_need_a_loss_and_an_accuracy() {
        let mut last = epoch(7, 0.3);
        assert_eq!(final_metrics(&last), None);
        last.accuracy = Some(0.9);
        let m = final_metrics(&last).unwrap();
        assert_eq!(
            (m.test_accuracy, m.loss, m.epochs, m.train_accuracy),
            (0.9, 0.3, 7, None)
        );
    }

    /// A real process in the role of a training container: a shell script printing progress
    /// the way a user's image would, among ordinary output; its stdout is what the operator
    /// reads from the pod log.
    #[test]
    fn a_real_container_commands_output_becomes_epochs() {
        let script = r#"echo "loading data from $WHARF_DATASET_URI"
for e in 1 2 3; do
  printf '{"epoch": %d, "loss": 0.%d, "accuracy": 0.8%d}\n' "$e" "$((9 - e))" "$e"
done
echo done"#;
        let out = std::process::Command::new("sh")
            .args(["-c", script])
            .env("WHARF_DATASET_URI", "pvc://data/fashion")
            .output()
            .expect("sh runs");
        assert!(out.status.success());
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.starts_with("loading data from pvc://data/fashion\n"));
        let epochs = parse(&stdout);
        let seen: Vec<_> = epochs
            .iter()
            .map(|e| (e.epoch, e.loss, e.accuracy))
            .collect();
        assert_eq!(
            seen,
            [
                (1, Some(0.8), Some(0.81)),
                (2, Some(0.7), Some(0.82)),
                (3, Some(0.6), Some(0.83))
            ]
        );
        assert_eq!(
            final_metrics(epochs.last().unwrap()).unwrap().test_accuracy,
            0.83
        );
    }
}
