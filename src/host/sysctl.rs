//! The safe fix `wharf check --fix` applies: raise the inotify limits MicroK8s needs, persisted
//! under /etc/sysctl.d so they survive a reboot, and applied now with `sysctl --system`.

use anyhow::Context;

use super::checks::{INOTIFY_MIN_INSTANCES, INOTIFY_MIN_WATCHES};
use super::facts::HostRoot;
use super::runner::{Cmd, Runner};

/// Our own drop-in file, so the fix never edits a file the user or the distribution owns.
pub const INOTIFY_CONF: &str = "/etc/sysctl.d/60-wharf-inotify.conf";

/// The drop-in's contents.
pub fn inotify_conf() -> String {
    format!(
        "# Written by `wharf check --fix`: MicroK8s runs many file watchers per pod.\n\
         fs.inotify.max_user_instances = {INOTIFY_MIN_INSTANCES}\n\
         fs.inotify.max_user_watches = {INOTIFY_MIN_WATCHES}\n"
    )
}

/// Write the drop-in under the host root and load it. In dry-run, only say what would happen.
pub fn apply_inotify_fix(root: &HostRoot, runner: &Runner) -> anyhow::Result<()> {
    let path = root.path(INOTIFY_CONF);
    if runner.is_dry_run() {
        println!("would write {}:\n{}", path.display(), inotify_conf());
    } else {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&path, inotify_conf())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    runner
        .run(&Cmd::new("sysctl").arg("--system"))
        .context("the limits are written but not loaded; run `sudo sysctl --system` or reboot")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_the_drop_in_and_runs_sysctl_system() {
        let root = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        let log = bin.path().join("log");
        let sysctl = bin.path().join("sysctl");
        std::fs::write(
            &sysctl,
            format!("#!/bin/sh\necho \"sysctl $*\" >> {}\n", log.display()),
        )
        .unwrap();
        std::fs::set_permissions(&sysctl, std::fs::Permissions::from_mode(0o755)).unwrap();
        let runner = Runner::new().path(format!("{}:/usr/bin:/bin", bin.path().display()));
        apply_inotify_fix(&HostRoot::new(root.path()), &runner).unwrap();
        let conf = std::fs::read_to_string(root.path().join("etc/sysctl.d/60-wharf-inotify.conf"))
            .unwrap();
        assert!(conf.contains("fs.inotify.max_user_instances = 1280\n"));
        assert!(conf.contains("fs.inotify.max_user_watches = 1048576\n"));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "sysctl --system\n");
    }

    #[test]
    fn dry_run_writes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let runner = Runner::new().dry_run(true);
        apply_inotify_fix(&HostRoot::new(root.path()), &runner).unwrap();
        assert!(!root.path().join("etc").exists());
        assert_eq!(runner.journal(), vec!["sysctl --system".to_string()]);
    }
}
