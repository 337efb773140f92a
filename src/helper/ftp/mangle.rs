//! Formatting of the arguments the FTP helper writes back into a control stream.
//!
//! This module owns the text of a rewrite: the `h1,h2,h3,h4,p1,p2` form of PORT and 227
//! (RFC 959), the `<d>1<d>a.b.c.d<d>port<d>` form of EPRT (RFC 2428) and the bare port digits of
//! a 229 reply. Where the text goes (which byte range of which segment) is the parser's
//! [`Item::arg`](super::parse::Item) span and the sequence adjustment's business, not ours.
//!
//! Invariants: nothing here allocates or panics; every [`Arg`] holds at most [`MAX_ARG`] bytes,
//! and the longest text we can produce (`|1|255.255.255.255|65535|`, 25 bytes) fits with room to
//! spare, so the bounded writer never has to truncate. The output is always canonical: decimal
//! without leading zeros, no spaces.
//!
//! Limitations: IPv4 only. An EPRT rewrite keeps the client's delimiter unless that delimiter
//! could appear inside the new text (a digit or `.`) or is not a legal RFC 2428 delimiter; then it
//! falls back to `|`, which every server must accept since the delimiter is chosen by the sender.

use std::net::Ipv4Addr;

/// Capacity of an [`Arg`]; comfortably above the 25 bytes of the longest EPRT argument.
pub const MAX_ARG: usize = 48;

/// The delimiter RFC 2428 suggests, used when the client's own cannot be reused.
const DEFAULT_DELIMITER: u8 = b'|';

/// A formatted argument, stored inline so that building one never allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg {
    bytes: [u8; MAX_ARG],
    len: u8,
}

impl Arg {
    const fn empty() -> Self {
        Arg {
            bytes: [0; MAX_ARG],
            len: 0,
        }
    }

    /// The formatted text.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Length of the formatted text in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True when nothing was written (never the case for the public constructors).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one byte. Bytes past [`MAX_ARG`] are dropped: no caller in this module comes close
    /// (see the module invariants), and dropping is better than a panic on the packet path.
    fn push(&mut self, b: u8) {
        let at = usize::from(self.len);
        if let Some(slot) = self.bytes.get_mut(at) {
            *slot = b;
            self.len = self.len.saturating_add(1);
        }
    }

    /// Appends `n` in decimal, without leading zeros.
    fn push_decimal(&mut self, n: u16) {
        let mut started = false;
        for div in [10_000u16, 1_000, 100, 10, 1] {
            let digit = n
                .checked_div(div)
                .and_then(|q| q.checked_rem(10))
                .unwrap_or(0);
            if digit != 0 || started || div == 1 {
                started = true;
                self.push(b'0'.saturating_add(u8::try_from(digit).unwrap_or(0)));
            }
        }
    }
}

/// `h1,h2,h3,h4,p1,p2`: the argument of PORT and the numbers of a 227 reply (RFC 959).
pub fn port_arg(addr: Ipv4Addr, port: u16) -> Arg {
    let mut arg = Arg::empty();
    let [p1, p2] = port.to_be_bytes();
    for (i, n) in addr.octets().into_iter().chain([p1, p2]).enumerate() {
        if i > 0 {
            arg.push(b',');
        }
        arg.push_decimal(u16::from(n));
    }
    arg
}

/// `<d>1<d>a.b.c.d<d>port<d>`: the whole argument of an IPv4 EPRT (RFC 2428).
///
/// `delim` is normally [`eprt_delimiter`] of the argument being replaced, so the server sees the
/// delimiter its client chose. A delimiter that is outside 33..=126, a digit or `.` would make
/// the new text ambiguous (it could occur inside the address or port), so `|` is used instead.
pub fn eprt_arg(delim: u8, addr: Ipv4Addr, port: u16) -> Arg {
    let d = if (33..=126).contains(&delim) && !delim.is_ascii_digit() && delim != b'.' {
        delim
    } else {
        DEFAULT_DELIMITER
    };
    let mut arg = Arg::empty();
    arg.push(d);
    arg.push(b'1');
    arg.push(d);
    for (i, octet) in addr.octets().into_iter().enumerate() {
        if i > 0 {
            arg.push(b'.');
        }
        arg.push_decimal(u16::from(octet));
    }
    arg.push(d);
    arg.push_decimal(port);
    arg.push(d);
    arg
}

/// The port digits of a 229 reply (`(|||port|)`, RFC 2428): what replaces its arg span.
pub fn port_number_arg(port: u16) -> Arg {
    let mut arg = Arg::empty();
    arg.push_decimal(port);
    arg
}

/// The delimiter of an original EPRT argument: its first byte, when that byte is one RFC 2428
/// allows (33..=126). `None` for an empty argument or an illegal first byte.
pub fn eprt_delimiter(arg: &[u8]) -> Option<u8> {
    arg.first().copied().filter(|d| (33..=126).contains(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helper::ftp::parse::{Event, Item, Side, StreamParser};
    use proptest::prelude::*;

    fn client_items(line: &[u8]) -> Vec<Item> {
        let mut parser = StreamParser::new(Side::Client);
        let mut items = Vec::new();
        parser.feed(line, |item| items.push(item));
        items
    }

    fn text(arg: &Arg) -> &str {
        core::str::from_utf8(arg.as_bytes()).unwrap()
    }

    #[test]
    fn port_arg_table() {
        let cases: &[(Ipv4Addr, u16, &str)] = &[
            (
                Ipv4Addr::new(198, 51, 100, 10),
                10000,
                "198,51,100,10,39,16",
            ),
            (Ipv4Addr::new(0, 0, 0, 0), 0, "0,0,0,0,0,0"),
            (Ipv4Addr::new(10, 0, 0, 1), 21, "10,0,0,1,0,21"),
            (
                Ipv4Addr::new(255, 255, 255, 255),
                65535,
                "255,255,255,255,255,255",
            ),
            (Ipv4Addr::new(1, 2, 3, 4), 256, "1,2,3,4,1,0"),
        ];
        for (addr, port, want) in cases {
            assert_eq!(text(&port_arg(*addr, *port)), *want, "{addr}:{port}");
        }
    }

    #[test]
    fn eprt_arg_table() {
        let cases: &[(u8, Ipv4Addr, u16, &str)] = &[
            (
                b'|',
                Ipv4Addr::new(132, 235, 1, 2),
                6275,
                "|1|132.235.1.2|6275|",
            ),
            (b'!', Ipv4Addr::new(1, 2, 3, 4), 2000, "!1!1.2.3.4!2000!"),
            (b'#', Ipv4Addr::new(0, 0, 0, 0), 1, "#1#0.0.0.0#1#"),
            // Delimiters that could occur inside the text, or are illegal, fall back to `|`.
            (b'7', Ipv4Addr::new(10, 0, 0, 7), 7, "|1|10.0.0.7|7|"),
            (b'.', Ipv4Addr::new(10, 0, 0, 7), 7, "|1|10.0.0.7|7|"),
            (b' ', Ipv4Addr::new(10, 0, 0, 7), 7, "|1|10.0.0.7|7|"),
            (0x7f, Ipv4Addr::new(10, 0, 0, 7), 7, "|1|10.0.0.7|7|"),
        ];
        for (d, addr, port, want) in cases {
            assert_eq!(text(&eprt_arg(*d, *addr, *port)), *want, "{d}");
        }
    }

    #[test]
    fn port_number_arg_table() {
        for (port, want) in [(1u16, "1"), (10, "10"), (6446, "6446"), (65535, "65535")] {
            assert_eq!(text(&port_number_arg(port)), want);
        }
    }

    #[test]
    fn longest_arguments_fit() {
        let top = Ipv4Addr::new(255, 255, 255, 255);
        let port = port_arg(top, 65535);
        let eprt = eprt_arg(b'|', top, 65535);
        assert_eq!(port.len(), 23);
        assert_eq!(eprt.len(), 25);
        assert!(port.len() <= MAX_ARG && eprt.len() <= MAX_ARG);
        assert!(!port.is_empty());
        assert_eq!(text(&eprt), "|1|255.255.255.255|65535|");
    }

    #[test]
    fn eprt_delimiter_table() {
        assert_eq!(eprt_delimiter(b"|1|1.2.3.4|5|"), Some(b'|'));
        assert_eq!(eprt_delimiter(b"!1!1.2.3.4!5!"), Some(b'!'));
        assert_eq!(eprt_delimiter(b"~"), Some(b'~'));
        assert_eq!(eprt_delimiter(b""), None);
        assert_eq!(eprt_delimiter(b" 1 1.2.3.4 5 "), None);
        assert_eq!(eprt_delimiter(b"\x7f1\x7f"), None);
    }

    proptest! {
        #[test]
        fn port_arg_round_trips(octets in any::<[u8; 4]>(), port in any::<u16>()) {
            let addr = Ipv4Addr::from(octets);
            let arg = port_arg(addr, port);
            let mut line = b"PORT ".to_vec();
            line.extend_from_slice(arg.as_bytes());
            line.extend_from_slice(b"\r\n");
            let items = client_items(&line);
            prop_assert_eq!(items.len(), 1);
            prop_assert_eq!(items[0].event, Event::Port { addr, port });
            prop_assert_eq!(items[0].arg.clone(), 5..5 + arg.len() as u64);
        }

        #[test]
        fn eprt_arg_round_trips(octets in any::<[u8; 4]>(), port in 1u16.., d in 33u8..=126) {
            let addr = Ipv4Addr::from(octets);
            let arg = eprt_arg(d, addr, port);
            prop_assert_eq!(eprt_delimiter(arg.as_bytes()).is_some(), true);
            let mut line = b"EPRT ".to_vec();
            line.extend_from_slice(arg.as_bytes());
            line.extend_from_slice(b"\r\n");
            let items = client_items(&line);
            prop_assert_eq!(items.len(), 1);
            prop_assert_eq!(items[0].event, Event::Eprt { addr, port });
            prop_assert_eq!(items[0].arg.clone(), 5..5 + arg.len() as u64);
        }

        #[test]
        fn port_number_arg_is_decimal(port in any::<u16>()) {
            let arg = port_number_arg(port);
            prop_assert_eq!(text(&arg), port.to_string());
        }
    }
}
