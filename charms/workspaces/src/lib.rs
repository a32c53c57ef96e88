//! wharf-workspaces: the operator of people's workspaces on the platform: Profiles (a namespace
//! per user, [`profile`]) and Notebooks (Jupyter servers in them, [`notebook`]), with the owner
//! check the gateway asks before it proxies a notebook ([`authz`]).
//!
//! [`cli`] turns flags into an [`config::OperatorConfig`] once; [`operator`] runs the controllers
//! under leader election with [`metrics`]; [`error`] is what a reconcile can fail with.

pub mod authz;
pub mod cli;
pub mod config;
pub mod error;
pub mod metrics;
pub mod notebook;
pub mod operator;
pub mod profile;
