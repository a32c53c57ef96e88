//! `config.yaml` (Juju's format) and effective config: each option's type, default and checks, and
//! the merge of the layers that set values (charm default < bundle < overlays < `--set`), with
//! every value type-checked before any template sees it.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSchema {
    #[serde(default)]
    pub options: BTreeMap<String, OptionSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OptionType {
    String,
    Int,
    Float,
    Boolean,
    /// A string that is never printed, logged or diffed, and lives only in Secrets.
    Secret,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionSpec {
    #[serde(rename = "type")]
    pub kind: OptionType,
    #[serde(default)]
    pub default: Option<Value>,
    #[serde(default)]
    pub description: String,
    /// The only values allowed.
    #[serde(default, rename = "enum")]
    pub allowed: Option<Vec<Value>>,
    /// A regular expression a string value must match in full.
    #[serde(default)]
    pub pattern: Option<String>,
    /// For secrets: when nobody sets a value, `wharf deploy` generates this many random bytes once.
    #[serde(default)]
    pub generate: Option<usize>,
}

impl ConfigSchema {
    /// Checks defaults, enums and patterns; `file` is the path shown in errors.
    pub fn validate(&self, file: &str) -> Result<()> {
        for (key, spec) in &self.options {
            let field = format!("options.{key}");
            if let Some(pattern) = &spec.pattern
                && regex::Regex::new(pattern).is_err()
            {
                bail!("{file}: {field}.pattern: `{pattern}` is not a valid regular expression");
            }
            if spec.generate.is_some() && spec.kind != OptionType::Secret {
                bail!(
                    "{file}: {field}.generate: only options of type secret can be generated; remove `generate` or make the type secret"
                );
            }
            if let Some(default) = &spec.default {
                let is_unset_secret =
                    spec.kind == OptionType::Secret && default == &Value::String(String::new());
                if !is_unset_secret {
                    spec.check(default)
                        .map_err(|why| anyhow::anyhow!("{file}: {field}.default: {why}"))?;
                }
            }
        }
        Ok(())
    }

    /// The closest option name to a misspelt one, for "did you mean".
    pub fn closest(&self, key: &str) -> Option<&str> {
        self.options
            .keys()
            .map(|name| (strsim::jaro_winkler(key, name), name))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, name)| name.as_str())
    }

    /// Merges the layers over the defaults. Each layer is (where it came from, its values). Unset
    /// options without a default are left out, so templates can test them with `is defined`.
    pub fn effective(
        &self,
        charm: &str,
        layers: &[(String, &BTreeMap<String, Value>)],
    ) -> Result<Config> {
        let mut values = BTreeMap::new();
        for (key, spec) in &self.options {
            if let Some(default) = &spec.default {
                values.insert(key.clone(), default.clone());
            }
        }
        for (origin, layer) in layers {
            for (key, raw) in layer.iter() {
                let Some(spec) = self.options.get(key) else {
                    let hint = match self.closest(key) {
                        Some(near) => format!(" (did you mean `{near}`?)"),
                        None => String::new(),
                    };
                    let known: Vec<&str> = self.options.keys().map(String::as_str).collect();
                    bail!(
                        "{origin}.{key}: charm {charm} has no option `{key}`{hint}; its options are: {}",
                        known.join(", ")
                    );
                };
                let value = spec
                    .coerce(raw)
                    .and_then(|value| spec.check(&value).map(|()| value))
                    .map_err(|why| anyhow::anyhow!("{origin}.{key}: {why}"))?;
                values.insert(key.clone(), value);
            }
        }
        let secrets = self
            .options
            .iter()
            .filter(|(_, spec)| spec.kind == OptionType::Secret)
            .map(|(key, _)| key.clone())
            .collect();
        Ok(Config { values, secrets })
    }
}

impl OptionSpec {
    /// Turns a value from YAML or from `--set` (always a string there) into the option's type.
    fn coerce(&self, raw: &Value) -> std::result::Result<Value, String> {
        let text = raw.as_str();
        let coerced = match (self.kind, raw) {
            (OptionType::Int, Value::String(_)) => {
                text.unwrap().trim().parse::<i64>().ok().map(Value::from)
            }
            (OptionType::Float, Value::String(_)) => {
                text.unwrap().trim().parse::<f64>().ok().map(Value::from)
            }
            (OptionType::Boolean, Value::String(_)) => match text.unwrap().trim() {
                "true" | "True" | "yes" => Some(Value::Bool(true)),
                "false" | "False" | "no" => Some(Value::Bool(false)),
                _ => None,
            },
            (OptionType::String | OptionType::Secret, Value::Number(n)) => {
                Some(Value::String(n.to_string()))
            }
            (OptionType::String | OptionType::Secret, Value::Bool(b)) => {
                Some(Value::String(b.to_string()))
            }
            _ => Some(raw.clone()),
        };
        coerced.ok_or_else(|| {
            format!(
                "{} is not a valid {}",
                shown(self.kind, raw),
                type_name(self.kind)
            )
        })
    }

    /// Type, enum and pattern of a value already coerced.
    fn check(&self, value: &Value) -> std::result::Result<(), String> {
        let fits = match self.kind {
            OptionType::String | OptionType::Secret => value.is_string(),
            OptionType::Int => value.is_i64() || value.is_u64(),
            OptionType::Float => value.is_number(),
            OptionType::Boolean => value.is_boolean(),
        };
        if !fits {
            return Err(format!(
                "{} is not a valid {}",
                shown(self.kind, value),
                type_name(self.kind)
            ));
        }
        if let Some(allowed) = &self.allowed
            && !allowed.contains(value)
        {
            let list: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
            return Err(format!(
                "{} is not one of {}",
                shown(self.kind, value),
                list.join(", ")
            ));
        }
        if let (Some(pattern), Some(text)) = (&self.pattern, value.as_str()) {
            let full = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| e.to_string())?;
            if !full.is_match(text) {
                return Err(format!(
                    "{} does not match the pattern `{pattern}`",
                    shown(self.kind, value)
                ));
            }
        }
        Ok(())
    }
}

/// A value as it may appear in an error: secrets are never echoed.
fn shown(kind: OptionType, value: &Value) -> String {
    match kind {
        OptionType::Secret => "the value given".to_string(),
        _ => value.to_string(),
    }
}

fn type_name(kind: OptionType) -> &'static str {
    match kind {
        OptionType::String => "string",
        OptionType::Int => "int (a whole number)",
        OptionType::Float => "float",
        OptionType::Boolean => "boolean (true or false)",
        OptionType::Secret => "secret (a string)",
    }
}

/// An application's effective config: the values, and which keys hold secrets.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub values: BTreeMap<String, Value>,
    pub secrets: Vec<String>,
}

impl Config {
    pub fn is_secret(&self, key: &str) -> bool {
        self.secrets.iter().any(|s| s == key)
    }

    /// The values safe to show, log or store in the clear: secrets replaced by a mask.
    pub fn masked(&self) -> BTreeMap<String, Value> {
        self.values
            .iter()
            .map(|(key, value)| {
                let shown = if self.is_secret(key) && value.as_str().is_some_and(|s| !s.is_empty())
                {
                    Value::String("<secret>".into())
                } else {
                    value.clone()
                };
                (key.clone(), shown)
            })
            .collect()
    }

    /// Secret values that are set, to keep them out of anything but Secret objects.
    pub fn secret_values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.secrets.iter().filter_map(|key| {
            let value = self.values.get(key)?.as_str()?;
            (!value.is_empty()).then_some((key.as_str(), value))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(yaml: &str) -> ConfigSchema {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn layers_override_defaults_in_order() {
        let s = schema(
            "options:\n  port: {type: int, default: 5556}\n  name: {type: string, default: a}\n",
        );
        let bundle = BTreeMap::from([("port".to_string(), Value::from(80))]);
        let set = BTreeMap::from([("port".to_string(), Value::from("8080"))]);
        let config = s
            .effective("x", &[("bundle".into(), &bundle), ("--set".into(), &set)])
            .unwrap();
        assert_eq!(config.values["port"], Value::from(8080));
        assert_eq!(config.values["name"], Value::from("a"));
    }

    #[test]
    fn unknown_key_suggests_the_closest() {
        let s = schema("options:\n  public-url: {type: string, default: ''}\n");
        let layer = BTreeMap::from([("public-ur".to_string(), Value::from("x"))]);
        let err = s
            .effective("dex-auth", &[("--set dex-auth".into(), &layer)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean `public-url`"), "{err}");
    }

    #[test]
    fn secrets_are_never_echoed_in_errors() {
        let s =
            schema("options:\n  password: {type: secret, default: '', pattern: '[a-z]{12,}'}\n");
        let layer = BTreeMap::from([("password".to_string(), Value::from("hunter2"))]);
        let err = s
            .effective("x", &[("--set x".into(), &layer)])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn enum_and_pattern_are_enforced() {
        let s = schema(
            "options:\n  level: {type: string, default: info, enum: [info, debug]}\n  url: {type: string, default: '', pattern: '(https?://.*)?'}\n",
        );
        for (key, value) in [("level", "loud"), ("url", "ftp://x")] {
            let layer = BTreeMap::from([(key.to_string(), Value::from(value))]);
            assert!(
                s.effective("x", &[("l".into(), &layer)]).is_err(),
                "{key}={value}"
            );
        }
    }

    #[test]
    fn wrong_default_type_is_refused() {
        let s = schema("options:\n  port: {type: int, default: eighty}\n");
        let err = s.validate("charms/x/config.yaml").unwrap_err().to_string();
        assert!(
            err.contains("charms/x/config.yaml: options.port.default"),
            "{err}"
        );
    }
}
