//! Persistence (`ipvsadm -p timeout -M netmask`): a client (or a whole masked group of clients)
//! keeps its real server across connections and, on a multi-port service, across ports.
//!
//! One template per (service, masked client address): the chosen server, the time it lapses, and
//! how many live connections it controls. As in IPVS, a template lives while it controls
//! connections, and for `timeout` after the last new connection it gave a server to. Templates are
//! per worker and need no locks: a client's flows all belong to one worker (`flow::rss`), whose
//! sharding prefix is the shortest persistence netmask, so a whole group lands on one worker.
//!
//! Expiry is lazy and bounded: a queue of (template, when to look again) is checked a few entries
//! per poll; a template still in use is looked at again later. The table holds at most `max`
//! templates; beyond that a new client is scheduled without persistence (counted by the caller).

use std::collections::VecDeque;

use hashbrown::HashMap;

use crate::time::Instant;

#[derive(Clone, Copy, Debug)]
struct Template {
    dest: u16,
    expires: Instant,
    conns: u32,
    gen: u32,
}

/// The templates of one worker, for all persistent services.
#[derive(Debug)]
pub struct Persistence {
    map: HashMap<(u16, u32), Template>,
    queue: VecDeque<((u16, u32), u32, Instant)>,
    next_gen: u32,
    max: usize,
}

impl Persistence {
    /// At most `max` templates.
    pub fn new(max: usize) -> Persistence {
        Persistence {
            map: HashMap::new(),
            queue: VecDeque::new(),
            next_gen: 0,
            max,
        }
    }

    /// Templates held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no template is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The server position a live template gives `client` (already masked) of service `svc`.
    pub fn lookup(&self, svc: u16, client: u32, now: Instant) -> Option<u16> {
        let t = self.map.get(&(svc, client))?;
        (t.conns > 0 || t.expires > now).then_some(t.dest)
    }

    /// Record a new connection of `client` to server position `dest` under the template, which
    /// lapses no earlier than `expires`. Returns false when the table is full.
    pub fn attach(&mut self, svc: u16, client: u32, dest: u16, expires: Instant) -> bool {
        if let Some(t) = self.map.get_mut(&(svc, client)) {
            if t.dest != dest {
                // The old server became unavailable: the template now points at the new one.
                t.dest = dest;
            }
            t.conns = t.conns.saturating_add(1);
            t.expires = t.expires.max(expires);
            return true;
        }
        if self.map.len() >= self.max {
            return false;
        }
        let gen = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1);
        self.map.insert(
            (svc, client),
            Template {
                dest,
                expires,
                conns: 1,
                gen,
            },
        );
        self.queue.push_back(((svc, client), gen, expires));
        true
    }

    /// A connection controlled by the template of `client` ended.
    pub fn detach(&mut self, svc: u16, client: u32) {
        if let Some(t) = self.map.get_mut(&(svc, client)) {
            t.conns = t.conns.saturating_sub(1);
        }
    }

    /// Remove lapsed templates, looking at no more than `budget` queue entries. Returns how many
    /// were removed.
    pub fn expire(&mut self, now: Instant, budget: usize) -> usize {
        let mut removed = 0;
        for _ in 0..budget {
            match self.queue.front() {
                Some((_, _, at)) if *at <= now => {}
                _ => break,
            }
            let Some((key, gen, _)) = self.queue.pop_front() else {
                break;
            };
            let Some(t) = self.map.get(&key).copied() else {
                continue;
            };
            if t.gen != gen {
                continue; // the template was replaced since this entry was queued
            }
            if t.conns == 0 && t.expires <= now {
                self.map.remove(&key);
                removed += 1;
            } else {
                // Still in use or refreshed: look again when it could lapse next (at least a
                // second from now, so a busy template is not re-examined every poll).
                let again = t.expires.max(now + std::time::Duration::from_secs(1));
                self.queue.push_back((key, gen, again));
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_lives_while_in_use_and_for_its_timeout_after() {
        let mut p = Persistence::new(10);
        let t0 = Instant::from_secs(1);
        assert!(p.attach(0, 7, 2, Instant::from_secs(301)));
        assert_eq!(
            p.lookup(0, 7, Instant::from_secs(500)),
            Some(2),
            "a live connection keeps it"
        );
        p.detach(0, 7);
        assert_eq!(p.lookup(0, 7, Instant::from_secs(300)), Some(2));
        assert_eq!(p.lookup(0, 7, Instant::from_secs(302)), None);
        assert_eq!(p.lookup(1, 7, t0), None, "per service");
        assert_eq!(p.expire(Instant::from_secs(302), 10), 1);
        assert!(p.is_empty());
    }

    #[test]
    fn busy_templates_are_requeued_not_removed_and_budget_holds() {
        let mut p = Persistence::new(1000);
        for c in 0..100 {
            p.attach(0, c, 0, Instant::from_secs(10));
        }
        for c in 0..50 {
            p.detach(0, c);
        }
        let now = Instant::from_secs(20);
        let mut removed = 0;
        for _ in 0..100 {
            let n = p.expire(now, 8);
            assert!(n <= 8);
            removed += n;
        }
        assert_eq!(removed, 50);
        assert_eq!(p.len(), 50);
        assert!(p.lookup(0, 99, now).is_some());
    }

    #[test]
    fn full_table_refuses_new_clients_only() {
        let mut p = Persistence::new(1);
        assert!(p.attach(0, 1, 0, Instant::from_secs(5)));
        assert!(!p.attach(0, 2, 0, Instant::from_secs(5)));
        assert!(
            p.attach(0, 1, 0, Instant::from_secs(9)),
            "an existing template still works"
        );
    }
}
