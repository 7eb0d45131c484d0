//! The dashboard's static files, embedded in the binary (nothing is fetched at run time), and
//! the headers they are served with: a content security policy that allows only this origin,
//! and no framing (the accept and kick buttons must not be clickjacked).

use jsonrpsee::server::{HttpBody, HttpResponse};

/// One embedded file.
#[derive(Debug, PartialEq, Eq)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset { path: "/", content_type: "text/html; charset=utf-8", body: include_str!("../../ui/index.html") },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../ui/app.js"),
    },
    Asset {
        path: "/charts.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../ui/charts.js"),
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../ui/style.css"),
    },
];

/// The file at `path` under `/ui` (`""` and `"/"` are the page).
pub fn asset(path: &str) -> Option<&'static Asset> {
    let path = if path.is_empty() { "/" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The response serving `a`.
pub fn response(a: &Asset) -> HttpResponse {
    let mut r = HttpResponse::new(HttpBody::from(a.body));
    let h = r.headers_mut();
    h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(a.content_type));
    h.insert(http::header::CONTENT_SECURITY_POLICY, http::HeaderValue::from_static(CSP));
    h.insert(http::header::X_FRAME_OPTIONS, http::HeaderValue::from_static("DENY"));
    h.insert(http::header::X_CONTENT_TYPE_OPTIONS, http::HeaderValue::from_static("nosniff"));
    h.insert(http::header::REFERRER_POLICY, http::HeaderValue::from_static("no-referrer"));
    h.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_only_embedded_files() {
        let page = asset("").unwrap().body;
        for src in page.split("src=\"").skip(1).chain(page.split("href=\"").skip(1)) {
            let url = src.split('"').next().unwrap();
            if url.starts_with("data:") {
                continue;
            }
            let under_ui = url.strip_prefix("/ui").unwrap_or_else(|| panic!("{url} is not under /ui"));
            assert!(asset(under_ui).is_some(), "{url} is not embedded");
        }
        assert!(asset("/../Cargo.toml").is_none());
        let r = response(asset("/app.js").unwrap());
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    }
}
