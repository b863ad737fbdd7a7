//! Calendars and contacts (issue 19): every calendar and address book of an account moved from the old
//! host's CalDAV/CardDAV server to the new host's, exactly once, in the same passes as the mail, and the
//! users' deletions followed until they switch. `docs/dav.md` is the design this follows.

// Until the engine calls them, within this session.
#![allow(dead_code)]

pub mod content;
pub mod href;
pub mod http;
pub mod url;
pub mod xml;
