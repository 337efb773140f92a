//! The FTP control-stream parser: line reassembly and the grammar of the commands and replies
//! the helper acts on (PORT, EPRT, PASV, EPSV, AUTH from the client; 227, 229, 234 from the
//! server). Sans-IO and deterministic: it sees only the in-order payload bytes of one direction.
//!
//! One [`StreamParser`] owns one direction of one control connection. It is fed that direction's
//! TCP payload in order, split into segments any way at all, and reports [`Item`]s whose
//! positions are absolute stream offsets (bytes fed before), so the same stream yields the same
//! items however it was segmented. A rewrite replaces exactly the bytes of [`Item::arg`].
//!
//! Invariants:
//! - Lines end at LF (a CR before it, and trailing spaces, are tolerated and never part of a
//!   span). Commands and replies are recognised only at a line start; commands case-insensitively
//!   and only when the word is followed by SP or the end of the line.
//! - Memory is fixed: one [`MAX_LINE`]-byte buffer allocated in [`StreamParser::new`]. A line is
//!   processed straight from the segment when it lies whole inside one, and copied only when it
//!   straddles segments. `feed` never panics and never allocates.
//! - A line whose bytes before the LF number more than [`MAX_LINE`] is discarded up to and
//!   including its LF. [`Event::LineTooLong`] is reported once, **when that LF arrives**, with the
//!   real `line_end` (just past the LF); a line that never ends reports nothing and costs nothing.
//! - Server side, inside a multi-line reply (RFC 959 §4.2: `ddd-` opens, a line starting with the
//!   same `ddd` then SP or end of line closes) the inner lines yield no events at all, not even
//!   `LineTooLong`: a server may echo user-controlled text there, and a line that merely looks like
//!   `227 ...` must not be rewritten. The opening line yields nothing either; the closing line is
//!   parsed like a single-line reply. The state is three bytes, so a multi-line reply that never
//!   closes simply means no further server events (failing closed: no rewrite rather than a wrong
//!   one).
//! - A server-side [`Event::Reply234`] stops the parser by itself, right after that line: what
//!   follows in the same segment, if anything, is TLS. The client-side parser has to be stopped by
//!   the caller (with [`StreamParser::stop`]) when the server's 234 is seen.
//!
//! Limitations: IPv4 addresses only (EPRT of another family is reported, not decoded); no Telnet
//! option processing (an IAC sequence before a command hides it); 227 accepts only the RFC 1123
//! form "first digit after the code starts `h1,h2,h3,h4,p1,p2`". Numbers in PORT/227 are 1 to 3
//! decimal digits (leading zeros allowed: they are unambiguous in decimal); EPRT dotted quads are
//! strict (no leading zeros, which some stacks read as octal).

use core::ops::Range;
use std::net::Ipv4Addr;

/// Capacity of the per-direction buffer for the start of a line not yet terminated.
pub const MAX_LINE: usize = 256;

const LF: u8 = b'\n';

/// Who sends the direction a parser sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The FTP client: commands.
    Client,
    /// The FTP server: replies.
    Server,
}

/// What a line meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Client `PORT h1,h2,h3,h4,p1,p2` (RFC 959).
    Port { addr: Ipv4Addr, port: u16 },
    /// Client `EPRT <d>1<d>a.b.c.d<d>port<d>` (RFC 2428).
    Eprt { addr: Ipv4Addr, port: u16 },
    /// Client EPRT of a well-formed shape with a family other than 1 (2 is IPv6).
    EprtOtherFamily { af: u8 },
    /// Client `PASV`.
    Pasv,
    /// Client `EPSV`, with no argument or any argument but `ALL`.
    Epsv,
    /// Client `EPSV ALL`: from now on the client will only use EPSV.
    EpsvAll,
    /// Client `AUTH <mechanism>` (RFC 4217); TLS starts only if the server answers 234.
    Auth,
    /// Server `227 ... h1,h2,h3,h4,p1,p2`.
    Reply227 { addr: Ipv4Addr, port: u16 },
    /// Server `229 ... (<d><d><d>port<d>)`.
    Reply229 { port: u16 },
    /// Server 234: AUTH accepted, TLS starts after this line. The parser has stopped itself.
    Reply234,
    /// A line with one of the rewritable keywords that does not parse.
    Malformed { what: Malformed },
    /// A line longer than [`MAX_LINE`], discarded up to its LF; reported when the LF arrives.
    LineTooLong,
}

/// Which grammar a [`Event::Malformed`] line failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    Port,
    Eprt,
    Reply227,
    Reply229,
}

/// One event and where its line lies in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub event: Event,
    /// Offset of the first byte of the line.
    pub line_start: u64,
    /// Offset just past the line's LF.
    pub line_end: u64,
    /// The bytes a rewrite replaces; empty (`line_start..line_start`) when there are none.
    pub arg: Range<u64>,
}

/// The parser for one direction of one control connection.
#[derive(Clone, Debug)]
pub struct StreamParser {
    side: Side,
    /// The start of a line that straddles segments; only `buf[..len]` is meaningful. While
    /// discarding, it keeps the first [`MAX_LINE`] bytes so the line can still be classified
    /// (a too-long `ddd-` line must still open a multi-line reply).
    buf: Box<[u8; MAX_LINE]>,
    len: usize,
    /// Total bytes fed.
    offset: u64,
    /// Offset of the first byte of the current (incomplete) line.
    line_start: u64,
    /// The current line has outgrown the buffer; bytes are dropped until its LF.
    discarding: bool,
    /// Server side: the code of the open multi-line reply.
    multi: Option<[u8; 3]>,
    stopped: bool,
}

impl StreamParser {
    /// A parser at the start of a direction's stream.
    pub fn new(side: Side) -> Self {
        StreamParser {
            side,
            buf: Box::new([0; MAX_LINE]),
            len: 0,
            offset: 0,
            line_start: 0,
            discarding: false,
            multi: None,
            stopped: false,
        }
    }

    /// Feeds the next in-order payload bytes of this direction; `on_item` is called for each
    /// complete line that means something, in stream order.
    pub fn feed(&mut self, data: &[u8], mut on_item: impl FnMut(Item)) {
        let mut rest = data;
        while !rest.is_empty() {
            if self.stopped {
                self.advance(rest.len());
                return;
            }
            let Some(lf) = rest.iter().position(|&b| b == LF) else {
                self.absorb(rest);
                self.advance(rest.len());
                return;
            };
            let piece = rest.get(..lf).unwrap_or(&[]);
            let after = rest.get(lf.saturating_add(1)..).unwrap_or(&[]);
            let line_start = self.line_start;
            let line_end = self.offset.saturating_add(to_u64(lf).saturating_add(1));

            let outcome = if self.len == 0 && !self.discarding && piece.len() <= MAX_LINE {
                // The common case: the whole line is in this segment; no copy.
                classify(self.side, &mut self.multi, piece, false)
            } else {
                self.absorb(piece);
                let line = self.buf.get(..self.len).unwrap_or(&[]);
                classify(self.side, &mut self.multi, line, self.discarding)
            };
            if let Some((event, arg)) = outcome {
                let arg = if arg.is_empty() {
                    line_start..line_start
                } else {
                    line_start.saturating_add(to_u64(arg.start))
                        ..line_start.saturating_add(to_u64(arg.end))
                };
                on_item(Item {
                    event,
                    line_start,
                    line_end,
                    arg,
                });
                if event == Event::Reply234 {
                    // TLS starts right after this line; nothing after it is FTP text.
                    self.stop();
                }
            }

            self.offset = line_end;
            self.line_start = line_end;
            self.len = 0;
            self.discarding = false;
            rest = after;
        }
    }

    /// Total bytes fed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The buffered start of an incomplete line: empty at a line start, while discarding an
    /// over-long line, and once stopped.
    pub fn pending(&self) -> &[u8] {
        if self.discarding || self.stopped {
            return &[];
        }
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// True when the incomplete line in [`pending`](Self::pending) could still become a line
    /// this direction's rewrite must change. Unlike [`could_need_rewrite`] on `pending()`, this
    /// knows the parser's state: false once stopped, while discarding an over-long line, and
    /// inside a multi-line reply unless the line could be that reply's closing 227/229 line.
    pub fn pending_could_need_rewrite(&self) -> bool {
        if self.discarding || self.stopped {
            return false;
        }
        let partial = self.pending();
        match (self.side, self.multi) {
            (Side::Server, Some([a, b, c])) => {
                (&[a, b, c] == b"227" || &[a, b, c] == b"229")
                    && prefix_matches(partial, &[a, b, c, b' '])
            }
            (side, _) => could_need_rewrite(side, partial),
        }
    }

    /// Stops parsing for good (TLS has started): later [`feed`](Self::feed) calls only advance
    /// the offset. Idempotent.
    pub fn stop(&mut self) {
        self.stopped = true;
        self.len = 0;
        self.discarding = false;
    }

    /// True once [`stop`](Self::stop) was called or a 234 reply was parsed.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    fn advance(&mut self, n: usize) {
        self.offset = self.offset.saturating_add(to_u64(n));
    }

    /// Appends to the line buffer what fits; on overflow, switches to discarding (keeping the
    /// first [`MAX_LINE`] bytes for classification).
    fn absorb(&mut self, bytes: &[u8]) {
        if self.discarding {
            return;
        }
        let take = MAX_LINE.saturating_sub(self.len).min(bytes.len());
        let end = self.len.saturating_add(take);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..end), bytes.get(..take)) {
            dst.copy_from_slice(src);
            self.len = end;
        }
        if bytes.len() > take {
            self.discarding = true;
        }
    }
}

/// True when `partial` (the start of a line not yet terminated, case-insensitive) could still
/// become a line this side's rewrite cares about: client `PORT `/`EPRT `, server `227 `/`229 `.
/// Used by the slow path to hold back a segment rather than forward half a line it must rewrite.
/// It knows nothing of multi-line replies or discarding; see
/// [`StreamParser::pending_could_need_rewrite`] for the stateful answer.
pub fn could_need_rewrite(side: Side, partial: &[u8]) -> bool {
    let patterns: [&[u8]; 2] = match side {
        Side::Client => [b"PORT ", b"EPRT "],
        Side::Server => [b"227 ", b"229 "],
    };
    patterns.iter().any(|p| prefix_matches(partial, p))
}

/// True when `partial` and `pattern` agree (case-insensitively) over their common length.
fn prefix_matches(partial: &[u8], pattern: &[u8]) -> bool {
    partial
        .iter()
        .zip(pattern)
        .all(|(a, b)| a.eq_ignore_ascii_case(b))
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// An event and its arg span relative to the line start (empty when none).
type Outcome = Option<(Event, Range<usize>)>;

const NO_ARG: Range<usize> = 0..0;

fn malformed(what: Malformed) -> (Event, Range<usize>) {
    (Event::Malformed { what }, NO_ARG)
}

/// Interprets one complete line (without its LF). When `long`, `line` is only the first
/// [`MAX_LINE`] bytes of an over-long line, enough to classify it.
fn classify(side: Side, multi: &mut Option<[u8; 3]>, line: &[u8], long: bool) -> Outcome {
    let line = trim_end(line);
    match side {
        Side::Client if long => Some((Event::LineTooLong, NO_ARG)),
        Side::Client => client_line(line),
        Side::Server => server_line(multi, line, long),
    }
}

/// Drops trailing spaces and CRs (the CR of CRLF and any padding before it).
fn trim_end(line: &[u8]) -> &[u8] {
    let keep = line
        .iter()
        .rposition(|&b| b != b' ' && b != b'\r')
        .map_or(0, |i| i.saturating_add(1));
    line.get(..keep).unwrap_or(&[])
}

// ----- client commands -----

fn client_line(line: &[u8]) -> Outcome {
    let word_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let word = line.get(..word_end).unwrap_or(&[]);
    // Extra spaces before the argument are skipped; they are never part of the span.
    let args_start = line
        .iter()
        .skip(word_end)
        .position(|&b| b != b' ')
        .map_or(line.len(), |i| word_end.saturating_add(i));
    let args = line.get(args_start..).unwrap_or(&[]);
    let span =
        |r: Range<usize>| args_start.saturating_add(r.start)..args_start.saturating_add(r.end);

    if word.eq_ignore_ascii_case(b"PORT") {
        Some(match six_numbers(args) {
            Some((addr, port, len)) if len == args.len() => {
                (Event::Port { addr, port }, span(0..len))
            }
            _ => malformed(Malformed::Port),
        })
    } else if word.eq_ignore_ascii_case(b"EPRT") {
        Some(match eprt(args) {
            Some(event) => (event, span(0..args.len())),
            None => malformed(Malformed::Eprt),
        })
    } else if word.eq_ignore_ascii_case(b"PASV") {
        Some((Event::Pasv, NO_ARG))
    } else if word.eq_ignore_ascii_case(b"EPSV") {
        let event = if args.eq_ignore_ascii_case(b"ALL") {
            Event::EpsvAll
        } else {
            Event::Epsv
        };
        Some((event, NO_ARG))
    } else if word.eq_ignore_ascii_case(b"AUTH") {
        Some((Event::Auth, NO_ARG))
    } else {
        None
    }
}

/// The EPRT argument `<d>af<d>addr<d>port<d>`, exactly (nothing may follow).
fn eprt(args: &[u8]) -> Option<Event> {
    let (&d, body) = args.split_first()?;
    if !(33..=126).contains(&d) {
        return None;
    }
    let mut fields = body.split(|&b| b == d);
    let af = fields.next()?;
    let addr = fields.next()?;
    let port = fields.next()?;
    // The closing delimiter leaves one empty field after it, and nothing more.
    if fields.next()? != b"" || fields.next().is_some() {
        return None;
    }
    let af = u8::try_from(whole_number(af, 3)?).ok()?;
    let port = tcp_port(port)?;
    if af == 1 {
        Some(Event::Eprt {
            addr: dotted_quad(addr)?,
            port,
        })
    } else if !addr.is_empty() && addr.iter().all(|b| (33..=126).contains(b)) {
        Some(Event::EprtOtherFamily { af })
    } else {
        None
    }
}

/// A strict dotted quad: four decimal octets 0..=255, no leading zeros, nothing else.
fn dotted_quad(text: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split(|&b| b == b'.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.len() > 1 && part.first() == Some(&b'0') {
            return None;
        }
        *octet = u8::try_from(whole_number(part, 3)?).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

/// A decimal TCP port 1..=65535, the whole of `text`.
fn tcp_port(text: &[u8]) -> Option<u16> {
    u16::try_from(whole_number(text, 5)?)
        .ok()
        .filter(|&p| p != 0)
}

/// `text` entirely made of 1..=`max_digits` decimal digits.
fn whole_number(text: &[u8], max_digits: usize) -> Option<u32> {
    let (value, len) = number(text, max_digits)?;
    (len == text.len()).then_some(value)
}

/// The run of decimal digits at the start of `text`: its value and length. `None` when there is
/// no digit or more than `max_digits` (a longer run is refused, not split).
fn number(text: &[u8], max_digits: usize) -> Option<(u32, usize)> {
    let len = text.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > max_digits {
        return None;
    }
    let value = text.iter().take(len).try_fold(0u32, |acc, &b| {
        acc.checked_mul(10)?
            .checked_add(u32::from(b.wrapping_sub(b'0')))
    })?;
    Some((value, len))
}

/// `h1,h2,h3,h4,p1,p2` at the start of `text`: each 0..=255 in 1 to 3 digits, commas, no spaces.
/// Returns the address, the port (p1*256+p2) and how many bytes the six numbers took.
fn six_numbers(text: &[u8]) -> Option<(Ipv4Addr, u16, usize)> {
    let mut n = [0u8; 6];
    let mut pos = 0usize;
    for (i, slot) in n.iter_mut().enumerate() {
        if i > 0 {
            if text.get(pos) != Some(&b',') {
                return None;
            }
            pos = pos.saturating_add(1);
        }
        let (value, len) = number(text.get(pos..)?, 3)?;
        *slot = u8::try_from(value).ok()?;
        pos = pos.saturating_add(len);
    }
    let [h1, h2, h3, h4, p1, p2] = n;
    Some((
        Ipv4Addr::new(h1, h2, h3, h4),
        u16::from_be_bytes([p1, p2]),
        pos,
    ))
}

// ----- server replies -----

/// What follows a reply's three-digit code.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sep {
    /// SP, or the end of the line: a single-line reply, or the last line of a multi-line one.
    Last,
    /// `-`: the first line of a multi-line reply.
    More,
}

/// The code of a reply line: three digits followed by SP, `-` or the end of the line.
fn reply_code(line: &[u8]) -> Option<([u8; 3], Sep)> {
    let code = match line.get(..3)? {
        &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_digit) => [a, b, c],
        _ => return None,
    };
    let sep = match line.get(3) {
        None | Some(b' ') => Sep::Last,
        Some(b'-') => Sep::More,
        Some(_) => return None,
    };
    Some((code, sep))
}

fn server_line(multi: &mut Option<[u8; 3]>, line: &[u8], long: bool) -> Outcome {
    let code = reply_code(line);
    if let Some(open) = *multi {
        match code {
            Some((c, Sep::Last)) if c == open => *multi = None,
            // An inner line: never parsed, never reported (see the module docs).
            _ => return None,
        }
    } else if let Some((c, Sep::More)) = code {
        *multi = Some(c);
        // The first line is not parsed either: the closing line carries the reply.
        return long.then_some((Event::LineTooLong, NO_ARG));
    }
    if long {
        return Some((Event::LineTooLong, NO_ARG));
    }
    let (code, _) = code?;
    match &code {
        b"227" => Some(reply_227(line)),
        b"229" => Some(reply_229(line)),
        b"234" => Some((Event::Reply234, NO_ARG)),
        _ => None,
    }
}

/// 227: the six numbers start at the first digit after the code (RFC 1123 §4.1.2.6). What
/// follows them may be anything but another digit or comma (a seventh number is not this form).
fn reply_227(line: &[u8]) -> (Event, Range<usize>) {
    let parsed = line
        .iter()
        .skip(3)
        .position(u8::is_ascii_digit)
        .map(|i| i.saturating_add(3))
        .and_then(|start| {
            let (addr, port, len) = six_numbers(line.get(start..)?)?;
            let end = start.saturating_add(len);
            match line.get(end) {
                Some(b',') => None,
                _ => Some((Event::Reply227 { addr, port }, start..end)),
            }
        });
    parsed.unwrap_or_else(|| malformed(Malformed::Reply227))
}

/// 229: `(<d><d><d>port<d>)` after the first `(`, with one delimiter in 33..=126 that is not a
/// digit. The span is the port digits.
fn reply_229(line: &[u8]) -> (Event, Range<usize>) {
    let parsed = line.iter().skip(3).position(|&b| b == b'(').and_then(|i| {
        let open = i.saturating_add(3);
        let rest = line.get(open.saturating_add(1)..)?;
        let (&d, rest) = rest.split_first()?;
        if !(33..=126).contains(&d) || d.is_ascii_digit() {
            return None;
        }
        let rest = match rest {
            [d2, d3, rest @ ..] if *d2 == d && *d3 == d => rest,
            _ => return None,
        };
        let (value, len) = number(rest, 5)?;
        let port = u16::try_from(value).ok().filter(|&p| p != 0)?;
        match rest.get(len..)? {
            [d4, b')', ..] if *d4 == d => {}
            _ => return None,
        }
        let start = open.saturating_add(4);
        Some((Event::Reply229 { port }, start..start.saturating_add(len)))
    });
    parsed.unwrap_or_else(|| malformed(Malformed::Reply229))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helper::ftp::mangle;
    use proptest::prelude::*;

    fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
        Ipv4Addr::new(a, b, c, d)
    }

    fn feed_all(side: Side, stream: &[u8]) -> Vec<Item> {
        let mut parser = StreamParser::new(side);
        let mut items = Vec::new();
        parser.feed(stream, |item| items.push(item));
        items
    }

    fn feed_split(side: Side, stream: &[u8], cuts: &[usize]) -> (Vec<Item>, StreamParser) {
        let mut parser = StreamParser::new(side);
        let mut items = Vec::new();
        let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(stream.len())).collect();
        cuts.sort_unstable();
        let mut from = 0;
        for cut in cuts.into_iter().chain([stream.len()]) {
            parser.feed(&stream[from..cut], |item| items.push(item));
            from = cut;
        }
        (items, parser)
    }

    /// The single event of a one-line stream and the text its arg span covers.
    fn one(side: Side, line: &str) -> Option<(Event, String)> {
        let items = feed_all(side, line.as_bytes());
        assert!(items.len() <= 1, "{line:?} gave {items:?}");
        items.first().map(|item| {
            let arg = &line.as_bytes()[item.arg.start as usize..item.arg.end as usize];
            assert_eq!(item.line_start, 0);
            assert_eq!(item.line_end as usize, line.len());
            (item.event, String::from_utf8(arg.to_vec()).unwrap())
        })
    }

    fn check_table(side: Side, cases: &[(&str, Option<Event>, &str)]) {
        for (line, event, arg) in cases {
            let got = one(side, line);
            let want = event.map(|e| (e, arg.to_string()));
            assert_eq!(got, want, "{side:?} {line:?}");
        }
    }

    const MP: Option<Event> = Some(Event::Malformed {
        what: Malformed::Port,
    });
    const ME: Option<Event> = Some(Event::Malformed {
        what: Malformed::Eprt,
    });
    const M227: Option<Event> = Some(Event::Malformed {
        what: Malformed::Reply227,
    });
    const M229: Option<Event> = Some(Event::Malformed {
        what: Malformed::Reply229,
    });

    #[test]
    fn port_table() {
        let p = |a, b, c, d, port| {
            Some(Event::Port {
                addr: ip(a, b, c, d),
                port,
            })
        };
        check_table(
            Side::Client,
            &[
                (
                    "PORT 198,51,100,10,39,16\r\n",
                    p(198, 51, 100, 10, 10000),
                    "198,51,100,10,39,16",
                ),
                ("port 1,2,3,4,5,6\r\n", p(1, 2, 3, 4, 1286), "1,2,3,4,5,6"),
                ("Port 1,2,3,4,5,6\n", p(1, 2, 3, 4, 1286), "1,2,3,4,5,6"),
                (
                    "PORT 1,2,3,4,5,6   \r\n",
                    p(1, 2, 3, 4, 1286),
                    "1,2,3,4,5,6",
                ),
                ("PORT  1,2,3,4,5,6\r\n", p(1, 2, 3, 4, 1286), "1,2,3,4,5,6"),
                (
                    "PORT 001,0,255,00,0,0\r\n",
                    p(1, 0, 255, 0, 0),
                    "001,0,255,00,0,0",
                ),
                ("PORT 256,2,3,4,5,6\r\n", MP, ""),
                ("PORT 1,2,3,4,5,256\r\n", MP, ""),
                ("PORT 1,2,3,4,5\r\n", MP, ""),
                ("PORT 1,2,3,4,5,6,7\r\n", MP, ""),
                ("PORT 1, 2,3,4,5,6\r\n", MP, ""),
                ("PORT 1,2,3,4,5,6 x\r\n", MP, ""),
                ("PORT 0001,2,3,4,5,6\r\n", MP, ""),
                ("PORT (1,2,3,4,5,6)\r\n", MP, ""),
                ("PORT\r\n", MP, ""),
                ("PORT \r\n", MP, ""),
                ("PORTX 1,2,3,4,5,6\r\n", None, ""),
                ("RETR PORT 1,2,3,4,5,6\r\n", None, ""),
                (" PORT 1,2,3,4,5,6\r\n", None, ""),
                ("USER anonymous\r\n", None, ""),
            ],
        );
    }

    #[test]
    fn eprt_table() {
        let e = |a, b, c, d, port| {
            Some(Event::Eprt {
                addr: ip(a, b, c, d),
                port,
            })
        };
        check_table(
            Side::Client,
            &[
                (
                    "EPRT |1|132.235.1.2|6275|\r\n",
                    e(132, 235, 1, 2, 6275),
                    "|1|132.235.1.2|6275|",
                ),
                (
                    "EPRT !1!1.2.3.4!2000!\r\n",
                    e(1, 2, 3, 4, 2000),
                    "!1!1.2.3.4!2000!",
                ),
                (
                    "eprt #1#0.0.0.0#65535#\n",
                    e(0, 0, 0, 0, 65535),
                    "#1#0.0.0.0#65535#",
                ),
                (
                    "EPRT |1|1.2.3.4|80|  \r\n",
                    e(1, 2, 3, 4, 80),
                    "|1|1.2.3.4|80|",
                ),
                (
                    "EPRT |2|1080::8:800:200C:417A|5282|\r\n",
                    Some(Event::EprtOtherFamily { af: 2 }),
                    "|2|1080::8:800:200C:417A|5282|",
                ),
                (
                    "EPRT |9|x|5282|\r\n",
                    Some(Event::EprtOtherFamily { af: 9 }),
                    "|9|x|5282|",
                ),
                ("EPRT |1|1080::8:800:200C:417A|5282|\r\n", ME, ""),
                ("EPRT |2||5282|\r\n", ME, ""),
                ("EPRT |2|::1|0|\r\n", ME, ""),
                ("EPRT |256|1.2.3.4|80|\r\n", ME, ""),
                ("EPRT |x|1.2.3.4|80|\r\n", ME, ""),
                ("EPRT ||1.2.3.4|80|\r\n", ME, ""),
                ("EPRT |1|1.2.3.4|0|\r\n", ME, ""),
                ("EPRT |1|1.2.3.4|65536|\r\n", ME, ""),
                ("EPRT |1|1.2.3.256|80|\r\n", ME, ""),
                ("EPRT |1|01.2.3.4|80|\r\n", ME, ""),
                ("EPRT |1|1.2.3|80|\r\n", ME, ""),
                ("EPRT |1|1.2.3.4.5|80|\r\n", ME, ""),
                ("EPRT |1|1.2.3.4|80\r\n", ME, ""),
                ("EPRT |1|1.2.3.4|80|x\r\n", ME, ""),
                ("EPRT |1|1.2.3.4|80||\r\n", ME, ""),
                ("EPRT |1|1.2.3.4!80!\r\n", ME, ""),
                ("EPRT\r\n", ME, ""),
                ("EPRTX |1|1.2.3.4|80|\r\n", None, ""),
            ],
        );
    }

    #[test]
    fn pasv_epsv_auth_table() {
        check_table(
            Side::Client,
            &[
                ("PASV\r\n", Some(Event::Pasv), ""),
                ("Pasv\r\n", Some(Event::Pasv), ""),
                ("PASV  \r\n", Some(Event::Pasv), ""),
                ("PASV\n", Some(Event::Pasv), ""),
                ("PASVX\r\n", None, ""),
                ("EPSV\r\n", Some(Event::Epsv), ""),
                ("EPSV 1\r\n", Some(Event::Epsv), ""),
                ("epsv 2\r\n", Some(Event::Epsv), ""),
                ("EPSV ALL\r\n", Some(Event::EpsvAll), ""),
                ("epsv all \r\n", Some(Event::EpsvAll), ""),
                ("EPSV ALLX\r\n", Some(Event::Epsv), ""),
                ("EPSVALL\r\n", None, ""),
                ("AUTH TLS\r\n", Some(Event::Auth), ""),
                ("auth ssl\r\n", Some(Event::Auth), ""),
                ("AUTHTLS\r\n", None, ""),
                ("RETR PASV\r\n", None, ""),
            ],
        );
    }

    #[test]
    fn replies_are_not_commands_and_commands_not_replies() {
        for line in ["227 (1,2,3,4,5,6)\r\n", "229 (|||6446|)\r\n", "234 ok\r\n"] {
            assert_eq!(one(Side::Client, line), None, "{line:?}");
        }
        for line in [
            "PORT 1,2,3,4,5,6\r\n",
            "PASV\r\n",
            "EPRT |1|1.2.3.4|80|\r\n",
            "AUTH TLS\r\n",
        ] {
            assert_eq!(one(Side::Server, line), None, "{line:?}");
        }
    }

    #[test]
    fn reply_227_table() {
        let r = |a, b, c, d, port| {
            Some(Event::Reply227 {
                addr: ip(a, b, c, d),
                port,
            })
        };
        check_table(
            Side::Server,
            &[
                (
                    "227 Entering Passive Mode (198,51,100,10,39,16).\r\n",
                    r(198, 51, 100, 10, 10000),
                    "198,51,100,10,39,16",
                ),
                (
                    "227 =198,51,100,10,39,16\r\n",
                    r(198, 51, 100, 10, 10000),
                    "198,51,100,10,39,16",
                ),
                (
                    "227 198,51,100,10,39,16\n",
                    r(198, 51, 100, 10, 10000),
                    "198,51,100,10,39,16",
                ),
                (
                    "227 Entering Passive Mode 1,2,3,4,0,21  \r\n",
                    r(1, 2, 3, 4, 21),
                    "1,2,3,4,0,21",
                ),
                (
                    "227 (255,255,255,255,255,255)\r\n",
                    r(255, 255, 255, 255, 65535),
                    "255,255,255,255,255,255",
                ),
                ("227 (256,1,1,1,1,1)\r\n", M227, ""),
                ("227 (1,1,1,1,1,256)\r\n", M227, ""),
                ("227 (1,2,3,4,5)\r\n", M227, ""),
                ("227 (1,2,3,4,5,6,7)\r\n", M227, ""),
                ("227 (1, 2,3,4,5,6)\r\n", M227, ""),
                ("227 Entering Passive Mode\r\n", M227, ""),
                ("227\r\n", M227, ""),
                ("227 Mode v2 (1,2,3,4,5,6)\r\n", M227, ""),
                ("2270 (1,2,3,4,5,6)\r\n", None, ""),
                ("227x (1,2,3,4,5,6)\r\n", None, ""),
                (" 227 (1,2,3,4,5,6)\r\n", None, ""),
                ("228 (1,2,3,4,5,6)\r\n", None, ""),
            ],
        );
    }

    #[test]
    fn reply_229_table() {
        let r = |port| Some(Event::Reply229 { port });
        check_table(
            Side::Server,
            &[
                (
                    "229 Entering Extended Passive Mode (|||6446|)\r\n",
                    r(6446),
                    "6446",
                ),
                ("229 (!!!6446!)\r\n", r(6446), "6446"),
                ("229 (###1#).\r\n", r(1), "1"),
                ("229 x (~~~65535~)\n", r(65535), "65535"),
                ("229 (|!|6446|)\r\n", M229, ""),
                ("229 (||!6446|)\r\n", M229, ""),
                ("229 (|||6446!)\r\n", M229, ""),
                ("229 (|||6446|\r\n", M229, ""),
                ("229 (|||6446|]\r\n", M229, ""),
                ("229 (|||0|)\r\n", M229, ""),
                ("229 (|||65536|)\r\n", M229, ""),
                ("229 (|||123456|)\r\n", M229, ""),
                ("229 (|||)\r\n", M229, ""),
                ("229 (111211)\r\n", M229, ""),
                ("229 (   6446 )\r\n", M229, ""),
                ("229 Entering Extended Passive Mode |||6446|\r\n", M229, ""),
                ("229\r\n", M229, ""),
            ],
        );
    }

    #[test]
    fn other_replies_table() {
        check_table(
            Side::Server,
            &[
                ("234 AUTH TLS OK.\r\n", Some(Event::Reply234), ""),
                ("234\r\n", Some(Event::Reply234), ""),
                ("2345 x\r\n", None, ""),
                ("230 Login successful.\r\n", None, ""),
                (
                    "200 PORT command successful. 227 (1,2,3,4,5,6)\r\n",
                    None,
                    "",
                ),
                ("150 Here comes the directory listing.\r\n", None, ""),
                ("junk\r\n", None, ""),
                ("\r\n", None, ""),
            ],
        );
    }

    #[test]
    fn several_commands_in_one_feed() {
        let stream = b"USER anonymous\r\nPORT 10,0,0,1,4,1\r\nPASV\r\nEPSV ALL\r\nAUTH TLS\r\n";
        let items = feed_all(Side::Client, stream);
        let events: Vec<Event> = items.iter().map(|i| i.event).collect();
        assert_eq!(
            events,
            [
                Event::Port {
                    addr: ip(10, 0, 0, 1),
                    port: 1025
                },
                Event::Pasv,
                Event::EpsvAll,
                Event::Auth
            ]
        );
        assert_eq!((items[0].line_start, items[0].line_end), (16, 35));
        assert_eq!(items[0].arg, 21..33);
        assert_eq!(&stream[21..33], b"10,0,0,1,4,1");
        assert_eq!((items[1].line_start, items[1].line_end), (35, 41));
        assert_eq!(items[1].arg, 35..35);
        assert_eq!(items[3].line_end, stream.len() as u64);
    }

    #[test]
    fn bare_lf_ends_lines_and_lone_cr_does_not() {
        let items = feed_all(Side::Client, b"PASV\nPORT 1,2,3,4,5,6\n");
        assert_eq!(items.len(), 2);
        assert_eq!((items[0].line_start, items[0].line_end), (0, 5));
        assert_eq!(items[1].arg, 10..21);
        // A CR alone is not a line end: this is one line, "PASV" followed by junk.
        let items = feed_all(Side::Client, b"NOOP\rPASV\r\n");
        assert_eq!(items, []);
    }

    #[test]
    fn segmented_feed_tracks_offset_and_pending() {
        let mut parser = StreamParser::new(Side::Client);
        let mut items = Vec::new();
        parser.feed(b"PO", |i| items.push(i));
        assert_eq!((parser.offset(), parser.pending()), (2, &b"PO"[..]));
        parser.feed(b"RT 1,2,3,4,5,6\r", |i| items.push(i));
        assert!(items.is_empty());
        assert_eq!(parser.pending(), b"PORT 1,2,3,4,5,6\r");
        parser.feed(b"\nPA", |i| items.push(i));
        assert_eq!(parser.offset(), 20);
        assert_eq!(parser.pending(), b"PA");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].arg, 5..16);
        assert_eq!(items[0].line_end, 18);
        parser.feed(b"SV\r\n", |i| items.push(i));
        assert_eq!(parser.pending(), b"");
        assert_eq!(items[1].event, Event::Pasv);
        assert_eq!((items[1].line_start, items[1].line_end), (18, 24));
    }

    #[test]
    fn line_too_long_then_parsing_resumes() {
        let mut stream = vec![b'X'; 300];
        stream.extend_from_slice(b"\r\nPASV\r\n");
        let items = feed_all(Side::Client, &stream);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].event, Event::LineTooLong);
        assert_eq!((items[0].line_start, items[0].line_end), (0, 302));
        assert_eq!(items[0].arg, 0..0);
        assert_eq!(items[1].event, Event::Pasv);
        assert_eq!((items[1].line_start, items[1].line_end), (302, 308));
    }

    #[test]
    fn line_too_long_is_reported_once_when_its_lf_arrives() {
        let mut parser = StreamParser::new(Side::Server);
        let mut items = Vec::new();
        parser.feed(b"227 ", |i| items.push(i));
        parser.feed(&[b'9'; MAX_LINE - 4], |i| items.push(i));
        // Exactly MAX_LINE bytes buffered: still a candidate line.
        assert_eq!(parser.pending().len(), MAX_LINE);
        assert!(parser.pending_could_need_rewrite());
        parser.feed(b"9", |i| items.push(i));
        assert_eq!(parser.pending(), b"");
        assert!(!parser.pending_could_need_rewrite());
        for _ in 0..10 {
            parser.feed(&[b'('; 100], |i| items.push(i));
        }
        assert!(items.is_empty());
        parser.feed(b"\r\n227 (1,2,3,4,5,6)\r\n", |i| items.push(i));
        let events: Vec<Event> = items.iter().map(|i| i.event).collect();
        assert_eq!(
            events,
            [
                Event::LineTooLong,
                Event::Reply227 {
                    addr: ip(1, 2, 3, 4),
                    port: 1286
                }
            ]
        );
        assert_eq!(items[0].line_end, MAX_LINE as u64 + 1 + 1000 + 2);
        assert_eq!(items[1].line_start, items[0].line_end);
    }

    #[test]
    fn max_line_is_the_longest_line_kept() {
        // MAX_LINE bytes before the LF (CR and padding included) still parse ...
        let mut line = b"PORT 1,2,3,4,5,6".to_vec();
        line.resize(MAX_LINE - 1, b' ');
        line.extend_from_slice(b"\r\n");
        let items = feed_all(Side::Client, &line);
        assert_eq!(items.len(), 1);
        assert_eq!(
            items[0].event,
            Event::Port {
                addr: ip(1, 2, 3, 4),
                port: 1286
            }
        );
        // ... one more is too long.
        line.insert(MAX_LINE - 2, b' ');
        let items = feed_all(Side::Client, &line);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].event, Event::LineTooLong);
    }

    #[test]
    fn multi_line_trap_inner_lines_are_not_parsed() {
        let stream = b"150-Here comes the listing\r\n\
            227 Entering Passive Mode (6,6,6,6,6,6)\r\n\
            229 (|||666|)\r\n\
            234 fake\r\n\
            150-still inner\r\n\
            150 done\r\n\
            227 Entering Passive Mode (1,2,3,4,5,6)\r\n";
        let items = feed_all(Side::Server, stream);
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(
            items[0].event,
            Event::Reply227 {
                addr: ip(1, 2, 3, 4),
                port: 1286
            }
        );
        assert_eq!(items[0].line_end, stream.len() as u64);
    }

    #[test]
    fn multi_line_227_yields_its_closing_line() {
        let stream = b"227-Entering Passive Mode (9,9,9,9,9,9)\r\n227 (1,2,3,4,5,6)\r\n";
        let items = feed_all(Side::Server, stream);
        assert_eq!(items.len(), 1);
        assert_eq!(
            items[0].event,
            Event::Reply227 {
                addr: ip(1, 2, 3, 4),
                port: 1286
            }
        );
        assert_eq!((items[0].line_start, items[0].line_end), (41, 60));
        assert_eq!(
            &stream[items[0].arg.start as usize..items[0].arg.end as usize],
            b"1,2,3,4,5,6"
        );
        // A bare code closes too, and is then a (malformed) 227.
        let items = feed_all(Side::Server, b"227-a\r\n227\r\n");
        assert_eq!(
            items.iter().map(|i| i.event).collect::<Vec<_>>(),
            [M227.unwrap()]
        );
    }

    #[test]
    fn never_ending_multi_line_reply_means_no_events() {
        let mut parser = StreamParser::new(Side::Server);
        let mut items = Vec::new();
        parser.feed(b"211-Features\r\n", |i| items.push(i));
        for _ in 0..1000 {
            parser.feed(b"227 (1,2,3,4,5,6)\r\n229 (|||6446|)\r\n211-x\r\n", |i| {
                items.push(i)
            });
            let mut long = vec![b'A'; 2 * MAX_LINE];
            long.push(b'\n');
            parser.feed(&long, |i| items.push(i));
        }
        parser.feed(b"227 (", |i| items.push(i));
        assert!(items.is_empty());
        assert_eq!(parser.pending(), b"227 (");
        // Stateless, "227 (" could need a rewrite; inside a 211 reply it cannot.
        assert!(could_need_rewrite(Side::Server, parser.pending()));
        assert!(!parser.pending_could_need_rewrite());
    }

    #[test]
    fn too_long_lines_still_open_and_close_multi_line_replies() {
        let mut stream = b"227-".to_vec();
        stream.extend_from_slice(&[b'x'; 400]);
        stream.extend_from_slice(b"\r\n227 (9,9,9,9,9,9) inner-looking? no: it closes\r\n");
        let items = feed_all(Side::Server, &stream);
        let events: Vec<Event> = items.iter().map(|i| i.event).collect();
        assert_eq!(
            events,
            [
                Event::LineTooLong,
                Event::Reply227 {
                    addr: ip(9, 9, 9, 9),
                    port: 2313
                }
            ]
        );

        let mut stream = b"150-a\r\n".to_vec();
        stream.extend_from_slice(&[b'y'; 400]); // inner and long: silent
        stream.extend_from_slice(b"\r\n150 ");
        stream.extend_from_slice(&[b'z'; 400]); // closing and long: reported
        stream.extend_from_slice(b"\r\n229 (|||21|)\r\n");
        let items = feed_all(Side::Server, &stream);
        let events: Vec<Event> = items.iter().map(|i| i.event).collect();
        assert_eq!(events, [Event::LineTooLong, Event::Reply229 { port: 21 }]);
        assert_eq!(items[0].line_start, 7 + 402);
    }

    #[test]
    fn reply_234_stops_the_server_parser() {
        let stream = b"234 Proceed with negotiation.\r\n227 (1,2,3,4,5,6)\r\n\x16\x03\x01";
        let mut parser = StreamParser::new(Side::Server);
        let mut items = Vec::new();
        parser.feed(stream, |i| items.push(i));
        assert_eq!(
            items.iter().map(|i| i.event).collect::<Vec<_>>(),
            [Event::Reply234]
        );
        assert!(parser.stopped());
        assert_eq!(parser.offset(), stream.len() as u64);
        assert_eq!(parser.pending(), b"");
    }

    #[test]
    fn stop_makes_feed_only_count() {
        let mut parser = StreamParser::new(Side::Client);
        let mut items = Vec::new();
        parser.feed(b"AUTH TLS\r\nPO", |i| items.push(i));
        assert_eq!(items.len(), 1);
        assert!(!parser.stopped());
        parser.stop();
        assert!(parser.stopped());
        assert_eq!(parser.pending(), b"");
        assert!(!parser.pending_could_need_rewrite());
        parser.feed(b"RT 1,2,3,4,5,6\r\nPASV\r\n", |i| items.push(i));
        assert_eq!(items.len(), 1);
        assert_eq!(parser.offset(), 12 + 22);
    }

    #[test]
    fn could_need_rewrite_table() {
        let cases: &[(Side, &[u8], bool)] = &[
            (Side::Client, b"", true),
            (Side::Client, b"P", true),
            (Side::Client, b"po", true),
            (Side::Client, b"PORT", true),
            (Side::Client, b"PORT 1,2", true),
            (Side::Client, b"ePrT |1|", true),
            (Side::Client, b"PAS", false),
            (Side::Client, b"PORTX", false),
            (Side::Client, b"USER x", false),
            (Side::Client, b"227 (", false),
            (Side::Server, b"", true),
            (Side::Server, b"2", true),
            (Side::Server, b"22", true),
            (Side::Server, b"227", true),
            (Side::Server, b"229 (|||", true),
            (Side::Server, b"227 Entering", true),
            (Side::Server, b"227-", false),
            (Side::Server, b"2270", false),
            (Side::Server, b"230 ok", false),
            (Side::Server, b"3", false),
            (Side::Server, b"PORT ", false),
        ];
        for (side, partial, want) in cases {
            assert_eq!(
                could_need_rewrite(*side, partial),
                *want,
                "{side:?} {partial:?}"
            );
        }
    }

    #[test]
    fn pending_could_need_rewrite_knows_the_multi_line_code() {
        let check = |prefix: &[u8], want: bool| {
            let mut parser = StreamParser::new(Side::Server);
            parser.feed(prefix, |_| {});
            assert_eq!(parser.pending_could_need_rewrite(), want, "{prefix:?}");
        };
        check(b"227 (1,", true);
        check(b"230 ", false);
        check(b"227-a\r\n227 (1,", true);
        check(b"227-a\r\n229 (", false);
        check(b"229-a\r\n22", true);
        check(b"150-a\r\n227 (1,", false);
        let mut client = StreamParser::new(Side::Client);
        client.feed(b"USER x\r\nport 1", |_| {});
        assert!(client.pending_could_need_rewrite());
        client.feed(b",2,3,4,5,6\r\nRETR", |_| {});
        assert!(!client.pending_could_need_rewrite());
    }

    // ----- properties -----

    fn client_line_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| {
                let mut l = b"PORT ".to_vec();
                l.extend_from_slice(mangle::port_arg(Ipv4Addr::from(a), p).as_bytes());
                l
            }),
            (33u8..=126, any::<[u8; 4]>(), 1u16..).prop_map(|(d, a, p)| {
                let mut l = b"eprt ".to_vec();
                l.extend_from_slice(mangle::eprt_arg(d, Ipv4Addr::from(a), p).as_bytes());
                l
            }),
            prop::sample::select(vec![
                &b"PASV"[..],
                b"epsv",
                b"EPSV ALL",
                b"EPSV 2",
                b"AUTH TLS",
                b"USER anonymous",
                b"RETR PORT 1,2,3,4,5,6",
                b"EPRT |2|::1|2000|",
                b"EPRT |1|::1|2000|",
                b"PORT 1,2,3,4,5,256",
                b"PORT",
            ])
            .prop_map(|l| l.to_vec()),
        ]
    }

    fn server_line_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            10 => (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| {
                let mut l = b"227 Entering Passive Mode (".to_vec();
                l.extend_from_slice(mangle::port_arg(Ipv4Addr::from(a), p).as_bytes());
                l.extend_from_slice(b").");
                l
            }),
            10 => (any::<u16>(), prop::sample::select(vec![b'|', b'!', b'#'])).prop_map(|(p, d)| {
                format!("229 Extended ({0}{0}{0}{1}{0})", d as char, p).into_bytes()
            }),
            10 => prop::sample::select(vec![
                &b"150-Here comes"[..],
                b"150 done",
                b"227-multi",
                b"227 =1,2,3,4,5,6",
                b"229 (|!|1|)",
                b"211-Features",
                b"211 End",
                b"230 ok",
                b"227",
            ])
            .prop_map(|l| l.to_vec()),
            // Rarely, a 234: everything after it is ignored, which the property must survive.
            1 => Just(b"234 TLS".to_vec()),
        ]
    }

    /// Lines (with CRLF or LF), junk that may hold LFs and CRs, and over-long lines.
    fn stream_strategy(side: Side) -> impl Strategy<Value = Vec<u8>> {
        let line = match side {
            Side::Client => client_line_strategy().boxed(),
            Side::Server => server_line_strategy().boxed(),
        };
        let chunk = prop_oneof![
            4 => (line, any::<bool>()).prop_map(|(mut l, crlf)| {
                l.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
                l
            }),
            1 => prop::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'\r'), Just(b' '), Just(b'2'), any::<u8>()],
                0..40,
            ),
            1 => (MAX_LINE - 8..MAX_LINE + 40, any::<u8>(), any::<bool>()).prop_map(
                |(n, fill, prefixed)| {
                    let fill = if fill == b'\n' { b'x' } else { fill };
                    let mut l = if prefixed { b"227 (".to_vec() } else { Vec::new() };
                    l.resize(n, fill);
                    l.push(b'\n');
                    l
                }
            ),
        ];
        prop::collection::vec(chunk, 0..24).prop_map(|chunks| chunks.concat())
    }

    fn side_and_stream() -> impl Strategy<Value = (Side, Vec<u8>)> {
        prop_oneof![
            stream_strategy(Side::Client).prop_map(|s| (Side::Client, s)),
            stream_strategy(Side::Server).prop_map(|s| (Side::Server, s)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn segmentation_does_not_change_items(
            (side, stream) in side_and_stream(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..16),
        ) {
            let cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            let (whole, whole_parser) = feed_split(side, &stream, &[]);
            let (split, split_parser) = feed_split(side, &stream, &cuts);
            let bytewise: Vec<usize> = (0..stream.len()).collect();
            let (single, single_parser) = feed_split(side, &stream, &bytewise);
            prop_assert_eq!(&whole, &split);
            prop_assert_eq!(&whole, &single);
            for parser in [&whole_parser, &split_parser, &single_parser] {
                prop_assert_eq!(parser.offset(), stream.len() as u64);
                prop_assert_eq!(parser.pending(), whole_parser.pending());
                prop_assert_eq!(parser.stopped(), whole_parser.stopped());
            }
            // Items are whole lines, in order, with spans inside them.
            let mut last_end = 0;
            for item in &whole {
                prop_assert!(last_end <= item.line_start && item.line_start < item.line_end);
                prop_assert_eq!(stream[item.line_end as usize - 1], b'\n');
                prop_assert!(item.line_start == 0 || stream[item.line_start as usize - 1] == b'\n');
                prop_assert!(item.line_start <= item.arg.start && item.arg.end < item.line_end);
                last_end = item.line_end;
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            side in prop_oneof![Just(Side::Client), Just(Side::Server)],
            stream in prop::collection::vec(any::<u8>(), 0..1200),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            let (whole, _) = feed_split(side, &stream, &[]);
            let (split, parser) = feed_split(side, &stream, &cuts);
            prop_assert_eq!(whole, split);
            prop_assert!(parser.pending().len() <= MAX_LINE);
        }

        #[test]
        fn arg_spans_are_the_canonical_text(
            lines in prop::collection::vec(
                (any::<[u8; 4]>(), 1u16.., 33u8..=126, 0u8..4), 1..12),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..16),
        ) {
            // Each generated line is paired with a filler line that yields nothing.
            let mut client = Vec::new();
            let mut server = Vec::new();
            let mut want_client = Vec::new();
            let mut want_server = Vec::new();
            for (octets, port, delim, kind) in lines {
                let addr = Ipv4Addr::from(octets);
                match kind {
                    0 => {
                        let arg = mangle::port_arg(addr, port);
                        client.extend_from_slice(b"PORT ");
                        client.extend_from_slice(arg.as_bytes());
                        want_client.push((Event::Port { addr, port }, arg.as_bytes().to_vec()));
                    }
                    1 => {
                        let arg = mangle::eprt_arg(delim, addr, port);
                        client.extend_from_slice(b"EPRT ");
                        client.extend_from_slice(arg.as_bytes());
                        want_client.push((Event::Eprt { addr, port }, arg.as_bytes().to_vec()));
                    }
                    2 => {
                        let arg = mangle::port_arg(addr, port);
                        server.extend_from_slice(b"227 Entering Passive Mode (");
                        server.extend_from_slice(arg.as_bytes());
                        server.extend_from_slice(b").");
                        want_server.push((Event::Reply227 { addr, port }, arg.as_bytes().to_vec()));
                    }
                    _ => {
                        let arg = mangle::port_number_arg(port);
                        server.extend_from_slice(b"229 Entering Extended Passive Mode (|||");
                        server.extend_from_slice(arg.as_bytes());
                        server.extend_from_slice(b"|)");
                        want_server.push((Event::Reply229 { port }, arg.as_bytes().to_vec()));
                    }
                }
                if kind < 2 {
                    client.extend_from_slice(b"\r\nNOOP\r\n");
                } else {
                    server.extend_from_slice(b"\r\n200 NOOP ok (1,2,3,4,5,6)\r\n");
                }
            }
            for (side, stream, want) in
                [(Side::Client, client, want_client), (Side::Server, server, want_server)]
            {
                let cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
                let (items, _) = feed_split(side, &stream, &cuts);
                let got: Vec<(Event, Vec<u8>)> = items
                    .iter()
                    .map(|i| (i.event, stream[i.arg.start as usize..i.arg.end as usize].to_vec()))
                    .collect();
                prop_assert_eq!(got, want);
            }
        }
    }
}
