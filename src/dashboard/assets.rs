//! What the pages load besides themselves, compiled into the binary: the script, the style sheet
//! and ten Fashion-MNIST test images for the try-it panel. No CDN, no build step: an air-gapped
//! site serves the same bytes.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::State;

const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");
/// Ten 28×28 test images, one per class in class order: the first image of each class in
/// Fashion-MNIST's `t10k-images-idx3-ubyte` (indices 19, 2, 1, 13, 6, 8, 4, 9, 18, 0; MIT licence).
const SAMPLES: &[u8; 10 * PIXELS] = include_bytes!("assets/samples.u8");
const PIXELS: usize = 28 * 28;

/// Fashion-MNIST's classes, by label.
pub const CLASSES: [&str; 10] = [
    "T-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
];

/// The pixels of test image `i` (of class `CLASSES[i]`).
pub fn sample(i: usize) -> Option<&'static [u8]> {
    SAMPLES.get(i * PIXELS..(i + 1) * PIXELS)
}

pub fn router() -> Router<State> {
    Router::new()
        .route(
            "/assets/app.js",
            get(|| asset("text/javascript", APP_JS.as_bytes())),
        )
        .route(
            "/assets/style.css",
            get(|| asset("text/css", STYLE_CSS.as_bytes())),
        )
        .route(
            "/assets/samples.u8",
            get(|| asset("application/octet-stream", SAMPLES)),
        )
}

async fn asset(content_type: &'static str, body: &'static [u8]) -> impl IntoResponse {
    // The bytes change only with the binary; an hour's caching spares the reloads.
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_samples_and_no_eleventh() {
        assert!((0..10).all(|i| sample(i).is_some_and(|p| p.len() == PIXELS)));
        assert!(sample(10).is_none());
        // Real images: each has ink and background.
        for i in 0..10 {
            let p = sample(i).unwrap();
            assert!(p.contains(&0) && p.iter().any(|&v| v > 200), "sample {i}");
        }
    }
}
