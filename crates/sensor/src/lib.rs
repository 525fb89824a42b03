//! The sinkhole sensor and the bot traffic simulator — the "collect" end of the data path.
//!
//! - [`config`] — the sinkhole's TOML configuration;
//! - [`capture`] — the listeners: HTTP (any host, any path), raw TCP, DNS (UDP and TCP), each
//!   check-in turned into a [`threatfeed_core::Event`] and classified when the sensor's rules
//!   match;
//! - [`sink`] — captured events → the on-disk spool, in group commits;
//! - [`spool`] — the bounded on-disk queue (an event log of its own): nothing captured is lost
//!   while the server is unreachable, or across a sensor restart;
//! - [`forward`] — spool → server (`POST /api/v1/events` with the sensor's token, in order,
//!   each event removed only once the server acknowledged it);
//! - [`sinkhole`] — `threatfeed sinkhole`: all of the above in one process, with `/metrics`;
//! - [`simulate`] — `threatfeed simulate`: bot populations talking real HTTP / TCP / DNS to a
//!   sinkhole.

pub mod capture;
pub mod config;
pub mod forward;
pub mod simulate;
pub mod sink;
pub mod sinkhole;
pub mod spool;
