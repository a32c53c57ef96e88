//! wharf as a library: the CLI's verbs (`action`) over the parts that do the work.

pub mod action;
pub mod backup;
pub mod bundle;
pub mod charm;
pub mod cli;
pub mod dashboard;
pub mod engine;
pub mod host;
pub mod images;
pub mod kube;
pub mod logging;
pub mod pipeline;
pub mod render;
pub mod store;
