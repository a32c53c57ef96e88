//! Charms: a folder with `metadata.yaml`, `config.yaml` and `templates/*.yaml` (see
//! docs/charm-format.md). Loading validates all three, so that a broken charm fails before any
//! rendering, with the file and the field (or template line) in the message.

pub mod config;
pub mod metadata;
pub mod source;
pub mod templates;

use anyhow::{Context, Result, anyhow};

pub use config::{Config, ConfigSchema, OptionType};
pub use metadata::Metadata;
pub use source::Source;

/// A loaded, validated charm.
pub struct Charm {
    pub meta: Metadata,
    pub config: ConfigSchema,
    /// Template names (`charms/<name>/templates/<file>`) in render order.
    pub templates: Vec<String>,
    /// The parsed templates, plus the charm's own small templates (published relation data,
    /// status rules) under names that point back to their place in metadata.yaml.
    pub engine: tera::Tera,
}

impl Charm {
    pub fn load(source: &Source, name: &str) -> Result<Charm> {
        let meta_file = format!("charms/{name}/metadata.yaml");
        let meta_text = source
            .read(name, "metadata.yaml")?
            .ok_or_else(|| anyhow!("{meta_file}: missing; every charm needs a metadata.yaml"))?;
        let meta: Metadata = parse_yaml(&meta_file, &meta_text)?;
        meta.validate(name, &meta_file)?;

        let config_file = format!("charms/{name}/config.yaml");
        let config: ConfigSchema = match source.read(name, "config.yaml")? {
            Some(text) => parse_yaml(&config_file, &text)?,
            None => ConfigSchema {
                options: Default::default(),
            },
        };
        config.validate(&config_file)?;

        let mut engine = templates::engine();
        let mut names = Vec::new();
        for file in source.templates(name)? {
            let template_name = format!("charms/{name}/templates/{file}");
            let text = source
                .read(name, &format!("templates/{file}"))?
                .unwrap_or_default();
            engine
                .add_raw_template(&template_name, &text)
                .map_err(|e| anyhow!("{}", tera_error(&e)))
                .with_context(|| format!("{template_name}: template syntax error"))?;
            names.push(template_name);
        }
        for (endpoint, provide) in &meta.provides {
            for (key, template) in &provide.data {
                let field = format!("{meta_file}: provides.{endpoint}.data.{key}");
                engine
                    .add_raw_template(&field, template)
                    .map_err(|e| anyhow!("{field}: {}", tera_error(&e)))?;
            }
        }
        for (index, rule) in meta.status.iter().enumerate() {
            let field = format!("{meta_file}: status[{index}].when");
            engine
                .add_raw_template(&field, &rule.when)
                .map_err(|e| anyhow!("{field}: {}", tera_error(&e)))?;
        }
        for (index, volume) in meta.data.iter().enumerate() {
            let field = format!("{meta_file}: data[{index}].claim");
            engine
                .add_raw_template(&field, &volume.claim)
                .map_err(|e| anyhow!("{field}: {}", tera_error(&e)))?;
        }
        Ok(Charm {
            meta,
            config,
            templates: names,
            engine,
        })
    }
}

/// Parses one YAML document, prefixing errors with the file they came from and the field they are
/// about (`options.port.type`), not only a line: the field is what a charm author searches for.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T> {
    let mut field = String::new();
    serde_saphyr::with_deserializer_from_str(text, |deserializer| {
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            field = e.path().to_string();
            e.into_inner()
        })
    })
    .map_err(|e| match field.as_str() {
        "" | "." | "?" => anyhow!("{file}: {e}"),
        field => anyhow!("{file}: {field}: {e}"),
    })
}

/// Tera's errors carry their useful part (with the line) in the source chain.
pub fn tera_error(err: &tera::Error) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
