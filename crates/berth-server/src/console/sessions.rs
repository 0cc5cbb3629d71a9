//! Console sign-in sessions: who signed in with which key, in which region,
//! the token every form must carry, and when the session ends.
use std::collections::HashMap;
use std::sync::Mutex;

/// How long a session lives: idle (since its last request) and in all.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub idle_secs: u64,
    pub lifetime_secs: u64,
}

impl Default for Limits {
    /// The AWS console's own: an hour idle, twelve hours in all.
    fn default() -> Limits {
        Limits {
            idle_secs: 3600,
            lifetime_secs: 12 * 3600,
        }
    }
}

/// Sessions beyond this many are refused rather than grow the map without end.
pub const MAX_SESSIONS: usize = 10_000;

#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// The key the person signed in with: every call runs as its owner, looked up anew.
    pub access_key_id: String,
    pub region: String,
    /// The token a request must echo in `X-Berth-Csrf`, which another site cannot read.
    pub csrf: String,
    pub created: u64,
    pub last_seen: u64,
}

/// Whether a session has ended at `now`.
pub fn expired(s: &Session, limits: Limits, now: u64) -> bool {
    now.saturating_sub(s.last_seen) >= limits.idle_secs
        || now.saturating_sub(s.created) >= limits.lifetime_secs
}

/// A random token of 256 bits, hex.
pub fn token() -> String {
    use chacha20poly1305::aead::rand_core::RngCore;
    let mut b = [0u8; 32];
    chacha20poly1305::aead::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

pub struct Sessions {
    limits: Limits,
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub fn new(limits: Limits) -> Sessions {
        Sessions {
            limits,
            by_id: Mutex::new(HashMap::new()),
        }
    }

    /// Opens a session for a checked key: its id (the cookie) and the session.
    pub fn open(&self, access_key_id: &str, region: &str, now: u64) -> Option<(String, Session)> {
        let mut by_id = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        by_id.retain(|_, s| !expired(s, self.limits, now));
        if by_id.len() >= MAX_SESSIONS {
            return None;
        }
        let session = Session {
            access_key_id: access_key_id.to_string(),
            region: region.to_string(),
            csrf: token(),
            created: now,
            last_seen: now,
        };
        let id = token();
        by_id.insert(id.clone(), session.clone());
        Some((id, session))
    }

    /// The live session with this id, its idle clock restarted; an ended one is forgotten.
    pub fn touch(&self, id: &str, now: u64) -> Option<Session> {
        let mut by_id = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        let s = by_id.get_mut(id)?;
        if expired(s, self.limits, now) {
            by_id.remove(id);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    pub fn set_region(&self, id: &str, region: &str) {
        let mut by_id = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = by_id.get_mut(id) {
            s.region = region.to_string();
        }
    }

    pub fn close(&self, id: &str) {
        self.by_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        idle_secs: 10,
        lifetime_secs: 100,
    };

    #[test]
    fn a_session_ends_when_idle_or_too_old() {
        let sessions = Sessions::new(LIMITS);
        let (id, s) = sessions.open("AKIA1", "us-east-1", 1000).unwrap();
        assert_eq!(s.access_key_id, "AKIA1");
        assert_eq!(s.csrf.len(), 64);
        assert_ne!(id, s.csrf);
        // Used every 9 s it stays open until its lifetime is up.
        let mut now = 1000;
        while now + 9 < 1100 {
            now += 9;
            assert!(sessions.touch(&id, now).is_some(), "at {now}");
        }
        assert_eq!(sessions.touch(&id, 1100), None);
        // Once ended it stays ended.
        assert_eq!(sessions.touch(&id, 1000), None);
        let (idle, _) = sessions.open("AKIA1", "us-east-1", 2000).unwrap();
        assert!(sessions.touch(&idle, 2009).is_some());
        assert_eq!(sessions.touch(&idle, 2019), None);
    }

    #[test]
    fn ids_are_unguessable_and_closing_forgets() {
        let sessions = Sessions::new(LIMITS);
        let (a, _) = sessions.open("AKIA1", "us-east-1", 0).unwrap();
        let (b, _) = sessions.open("AKIA1", "us-east-1", 0).unwrap();
        assert_ne!(a, b);
        assert_eq!(sessions.touch("not-an-id", 1), None);
        sessions.set_region(&a, "eu-west-1");
        assert_eq!(sessions.touch(&a, 1).unwrap().region, "eu-west-1");
        sessions.close(&a);
        assert_eq!(sessions.touch(&a, 1), None);
        assert!(sessions.touch(&b, 1).is_some());
    }

    #[test]
    fn ended_sessions_make_room_and_the_count_is_bounded() {
        let sessions = Sessions::new(LIMITS);
        for _ in 0..MAX_SESSIONS {
            sessions.open("AKIA1", "us-east-1", 0).unwrap();
        }
        assert_eq!(sessions.open("AKIA1", "us-east-1", 5), None);
        assert!(sessions.open("AKIA1", "us-east-1", 10).is_some());
    }
}
