//! Host preflight checks and the command runner.
