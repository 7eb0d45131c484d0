//! The RPC token: the contents of `<data-dir>/rpc.token`, sent as `Authorization: Bearer
//! <token>`. Rotating it also ends every dashboard session.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rand::RngCore;

use super::session::Sessions;

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
    /// Dashboard sessions, ended by a rotation.
    sessions: Sessions,
}

impl Token {
    /// Wraps a token.
    pub fn new(t: String) -> Self {
        Self(Arc::new(TokenInner {
            current: RwLock::new(t),
            generation: tokio::sync::watch::channel(0).0,
            sessions: Sessions::default(),
        }))
    }

    /// The dashboard's login codes and sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.0.sessions
    }

    /// True when `header` is `Bearer <the token>` (compared in constant time).
    pub fn accepts(&self, header: Option<&str>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else { return false };
        let t = self.0.current.read().unwrap_or_else(|p| p.into_inner());
        given.len() == t.len() && given.bytes().zip(t.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    /// Replaces the token with a fresh one, written to `path` (mode 0600) before it takes
    /// effect; every connection opened before closes and every dashboard session ends.
    /// Returns the new token.
    pub fn rotate(&self, path: &Path) -> std::io::Result<String> {
        let fresh = new_token();
        crate::data_dir::write_private(path, fresh.as_bytes())?;
        *self.0.current.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        self.0.sessions.clear();
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
        let session = tok.sessions().redeem(&tok.sessions().new_login()).unwrap();
        let before = tok.rotated();
        let fresh = tok.rotate(&path).unwrap();
        assert_ne!(fresh, old);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), fresh);
        assert!(tok.accepts(Some(&format!("Bearer {fresh}"))));
        assert!(!tok.accepts(Some(&format!("Bearer {old}"))));
        assert!(!tok.sessions().valid(&session), "a rotation ends the dashboard's sessions");
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
