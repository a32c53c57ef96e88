//! `wharf images build|list|import|push|export`: wharf's own images from its static binaries to
//! a cluster, online or air-gapped. `import_into` is also `wharf up`'s images step and runs after
//! `wharf cluster join`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Serialize;

use super::{Global, Outcome, print_stdout};
use crate::charm::Source;
use crate::host::microk8s::{Access, MicroK8sCli};
use crate::host::runner::Runner;
use crate::images::oci::Layout;
use crate::images::registry::{Reference, Registry};
use crate::images::{Arch, Workload, build, upstream};

/// What `wharf images` was asked to do (cli.rs builds it from the command line).
#[derive(Debug, Clone)]
pub enum Command {
    Build(BuildOptions),
    List(ListOptions),
    Import(ImportOptions),
    Push(PushOptions),
    Export(ExportOptions),
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub out: PathBuf,
    /// Architecture names as given (`amd64`, `arm64`), checked here.
    pub arch: Vec<String>,
    /// `ARCH=DIR`, as given.
    pub binaries: Vec<String>,
    /// The images to build, by name (`wharf-trainer`, `wharf-server`, `wharf`), as given.
    pub images: Vec<String>,
    pub dataset: PathBuf,
    /// The CA bundle to put in the images; None: none.
    pub ca_bundle: Option<PathBuf>,
    pub source_date_epoch: i64,
}

#[derive(Debug, Clone)]
pub struct ListOptions {
    pub archive: Option<PathBuf>,
    pub bundle: String,
    pub charms_dir: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub archive: PathBuf,
    pub dry_run: bool,
}

#[derive(Debug, Clone)]
pub struct PushOptions {
    pub registry: String,
    pub archive: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub bundle: String,
    pub out: PathBuf,
    pub archive: PathBuf,
    pub upstream: bool,
    /// Pull the upstream images from this registry instead of theirs.
    pub mirror: Option<String>,
    pub charms_dir: Option<PathBuf>,
}

pub fn run(global: &Global, command: &Command) -> Outcome {
    match command {
        Command::Build(args) => build_images(global, args),
        Command::List(args) => list(global, args),
        Command::Import(args) => import(global, args),
        Command::Push(args) => push(global, args),
        Command::Export(args) => export(global, args),
    }
}

fn build_images(global: &Global, args: &BuildOptions) -> Outcome {
    let started = Instant::now();
    let mut binaries = BTreeMap::new();
    for a in &args.arch {
        let arch: Arch = a.parse().map_err(anyhow::Error::msg).context("--arch")?;
        binaries.insert(arch, PathBuf::from("dist").join(arch.as_str()));
    }
    for spec in &args.binaries {
        let (arch, dir) = spec.split_once('=').with_context(|| {
            format!("--binaries {spec}: expected ARCH=DIR, e.g. amd64=dist/amd64")
        })?;
        let arch: Arch = arch
            .parse()
            .map_err(anyhow::Error::msg)
            .context("--binaries")?;
        if !binaries.contains_key(&arch) {
            bail!(
                "--binaries {spec}: {arch} is not in --arch {}",
                args.arch.join(",")
            );
        }
        binaries.insert(arch, PathBuf::from(dir));
    }
    let inputs = build::Inputs {
        binaries,
        workloads: args
            .images
            .iter()
            .map(|i| i.parse::<Workload>().map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()
            .context("--image")?,
        dataset: args.dataset.clone(),
        ca_bundle: args.ca_bundle.clone(),
        epoch: args.source_date_epoch,
    };
    let built = build::build(&inputs)?;
    built.layout.write_file(&args.out)?;
    let size = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    if global.output.is_text() {
        let mut text = String::new();
        for image in &built.images {
            text += &format!("{} {}\n", image.reference, image.digest);
            for p in &image.platforms {
                text += &format!(
                    "  {:<6} {}  {} compressed, {} unpacked\n",
                    p.arch.as_str(),
                    p.manifest,
                    mib(p.compressed),
                    mib(p.uncompressed)
                );
            }
        }
        text += &format!(
            "wrote {} ({}) in {:.1}s\n",
            args.out.display(),
            mib(size),
            started.elapsed().as_secs_f64()
        );
        print_stdout(&text)?;
    }
    global.output.document(&built.images)?;
    Ok(ExitCode::SUCCESS)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

#[derive(Debug, Serialize)]
struct Listed {
    reference: String,
    source: &'static str,
    arches: Vec<String>,
    digest: Option<String>,
}

fn list(global: &Global, args: &ListOptions) -> Outcome {
    let mut rows = Vec::new();
    let archived = match &args.archive {
        Some(path) => build::describe(&Layout::read_file(path)?)?,
        None => Vec::new(),
    };
    for w in Workload::ALL {
        let reference = w.reference();
        let found = archived.iter().find(|(r, _, _)| *r == reference);
        rows.push(Listed {
            arches: found
                .map(|(_, _, a)| a.clone())
                .unwrap_or_else(|| Arch::ALL.iter().map(|a| a.to_string()).collect()),
            digest: found.map(|(_, d, _)| d.digest.clone()),
            reference,
            source: "wharf",
        });
    }
    let upstream = upstream::images(&args.bundle, &Source::new(args.charms_dir.as_deref()))?;
    let unpinned: Vec<&upstream::Upstream> = upstream
        .iter()
        .filter(|u| u.pinned_digest().is_none())
        .collect();
    if let Some(note) = upstream::unpinned_note(&unpinned) {
        eprintln!("note: {note}");
    }
    for u in upstream.iter().cloned() {
        let digest = archived
            .iter()
            .find(|(r, _, _)| *r == u.reference)
            .map(|(_, d, _)| d.digest.clone())
            .or_else(|| u.pinned_digest().map(str::to_owned));
        rows.push(Listed {
            reference: u.reference,
            source: "upstream",
            arches: u.arches,
            digest,
        });
    }
    if global.output.is_text() {
        let mut text = format!("{:<56} {:<9} {:<12} DIGEST\n", "IMAGE", "SOURCE", "ARCHES");
        for r in &rows {
            text += &format!(
                "{:<56} {:<9} {:<12} {}\n",
                r.reference,
                r.source,
                r.arches.join(","),
                r.digest.as_deref().unwrap_or("-")
            );
        }
        print_stdout(&text)?;
    }
    global.output.document(&rows)?;
    Ok(ExitCode::SUCCESS)
}

fn microk8s_cli(runner: &Runner) -> MicroK8sCli<'_> {
    let access = if nix::unistd::geteuid().is_root() {
        Access::Direct
    } else {
        Access::Sg
    };
    MicroK8sCli { runner, access }
}

fn import(_global: &Global, args: &ImportOptions) -> Outcome {
    let runner = Runner::new().dry_run(args.dry_run);
    let cli = microk8s_cli(&runner);
    let summary = import_into(&cli, &args.archive)?;
    eprintln!("{summary}");
    Ok(ExitCode::SUCCESS)
}

/// Import the images of an archive into MicroK8s' containerd, unless containerd already has
/// every one of them at the same digest; then check that it lists them. Returns a one-line
/// summary.
pub fn import_into(cli: &MicroK8sCli, archive: &Path) -> anyhow::Result<String> {
    let layout = Layout::read_file(archive)?;
    let wanted: Vec<(String, String)> = layout
        .named()
        .into_iter()
        .map(|n| (n.reference, n.descriptor.digest))
        .collect();
    if wanted.is_empty() {
        bail!(
            "{} names no image: build it with `wharf images build`",
            archive.display()
        );
    }
    let present = cli.image_digests()?;
    let missing: Vec<&(String, String)> = wanted
        .iter()
        .filter(|(r, d)| present.get(r) != Some(d))
        .collect();
    if missing.is_empty() {
        return Ok(format!("{} images present already", wanted.len()));
    }
    let started = Instant::now();
    let cmd = cli.images_import_cmd(archive);
    cli.runner.run(&cmd).with_context(|| {
        format!(
            "importing {} into MicroK8s' containerd failed; check the archive with `wharf images list --archive {}` \
             and the space under /var/snap/microk8s/common",
            archive.display(),
            archive.display()
        )
    })?;
    if cli.runner.is_dry_run() {
        return Ok(format!("would import {}", archive.display()));
    }
    let after = cli.image_digests()?;
    for (reference, digest) in &missing {
        match after.get(reference) {
            Some(d) if d == digest => {}
            Some(d) => bail!(
                "after `{}`, containerd lists {reference} at {d}, not {digest}",
                cmd.display()
            ),
            None => bail!(
                "after `{}`, containerd does not list {reference}; the archive may lack its name annotation",
                cmd.display()
            ),
        }
    }
    Ok(format!(
        "imported {} ({:.1}s)",
        missing
            .iter()
            .map(|(r, _)| r.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        started.elapsed().as_secs_f64()
    ))
}

/// The archive `wharf up` and `wharf cluster join` import: the one given, else
/// `wharf-images.tar` next to the wharf executable (a release unpacks them side by side).
pub fn default_archive(given: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = given {
        return Some(p.to_path_buf());
    }
    let exe = std::env::current_exe().ok()?;
    let next_to = exe.parent()?.join("wharf-images.tar");
    next_to.is_file().then_some(next_to)
}

#[derive(Debug, Serialize)]
struct Pushed {
    reference: String,
    digest: String,
    uploaded: usize,
    skipped: usize,
    bytes: u64,
}

fn push(global: &Global, args: &PushOptions) -> Outcome {
    let layout = Layout::read_file(&args.archive)?;
    let registry = Registry::new(&args.registry)?;
    let target = args
        .registry
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let mut pushed = Vec::new();
    super::runtime()?.block_on(async {
        for named in layout.named() {
            let r = Reference::parse(&named.reference)?;
            let report = registry
                .push(&layout, &named.descriptor, &r.repository, &r.tag)
                .await
                .with_context(|| format!("pushing {} to {}", named.reference, registry.base()))?;
            let reference = format!("{target}/{}:{}", r.repository, r.tag);
            eprintln!(
                "pushed {reference} {} ({} blobs uploaded, {} there already)",
                report.digest, report.uploaded, report.skipped
            );
            pushed.push(Pushed {
                reference,
                digest: report.digest,
                uploaded: report.uploaded,
                skipped: report.skipped,
                bytes: report.bytes,
            });
        }
        anyhow::Ok(())
    })?;
    if global.output.is_text() {
        print_stdout(&format!(
            "For the cluster to pull wharf.local/* from {target}, each node's containerd mirrors wharf.local there; \
             on MicroK8s write /var/snap/microk8s/current/args/certs.d/wharf.local/hosts.toml:\n\
             \n  server = \"{base}\"\n  [host.\"{base}\"]\n    capabilities = [\"pull\", \"resolve\"]\n\n\
             (no restart needed). Or deploy with the images named in this registry.\n",
            base = registry.base()
        ))?;
    }
    global.output.document(&pushed)?;
    Ok(ExitCode::SUCCESS)
}

fn export(global: &Global, args: &ExportOptions) -> Outcome {
    let mut layout = Layout::read_file(&args.archive)?;
    for w in Workload::ALL {
        if !layout.named().iter().any(|n| n.reference == w.reference()) {
            bail!(
                "{} lacks {}: build it with `wharf images build -o {}`",
                args.archive.display(),
                w.reference(),
                args.archive.display()
            );
        }
    }
    let upstream = upstream::images(&args.bundle, &Source::new(args.charms_dir.as_deref()))?;
    if args.upstream {
        super::runtime()?.block_on(async {
            for u in &upstream {
                let r = Reference::parse(&u.reference)?;
                let registry = match &args.mirror {
                    Some(m) => Registry::new(m)?,
                    None => Registry::for_reference(&r)?,
                };
                let d = registry
                    .pull(&mut layout, &r.repository, &r.tag, &u.reference)
                    .await
                    .with_context(|| format!("pulling {} from {}", u.reference, registry.base()))?;
                if let Some(pin) = u.pinned_digest()
                    && d.digest != pin
                {
                    bail!(
                        "{}: the registry {} served {} for it, not the pinned digest; refusing \
                         an image that is not the one the charm names",
                        u.reference,
                        registry.base(),
                        d.digest
                    );
                }
                eprintln!("pulled {} {}", u.reference, d.digest);
            }
            anyhow::Ok(())
        })?;
    } else {
        // Only what is asked for: wharf's images.
        layout.index.retain(|d| {
            crate::images::oci::reference_of(d)
                .is_some_and(|r| Workload::ALL.iter().any(|w| w.reference() == r))
        });
    }
    layout.write_file(&args.out)?;
    if global.output.is_text() {
        let mut text = format!("wrote {} with wharf's images", args.out.display());
        if args.upstream {
            text += " and the bundle's upstream images\n";
        } else {
            text += &format!(
                ".\nThe bundle {} also runs these upstream images, not in the archive: fetch them on a machine \
                 with internet access (`wharf images export --upstream` there, or one by one:)\n",
                args.bundle
            );
            for u in &upstream {
                text += &format!("  {}\n", u.skopeo_command());
            }
            text += "and import each on the site: `wharf images import FILE` (or `microk8s ctr images import --base-name REF FILE` for a skopeo archive).\n";
        }
        print_stdout(&text)?;
    }
    global.output.document(&upstream)?;
    Ok(ExitCode::SUCCESS)
}
