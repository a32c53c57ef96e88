//! Output into a pipe whose reader goes away (`wharf render lite | head`): wharf stops quietly,
//! with success and nothing on stderr, as `cat` or ripgrep do, instead of `error: Broken pipe`.

use std::io::Read;
use std::process::{Command, Stdio};

/// Run wharf with stdout a pipe, read `bytes` of it, close the pipe, and return (success, stderr).
fn run_and_close_early(args: &[&str], bytes: usize) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wharf");
    let mut stdout = child.stdout.take().unwrap();
    let mut head = vec![0u8; bytes];
    stdout
        .read_exact(&mut head)
        .expect("wharf wrote something first");
    drop(stdout); // what `head` does once it has its lines
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    (status.success(), stderr)
}

#[test]
fn render_into_a_closed_pipe_ends_quietly() {
    // Both outputs are larger than a pipe's buffer (64 KiB), so wharf is still writing when the
    // reader leaves.
    for args in [
        &["render", "lite"][..],
        &["render", "lite", "--output", "json"][..],
    ] {
        let (success, stderr) = run_and_close_early(args, 64);
        assert_eq!(stderr, "", "wharf {args:?}: stderr");
        assert!(success, "wharf {args:?} failed when its reader went away");
    }
}
