//! The one integration-test binary: drives real `threatfeed` processes over real sockets.
//!
//! Each test starts its own server (`threatfeed serve --listen 127.0.0.1:0`) in a fresh data
//! directory and talks to it with a real HTTP client (and real SSE streams).

mod integration {
    pub mod support;

    mod auth;
    mod behaviour;
    mod cli;
    mod crash;
    mod dashboard;
    mod export;
    mod import;
    mod indicators;
    mod ingest;
    mod lookup;
    mod ops;
    mod overview;
    mod reports;
    mod sinkhole;
    mod stream;
    mod taxii;
    mod threats;
}
