//! Raspberry Pi: the memory cgroup needs `cgroup_enable=memory cgroup_memory=1` on the kernel
//! command line. `wharf up` adds what is missing (keeping a backup), then the Pi must reboot.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::checks::PI_CGROUP_FLAGS;

/// The cmdline with the missing flags appended; `None` when nothing is missing.
/// The file is one line; the flags go at its end so nothing the firmware reads first moves.
pub fn with_cgroup_flags(cmdline: &str) -> Option<String> {
    let line = cmdline.trim_end_matches(['\n', '\r']);
    let words: Vec<&str> = line.split_whitespace().collect();
    let missing: Vec<&str> = PI_CGROUP_FLAGS
        .iter()
        .copied()
        .filter(|f| !words.contains(f))
        .collect();
    if missing.is_empty() {
        return None;
    }
    Some(format!("{} {}\n", line.trim_end(), missing.join(" ")))
}

/// Add the flags to the file at `path`, keeping `<path>.wharf-backup`. Returns the backup path,
/// or `None` when the flags were already there. In dry-run, says what it would do.
pub fn add_cgroup_flags(path: &Path, dry_run: bool) -> anyhow::Result<Option<PathBuf>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let Some(new) = with_cgroup_flags(&text) else {
        return Ok(None);
    };
    let backup = PathBuf::from(format!("{}.wharf-backup", path.display()));
    if dry_run {
        println!(
            "would copy {} to {} and write: {}",
            path.display(),
            backup.display(),
            new.trim_end()
        );
        return Ok(Some(backup));
    }
    std::fs::copy(path, &backup)
        .with_context(|| format!("cannot back up {} to {}", path.display(), backup.display()))?;
    std::fs::write(path, new).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Some(backup))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_only_missing_flags() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "console=tty1 rootwait\n",
                Some("console=tty1 rootwait cgroup_enable=memory cgroup_memory=1\n"),
            ),
            (
                "console=tty1 cgroup_memory=1",
                Some("console=tty1 cgroup_memory=1 cgroup_enable=memory\n"),
            ),
            ("a cgroup_enable=memory cgroup_memory=1\n", None),
        ];
        for (input, want) in cases {
            assert_eq!(with_cgroup_flags(input).as_deref(), *want, "{input:?}");
        }
    }

    #[test]
    fn keeps_a_backup_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cmdline.txt");
        std::fs::write(&path, "console=tty1 quiet\n").unwrap();
        assert!(add_cgroup_flags(&path, true).unwrap().is_some());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "console=tty1 quiet\n",
            "dry run"
        );
        let backup = add_cgroup_flags(&path, false).unwrap().unwrap();
        assert_eq!(
            std::fs::read_to_string(&backup).unwrap(),
            "console=tty1 quiet\n"
        );
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .ends_with("cgroup_enable=memory cgroup_memory=1\n")
        );
        assert_eq!(add_cgroup_flags(&path, false).unwrap(), None);
    }
}
