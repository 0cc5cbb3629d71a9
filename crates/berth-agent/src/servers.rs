//! The servers an agent may talk to (any of those sharing one store), and
//! which of them it talks to now.
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// The endpoint, without a trailing slash: `http://127.0.0.1:4510`.
    pub url: String,
    /// What SigV4 signs as the Host header.
    pub host: String,
}

impl Server {
    pub fn parse(endpoint: &str) -> Server {
        let url = endpoint.trim().trim_end_matches('/').to_string();
        let host = url
            .split_once("://")
            .map_or(url.as_str(), |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        Server { url, host }
    }
}

#[derive(Debug)]
pub struct Servers {
    list: Vec<Server>,
    current: AtomicUsize,
}

impl Servers {
    /// The servers named, in the order given; None when there are none.
    pub fn new<S: AsRef<str>>(endpoints: &[S]) -> Option<Servers> {
        let list: Vec<Server> = endpoints
            .iter()
            .map(|e| e.as_ref())
            .filter(|e| !e.trim().is_empty())
            .map(Server::parse)
            .collect();
        (!list.is_empty()).then_some(Servers {
            list,
            current: AtomicUsize::new(0),
        })
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The one in use, by its place in the list.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    pub fn get(&self, i: usize) -> &Server {
        &self.list[i % self.list.len()]
    }

    /// Moves on from the server at `failed` to the next, unless a call that
    /// failed at the same time already moved on (so two failures skip one server, not two).
    pub fn move_past(&self, failed: usize) {
        let next = (failed + 1) % self.list.len();
        let _ = self
            .current
            .compare_exchange(failed, next, Ordering::Relaxed, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_parsed_into_url_and_signed_host() {
        let s = Servers::new(&["http://127.0.0.1:4510/", " http://[::1]:80/x "]).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.get(0).url, "http://127.0.0.1:4510");
        assert_eq!(s.get(0).host, "127.0.0.1:4510");
        assert_eq!(s.get(1).url, "http://[::1]:80/x");
        assert_eq!(s.get(1).host, "[::1]:80");
        assert!(Servers::new::<&str>(&[]).is_none());
        assert!(Servers::new(&[""]).is_none());
    }

    #[test]
    fn a_failure_moves_on_once_and_wraps_around() {
        let s = Servers::new(&["http://a", "http://b", "http://c"]).unwrap();
        assert_eq!(s.current(), 0);
        s.move_past(0);
        // A second call that failed on the same server does not skip b.
        s.move_past(0);
        assert_eq!(s.current(), 1);
        s.move_past(1);
        s.move_past(2);
        assert_eq!(s.current(), 0);
    }
}
