//! The Overview page: `wharf status` in the browser — the same report ([`status::collect`]), the
//! same columns and words ([`status::APP_COLUMNS`] …), read when the page is asked for.

use axum::Router;
use axum::extract::State as Extract;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::State;
use super::html::{Page, alert, esc, page, table};
use super::viewer::Viewer;
use crate::action::status::{self, APP_COLUMNS, AppRow, HEADER_COLUMNS, UNIT_COLUMNS, UnitRow};

pub fn router() -> Router<State> {
    Router::new()
        .route("/", get(overview))
        .route("/api/status", get(status_json))
}

async fn overview(Extract(state): Extract<State>, viewer: Viewer) -> Response {
    match status::collect(&viewer.cluster, &state.model).await {
        Ok(report) => {
            let mut body = workspace(viewer.profile.as_deref());
            body.push_str(&render(&report));
            page(Page::Overview, &state, &body).into_response()
        }
        // A user who may not read the platform's model still learns where their own work goes.
        Err(e) => {
            let mut body = workspace(viewer.profile.as_deref());
            body.push_str(&alert(&format!("{e:#}")));
            (StatusCode::BAD_GATEWAY, page(Page::Overview, &state, &body)).into_response()
        }
    }
}

/// The report `wharf status --output json` prints.
async fn status_json(Extract(state): Extract<State>, viewer: Viewer) -> Response {
    match status::collect(&viewer.cluster, &state.model).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, format!("{e:#}")).into_response(),
    }
}

/// Where the signed-in user's own work goes: their profile's namespace.
fn workspace(profile: Option<&str>) -> String {
    let Some(ns) = profile else {
        return String::new();
    };
    let ns = esc(ns);
    format!(
        "<p id=\"workspace\">Your workspace: namespace <code>{ns}</code> (your profile). Start a \
         Jupyter server there on the <a href=\"/notebooks?namespace={ns}\">Notebooks</a> page.</p>"
    )
}

fn render(report: &status::Report) -> String {
    let mut out = table(
        "status-header",
        "Cluster",
        &HEADER_COLUMNS,
        &[report.header_cells()],
    );
    if let Some(empty) = report.empty_message() {
        out.push_str(&format!("<p id=\"status-empty\">{}</p>", esc(&empty)));
        return out;
    }
    let apps: Vec<Vec<String>> = report.applications.iter().map(AppRow::cells).collect();
    out.push_str(&table("applications", "Applications", &APP_COLUMNS, &apps));
    let units: Vec<Vec<String>> = report.units.iter().map(UnitRow::cells).collect();
    out.push_str(&table("units", "Units", &UNIT_COLUMNS, &units));
    out
}
