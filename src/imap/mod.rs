//! The IMAP client (being split into files; see `session`).

mod session;

pub(crate) mod body_fetch;
pub use body_fetch::{BodyRequest, BodySink};
pub use session::*;
