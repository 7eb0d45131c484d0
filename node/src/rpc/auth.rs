//! The RPC token and the HTTP gate in front of the JSON-RPC service.
//!
//! The gate answers `GET /health` without a token; every other request needs
//! `Authorization: Bearer <token>` (the contents of `<data-dir>/rpc.token`), or gets HTTP 401 and
//! nothing else. `GET /metrics` (with the token) returns Prometheus text.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use jsonrpsee::core::BoxError;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use rand::RngCore;

/// Reads the token in `path`, creating a random one (mode 0600) when the file is missing or empty.
pub fn load_or_create_token(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let token = new_token();
    crate::data_dir::write_private(path, token.as_bytes())?;
    Ok(token)
}

/// A fresh random token: 32 bytes, hex.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// The token in force, shared with the gate and the connections (rotation replaces it).
#[derive(Clone)]
pub struct Token(Arc<TokenInner>);

struct TokenInner {
    current: RwLock<String>,
    /// Bumped by each rotation; connections opened before it close.
    generation: tokio::sync::watch::Sender<u64>,
}

impl Token {
    /// Wraps a token.
    pub fn new(t: String) -> Self {
        Self(Arc::new(TokenInner { current: RwLock::new(t), generation: tokio::sync::watch::channel(0).0 }))
    }

    /// True when `header` is `Bearer <the token>` (compared in constant time).
    pub fn accepts(&self, header: Option<&str>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else { return false };
        let t = self.0.current.read().unwrap_or_else(|p| p.into_inner());
        given.len() == t.len() && given.bytes().zip(t.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    /// Replaces the token with a fresh one, written to `path` (mode 0600) before it takes
    /// effect; every connection opened before closes. Returns the new token.
    pub fn rotate(&self, path: &Path) -> std::io::Result<String> {
        let fresh = new_token();
        crate::data_dir::write_private(path, fresh.as_bytes())?;
        *self.0.current.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        self.0.generation.send_modify(|g| *g += 1);
        Ok(fresh)
    }

    /// Resolves at the next rotation after this call.
    pub fn rotated(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.generation.subscribe();
        rx.mark_unchanged();
        async move {
            // An error means the token is gone (server dropped): nothing to wait for.
            let _ = rx.changed().await;
        }
    }
}

/// Renders the `/metrics` page.
pub type MetricsFn = Arc<dyn Fn() -> String + Send + Sync>;

/// The tower layer of the gate.
#[derive(Clone)]
pub struct GateLayer {
    pub token: Token,
    pub metrics: MetricsFn,
}

impl<S> tower::Layer<S> for GateLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Gate<S> {
        Gate { inner, token: self.token.clone(), metrics: self.metrics.clone() }
    }
}

/// The gate service.
#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    token: Token,
    metrics: MetricsFn,
}

fn plain(status: u16, body: String) -> HttpResponse {
    let mut r = HttpResponse::new(HttpBody::from(body));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    r
}

impl<S, B> tower::Service<HttpRequest<B>> for Gate<S>
where
    S: tower::Service<HttpRequest<B>, Response = HttpResponse>,
    S::Error: Into<BoxError> + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: HttpRequest<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        if path == "/health" {
            return Box::pin(async { Ok(plain(200, "ok\n".into())) });
        }
        let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok());
        if !self.token.accepts(auth) {
            return Box::pin(async { Ok(plain(401, "unauthorized\n".into())) });
        }
        if path == "/metrics" {
            let body = (self.metrics)();
            return Box::pin(async move { Ok(plain(200, body)) });
        }
        let fut = self.inner.call(req);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_is_created_once_and_checked_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rpc.token");
        let t1 = load_or_create_token(&path).unwrap();
        let t2 = load_or_create_token(&path).unwrap();
        assert_eq!(t1, t2);
        assert_eq!(t1.len(), 64);
        let tok = Token::new(t1.clone());
        assert!(tok.accepts(Some(&format!("Bearer {t1}"))));
        assert!(!tok.accepts(Some(&format!("Bearer {t1}x"))));
        assert!(!tok.accepts(Some(&t1)));
        assert!(!tok.accepts(None));
    }

    #[tokio::test]
    async fn rotation_writes_the_new_token_refuses_the_old_and_wakes_connections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rpc.token");
        let old = load_or_create_token(&path).unwrap();
        let tok = Token::new(old.clone());
        let before = tok.rotated();
        let fresh = tok.rotate(&path).unwrap();
        assert_ne!(fresh, old);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), fresh);
        assert!(tok.accepts(Some(&format!("Bearer {fresh}"))));
        assert!(!tok.accepts(Some(&format!("Bearer {old}"))));
        tokio::time::timeout(std::time::Duration::from_secs(5), before).await.expect("woken by the rotation");
        // A connection opened after the rotation is not woken by it, but by the next one.
        let mut after = Box::pin(tok.rotated());
        assert!(futures::poll!(&mut after).is_pending());
        tok.rotate(&path).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), after)
            .await
            .expect("woken by the next rotation");
    }

    #[test]
    fn a_failed_write_keeps_the_old_token() {
        let dir = tempfile::tempdir().unwrap();
        let tok = Token::new("a".repeat(64));
        assert!(tok.rotate(&dir.path().join("missing-dir").join("rpc.token")).is_err());
        assert!(tok.accepts(Some(&format!("Bearer {}", "a".repeat(64)))));
    }
}
