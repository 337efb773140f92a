//! The worker's half of the FTP helper: what a worker does for FTP besides forwarding frames.
//!
//! - **Claims**: a packet that misses the flow table may open a data connection that the slow
//!   path announced ([`FtpWorker::claim`], from the shared [`Expectations`]); a packet costs one
//!   relaxed load when no expectation is live.
//! - **Data-flow setup**: the connection an expectation and the opening packet make
//!   ([`data_flow`]), in each of the three kinds (passive, active, and the client's SYN-ACK
//!   of DR/TUN active mode).
//! - **Links**: each data flow knows its control connection (by slot and key, since a slot can
//!   be reused), so that the control connection outlives its data connections (netfilter's
//!   master rule).
//! - **Notices**: what the slow path must learn that no frame carries (a control connection
//!   ended, an active-mode local port is free), queued until its ring has room.
//!
//! The pipeline holds one `FtpWorker` when some service has the helper, and none otherwise.
//! Nothing here sends a frame: the pipeline does, with what this returns.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::Arc;

use hashbrown::HashMap;

use super::ctl::CtlKey;
use super::expect::{ExpectKind, Expectation, Expectations};
use crate::flow::conn::{FTP_CONTROL, FTP_DATA};
use crate::flow::tcp_state::{Direction, Seen, Timeouts};
use crate::flow::{Conn, ConnId, Dir, FlowKey, TcpState};
use crate::lb::ServiceTable;
use crate::time::Instant;
use crate::wire::ipproto;
use crate::xmit::ForwardMethod;

/// News for the slow path that no frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A control connection's flow ended: its state can go.
    Closed(CtlKey),
    /// A full-NAT active-mode local port (address, port) is free again.
    Released(Ipv4Addr, u16),
}

/// The packet that opens an expected data connection, as the pipeline saw it.
#[derive(Clone, Copy, Debug)]
pub struct Opening {
    /// Its flow key.
    pub key: FlowKey,
    /// Its TCP flags.
    pub seen: Seen,
    /// The service's VIP.
    pub vip: Ipv4Addr,
    /// The service's forwarding method.
    pub method: ForwardMethod,
    /// Passive full NAT: the local address and port the pipeline took towards the server.
    pub local: Option<(Ipv4Addr, u16)>,
    /// When it came.
    pub now: Instant,
}

/// The connection an expectation `e` and its opening packet make, and the direction that
/// packet travels in it.
pub fn data_flow(e: &Expectation, o: &Opening, timeouts: &Timeouts) -> (Conn, Dir) {
    let k = o.key;
    let input_only = matches!(o.method, ForwardMethod::Dr | ForwardMethod::Tun);
    let base = |dir: Direction| {
        let state = TcpState::initial(dir, o.seen);
        Conn {
            client: e.client,
            vip: Ipv4Addr::UNSPECIFIED,
            server: e.server,
            cport: 0,
            vport: 0,
            sport: 0,
            service: e.service,
            dest: e.dest,
            proto: ipproto::TCP,
            state,
            expires: o.now + state.timeout(timeouts),
            wheel_sec: 0,
            laddr: e.client,
            lport: 0,
            fnat: false,
            ftp: FTP_DATA,
        }
    };
    match e.kind {
        ExpectKind::Passive => {
            let (laddr, lport, fnat) = match o.local {
                Some((a, p)) => (a, p, true),
                None => (k.src, k.sport, false),
            };
            let dir = if input_only {
                Direction::InputOnly
            } else {
                Direction::Input
            };
            let c = Conn {
                client: k.src,
                vip: k.dst,
                server: e.server,
                cport: k.sport,
                vport: k.dport,
                sport: passive_server_port(e, &k),
                laddr,
                lport,
                fnat,
                ..base(dir)
            };
            (c, Dir::Original)
        }
        // The server connects out: from its data port to the client (NAT) or to the local
        // address and port rvs wrote into the PORT command (full NAT). The client sees it come
        // from the VIP.
        ExpectKind::Active => {
            let c = Conn {
                client: e.client,
                cport: e.client_port,
                vip: o.vip,
                vport: k.sport,
                server: k.src,
                sport: k.sport,
                laddr: if e.lport != 0 { e.laddr } else { e.client },
                lport: if e.lport != 0 { e.lport } else { e.client_port },
                fnat: e.lport != 0,
                ..base(Direction::Output)
            };
            (c, Dir::Reply)
        }
        // DR/TUN active mode: the client answers the server's connection (made from the VIP);
        // its SYN-ACK opens a flow to that server like a client's SYN would.
        ExpectKind::ActiveReturn => {
            let c = Conn {
                client: k.src,
                cport: k.sport,
                vip: k.dst,
                vport: k.dport,
                server: e.server,
                sport: k.dport,
                laddr: k.src,
                lport: k.sport,
                fnat: false,
                ..base(Direction::InputOnly)
            };
            (c, Dir::Original)
        }
    }
}

/// The server's port of a passive data connection opened by `key`.
pub fn passive_server_port(e: &Expectation, key: &FlowKey) -> u16 {
    if e.server_port == 0 {
        key.dport
    } else {
        e.server_port
    }
}

/// One worker's FTP state (see the module docs).
#[derive(Debug)]
pub struct FtpWorker {
    worker: u16,
    expect: Arc<Expectations>,
    /// Data flow (its original key) → its control connection (slot, original key).
    links: HashMap<FlowKey, (ConnId, FlowKey)>,
    /// Notices that met a full ring; the pipeline retries them every poll.
    notices: VecDeque<Notice>,
}

impl FtpWorker {
    /// Worker `worker`'s half, claiming from `expect` (shared with the slow path and the
    /// other workers), with room for `links` live data flows before its link table grows.
    pub fn new(worker: u16, expect: Arc<Expectations>, links: usize) -> FtpWorker {
        FtpWorker {
            worker,
            expect,
            links: HashMap::with_capacity(links),
            notices: VecDeque::new(),
        }
    }

    /// True when a packet missing the flow table may be an expected data connection: a SYN
    /// (or, for DR/TUN active mode, the client's SYN-ACK) while any expectation is live.
    #[inline]
    pub fn expecting(&self, key: &FlowKey, seen: Seen) -> bool {
        key.proto == ipproto::TCP && seen.syn && !seen.rst && self.expect.live() > 0
    }

    /// Claim the expectation the packet `key`/`seen` opens, if any.
    pub fn claim(
        &self,
        key: &FlowKey,
        seen: Seen,
        now: Instant,
        services: &ServiceTable,
    ) -> Option<Expectation> {
        if !self.expecting(key, seen) {
            return None;
        }
        let k = *key;
        if seen.ack {
            // Only DR/TUN active mode starts from the client's SYN-ACK.
            return self
                .expect
                .claim_return(k.src, k.dst, k.sport, k.dport, now, |e| {
                    e.kind == ExpectKind::ActiveReturn
                });
        }
        self.expect
            .claim(k.src, k.dst, k.sport, k.dport, now, |e| match e.kind {
                ExpectKind::ActiveReturn => false,
                // A DR/TUN pin covers any port of its service but the control ports (a new
                // control connection must not take it).
                ExpectKind::Passive if e.dport == 0 => {
                    services.lookup(k.proto, k.dst, k.dport) == Some(e.service)
                        && services
                            .get(e.service)
                            .is_some_and(|s| !s.ftp_control.contains(&k.dport))
                }
                _ => true,
            })
    }

    /// Link the data flow `data` to its control connection `master` (slot `id`), when this
    /// worker holds it (it always does: see `helper::ftp::expect`) and it is the one `e` named.
    pub fn link(&mut self, e: &Expectation, data: &Conn, id: ConnId, master: Option<&Conn>) {
        if e.master_worker != self.worker {
            return;
        }
        if let Some(m) = master
            .filter(|m| m.ftp == FTP_CONTROL && m.client == e.client && m.service == e.service)
        {
            self.links
                .insert(data.original_key(), (id, m.original_key()));
        }
    }

    /// The control connection (slot, original key) of the data flow keyed `data`.
    #[inline]
    pub fn master(&self, data: &FlowKey) -> Option<(ConnId, FlowKey)> {
        self.links.get(data).copied()
    }

    /// Forget the link of the data flow keyed `data` (its control connection is gone).
    pub fn unlink(&mut self, data: &FlowKey) {
        self.links.remove(data);
    }

    /// A flow of this worker ended: a control connection's state at the slow path can go; a
    /// data flow's link goes.
    pub fn flow_ended(&mut self, c: &Conn) {
        match c.ftp {
            FTP_CONTROL => self.notices.push_back(Notice::Closed(CtlKey {
                worker: self.worker,
                client: c.client,
                cport: c.cport,
                vip: c.vip,
                vport: c.vport,
            })),
            FTP_DATA => {
                self.links.remove(&c.original_key());
            }
            _ => {}
        }
    }

    /// A full-NAT active-mode local port is free (the slow path hands those out).
    pub fn released(&mut self, laddr: Ipv4Addr, lport: u16) {
        self.notices.push_back(Notice::Released(laddr, lport));
    }

    /// The oldest notice not yet delivered.
    #[inline]
    pub fn next_notice(&self) -> Option<Notice> {
        self.notices.front().copied()
    }

    /// The oldest notice was delivered.
    pub fn notice_sent(&mut self) {
        self.notices.pop_front();
    }
}
