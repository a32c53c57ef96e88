//! What every create form shares: a labelled input with its hint, the list of problems above the
//! form, and reading a field with a message that names it and says what to write instead.

use std::fmt::Write;

use super::html::esc;
use crate::render::names::check_dns_label;

/// `<label>` and `<input>` (name and id `id`), with `extra` attributes and an optional hint the
/// input is described by.
pub fn field(id: &str, label: &str, value: &str, extra: &str, hint: &str) -> String {
    let (hint_html, described) = if hint.is_empty() {
        (String::new(), String::new())
    } else {
        (
            format!("<small id=\"{id}-hint\">{}</small>", esc(hint)),
            format!(" aria-describedby=\"{id}-hint\""),
        )
    };
    format!(
        "<p><label for=\"{id}\">{}</label> <input id=\"{id}\" name=\"{id}\" value=\"{}\"{extra}{described}>{hint_html}</p>",
        esc(label),
        esc(value)
    )
}

/// The form's problems as an alert list (nothing when there are none).
pub fn problems(problems: &[String]) -> String {
    if problems.is_empty() {
        return String::new();
    }
    let mut out = String::from("<div role=\"alert\" class=\"error\" id=\"form-errors\"><ul>");
    for p in problems {
        let _ = write!(out, "<li>{}</li>", esc(p));
    }
    out.push_str("</ul></div>");
    out
}

/// The object's name, trimmed: a DNS label (a bad one adds a problem).
pub fn name<'a>(text: &'a str, problems: &mut Vec<String>) -> &'a str {
    let name = text.trim();
    if let Err(e) = check_dns_label(name) {
        problems.push(format!("Name: {e}"));
    }
    name
}

/// The trainer's model architecture, trimmed: `mlp` or `cnn` (another adds a problem).
pub fn model<'a>(text: &'a str, problems: &mut Vec<String>) -> &'a str {
    let model = text.trim();
    if !matches!(model, "mlp" | "cnn") {
        problems.push(format!("Model: `{model}` is not one of mlp and cnn"));
    }
    model
}

/// A whole number of at least 1; `None` when empty or bad (a bad one adds a problem).
pub fn whole(field: &str, text: &str, problems: &mut Vec<String>) -> Option<u32> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let n = text.parse::<u32>().ok().filter(|n| *n >= 1);
    if n.is_none() {
        problems.push(format!(
            "{field}: `{text}` is not a whole number of at least 1"
        ));
    }
    n
}

/// A finite number above 0; `None` when empty or bad (a bad one adds a problem).
pub fn positive(field: &str, text: &str, problems: &mut Vec<String>) -> Option<f64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let v = text
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0);
    if v.is_none() {
        problems.push(format!(
            "{field}: `{text}` is not a number greater than 0, e.g. 0.001"
        ));
    }
    v
}

/// A data or model location as the trainer reads it: `pvc://`, `s3://` or `file://`.
pub fn location(field: &str, text: &str, problems: &mut Vec<String>) -> String {
    let text = text.trim();
    if !["pvc://", "s3://", "file://"]
        .iter()
        .any(|s| text.strip_prefix(s).is_some_and(|rest| !rest.is_empty()))
    {
        problems.push(format!(
            "{field}: `{text}` is not a location; write pvc://<claim>/<path>, \
             s3://<bucket>/<prefix> or file:///<path>"
        ));
    }
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_fields_are_named_with_what_to_write() {
        let mut problems = Vec::new();
        assert_eq!(whole("Epochs", " 3 ", &mut problems), Some(3));
        assert_eq!(whole("Epochs", "", &mut problems), None);
        assert_eq!(positive("Rate", "0.5", &mut problems), Some(0.5));
        assert!(problems.is_empty());
        assert_eq!(whole("Epochs", "0", &mut problems), None);
        assert_eq!(positive("Rate", "-1", &mut problems), None);
        location("Dataset", "/data", &mut problems);
        assert_eq!(problems.len(), 3);
        assert!(problems[0].starts_with("Epochs: `0`"), "{problems:?}");
        assert!(problems[1].starts_with("Rate: `-1`"), "{problems:?}");
        assert!(problems[2].contains("pvc://<claim>/<path>"), "{problems:?}");
        assert!(super::problems(&problems).contains("role=\"alert\""));
        assert!(super::problems(&[]).is_empty());
    }
}
