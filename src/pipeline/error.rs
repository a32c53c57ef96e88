//! What can be wrong with a pipeline file, each case naming the document and the field by its
//! JSON path (`root.dag.tasks.train.iteratorPolicy`), which is what a user finds in the YAML.

/// A pipeline that cannot be compiled. `doc` is the file, or `file (document 2)` for the
/// kfp-kubernetes platform section.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{file}: cannot read it: {why}")]
    Read { file: String, why: String },

    #[error("{doc}: not valid YAML: {why}")]
    Yaml { doc: String, why: String },

    #[error(
        "{file}: holds {count} YAML documents; a compiled KFP pipeline has one, and a second with \
         the kfp-kubernetes `platforms` section"
    )]
    Documents { file: String, count: usize },

    /// A field the compiler does not know at all, or a value of the wrong shape.
    #[error("{doc}: {path}: {why}")]
    Malformed {
        doc: String,
        path: String,
        why: String,
    },

    /// A KFP feature outside the subset wharf compiles.
    #[error("{doc}: {path}: {feature} is not supported by `wharf pipeline compile`; {fix}")]
    Unsupported {
        doc: String,
        path: String,
        feature: String,
        fix: String,
    },

    /// A reference to something the document does not define, or a value Argo cannot take.
    #[error("{doc}: {path}: {why}")]
    Invalid {
        doc: String,
        path: String,
        why: String,
    },

    /// A `--param NAME=VALUE` that names no pipeline parameter or has no `=`.
    #[error("--param {given}: {why}")]
    Param { given: String, why: String },
}

impl Error {
    /// The JSON path the error is about, when it is about one field (tests match on it).
    pub fn path(&self) -> Option<&str> {
        match self {
            Error::Malformed { path, .. }
            | Error::Unsupported { path, .. }
            | Error::Invalid { path, .. } => Some(path),
            _ => None,
        }
    }
}
