//! The dashboard page: `GET /`, `GET /assets/app.js`, `GET /assets/app.css`.
//!
//! The files of `crates/server/assets/dashboard/` are embedded in the binary (no file is read at
//! run time). They hold no data — the page fetches `/api/v1/overview` and its stream — so they
//! are public. Every answer carries `Cache-Control: no-cache`, a strict Content Security Policy
//! (same-origin scripts, styles and connections only; no framing) and
//! `X-Content-Type-Options: nosniff`. Any other `/assets/*` is a JSON 404 like the API's.

use crate::error::ApiError;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The page.
const INDEX_HTML: &str = include_str!("../../assets/dashboard/index.html");
/// Its script.
const APP_JS: &str = include_str!("../../assets/dashboard/app.js");
/// Its style sheet.
const APP_CSS: &str = include_str!("../../assets/dashboard/app.css");

/// The Content Security Policy of every dashboard answer.
pub const CSP: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
                       style-src 'self'; script-src 'self'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// `GET /`.
pub async fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

/// `GET /assets/{file}`.
pub async fn file(Path(file): Path<String>) -> Result<Response, ApiError> {
    match file.as_str() {
        "app.js" => Ok(asset(APP_JS, "text/javascript; charset=utf-8")),
        "app.css" => Ok(asset(APP_CSS, "text/css; charset=utf-8")),
        _ => Err(ApiError::NotFound(format!("no route for /assets/{file}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn assets_carry_their_type_and_policy() {
        let r = index().await;
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        let js = file(Path("app.js".into())).await.expect("js");
        assert!(
            js.headers()[header::CONTENT_TYPE]
                .to_str()
                .is_ok_and(|v| v.starts_with("text/javascript"))
        );
        let css = file(Path("app.css".into())).await.expect("css");
        assert!(
            css.headers()[header::CONTENT_TYPE]
                .to_str()
                .is_ok_and(|v| v.starts_with("text/css"))
        );
        assert!(file(Path("secret.txt".into())).await.is_err());
        assert!(file(Path("..%2fCargo.toml".into())).await.is_err());
    }
}
