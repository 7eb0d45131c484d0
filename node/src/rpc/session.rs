//! Dashboard sessions: a one-time login code (what `archive-node ui` prints, in the URL's
//! fragment) is exchanged once for a session id kept in an `HttpOnly` cookie. Both are random,
//! expire, and are bounded in number; a token rotation ends every session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a login code can be redeemed.
pub const LOGIN_TTL: Duration = Duration::from_secs(120);
/// How long a session lasts (the cookie's `Max-Age`).
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most login codes waiting; a new one past it replaces the oldest.
const MAX_LOGINS: usize = 16;
/// Most sessions at once; a new one past it ends the oldest.
const MAX_SESSIONS: usize = 64;

/// The login codes and sessions of one daemon; cheap to clone.
#[derive(Clone, Default)]
pub struct Sessions(Arc<Mutex<Inner>>);

#[derive(Default)]
struct Inner {
    /// Code → when it expires.
    logins: HashMap<String, Instant>,
    /// Session id → when it expires.
    sessions: HashMap<String, Instant>,
}

/// Keeps at most `max` entries, dropping expired ones first, then the one expiring soonest.
fn make_room(map: &mut HashMap<String, Instant>, max: usize, now: Instant) {
    map.retain(|_, expires| *expires > now);
    while map.len() >= max {
        let Some(oldest) = map.iter().min_by_key(|(_, e)| **e).map(|(k, _)| k.clone()) else { break };
        map.remove(&oldest);
    }
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new one-time login code.
    pub fn new_login(&self) -> String {
        self.new_login_at(Instant::now())
    }

    fn new_login_at(&self, now: Instant) -> String {
        let code = super::auth::new_token();
        let mut inner = self.lock();
        make_room(&mut inner.logins, MAX_LOGINS, now);
        inner.logins.insert(code.clone(), now + LOGIN_TTL);
        code
    }

    /// Redeems a login code (once, before it expires) for a new session id.
    pub fn redeem(&self, code: &str) -> Option<String> {
        self.redeem_at(code, Instant::now())
    }

    fn redeem_at(&self, code: &str, now: Instant) -> Option<String> {
        let mut inner = self.lock();
        let expires = inner.logins.remove(code)?;
        if expires <= now {
            return None;
        }
        let id = super::auth::new_token();
        make_room(&mut inner.sessions, MAX_SESSIONS, now);
        inner.sessions.insert(id.clone(), now + SESSION_TTL);
        Some(id)
    }

    /// True when `id` is a session that has not expired or ended.
    pub fn valid(&self, id: &str) -> bool {
        self.valid_at(id, Instant::now())
    }

    fn valid_at(&self, id: &str, now: Instant) -> bool {
        self.lock().sessions.get(id).is_some_and(|expires| *expires > now)
    }

    /// Ends one session (logout).
    pub fn end(&self, id: &str) {
        self.lock().sessions.remove(id);
    }

    /// Ends every session and forgets every login code (token rotation).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.logins.clear();
        inner.sessions.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_code_works_once_and_not_after_it_expires() {
        let (s, now) = (Sessions::default(), Instant::now());
        let code = s.new_login_at(now);
        let id = s.redeem_at(&code, now).expect("first use");
        assert!(s.valid_at(&id, now));
        assert_eq!(s.redeem_at(&code, now), None, "second use");
        let late = s.new_login_at(now);
        assert_eq!(s.redeem_at(&late, now + LOGIN_TTL), None);
        assert_eq!(s.redeem_at("made-up", now), None);
        assert!(!s.valid_at("made-up", now));
    }

    #[test]
    fn sessions_expire_end_and_are_cleared_by_rotation() {
        let (s, now) = (Sessions::default(), Instant::now());
        let a = s.redeem_at(&s.new_login_at(now), now).unwrap();
        let b = s.redeem_at(&s.new_login_at(now), now).unwrap();
        assert!(!s.valid_at(&a, now + SESSION_TTL));
        s.end(&a);
        assert!(!s.valid_at(&a, now) && s.valid_at(&b, now));
        let pending = s.new_login_at(now);
        s.clear();
        assert!(!s.valid_at(&b, now));
        assert_eq!(s.redeem_at(&pending, now), None);
    }

    #[test]
    fn codes_and_sessions_are_bounded() {
        let (s, now) = (Sessions::default(), Instant::now());
        let first = s.new_login_at(now);
        for i in 0..MAX_LOGINS {
            s.new_login_at(now + Duration::from_millis(i as u64 + 1));
        }
        assert_eq!(s.lock().logins.len(), MAX_LOGINS);
        assert_eq!(s.redeem_at(&first, now), None, "the oldest code made room");
        let ids: Vec<_> = (0..MAX_SESSIONS + 1)
            .map(|i| {
                let t = now + Duration::from_millis(i as u64);
                s.redeem_at(&s.new_login_at(t), t).unwrap()
            })
            .collect();
        assert_eq!(s.lock().sessions.len(), MAX_SESSIONS);
        assert!(!s.valid_at(&ids[0], now) && s.valid_at(&ids[MAX_SESSIONS], now));
    }
}
