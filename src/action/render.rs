//! `wharf render`: bundle → manifests, offline. Secrets that deploy would generate show as marked
//! placeholders; Secret data is redacted unless `--show-secrets`.

use std::process::ExitCode;

use super::{Global, Outcome, OutputFormat};
use crate::bundle::Bundle;
use crate::charm::Source;
use crate::render::{Generated, Resolved, Target, output};
use crate::store::inputs::BundleSource;

/// The bundle, its adjustments, and where and how to write the manifests.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: BundleSource,
    pub set: Vec<String>,
    pub public_url: Option<String>,
    /// Where wharf's own images are pulled from ("" = wharf.local).
    pub image_registry: String,
    pub out_dir: Option<std::path::PathBuf>,
    pub show_secrets: bool,
}

pub fn run(global: &Global, args: &Options) -> Outcome {
    let resolved = resolve(&args.source, &args.set)?;
    let target = Target {
        namespace: global.model.clone(),
        public_url: args.public_url.clone().unwrap_or_default(),
        image_registry: args.image_registry.clone(),
        ..Target::default()
    };
    let rendered = resolved.render(&target, &Generated::new())?;
    if let Some(dir) = &args.out_dir {
        for path in output::write_dir(&rendered, dir, args.show_secrets)? {
            eprintln!("wrote {}", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let text = match global.output {
        OutputFormat::Text | OutputFormat::Yaml => output::stream(&rendered, args.show_secrets)?,
        OutputFormat::Json => {
            let mut rendered = rendered;
            if !args.show_secrets {
                rendered
                    .apps
                    .iter_mut()
                    .flat_map(|a| a.objects.iter_mut())
                    .for_each(output::redact);
            }
            serde_json::to_string_pretty(&rendered)? + "\n"
        }
    };
    super::print_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Bundle + overlays + `--set`, with charms loaded and relations resolved: where every verb that
/// renders starts.
pub fn resolve(source: &BundleSource, set: &[String]) -> anyhow::Result<Resolved> {
    let bundle = Bundle::load(&source.spec, &source.overlays, set)?;
    Resolved::new(bundle, &Source::new(source.charms_dir.as_deref()))
}
