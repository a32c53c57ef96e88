//! The page frame every dashboard page shares (head, skip link, navigation, main landmark) and
//! HTML escaping. Pages are plain strings: each is a few tables and forms, and escaping every
//! value through [`esc`] is the one rule to keep.

use std::fmt::Write;

use axum::response::Html;

/// The pages, in the navigation's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Overview,
    Training,
    Models,
    Notebooks,
    Tuning,
    Pipelines,
    Profiles,
}

impl Page {
    pub const ALL: [Page; 7] = [
        Page::Overview,
        Page::Training,
        Page::Models,
        Page::Notebooks,
        Page::Tuning,
        Page::Pipelines,
        Page::Profiles,
    ];

    fn path(self) -> &'static str {
        match self {
            Page::Overview => "/",
            Page::Training => "/training",
            Page::Models => "/models",
            Page::Notebooks => "/notebooks",
            Page::Tuning => "/tuning",
            Page::Pipelines => "/runs",
            Page::Profiles => "/profiles",
        }
    }

    /// The kind the page lists; `None` for a page every platform has.
    pub fn kind(self) -> Option<kube::api::ApiResource> {
        match self {
            Page::Overview => None,
            Page::Training => Some(super::live::trainjobs()),
            Page::Models => Some(super::live::inferenceservices()),
            Page::Notebooks => Some(crate::action::notebook::resource()),
            Page::Tuning => Some(super::tuning::resource()),
            Page::Pipelines => Some(super::runs::resource()),
            Page::Profiles => Some(crate::action::profile::resource()),
        }
    }

    /// The page's bit in [`super::installed::Installed`].
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    fn title(self) -> &'static str {
        match self {
            Page::Overview => "Overview",
            Page::Training => "Training",
            Page::Models => "Models",
            Page::Notebooks => "Notebooks",
            Page::Tuning => "Tuning",
            Page::Pipelines => "Pipelines",
            Page::Profiles => "Profiles",
        }
    }
}

/// Escape text for an element's content or a quoted attribute.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The form that chooses the namespace a page shows (`?namespace=`), and, when none is chosen,
/// the line that asks for one. `None` after the form means the page has nothing more to show.
pub fn namespace_form(action: &str, ns: Option<&str>) -> String {
    let mut out = format!(
        "<form method=\"get\" action=\"{action}\" class=\"inline\"><label for=\"ns\">Namespace \
         (your profile)</label> <input id=\"ns\" name=\"namespace\" value=\"{}\" required> \
         <button type=\"submit\">Show</button></form>",
        esc(ns.unwrap_or_default())
    );
    if ns.is_none() {
        out.push_str(
            "<p id=\"no-namespace\">Name a profile's namespace (`wharf profile list` shows \
             them).</p>",
        );
    }
    out
}

/// A problem the page reports (read out by screen readers as it appears).
pub fn alert(message: &str) -> String {
    format!("<p role=\"alert\" class=\"error\">{}</p>", esc(message))
}

/// A table with a caption and column headers; the cells are escaped here.
pub fn table(id: &str, caption: &str, columns: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!(
        "<table id=\"{id}\"><caption>{}</caption><thead><tr>",
        esc(caption)
    );
    for c in columns {
        let _ = write!(out, "<th scope=\"col\">{}</th>", esc(c));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", esc(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A delete that asks first (Notebooks, Profiles): what goes, what stays, and a form that posts
/// `confirm` with the rest of `fields`. Plain HTML: it works without JavaScript and from the
/// keyboard (the typed name or the button, then Enter).
pub struct Confirm<'a> {
    /// `notebook nb`: named in the heading and the button.
    pub what: &'a str,
    /// Where the confirmed form posts.
    pub action: &'a str,
    /// Hidden fields naming the object (`namespace`, `name`).
    pub fields: &'a [(&'a str, &'a str)],
    /// What is deleted for good, one item a line.
    pub lost: &'a [String],
    /// What is kept.
    pub kept: &'a [String],
    /// `Some(name)`: the user must type the name (a deletion that takes their files); `None`: the
    /// button confirms.
    pub typed: Option<&'a str>,
    /// The page to go back to.
    pub cancel: &'a str,
}

/// The confirmation section of [`Confirm`], with `problem` (a wrong name typed …) as an alert.
pub fn confirm_delete(c: &Confirm, problem: Option<&str>) -> String {
    let list = |items: &[String]| {
        let mut out = String::from("<ul>");
        for i in items {
            let _ = write!(out, "<li>{}</li>", esc(i));
        }
        out.push_str("</ul>");
        out
    };
    let mut out = format!(
        "<section id=\"confirm-delete\" aria-labelledby=\"confirm-title\">\
         <h2 id=\"confirm-title\">Delete {}?</h2>",
        esc(c.what)
    );
    if let Some(p) = problem {
        out.push_str(&alert(p));
    }
    let _ = write!(out, "<p>This deletes, for good:</p>{}", list(c.lost));
    if !c.kept.is_empty() {
        let _ = write!(out, "<p>This keeps:</p>{}", list(c.kept));
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"{}\" id=\"confirm-form\">",
        esc(c.action)
    );
    for (k, v) in c.fields {
        let _ = write!(
            out,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(k),
            esc(v)
        );
    }
    match c.typed {
        Some(name) => {
            let _ = write!(
                out,
                "<p><label for=\"confirm\">Type <code>{n}</code> to confirm</label> \
                 <input id=\"confirm\" name=\"confirm\" required autocomplete=\"off\" \
                 spellcheck=\"false\"></p>",
                n = esc(name)
            );
        }
        None => out.push_str("<input type=\"hidden\" name=\"confirm\" value=\"yes\">"),
    }
    let _ = write!(
        out,
        "<p><button type=\"submit\" class=\"danger\">Delete {}</button> \
         <a href=\"{}\">Cancel</a></p></form></section>",
        esc(c.what),
        esc(c.cancel)
    );
    out
}

/// Whether the posted `confirm` confirms a [`Confirm`] whose `typed` is `typed`: the typed name
/// exactly (spaces around it aside), or the button's `yes`.
pub fn confirmed(typed: Option<&str>, given: Option<&str>) -> bool {
    let given = given.map(str::trim).unwrap_or_default();
    match typed {
        Some(name) => given == name,
        None => given == "yes",
    }
}

/// A whole page: `body` goes in `<main>`. The navigation lists the pages whose kinds the
/// cluster serves, and always the current one.
pub fn page(current: Page, state: &super::Shared, body: &str) -> Html<String> {
    frame(current, &state.model, |p| state.installed.shows(p), body)
}

/// [`page`] with its parts given: `model` is named in the header, `shown` picks the pages listed.
fn frame(current: Page, model: &str, shown: impl Fn(Page) -> bool, body: &str) -> Html<String> {
    let mut nav = String::new();
    for p in Page::ALL.into_iter().filter(|&p| p == current || shown(p)) {
        let here = if p == current {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(
            nav,
            "<li><a href=\"{}\"{here}>{}</a></li>",
            p.path(),
            p.title()
        );
    }
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · wharf</title>\
         <link rel=\"stylesheet\" href=\"/assets/style.css\">\
         <script src=\"/assets/app.js\" defer></script></head>\
         <body><a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header><span class=\"brand\">wharf</span> <span class=\"model\">model {model}</span>\
         <nav aria-label=\"Pages\"><ul>{nav}</ul></nav></header>\
         <main id=\"main\" tabindex=\"-1\"><h1>{title}</h1>{body}</main></body></html>\n",
        title = current.title(),
        model = esc(model),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_everywhere_it_can_break_out() {
        assert_eq!(
            esc("<a href=\"x\">O'Neil & co</a>"),
            "&lt;a href=&quot;x&quot;&gt;O&#39;Neil &amp; co&lt;/a&gt;"
        );
        let t = table("t", "c<", &["A"], &[vec!["<script>".into()]]);
        assert!(
            t.contains("<td>&lt;script&gt;</td>") && t.contains("c&lt;"),
            "{t}"
        );
    }

    #[test]
    fn a_typed_confirmation_needs_the_exact_name_and_says_what_goes() {
        let lost = vec!["namespace alice <and everything in it>".to_owned()];
        let c = Confirm {
            what: "profile alice",
            action: "/profiles/delete",
            fields: &[("name", "alice")],
            lost: &lost,
            kept: &[],
            typed: Some("alice"),
            cancel: "/profiles",
        };
        assert!(confirmed(c.typed, Some(" alice ")));
        assert!(!confirmed(c.typed, Some("yes")) && !confirmed(c.typed, Some("Alice")));
        assert!(!confirmed(c.typed, None));
        let html = confirm_delete(&c, Some("not confirmed"));
        assert!(html.contains("<li>namespace alice &lt;and everything in it&gt;</li>"));
        assert!(html.contains("<label for=\"confirm\">Type <code>alice</code> to confirm</label>"));
        assert!(html.contains("<input type=\"hidden\" name=\"name\" value=\"alice\">"));
        assert!(html.contains("role=\"alert\""), "{html}");
        assert!(confirmed(None, Some("yes")) && !confirmed(None, Some("alice")));
    }

    #[test]
    fn the_current_page_is_marked_for_assistive_technology() {
        let Html(p) = frame(Page::Training, "kubeflow", |_| true, "");
        assert!(p.contains("<a href=\"/training\" aria-current=\"page\">Training</a>"));
        assert!(p.contains("<a href=\"/\">Overview</a>"));
    }
}
