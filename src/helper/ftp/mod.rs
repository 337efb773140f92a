//! The FTP helper: it makes every FTP data connection reach the real server that holds its
//! control connection, in every forwarding method.
//!
//! - [`parse`]: line reassembly and the grammar of PORT, EPRT, PASV, EPSV, AUTH, 227, 229, 234.
//! - [`mangle`]: formatting of rewritten arguments.
//! - [`seqadj`]: sequence and acknowledgement adjustment after a rewrite changes a length.
//! - [`expect`]: the expectation table the slow path fills and every worker claims from.
//! - [`ctl`]: the slow path's state (control connections, policy, rewrites).
//! - [`worker`]: a worker's half (claims, data-flow setup, links, notices for the slow path).

pub mod ctl;
pub mod expect;
pub mod mangle;
pub mod parse;
pub mod seqadj;
pub mod worker;
