//! Log setup: warnings by default, `-v` for more, `RUST_LOG` wins when set. Logs go to stderr so
//! that stdout stays parseable (`--output json`).

use tracing_subscriber::EnvFilter;

pub fn init(verbosity: u8) {
    let default = match verbosity {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // kube-client logs every failed request at ERROR; wharf reports those itself as one line
    // with the fix, so below -vv they would only repeat it.
    let default = if verbosity < 2 {
        format!("{default},kube_client=off")
    } else {
        default.to_owned()
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
