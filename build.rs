//! Compiles the shipped bundles and the charms' metadata, config and templates into the binary, so
//! that `wharf` is one file that carries the whole platform.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let mut files = Vec::new();
    collect(&root, "bundles", &|p| is_yaml(p), &mut files);
    for charm in sorted_dirs(&root.join("charms")) {
        let name = charm.file_name().unwrap().to_string_lossy().to_string();
        for file in ["metadata.yaml", "config.yaml"] {
            if charm.join(file).is_file() {
                files.push(format!("charms/{name}/{file}"));
            }
        }
        collect(
            &root,
            &format!("charms/{name}/templates"),
            &|p| is_yaml(p),
            &mut files,
        );
    }
    let mut out = String::from("&[\n");
    for rel in &files {
        let abs = root.join(rel);
        writeln!(
            out,
            "    ({rel:?}, include_str!({:?})),",
            abs.display().to_string()
        )
        .unwrap();
    }
    out.push_str("]\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("embedded.rs");
    std::fs::write(dest, out).unwrap();
    println!("cargo:rerun-if-changed=bundles");
    println!("cargo:rerun-if-changed=charms");
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

fn collect(root: &Path, rel_dir: &str, keep: &dyn Fn(&Path) -> bool, files: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(root.join(rel_dir)) else {
        return;
    };
    let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    names.sort();
    for path in names.into_iter().filter(|p| p.is_file() && keep(p)) {
        files.push(format!(
            "{rel_dir}/{}",
            path.file_name().unwrap().to_string_lossy()
        ));
    }
}
