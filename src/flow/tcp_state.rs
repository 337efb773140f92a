//! TCP connection state as a load balancer sees it, and the timeout of each state.
//!
//! A simplified IPVS-style tracker: it only needs to know how long to keep a flow, not to
//! validate sequence numbers. A new flow starts in `SynRecv` (the client's SYN seen); the first
//! non-SYN segment from the client after the server answered makes it `Established`; FINs move it
//! through `FinWait`/`CloseWait` to `TimeWait`; a RST closes it at once with the short `Close`
//! timeout.

use std::time::Duration;

use crate::config::Timeouts;
use crate::flow::Dir;

/// State of a tracked TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TcpState {
    /// The client's SYN has been seen.
    SynRecv,
    /// The server has answered the SYN.
    SynSent,
    /// Data may flow both ways.
    Established,
    /// The client has sent FIN.
    FinWait,
    /// The server has sent FIN.
    CloseWait,
    /// Both sides have sent FIN.
    TimeWait,
    /// Reset.
    Close,
}

/// TCP flag bits the tracker looks at.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen {
    /// SYN set.
    pub syn: bool,
    /// ACK set.
    pub ack: bool,
    /// FIN set.
    pub fin: bool,
    /// RST set.
    pub rst: bool,
}

impl TcpState {
    /// The state after a segment with `flags` travelling in `dir`.
    pub fn next(self, dir: Dir, f: Seen) -> TcpState {
        use TcpState::*;
        if f.rst {
            return Close;
        }
        match (self, dir) {
            // A new SYN on a closed flow reuses it (the client reused its port), like IPVS.
            (Close | TimeWait, Dir::Original) if f.syn && !f.ack => SynRecv,
            (Close, _) => Close,
            (SynRecv, Dir::Reply) if f.syn && f.ack => SynSent,
            (SynRecv, _) => SynRecv,
            (SynSent, Dir::Original) if f.fin => FinWait,
            (SynSent, Dir::Original) if f.ack && !f.syn => Established,
            (SynSent, _) => SynSent,
            (Established, Dir::Original) if f.fin => FinWait,
            (Established, Dir::Reply) if f.fin => CloseWait,
            (Established, _) => Established,
            (FinWait, Dir::Reply) if f.fin => TimeWait,
            (FinWait, _) => FinWait,
            (CloseWait, Dir::Original) if f.fin => TimeWait,
            (CloseWait, _) => CloseWait,
            (TimeWait, _) => TimeWait,
        }
    }

    /// How long a flow in this state lives without traffic.
    pub fn timeout(self, t: &Timeouts) -> Duration {
        let s = match self {
            TcpState::SynRecv => t.tcp_syn_recv,
            TcpState::SynSent => t.tcp_syn_sent,
            TcpState::Established => t.tcp_established,
            TcpState::FinWait => t.tcp_fin_wait,
            TcpState::CloseWait => t.tcp_close_wait,
            TcpState::TimeWait => t.tcp_time_wait,
            TcpState::Close => t.tcp_close,
        };
        Duration::from_secs(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Dir::*;

    fn f(syn: bool, ack: bool, fin: bool, rst: bool) -> Seen {
        Seen { syn, ack, fin, rst }
    }

    #[test]
    fn handshake_data_and_close() {
        let t = Timeouts::default();
        let mut s = TcpState::SynRecv;
        s = s.next(Reply, f(true, true, false, false));
        assert_eq!(s, TcpState::SynSent);
        s = s.next(Original, f(false, true, false, false));
        assert_eq!(s, TcpState::Established);
        assert_eq!(s.timeout(&t), Duration::from_secs(900));
        s = s.next(Original, f(false, true, true, false));
        assert_eq!(s, TcpState::FinWait);
        s = s.next(Reply, f(false, true, true, false));
        assert_eq!(s, TcpState::TimeWait);
        assert_eq!(s.timeout(&t), Duration::from_secs(120));
    }

    #[test]
    fn rst_closes_from_any_state_and_syn_reopens() {
        for s in [
            TcpState::SynRecv,
            TcpState::Established,
            TcpState::FinWait,
            TcpState::TimeWait,
        ] {
            assert_eq!(s.next(Reply, f(false, false, false, true)), TcpState::Close);
        }
        assert_eq!(
            TcpState::Close.next(Original, f(true, false, false, false)),
            TcpState::SynRecv
        );
        assert_eq!(
            TcpState::Close.timeout(&Timeouts::default()),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn server_closes_first() {
        let s = TcpState::Established.next(Reply, f(false, true, true, false));
        assert_eq!(s, TcpState::CloseWait);
        assert_eq!(
            s.next(Original, f(false, true, true, false)),
            TcpState::TimeWait
        );
    }
}
