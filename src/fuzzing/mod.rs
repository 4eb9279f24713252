//! Entry points for the `fuzz/` targets, kept in the library so the seed corpora also run as
//! ordinary tests (`tests/fuzz_corpus.rs`). Each must never panic, whatever the bytes; the
//! `assert!`s below are the invariants a run checks, and a failing one is a finding.
//!
//! Most targets read a leading byte or two as settings (a split size, a limit, a mode) and
//! the rest as the input proper; `fuzz/README.md` lists each layout and its invariants.
#![doc(hidden)]
#![forbid(unsafe_code)]

mod config;
mod cookie;
mod framing;
mod jwt;
mod response;

pub use config::{config_loading, load_config};
pub use cookie::cookie_parsing;
pub use framing::{chunked_decoding, request_framing};
pub use jwt::{jwt_logout_token, NOW};
pub use response::response_head;
