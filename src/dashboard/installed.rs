//! Which pages this cluster can show. A page appears in the navigation once the kind it lists is
//! served (its CRD is installed: `wharf deploy full` adds notebooks, tuning, pipelines and
//! profiles to a `lite` platform), found through API discovery. Every authenticated user may read
//! discovery, so this tells the cluster's shape, never what the user may see.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use kube::api::ApiResource;

use super::html::Page;

/// How often discovery is read again: a kind installed while the dashboard runs shows up within
/// this long. Three small GETs (one per API group version the pages use) per period.
const REFRESH: Duration = Duration::from_secs(5);

/// One bit per [`Page`]; set when the page's kind is served.
pub struct Installed {
    shown: AtomicU8,
}

impl Default for Installed {
    /// Before discovery has answered, every page is shown: a page of a missing kind says so.
    fn default() -> Self {
        Installed {
            shown: AtomicU8::new(u8::MAX),
        }
    }
}

impl Installed {
    pub fn shows(&self, page: Page) -> bool {
        self.shown.load(Ordering::Relaxed) & page.bit() != 0
    }

    /// Reads discovery once: one request per API group version the pages need. A group version
    /// the cluster does not serve (404) hides its pages; any other failure (an aggregated API
    /// that is down, a network error) leaves them as they were.
    pub async fn refresh(&self, client: &kube::Client) {
        let mut by_version: BTreeMap<String, Vec<(Page, ApiResource)>> = BTreeMap::new();
        for page in Page::ALL {
            if let Some(kind) = page.kind() {
                by_version
                    .entry(kind.api_version.clone())
                    .or_default()
                    .push((page, kind));
            }
        }
        for (api_version, pages) in by_version {
            let served = match client.list_api_group_resources(&api_version).await {
                Ok(list) => {
                    let names: Vec<String> = list.resources.into_iter().map(|r| r.name).collect();
                    pages
                        .into_iter()
                        .map(|(page, kind)| (page, names.contains(&kind.plural)))
                        .collect::<Vec<_>>()
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    pages.into_iter().map(|(page, _)| (page, false)).collect()
                }
                Err(e) => {
                    tracing::debug!(%api_version, error = %e, "discovery failed; pages unchanged");
                    continue;
                }
            };
            for (page, on) in served {
                if on {
                    self.shown.fetch_or(page.bit(), Ordering::Relaxed);
                } else {
                    self.shown.fetch_and(!page.bit(), Ordering::Relaxed);
                }
            }
        }
    }

    /// Refreshes every [`REFRESH`], for as long as the dashboard runs.
    pub async fn keep_fresh(&self, client: kube::Client) {
        loop {
            tokio::time::sleep(REFRESH).await;
            self.refresh(&client).await;
        }
    }
}
