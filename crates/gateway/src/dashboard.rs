//! `GET /`: the dashboard, and `GET /dead-letters.html`, its dead-letters page. Its HTML, CSS, JavaScript modules and the vendored uPlot are
//! embedded in the binary (no build step, no third-party origin), served with an ETag and a
//! strict Content-Security-Policy: scripts, styles and connections from this origin only, no
//! inline script, no framing.

use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Compress;
use actix_web::{HttpRequest, HttpResponse, web};

/// The policy every dashboard response carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: std::borrow::Cow<'static, [u8]>,
    /// Vendored files carry their version in the path and never change.
    immutable: bool,
}

macro_rules! asset {
    ($path:literal, $type:literal) => {
        asset!($path, $type, false)
    };
    ($path:literal, $type:literal, $immutable:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: std::borrow::Cow::Borrowed(include_bytes!(concat!("../assets/", $path))),
            immutable: $immutable,
        }
    };
}

/// Every file of the page; two are made from the types they list, so the page spells neither.
static ASSETS: LazyLock<[Asset; 14]> = LazyLock::new(|| {
    [
        asset!("index.html", "text/html; charset=utf-8"),
        asset!("dead-letters.html", "text/html; charset=utf-8"),
        asset!("app.css", "text/css; charset=utf-8"),
        asset!("app.js", "text/javascript; charset=utf-8"),
        asset!("connection.js", "text/javascript; charset=utf-8"),
        asset!("charts.js", "text/javascript; charset=utf-8"),
        asset!("panels.js", "text/javascript; charset=utf-8"),
        asset!("format.js", "text/javascript; charset=utf-8"),
        asset!("dead-letters.js", "text/javascript; charset=utf-8"),
        // The stats cards, listed once in sluice-proto for the page and the terminal.
        Asset {
            path: "cards.js",
            content_type: "text/javascript; charset=utf-8",
            body: std::borrow::Cow::Borrowed(sluice_proto::cards::CARDS_MODULE.as_bytes()),
            immutable: false,
        },
        // The history windows, as the stream serves them.
        Asset {
            path: "windows.js",
            content_type: "text/javascript; charset=utf-8",
            body: std::borrow::Cow::Owned(sluice_proto::history::Window::module().into_bytes()),
            immutable: false,
        },
        asset!("favicon.svg", "image/svg+xml"),
        asset!(
            "vendor/uplot-1.6.32/uPlot.iife.min.js",
            "text/javascript; charset=utf-8",
            true
        ),
        asset!(
            "vendor/uplot-1.6.32/uPlot.min.css",
            "text/css; charset=utf-8",
            true
        ),
    ]
});

/// Each asset's ETag: a hash of its bytes, computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| format!("\"{:016x}\"", fnv1a(&a.body)))
        .collect()
});

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Registers `/`, `/index.html`, `/dead-letters.html` and `/assets/{path}` (GET and HEAD).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/", web::head().to(index))
        .route("/index.html", web::get().to(index))
        .route("/dead-letters.html", web::get().to(dead_letters))
        .route("/dead-letters.html", web::head().to(dead_letters))
        .service(
            web::scope("/assets")
                .wrap(Compress::default())
                .route("/{path:.*}", web::get().to(asset))
                .route("/{path:.*}", web::head().to(asset)),
        );
}

async fn index(req: HttpRequest) -> HttpResponse {
    page(&req, "index.html")
}

/// `GET /dead-letters.html`: the dead-letters page (on `/admin/dead-letters`).
async fn dead_letters(req: HttpRequest) -> HttpResponse {
    page(&req, "dead-letters.html")
}

/// Serves the page `path`, one of [`ASSETS`].
fn page(req: &HttpRequest, path: &str) -> HttpResponse {
    let index = ASSETS.iter().position(|a| a.path == path).unwrap_or(0);
    serve(req, index)
}

async fn asset(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    match ASSETS
        .iter()
        .position(|a| a.path == path.as_str() && !a.path.ends_with(".html"))
    {
        Some(i) => serve(&req, i),
        None => {
            actix_web::ResponseError::error_response(&sluice_stream::error::StreamError::NotFound)
        }
    }
}

fn serve(req: &HttpRequest, index: usize) -> HttpResponse {
    let asset = &ASSETS[index];
    let etag = &ETAGS[index];
    let cache = if asset.immutable {
        "public, max-age=31536000, immutable"
    } else {
        // Revalidated on every load (a 304 when unchanged), so a new release shows at once.
        "no-cache"
    };
    let mut response = if matches_etag(req, etag) {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        .insert_header((header::ETAG, etag.as_str()))
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    if matches_etag(req, etag) {
        return response.finish();
    }
    // actix sends no body for HEAD, but keeps the length.
    let body: &'static [u8] = &asset.body;
    response.body(body)
}

fn matches_etag(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_names_is_embedded() {
        let html = std::str::from_utf8(&ASSETS[0].body).expect("UTF-8");
        for reference in html.split("\"/assets/").skip(1) {
            let path = &reference[..reference.find('"').expect("closing quote")];
            assert!(
                ASSETS.iter().any(|a| a.path == path),
                "{path} is not embedded"
            );
        }
        assert!(!html.contains("<script>"), "no inline script");
        assert!(!html.contains("style="), "no inline style");
    }

    #[test]
    fn every_module_import_is_embedded() {
        for asset in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(&asset.body).expect("UTF-8");
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let start = line.find("\"./").expect("relative import") + 3;
                let path = &line[start..line[start..].find('"').expect("quote") + start];
                assert!(ASSETS.iter().any(|a| a.path == path), "{path}");
            }
        }
    }
}
