//! The pipeline's flow setup room: what a packet that misses the flow table becomes (a new
//! flow through a service's scheduler, an expected FTP data connection, or a drop by reason),
//! port reuse (IPVS's conn_reuse_mode), and ending flows early.

use super::*;
use crate::helper::ftp::worker::{data_flow, passive_server_port, Opening};

impl<B: PacketBuf> Pipeline<B> {
    pub(super) fn miss(&mut self, l4: L4, buf: B, now: Instant, io: &mut impl Io<B>) {
        let (src, dst) = (l4.key.src, l4.key.dst);
        match () {
            _ if self.services.is_vip(dst) => self.new_flow(l4, buf, now, io),
            // A DR/TUN server answering from the VIP through rvs (its routing is wrong): the
            // reversed key is the flow's client -> VIP side.
            _ if self.services.is_vip(src)
                && matches!(
                    self.flows.lookup(&l4.key.reversed()),
                    Some((_, Dir::Original))
                ) =>
            {
                self.drop_buf(io, buf, DropReason::UnexpectedReply)
            }
            _ if self.local.contains(&dst) => self.drop_buf(io, buf, DropReason::LocalUnhandled),
            _ => self.drop_buf(io, buf, DropReason::NoService),
        }
    }

    /// True when a pure SYN arrives on a TCP flow that has already closed (or, for DR/TUN,
    /// whose client has sent its FIN).
    pub(super) fn reusable(&self, id: ConnId, l4: &L4) -> bool {
        l4.key.proto == ipproto::TCP
            && l4.seen.syn
            && !l4.seen.rst
            && self.flows.get(id).is_some_and(|c| {
                // DR/TUN see only the client's half: after its FIN the flow stays in FIN_WAIT,
                // and a SYN on the same ports is a new connection (IPVS's conn_reuse_mode bit 2).
                let input_only = self
                    .services
                    .get(c.service)
                    .is_some_and(|s| matches!(s.forward, ForwardMethod::Dr | ForwardMethod::Tun));
                c.state.is_closed() || (input_only && c.state == TcpState::FinWait)
            })
    }

    /// Remove a flow now and release its server.
    pub(super) fn end_flow(&mut self, id: ConnId) {
        if let Some(c) = self.flows.remove(id) {
            flow_ended(&c, &mut self.services, &mut self.lports, self.ftp.as_mut());
            self.bump(Counter::FlowsExpired, 1);
        }
    }

    /// End the flows that hold either key of `conn`, if all of them have closed. True when
    /// something was ended.
    pub(super) fn end_closed(&mut self, conn: &Conn) -> bool {
        let ids: Vec<ConnId> = [conn.original_key(), conn.reply_key()]
            .iter()
            .filter_map(|k| self.flows.lookup(k).map(|(id, _)| id))
            .collect();
        let closed = !ids.is_empty()
            && ids
                .iter()
                .all(|id| self.flows.get(*id).is_some_and(|c| c.state.is_closed()));
        if closed {
            for id in ids {
                self.end_flow(id);
            }
        }
        closed
    }

    pub(super) fn timeout(&self, proto: u8, state: TcpState) -> Duration {
        if proto == ipproto::TCP {
            state.timeout(&self.timeouts)
        } else {
            self.timeouts.udp
        }
    }

    pub(super) fn new_flow(&mut self, l4: L4, buf: B, now: Instant, io: &mut impl Io<B>) {
        let k = l4.key;
        let Some(svc) = self.services.lookup(k.proto, k.dst, k.dport) else {
            return self.drop_buf(io, buf, DropReason::NoService);
        };
        if k.proto == ipproto::TCP && !(l4.seen.syn && !l4.seen.ack && !l4.seen.rst) {
            return self.drop_buf(io, buf, DropReason::NotSyn);
        }
        let Some((_, dest)) = self.services.schedule(svc, &k, now) else {
            return self.drop_buf(io, buf, DropReason::NoServer);
        };
        // UDP flows sit in ESTABLISHED: one timeout, always counted active (as in IPVS).
        let method = self
            .services
            .get(svc)
            .map_or(ForwardMethod::Nat, |s| s.forward);
        let input_only = matches!(method, ForwardMethod::Dr | ForwardMethod::Tun);
        // A multi-port service's servers keep the client's destination port.
        let sport = if dest.port == 0 { k.dport } else { dest.port };
        let (laddr, lport, fnat) = if method == ForwardMethod::Fnat {
            let local = self
                .lports
                .get_mut(usize::from(svc))
                .and_then(|l| l.alloc(dest.addr, sport, &self.sharding, self.worker));
            match local {
                Some((a, p)) => (a, p, true),
                None => {
                    self.services.release(svc, dest.index, true, k.src);
                    return self.drop_buf(io, buf, DropReason::NoLocalPort);
                }
            }
        } else {
            (k.src, k.sport, false)
        };
        let state = if k.proto == ipproto::TCP {
            TcpState::initial(
                if input_only {
                    Direction::InputOnly
                } else {
                    Direction::Input
                },
                l4.seen,
            )
        } else {
            TcpState::Established
        };
        let conn = Conn {
            client: k.src,
            vip: k.dst,
            server: dest.addr,
            cport: k.sport,
            vport: k.dport,
            sport,
            service: svc,
            dest: dest.index,
            proto: k.proto,
            state,
            expires: now + self.timeout(k.proto, state),
            wheel_sec: 0,
            laddr,
            lport,
            fnat,
            ftp: if self
                .services
                .get(svc)
                .is_some_and(|s| s.ftp_control.contains(&k.dport))
            {
                FTP_CONTROL
            } else {
                FTP_NONE
            },
        };
        let id = match self.flows.insert(conn) {
            Ok(id) => id,
            Err(e) => {
                self.services.release(svc, dest.index, true, k.src);
                if fnat {
                    if let Some(l) = self.lports.get_mut(usize::from(svc)) {
                        l.free(laddr, lport);
                    }
                }
                let r = match e {
                    InsertError::Full => DropReason::FlowTableFull,
                    InsertError::Conflict => DropReason::FlowConflict,
                };
                return self.drop_buf(io, buf, r);
            }
        };
        self.bump(Counter::FlowsCreated, 1);
        self.counters.add(
            self.layout
                .service(usize::from(svc), LbCounter::Connections),
            1,
        );
        self.counters.add(
            self.layout
                .server(usize::from(dest.index), LbCounter::Connections),
            1,
        );
        // The SYN itself is the first packet of the new flow: it already moved the state.
        let l4 = L4 {
            made_flow: true,
            ..l4
        };
        self.forward(id, Dir::Original, l4, buf, now, io);
    }

    /// Make the data connection an expectation announced, and send its first packet.
    pub(super) fn new_data_flow(
        &mut self,
        e: Expectation,
        l4: L4,
        buf: B,
        now: Instant,
        io: &mut impl Io<B>,
    ) {
        let Some(svc) = self.services.get(e.service) else {
            return self.drop_buf(io, buf, DropReason::NoService);
        };
        let (vip, method) = (svc.vip, svc.forward);
        // Passive full NAT: a local address and port towards the server, as for any flow.
        let local = if e.kind == ExpectKind::Passive && method == ForwardMethod::Fnat {
            let sport = passive_server_port(&e, &l4.key);
            let local = self
                .lports
                .get_mut(usize::from(e.service))
                .and_then(|l| l.alloc(e.server, sport, &self.sharding, self.worker));
            if local.is_none() {
                return self.drop_buf(io, buf, DropReason::NoLocalPort);
            }
            local
        } else {
            None
        };
        let opening = Opening {
            key: l4.key,
            seen: l4.seen,
            vip,
            method,
            local,
            now,
        };
        let (conn, dir) = data_flow(&e, &opening, &self.timeouts);
        let free_local = |me: &mut Self, c: &Conn| {
            if c.fnat && c.lport < FTP_ACTIVE_FIRST {
                if let Some(l) = me.lports.get_mut(usize::from(c.service)) {
                    l.free(c.laddr, c.lport);
                }
            } else if c.fnat {
                if let Some(ftp) = me.ftp.as_mut() {
                    ftp.released(c.laddr, c.lport);
                }
            }
        };
        if !self.services.attach(e.service, e.dest, conn.client, now) {
            free_local(self, &conn);
            return self.drop_buf(io, buf, DropReason::NoServer);
        }
        let mut inserted = self.flows.insert(conn.clone());
        if inserted == Err(InsertError::Conflict) && self.end_closed(&conn) {
            // The previous data connection on these ports has closed (TIME_WAIT): it gives way.
            inserted = self.flows.insert(conn.clone());
        }
        let id = match inserted {
            Ok(id) => id,
            Err(err) => {
                self.services.release(e.service, e.dest, true, conn.client);
                free_local(self, &conn);
                let r = match err {
                    InsertError::Full => DropReason::FlowTableFull,
                    InsertError::Conflict => DropReason::FlowConflict,
                };
                return self.drop_buf(io, buf, r);
            }
        };
        // Link to the control connection, so that it outlives its data connections.
        let master = ConnId(e.master);
        if let Some(ftp) = self.ftp.as_mut() {
            ftp.link(&e, &conn, master, self.flows.get(master));
        }
        self.bump(Counter::FlowsCreated, 1);
        self.bump(Counter::FtpDataFlows, 1);
        let (s, d) = (usize::from(e.service), usize::from(e.dest));
        self.counters
            .add(self.layout.service(s, LbCounter::Connections), 1);
        self.counters
            .add(self.layout.server(d, LbCounter::Connections), 1);
        let l4 = L4 {
            made_flow: true,
            ..l4
        };
        self.forward(id, dir, l4, buf, now, io);
    }

    /// Claim the expectation this packet opens, if any (one relaxed load when none is live).
    #[inline]
    pub(super) fn claim(&self, l4: &L4, now: Instant) -> Option<Expectation> {
        self.ftp
            .as_ref()?
            .claim(&l4.key, l4.seen, now, &self.services)
    }

    /// An FTP data flow was refreshed until `expires`: its control connection must live at
    /// least as long (netfilter's master/expectation rule, in IPVS terms).
    pub(super) fn hold_master(&mut self, data: ConnId, expires: Instant) {
        let Some(key) = self.flows.get(data).map(Conn::original_key) else {
            return;
        };
        let Some(ftp) = self.ftp.as_mut() else {
            return;
        };
        let Some((master, master_key)) = ftp.master(&key) else {
            return;
        };
        match self.flows.get(master) {
            Some(m) if m.original_key() == master_key => {
                if m.expires < expires {
                    self.flows.set_expiry(master, expires);
                }
            }
            // The control connection is gone (its slot may be reused): drop the link.
            _ => ftp.unlink(&key),
        }
    }
}
