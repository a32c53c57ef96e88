//! Compiling a CRD's `x-kubernetes-validations` rules when the CRD is written, as the
//! apiextensions-apiserver does: a rule that does not parse, names a variable other than `self`
//! and `oldSelf` (or a comprehension's), calls a function no Kubernetes CEL library declares,
//! or selects a field the schema does not have (`self.minReplica` for `minReplicas`) makes the
//! CRD invalid (422), instead of being skipped when a custom resource is checked.
//!
//! What this cannot check, honestly: CEL's type checker (`self.name > 1` on a string compiles
//! here), argument counts and overloads, and the cost estimate (a rule whose estimated cost
//! exceeds the per-rule or per-CRD budget is refused by the real apiserver, kube-sim accepts it).

use std::collections::BTreeSet;

use cel::IdedExpr;
use cel::common::ast::{EntryExpr, Expr};
use serde_json::Value;

/// Functions and operators the apiserver's CEL environment declares for CRD rules: the CEL
/// standard library, macros, and the Kubernetes libraries (strings, lists, regex, URLs,
/// quantity, IP/CIDR, semver, format, optional, math, sets, base64). See
/// <https://kubernetes.io/docs/reference/using-api/cel/>.
const FUNCTIONS: &[&str] = &[
    // operators and macros, as the parser names them
    "_?_:_",
    "_&&_",
    "_||_",
    "!_",
    "_-_",
    "_+_",
    "_*_",
    "_/_",
    "_%_",
    "_==_",
    "_!=_",
    "_>=_",
    "_<=_",
    "_>_",
    "_<_",
    "-_",
    "_[_]",
    "_[?_]",
    "_?._",
    "@in",
    "@not_strictly_false",
    "has",
    "all",
    "exists",
    "exists_one",
    "map",
    "filter",
    // standard
    "size",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "type",
    "dyn",
    "duration",
    "timestamp",
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getFullYear",
    "getHours",
    "getMilliseconds",
    "getMinutes",
    "getMonth",
    "getSeconds",
    // strings
    "charAt",
    "indexOf",
    "lastIndexOf",
    "lowerAscii",
    "upperAscii",
    "replace",
    "split",
    "substring",
    "trim",
    "join",
    "format",
    "quote",
    "reverse",
    // lists
    "isSorted",
    "sum",
    "min",
    "max",
    "slice",
    "flatten",
    "sort",
    "sortBy",
    "distinct",
    "range",
    "first",
    "last",
    // regex
    "find",
    "findAll",
    // URLs
    "url",
    "isURL",
    "getScheme",
    "getHost",
    "getHostname",
    "getPort",
    "getEscapedPath",
    "getQuery",
    // quantity
    "quantity",
    "isQuantity",
    "sign",
    "isGreaterThan",
    "isLessThan",
    "compareTo",
    "add",
    "sub",
    "asInteger",
    "asApproximateFloat",
    "isInteger",
    // IP and CIDR
    "ip",
    "isIP",
    "cidr",
    "isCIDR",
    "family",
    "isUnspecified",
    "isLoopback",
    "isLinkLocalMulticast",
    "isLinkLocalUnicast",
    "isGlobalUnicast",
    "containsIP",
    "containsCIDR",
    "masked",
    "prefixLength",
    "isCanonical",
    // semver
    "semver",
    "isSemver",
    "major",
    "minor",
    "patch",
    // format
    "named",
    "validate",
    // optional
    "of",
    "none",
    "ofNonZeroValue",
    "hasValue",
    "value",
    "orValue",
    "or",
    "optMap",
    "optFlatMap",
    // math, sets, base64 (namespaced: `math.greatest(…)`)
    "greatest",
    "least",
    "ceil",
    "floor",
    "round",
    "trunc",
    "abs",
    "isInf",
    "isNaN",
    "isFinite",
    "bitAnd",
    "bitOr",
    "bitXor",
    "bitNot",
    "bitShiftLeft",
    "bitShiftRight",
    "sqrt",
    "equivalent",
    "intersects",
    "encode",
    "decode",
    // transition and two-variable comprehensions
    "transformList",
    "transformMap",
    "transformMapEntry",
    "existsOne",
];

/// Identifiers that name a library, not a variable (`math.greatest`, `optional.of`, type names).
const NAMESPACES: &[&str] = &[
    "math",
    "sets",
    "base64",
    "strings",
    "optional",
    "format",
    "lists",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "list",
    "map",
    "null_type",
    "type",
];

/// Compile `rule` against the schema of the field it sits on (`schema`; `root` when it is the
/// object's top level, where `apiVersion`, `kind` and `metadata.name` are visible too). The
/// error is the apiserver's text after `compilation failed: `.
pub fn compile(rule: &str, schema: &Value, root: bool) -> Result<(), String> {
    let program = cel::Program::compile(rule).map_err(|e| {
        e.errors
            .iter()
            .map(|e| {
                format!(
                    "ERROR: <input>:{}:{}: Syntax error: {}",
                    e.pos.0,
                    e.pos.1 + 1,
                    e.msg
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let mut check = Check {
        root_schema: schema,
        root,
        scope: vec![],
        errors: vec![],
    };
    check.expr(program.expression());
    match check.errors.into_iter().collect::<BTreeSet<_>>() {
        e if e.is_empty() => Ok(()),
        e => Err(e.into_iter().collect::<Vec<_>>().join("\n")),
    }
}

struct Check<'a> {
    root_schema: &'a Value,
    root: bool,
    /// Comprehension variables in scope, with the element schema a list's variable stands for.
    scope: Vec<(String, Option<&'a Value>)>,
    errors: Vec<String>,
}

/// What a selection chain resolves to while walking the schema.
enum Resolved<'a> {
    /// A field with this schema.
    Schema(&'a Value),
    /// Something the schema does not describe field by field (maps, preserved unknown fields,
    /// metadata, a comprehension variable, a function result): not checked further.
    Unknown,
}

impl<'a> Check<'a> {
    fn expr(&mut self, e: &IdedExpr) {
        match &e.expr {
            Expr::Call(call) => {
                let name = call.func_name.as_str();
                if !FUNCTIONS.contains(&name) {
                    self.errors.push(format!(
                        "ERROR: <input>: undeclared reference to '{name}' (in container '')"
                    ));
                }
                if let Some(target) = &call.target {
                    let namespace =
                        matches!(&target.expr, Expr::Ident(n) if NAMESPACES.contains(&n.as_str()));
                    if !namespace {
                        self.expr(target);
                    }
                }
                for arg in &call.args {
                    self.expr(arg);
                }
            }
            Expr::Comprehension(c) => {
                // `self.ports.all(p, …)`: `p` is an element of the list, with `items`' schema
                // (of a map, the variable is a key: not checked).
                let element = match self.resolve(&c.iter_range) {
                    Resolved::Schema(s) => s.get("items").filter(|i| i.is_object()),
                    Resolved::Unknown => None,
                };
                self.expr(&c.accu_init);
                match &c.iter_var2 {
                    // Two-variable forms: (index, element) or (key, value).
                    Some(v) => {
                        self.scope.push((c.iter_var.clone(), None));
                        self.scope.push((v.clone(), element));
                    }
                    None => self.scope.push((c.iter_var.clone(), element)),
                }
                self.scope.push((c.accu_var.clone(), None));
                self.expr(&c.loop_cond);
                self.expr(&c.loop_step);
                self.expr(&c.result);
                let pushed = 2 + usize::from(c.iter_var2.is_some());
                self.scope.truncate(self.scope.len() - pushed);
            }
            Expr::Ident(_) | Expr::Select(_) => {
                self.resolve(e);
            }
            Expr::List(list) => {
                for el in &list.elements {
                    self.expr(el);
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    self.entry(&entry.expr);
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    self.entry(&entry.expr);
                }
            }
            Expr::Literal(_) | Expr::Unspecified => {}
        }
    }

    fn entry(&mut self, entry: &EntryExpr) {
        match entry {
            EntryExpr::StructField(f) => self.expr(&f.value),
            EntryExpr::MapEntry(m) => {
                self.expr(&m.key);
                self.expr(&m.value);
            }
        }
    }

    /// Check an identifier or a selection chain; field names are checked against the schema
    /// while the chain starts at `self`/`oldSelf`.
    fn resolve(&mut self, e: &IdedExpr) -> Resolved<'a> {
        match &e.expr {
            Expr::Ident(name) => {
                if name == "self" || name == "oldSelf" {
                    Resolved::Schema(self.root_schema)
                } else if let Some((_, element)) = self.scope.iter().rev().find(|(v, _)| v == name)
                {
                    match element {
                        Some(s) => Resolved::Schema(s),
                        None => Resolved::Unknown,
                    }
                } else if name.starts_with('@') || NAMESPACES.contains(&name.as_str()) {
                    Resolved::Unknown
                } else {
                    self.errors.push(format!(
                        "ERROR: <input>: undeclared reference to '{name}' (in container '')"
                    ));
                    Resolved::Unknown
                }
            }
            Expr::Select(sel) => {
                let at_root = self.root
                    && matches!(&sel.operand.expr, Expr::Ident(n) if n == "self" || n == "oldSelf");
                match self.resolve(&sel.operand) {
                    Resolved::Schema(s) => self.field(s, &sel.field, at_root),
                    Resolved::Unknown => Resolved::Unknown,
                }
            }
            _ => {
                self.expr(e);
                Resolved::Unknown
            }
        }
    }

    fn field(&mut self, schema: &'a Value, field: &str, at_root: bool) -> Resolved<'a> {
        if at_root && ["apiVersion", "kind", "metadata"].contains(&field) {
            return Resolved::Unknown;
        }
        if let Some(p) = schema.pointer(&format!(
            "/properties/{}",
            field.replace('~', "~0").replace('/', "~1")
        )) {
            return Resolved::Schema(p);
        }
        let open = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
            || schema.get("additionalProperties").is_some()
            || schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
            || schema.get("type").is_none();
        if !open {
            self.errors
                .push(format!("ERROR: <input>: undefined field '{field}'"));
        }
        Resolved::Unknown
    }
}

/// The apiserver's rendering of a rule in a CRD validation error.
pub fn rule_text(rule: &Value) -> String {
    format!(
        "apiextensions.ValidationRule{{Rule:{:?}, Message:{:?}, MessageExpression:{:?}, Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:{:?}, OptionalOldSelf:(*bool)(nil)}}",
        rule["rule"].as_str().unwrap_or_default(),
        rule["message"].as_str().unwrap_or_default(),
        rule["messageExpression"].as_str().unwrap_or_default(),
        rule["fieldPath"].as_str().unwrap_or_default(),
    )
}

/// Every rule in `schema` and below that does not compile, as 422 causes
/// (`<path>.x-kubernetes-validations[i].rule`, `Invalid value: …: compilation failed: …`).
pub fn check_schema(schema: &Value, path: &str, root: bool, causes: &mut Vec<(String, String)>) {
    for (i, rule) in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("{path}.x-kubernetes-validations[{i}].rule");
        match rule["rule"].as_str() {
            None | Some("") => causes.push((field, "Required value".into())),
            Some(src) => {
                if let Err(e) = compile(src, schema, root) {
                    causes.push((
                        field,
                        format!(
                            "Invalid value: {}: compilation failed: {e}",
                            rule_text(rule)
                        ),
                    ));
                }
            }
        }
    }
    for (k, prop) in schema["properties"].as_object().into_iter().flatten() {
        check_schema(prop, &format!("{path}.properties[{k}]"), false, causes);
    }
    if schema["items"].is_object() {
        check_schema(&schema["items"], &format!("{path}.items"), false, causes);
    }
    if schema["additionalProperties"].is_object() {
        check_schema(
            &schema["additionalProperties"],
            &format!("{path}.additionalProperties"),
            false,
            causes,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_compile_or_say_why_like_the_apiserver() {
        let spec = json!({"type": "object", "properties": {
            "minReplicas": {"type": "integer"}, "maxReplicas": {"type": "integer"},
            "ports": {"type": "array", "items": {"type": "object", "properties": {"port": {"type": "integer"}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "name": {"type": "string"}
        }});
        for ok in [
            "self.minReplicas <= self.maxReplicas",
            "self.ports.all(p, p.port > 0)",
            "self.labels.exists(k, k.startsWith('a'))",
            "has(self.name) && self.name.matches('^[a-z]+$')",
            "self.labels.anything == 'x'",
            "math.greatest(self.minReplicas, 1) >= 1",
            "self.minReplicas == oldSelf.minReplicas",
            "self.name.lowerAscii() == self.name && size(self.ports) < 10",
        ] {
            assert_eq!(compile(ok, &spec, false), Ok(()), "{ok}");
        }
        for (bad, want) in [
            ("self.minReplicas <=", "Syntax error"),
            (
                "self.minReplica <= self.maxReplicas",
                "undefined field 'minReplica'",
            ),
            ("self.ports.all(p, p.prot > 0)", "undefined field 'prot'"),
            ("spec.minReplicas > 0", "undeclared reference to 'spec'"),
            (
                "self.name.frobnicate()",
                "undeclared reference to 'frobnicate'",
            ),
        ] {
            let err = compile(bad, &spec, false).expect_err(bad);
            assert!(err.contains(want), "{bad}: {err}");
        }
        // At the root, metadata.name is visible although the schema does not declare it.
        let root = json!({"type": "object", "properties": {"spec": spec}});
        assert_eq!(
            compile(
                "self.metadata.name.size() < 10 && self.spec.minReplicas >= 0",
                &root,
                true
            ),
            Ok(())
        );
    }
}
