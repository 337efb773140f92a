//! TCP connection state as IPVS tracks it, and the idle timeout of each state.
//!
//! This is the state machine of Linux's `net/netfilter/ipvs/ip_vs_proto_tcp.c`: eleven states,
//! three direction tables and four events, driven by nothing but the flags of each segment. It
//! exists to decide how long an idle connection is kept and whether it counts as active for the
//! least-connection schedulers. It does not validate sequence numbers or windows, and it never
//! drops a packet.
//!
//! The state names are the kernel's, and they describe the *real server's* socket, not the
//! client's: the client's SYN moves a new connection to `SYN_RECV`; a FIN from the client makes it
//! `CLOSE_WAIT`, a FIN from the server `FIN_WAIT`; both FINs make it `TIME_WAIT`.
//!
//! Invariants:
//! - [`TcpState::next`] is total: every state, direction and flag set gives a state, with no panic.
//! - A segment carrying none of SYN, FIN, ACK and RST leaves the state unchanged.
//! - `TIME_WAIT` and `CLOSE` are left only by a segment with SYN set (and RST clear).
//!
//! # Limitations
//! - Only the kernel's normal table (`tcp_states`). The `secure_tcp` defence table
//!   (`tcp_states_dos`), which parks half-open connections in `SYNACK`, is not provided.
//! - `LAST_ACK`, `LISTEN` and `SYNACK` are never entered by this table (the same holds in the
//!   kernel: `LISTEN` is set by the FTP helper, `SYNACK` only by `secure_tcp`). They exist so a
//!   caller may set them, and so the state space matches `ipvsadm -lnc`.
//! - Where the kernel, on a segment with no tracked flag, falls through to `CLOSE` (the initial
//!   value of `new_state` in `set_tcp_state`), we keep the state: such a segment is not valid TCP
//!   once the handshake is under way, and a stray one should not cut a connection's timeout to 10 s.

use std::fmt;
use std::time::Duration;

use crate::flow::Dir;

/// How long a connection lives idle in each state (and a UDP flow in any), IPVS's table.
/// `Default` gives IPVS's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// ESTABLISHED (900 s).
    pub tcp_established: Duration,
    /// SYN_SENT, after a SYN from the server side (120 s).
    pub tcp_syn_sent: Duration,
    /// SYN_RECV, after the client's SYN until the handshake completes (60 s).
    pub tcp_syn_recv: Duration,
    /// FIN_WAIT, after the server's FIN (120 s).
    pub tcp_fin_wait: Duration,
    /// TIME_WAIT, after both FINs (120 s).
    pub tcp_time_wait: Duration,
    /// CLOSE_WAIT, after the client's FIN (60 s).
    pub tcp_close_wait: Duration,
    /// LAST_ACK (30 s; IPVS's state table never enters it).
    pub tcp_last_ack: Duration,
    /// CLOSE, after a RST (10 s).
    pub tcp_close: Duration,
    /// UDP idle (300 s).
    pub udp: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let d = Duration::from_secs;
        Timeouts {
            tcp_established: d(900),
            tcp_syn_sent: d(120),
            tcp_syn_recv: d(60),
            tcp_fin_wait: d(120),
            tcp_time_wait: d(120),
            tcp_close_wait: d(60),
            tcp_last_ack: d(30),
            tcp_close: d(10),
            udp: d(300),
        }
    }
}

/// State of a tracked TCP connection, numbered as the kernel's `IP_VS_TCP_S_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    /// No segment with a tracked flag seen yet (`NONE`).
    None = 0,
    /// The handshake completed, or data is flowing (`ESTABLISHED`).
    Established = 1,
    /// The server sent a SYN first (`SYN_SENT`): an active open seen from the server's side.
    SynSent = 2,
    /// The client's SYN was seen (`SYN_RECV`): the usual first state of a new connection.
    SynRecv = 3,
    /// The server sent FIN first (`FIN_WAIT`); in DR/TUN mode, any FIN from the client.
    FinWait = 4,
    /// Both sides sent FIN (`TIME_WAIT`); a new SYN may reuse the 4-tuple.
    TimeWait = 5,
    /// Reset, or torn down (`CLOSE`); a new SYN may reuse the 4-tuple.
    Close = 6,
    /// The client sent FIN first (`CLOSE_WAIT`).
    CloseWait = 7,
    /// Waiting for the last ACK (`LAST_ACK`); never entered by the transition table.
    LastAck = 8,
    /// A data connection the FTP helper expects (`LISTEN`); never entered by the table.
    Listen = 9,
    /// A half-open connection under `secure_tcp` (`SYNACK`); never entered by this table.
    SynAck = 10,
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

/// Which of IPVS's three transition tables a segment is looked up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → server, when the balancer also sees the replies (NAT).
    Input,
    /// Server → client.
    Output,
    /// Client → server, when the replies bypass the balancer (DR, TUN). The client's FIN then
    /// means `FIN_WAIT`, since nothing will show us the server's.
    InputOnly,
}

/// The table a segment in direction `dir` uses. `input_only` is true for forwarding methods whose
/// replies do not come back through us (DR, TUN); like the kernel's `IP_VS_CONN_F_NOOUTPUT`, a
/// caller that does see a reply may switch back to `false` from then on.
pub fn direction(dir: Dir, input_only: bool) -> Direction {
    match (dir, input_only) {
        (Dir::Original, false) => Direction::Input,
        (Dir::Original, true) => Direction::InputOnly,
        (Dir::Reply, _) => Direction::Output,
    }
}

/// The NAT view: `Original` is [`Direction::Input`]. DR/TUN callers must use
/// [`direction`]`(dir, true)` instead.
impl From<Dir> for Direction {
    fn from(dir: Dir) -> Direction {
        direction(dir, false)
    }
}

/// The event a segment is, by its flags. Discriminants are the row order of [`TRANSITIONS`].
#[derive(Clone, Copy)]
enum Event {
    Syn = 0,
    Fin = 1,
    Ack = 2,
    Rst = 3,
}

impl Event {
    /// One event per segment, by priority RST > SYN > FIN > ACK (the kernel's `tcp_state_idx`),
    /// so SYN-ACK is a SYN and FIN-ACK a FIN. `None` for a segment with none of the four.
    fn of(f: Seen) -> Option<Event> {
        if f.rst {
            Some(Event::Rst)
        } else if f.syn {
            Some(Event::Syn)
        } else if f.fin {
            Some(Event::Fin)
        } else if f.ack {
            Some(Event::Ack)
        } else {
            None
        }
    }
}

/// Two-letter names for the table, as the kernel spells them (`sES`, `sSS`, ...). `NO` and `SA`
/// are missing on purpose: no cell of the normal table leads to `NONE` or `SYNACK`.
mod s {
    use super::TcpState;
    pub const ES: TcpState = TcpState::Established;
    pub const SS: TcpState = TcpState::SynSent;
    pub const SR: TcpState = TcpState::SynRecv;
    pub const FW: TcpState = TcpState::FinWait;
    pub const TW: TcpState = TcpState::TimeWait;
    pub const CL: TcpState = TcpState::Close;
    pub const CW: TcpState = TcpState::CloseWait;
    pub const LA: TcpState = TcpState::LastAck;
    pub const LI: TcpState = TcpState::Listen;
}

/// Number of states; the width of a row of [`TRANSITIONS`].
const STATES: usize = 11;

/// `TRANSITIONS[direction][event][state]` is the state after a segment.
///
/// Transcribed from `tcp_states[]` in Linux's `net/netfilter/ipvs/ip_vs_proto_tcp.c` (current
/// mainline, where an INPUT ACK in `NONE` gives `ESTABLISHED`; older kernels gave `CLOSE`).
/// The kernel keeps one flat array of twelve rows and offsets it by direction (INPUT 0, OUTPUT 4,
/// INPUT_ONLY 8); here the direction is the outer index instead. Within a direction the rows are
/// syn, fin, ack, rst, and the columns are the states in discriminant order. Cells worth noticing:
/// - RST does not always close: an INPUT RST leaves `SYN_RECV` (and `LAST_ACK`, `LISTEN`) as they
///   are, and an OUTPUT RST leaves `SYN_SENT` and `TIME_WAIT`.
/// - A client FIN gives `CLOSE_WAIT` under INPUT but `FIN_WAIT` under INPUT_ONLY.
/// - A client SYN in `SYN_SENT` counts as the handshake's completion (`ESTABLISHED`).
#[rustfmt::skip]
const TRANSITIONS: [[[TcpState; STATES]; 4]; 3] = {
    use s::*;
    [
        // Input         NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
        [
            /* syn */   [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
            /* fin */   [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
            /* ack */   [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
            /* rst */   [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
        ],
        // Output        NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
        [
            /* syn */   [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
            /* fin */   [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
            /* ack */   [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
            /* rst */   [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
        ],
        // InputOnly     NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
        [
            /* syn */   [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
            /* fin */   [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
            /* ack */   [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
            /* rst */   [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
        ],
    ]
};

/// Kernel defaults for the states `Timeouts` has no field for. `NONE` is 2 s in the kernel
/// (`tcp_timeouts[IP_VS_TCP_S_NONE] = 2*HZ`): a flow nothing has been learnt about goes quickly.
const NONE_TIMEOUT: Duration = Duration::from_secs(2);
const LISTEN_TIMEOUT: Duration = Duration::from_secs(120);
const SYNACK_TIMEOUT: Duration = Duration::from_secs(120);

impl TcpState {
    /// Every state, in discriminant order.
    pub const ALL: [TcpState; STATES] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    /// The state after a segment with flags `f` travelling in `dir`.
    ///
    /// Accepts a [`Direction`], or a [`Dir`] taken as NAT (see `From<Dir> for Direction`).
    pub fn next(self, dir: impl Into<Direction>, f: Seen) -> TcpState {
        let Some(event) = Event::of(f) else {
            return self;
        };
        let table = match dir.into() {
            Direction::Input => &TRANSITIONS[0],
            Direction::Output => &TRANSITIONS[1],
            Direction::InputOnly => &TRANSITIONS[2],
        };
        // In bounds by construction: 4 event rows of `STATES` cells, indexed by discriminants.
        table[event as usize][self as usize]
    }

    /// Compatibility with the pre-IPVS tracker: `next` with `dir` taken as NAT.
    pub fn next_dir(self, dir: Dir, f: Seen) -> TcpState {
        self.next(direction(dir, false), f)
    }

    /// State of a new connection after its first segment: `NONE`, then [`next`](Self::next).
    /// A pure SYN from the client gives `SynRecv`.
    pub fn initial(dir: Direction, f: Seen) -> TcpState {
        TcpState::None.next(dir, f)
    }

    /// How long a connection in this state lives without traffic.
    pub fn timeout(self, t: &Timeouts) -> Duration {
        match self {
            TcpState::None => NONE_TIMEOUT,
            TcpState::Listen => LISTEN_TIMEOUT,
            TcpState::SynAck => SYNACK_TIMEOUT,
            TcpState::Established => t.tcp_established,
            TcpState::SynSent => t.tcp_syn_sent,
            TcpState::SynRecv => t.tcp_syn_recv,
            TcpState::FinWait => t.tcp_fin_wait,
            TcpState::TimeWait => t.tcp_time_wait,
            TcpState::Close => t.tcp_close,
            TcpState::CloseWait => t.tcp_close_wait,
            TcpState::LastAck => t.tcp_last_ack,
        }
    }

    /// True in `ESTABLISHED` only: the classic IPVS split of a server's connections into active
    /// (weighted 256 by lc/wlc) and inactive.
    pub fn is_established(self) -> bool {
        self == TcpState::Established
    }

    /// The split current kernels use instead (`tcp_state_active_table`): a connection
    /// still opening (`SYN_SENT`, `SYN_RECV`, `SYNACK`) is active too, so a SYN flood towards one
    /// server makes the least-connection schedulers avoid it.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TcpState::Established | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck
        )
    }

    /// True in `TIME_WAIT` and `CLOSE`: a new SYN on the same 4-tuple starts a new connection
    /// that may be scheduled afresh (the kernel's `is_new_conn_expected` for `conn_reuse_mode`).
    pub fn is_closed(self) -> bool {
        matches!(self, TcpState::TimeWait | TcpState::Close)
    }

    /// The kernel's name for the state, as `ipvsadm -lnc` prints it.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use Direction::{Input, InputOnly, Output};
    use TcpState as S;

    const SYN: Seen = Seen {
        syn: true,
        ack: false,
        fin: false,
        rst: false,
    };
    const SYN_ACK: Seen = Seen { ack: true, ..SYN };
    const ACK: Seen = Seen {
        syn: false,
        ack: true,
        fin: false,
        rst: false,
    };
    const FIN_ACK: Seen = Seen { fin: true, ..ACK };
    const RST: Seen = Seen {
        syn: false,
        ack: false,
        fin: false,
        rst: true,
    };
    const RST_ACK: Seen = Seen { ack: true, ..RST };
    const NOTHING: Seen = Seen {
        syn: false,
        ack: false,
        fin: false,
        rst: false,
    };

    /// Feed `steps` to a connection whose first segment is `first`, checking each state.
    fn walk(first: (Direction, Seen, TcpState), steps: &[(Direction, Seen, TcpState)]) {
        let mut s = TcpState::initial(first.0, first.1);
        assert_eq!(s, first.2, "first segment");
        for (i, &(dir, seen, want)) in steps.iter().enumerate() {
            let was = s;
            s = s.next(dir, seen);
            assert_eq!(s, want, "step {i}: {was} + {dir:?} {seen:?}");
        }
    }

    #[test]
    fn client_closes_first() {
        walk(
            (Input, SYN, S::SynRecv),
            &[
                (Output, SYN_ACK, S::SynRecv),
                (Input, ACK, S::Established),
                (Input, ACK, S::Established),   // request
                (Output, ACK, S::Established),  // response
                (Input, FIN_ACK, S::CloseWait), // the client is done
                (Output, ACK, S::CloseWait),
                (Output, FIN_ACK, S::TimeWait), // the server too
                (Input, ACK, S::TimeWait),
            ],
        );
    }

    #[test]
    fn server_closes_first() {
        // The kernel's table never enters LAST_ACK: the second FIN goes straight to TIME_WAIT.
        walk(
            (Input, SYN, S::SynRecv),
            &[
                (Output, SYN_ACK, S::SynRecv),
                (Input, ACK, S::Established),
                (Output, FIN_ACK, S::FinWait),
                (Input, ACK, S::FinWait),
                (Input, FIN_ACK, S::TimeWait),
                (Output, ACK, S::TimeWait),
            ],
        );
    }

    #[test]
    fn simultaneous_fins() {
        for (a, b, mid) in [(Input, Output, S::CloseWait), (Output, Input, S::FinWait)] {
            walk(
                (Input, SYN, S::SynRecv),
                &[
                    (Output, SYN_ACK, S::SynRecv),
                    (Input, ACK, S::Established),
                    (a, FIN_ACK, mid),
                    (b, FIN_ACK, S::TimeWait),
                    (a, ACK, S::TimeWait),
                    (b, ACK, S::TimeWait),
                ],
            );
        }
    }

    #[test]
    fn input_only_reaches_established_and_fin_wait() {
        // DR/TUN: only the client's half of the conversation passes through.
        walk(
            (InputOnly, SYN, S::SynRecv),
            &[
                (InputOnly, SYN, S::SynRecv), // retransmitted SYN
                (InputOnly, ACK, S::Established),
                (InputOnly, ACK, S::Established),
                (InputOnly, FIN_ACK, S::FinWait),
                (InputOnly, ACK, S::FinWait), // acks the server's FIN, which we never see
                (InputOnly, RST, S::Close),
            ],
        );
        // Server closes first: its FIN is invisible; the client's FIN still means FIN_WAIT.
        let s = TcpState::Established.next(InputOnly, FIN_ACK);
        assert_eq!(s, S::FinWait);
        assert_eq!(s.next(InputOnly, FIN_ACK), S::FinWait);
    }

    #[test]
    fn rst_closes_except_where_the_kernel_table_says_otherwise() {
        let keeps_input = [S::SynRecv, S::LastAck, S::Listen];
        for dir in [Input, InputOnly] {
            for s in TcpState::ALL {
                let want = if keeps_input.contains(&s) {
                    s
                } else if s == S::SynAck && dir == Input {
                    S::SynRecv
                } else {
                    S::Close
                };
                assert_eq!(s.next(dir, RST), want, "{s} + {dir:?} RST");
                // RST outranks every other flag.
                assert_eq!(s.next(dir, RST_ACK), want, "{s} + {dir:?} RST-ACK");
            }
        }
        for s in TcpState::ALL {
            let want = match s {
                S::SynSent | S::TimeWait => s,
                _ => S::Close,
            };
            assert_eq!(s.next(Output, RST), want, "{s} + Output RST");
        }
        // A server refusing the connection: SYN, RST from the server.
        assert_eq!(
            TcpState::initial(Input, SYN).next(Output, RST_ACK),
            S::Close
        );
        // A client abort mid-handshake keeps SYN_RECV, so the entry lives its 60 s.
        assert_eq!(TcpState::initial(Input, SYN).next(Input, RST), S::SynRecv);
    }

    #[test]
    fn flag_priority_is_rst_syn_fin_ack() {
        let syn_fin = Seen { fin: true, ..SYN };
        assert_eq!(
            S::Established.next(Input, syn_fin),
            S::Established.next(Input, SYN)
        );
        assert_eq!(S::Established.next(Output, SYN_ACK), S::Established);
        assert_eq!(S::Established.next(Input, FIN_ACK), S::CloseWait);
        let everything = Seen {
            syn: true,
            ack: true,
            fin: true,
            rst: true,
        };
        assert_eq!(S::Established.next(Input, everything), S::Close);
    }

    #[test]
    fn segment_without_tracked_flags_keeps_the_state() {
        for dir in [Input, Output, InputOnly] {
            for s in TcpState::ALL {
                assert_eq!(s.next(dir, NOTHING), s);
            }
            assert_eq!(TcpState::initial(dir, NOTHING), S::None);
        }
    }

    #[test]
    fn first_segment() {
        assert_eq!(TcpState::initial(Input, SYN), S::SynRecv);
        assert_eq!(TcpState::initial(InputOnly, SYN), S::SynRecv);
        assert_eq!(TcpState::initial(Output, SYN), S::SynSent);
        // Mid-stream pickup (e.g. after a restart): an ACK is taken as ESTABLISHED.
        assert_eq!(TcpState::initial(Input, ACK), S::Established);
        assert_eq!(TcpState::initial(Input, FIN_ACK), S::Close);
        assert_eq!(TcpState::initial(Output, FIN_ACK), S::TimeWait);
    }

    #[test]
    fn new_syn_reopens_closed_states() {
        for s in [S::TimeWait, S::Close] {
            assert!(s.is_closed());
            assert_eq!(s.next(Input, SYN), S::SynRecv);
            assert_eq!(s.next(InputOnly, SYN), S::SynRecv);
        }
    }

    #[test]
    fn dir_mapping() {
        assert_eq!(direction(Dir::Original, false), Input);
        assert_eq!(direction(Dir::Original, true), InputOnly);
        assert_eq!(direction(Dir::Reply, false), Output);
        assert_eq!(direction(Dir::Reply, true), Output);
        assert_eq!(Direction::from(Dir::Original), Input);
        // The compatibility entry point and a `Dir` argument both mean NAT.
        let s = S::Established;
        assert_eq!(s.next_dir(Dir::Original, FIN_ACK), S::CloseWait);
        assert_eq!(s.next(Dir::Reply, FIN_ACK), S::FinWait);
    }

    #[test]
    fn timeouts_match_config_and_kernel_defaults() {
        let t = Timeouts::default();
        let secs = |s: TcpState| s.timeout(&t).as_secs();
        let want = [
            (S::None, 2),
            (S::Established, 900),
            (S::SynSent, 120),
            (S::SynRecv, 60),
            (S::FinWait, 120),
            (S::TimeWait, 120),
            (S::Close, 10),
            (S::CloseWait, 60),
            (S::LastAck, 30),
            (S::Listen, 120),
            (S::SynAck, 120),
        ];
        assert_eq!(want.len(), TcpState::ALL.len());
        for (s, w) in want {
            assert_eq!(secs(s), w, "{s}");
        }
        // Configured values are used, not the defaults.
        let t = Timeouts {
            tcp_established: Duration::from_secs(7),
            tcp_last_ack: Duration::from_secs(8),
            ..Timeouts::default()
        };
        assert_eq!(S::Established.timeout(&t), Duration::from_secs(7));
        assert_eq!(S::LastAck.timeout(&t), Duration::from_secs(8));
    }

    #[test]
    fn predicates_and_names() {
        for s in TcpState::ALL {
            assert_eq!(s.is_established(), s == S::Established, "{s}");
            assert_eq!(s.is_closed(), matches!(s, S::TimeWait | S::Close), "{s}");
            if s.is_established() {
                assert!(s.is_active());
            }
            assert!(!(s.is_active() && s.is_closed()));
        }
        let names: Vec<&str> = TcpState::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "NONE",
                "ESTABLISHED",
                "SYN_SENT",
                "SYN_RECV",
                "FIN_WAIT",
                "TIME_WAIT",
                "CLOSE",
                "CLOSE_WAIT",
                "LAST_ACK",
                "LISTEN",
                "SYNACK"
            ]
        );
        assert_eq!(S::CloseWait.to_string(), "CLOSE_WAIT");
    }

    #[test]
    fn all_is_in_discriminant_order() {
        for (i, s) in TcpState::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
    }

    fn any_direction() -> impl Strategy<Value = Direction> {
        prop_oneof![Just(Input), Just(Output), Just(InputOnly)]
    }

    fn any_seen() -> impl Strategy<Value = Seen> {
        any::<(bool, bool, bool, bool)>().prop_map(|(syn, ack, fin, rst)| Seen {
            syn,
            ack,
            fin,
            rst,
        })
    }

    proptest! {
        #[test]
        fn any_sequence_stays_in_the_state_space(
            start in 0..STATES,
            segs in prop::collection::vec((any_direction(), any_seen()), 0..64),
        ) {
            let mut s = TcpState::ALL[start];
            for (dir, f) in segs {
                let was = s;
                s = s.next(dir, f);
                prop_assert!(TcpState::ALL.contains(&s));
                prop_assert!(!s.name().is_empty());
                prop_assert!(s.timeout(&Timeouts::default()) > Duration::ZERO);
                // Only a SYN (without RST) leaves TIME_WAIT or CLOSE.
                if was.is_closed() && (!f.syn || f.rst) {
                    prop_assert!(s.is_closed(), "{} -> {} on {:?} {:?}", was, s, dir, f);
                }
            }
        }
    }
}
