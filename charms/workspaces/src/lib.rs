//! wharf-workspaces: the operator of people's workspaces on the platform. Today Profiles (a
//! namespace per user, [`profile`]); Notebooks will join them in this binary.
//!
//! [`cli`] turns flags into an [`config::OperatorConfig`] once; [`operator`] runs the controllers
//! under leader election with [`metrics`]; [`error`] is what a reconcile can fail with.

pub mod cli;
pub mod config;
pub mod error;
pub mod metrics;
pub mod operator;
pub mod profile;
