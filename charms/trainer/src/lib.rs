//! wharf-trainer: trains Fashion-MNIST models (mlp, cnn) with candle and writes wharf-model
//! artifacts, and runs the TrainJob operator ([`operator`]) for those and for any training
//! container that reports progress in the same JSON lines ([`progress`]), and the
//! OptimizationJob controller ([`optimization`], [`search`]) that tunes TrainJobs. The binary (`main.rs`)
//! only parses flags and calls into these modules.

pub mod crd;
pub mod data;
pub mod idx;
pub mod kernels;
pub mod net;
pub mod operator;
pub mod optimization;
pub mod output;
pub mod predict;
pub mod progress;
pub mod search;
pub mod train;

pub use train::{EpochReport, TrainConfig, train};
