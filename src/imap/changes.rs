//! The commands that change the target beyond APPEND, for mirroring the users' own moves and
//! deletions (the `mirror` module): UID MOVE (RFC 6851, or UID COPY, STORE \Deleted and UID EXPUNGE where
//! MOVE is not offered), UID EXPUNGE of exactly our UIDs (RFC 4315), RENAME and DELETE of a folder;
//! and on the source, the UIDs a folder still holds. Every one of them touches only the UIDs or the
//! folder it is given: a plain EXPUNGE, which would take whatever else a user marked \Deleted, is
//! never sent.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use imap_next::imap_types::command::{CommandBody, SelectParameter};
use imap_next::imap_types::extensions::uidplus::{UidElement, UidSet};
use imap_next::imap_types::response::{Code, Data};
use imap_next::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::commands::mailbox_of;
use super::{Answer, FetchItem, Selected, Session};

/// The most UIDs one range of a COPYUID answer may stand for (a server naming more is not believed).
const COPYUID_RANGE_LIMIT: u32 = 1_000_000;

/// What a MOVE did: the server's answer, and where each moved UID landed (source UID to destination
/// UID, from COPYUID) in the destination's UIDVALIDITY; empty when the server did not say.
#[derive(Debug)]
pub struct Moved {
    pub answer: Answer,
    pub uidvalidity: Option<u32>,
    pub landed: BTreeMap<u32, u32>,
    /// MOVE's fallback copied, but the originals could not be removed: they are still there.
    pub originals_left: bool,
}

fn sequence(uid_set: &str) -> Result<SequenceSet> {
    SequenceSet::try_from(uid_set).map_err(|_| anyhow!("bad UID set {uid_set}"))
}

fn expand(set: &UidSet) -> Option<Vec<u32>> {
    let mut uids = Vec::new();
    for element in set.0.as_ref() {
        match element {
            UidElement::Single(uid) => uids.push(uid.get()),
            UidElement::Range(a, b) => {
                let (low, high) = (a.get().min(b.get()), a.get().max(b.get()));
                if high - low > COPYUID_RANGE_LIMIT {
                    return None;
                }
                uids.extend(low..=high);
            }
        }
    }
    Some(uids)
}

/// `COPYUID v source destination` from a response code, as pairs in order (RFC 4315 section 3): parsed
/// by imap-codec, or from its text where the codec left it unparsed.
pub fn copyuid_of(code: &Code<'_>) -> Option<(u32, Vec<(u32, u32)>)> {
    let (validity, source, destination) = match code {
        Code::CopyUid { uid_validity, source, destination } => (uid_validity.get(), expand(source)?, expand(destination)?),
        Code::Other(other) => {
            let text = String::from_utf8_lossy(other.inner()).into_owned();
            let mut words = text.split_whitespace();
            if !words.next()?.eq_ignore_ascii_case("COPYUID") {
                return None;
            }
            let validity = words.next()?.parse().ok()?;
            let parse = |set: &str| -> Option<Vec<u32>> {
                let mut uids = Vec::new();
                for part in set.split(',') {
                    match part.split_once(':') {
                        Some((a, b)) => {
                            let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                            let (low, high) = (a.min(b), a.max(b));
                            if high - low > COPYUID_RANGE_LIMIT {
                                return None;
                            }
                            uids.extend(low..=high);
                        }
                        None => uids.push(part.parse().ok()?),
                    }
                }
                Some(uids)
            };
            (validity, parse(words.next()?)?, parse(words.next()?)?)
        }
        _ => return None,
    };
    (source.len() == destination.len()).then(|| (validity, source.into_iter().zip(destination).collect()))
}

impl Session {
    /// Whether this server can have single messages of ours removed without touching anything else:
    /// UID EXPUNGE (UIDPLUS, RFC 4315), which MOVE's fallback needs too.
    pub fn can_remove_by_uid(&self) -> bool {
        self.has("UIDPLUS")
    }

    /// Whether QRESYNC is on for this session (`enable_condstore` asks for it where offered).
    pub fn qresync(&self) -> bool {
        self.qresync
    }

    /// EXAMINE with QRESYNC's parameter: the folder opened read-only, and the UIDs expunged since
    /// `modseq` at `uidvalidity` (`VANISHED (EARLIER)`, as ascending ranges), in one round trip. Needs
    /// QRESYNC to be on (`qresync`). A UIDVALIDITY other than `uidvalidity` brings no VANISHED.
    pub async fn examine_vanished(&mut self, wire_name: &str, uidvalidity: u32, modseq: u64) -> Result<(Selected, Vec<(u32, u32)>)> {
        self.pending_codes.clear();
        self.exists = 0;
        let (Some(uid_validity), Some(mod_sequence_value)) = (std::num::NonZeroU32::new(uidvalidity), std::num::NonZeroU64::new(modseq))
        else {
            anyhow::bail!("no UIDVALIDITY or mod-sequence to resynchronise {wire_name} from");
        };
        let parameters = vec![SelectParameter::QResync { uid_validity, mod_sequence_value, known_uids: None, seq_match_data: None }];
        let (answer, data) = self.run(CommandBody::Examine { mailbox: mailbox_of(wire_name)?, parameters }).await?;
        if !answer.is_ok() {
            return Err(self.refused("EXAMINE", format!("cannot open folder {wire_name}: {}", answer.words()), &answer));
        }
        let selected = self.opened(answer.code);
        let mut vanished = Vec::new();
        for item in data {
            if let Data::Vanished { earlier: true, known_uids } = item {
                for sequence in known_uids.0.as_ref() {
                    let value = |s: &SeqOrUid| match s {
                        SeqOrUid::Value(v) => Some(v.get()),
                        SeqOrUid::Asterisk => None,
                    };
                    let range = match sequence {
                        Sequence::Single(one) => value(one).map(|v| (v, v)),
                        Sequence::Range(a, b) => value(a).zip(value(b)).map(|(a, b)| (a.min(b), a.max(b))),
                    };
                    vanished.extend(range);
                }
            }
        }
        Ok((selected, merged(vanished)))
    }

    /// Moves `uid_set` of the selected folder to `to`: UID MOVE where offered, else UID COPY, then
    /// \Deleted and UID EXPUNGE on exactly those UIDs (which needs UIDPLUS; the caller checks
    /// `can_remove_by_uid`). A refusal comes back as the answer, not as an error.
    pub async fn uid_move(&mut self, uid_set: &str, to: &str) -> Result<Moved> {
        self.pending_codes.clear();
        let mut originals_left = false;
        let answer = if self.has("MOVE") {
            self.simple(CommandBody::Move { sequence_set: sequence(uid_set)?, mailbox: mailbox_of(to)?, uid: true }).await?
        } else {
            let copied = self.simple(CommandBody::Copy { sequence_set: sequence(uid_set)?, mailbox: mailbox_of(to)?, uid: true }).await?;
            if copied.is_ok() {
                let removed = self.uid_expunge(uid_set).await?;
                if !removed.is_ok() {
                    log::warn!("{}: copied {uid_set} to {to} but could not remove the originals: {}", self.label(), removed.words());
                    originals_left = true;
                }
            }
            copied
        };
        let mut moved = Moved { answer, uidvalidity: None, landed: BTreeMap::new(), originals_left };
        for code in self.pending_codes.drain(..).chain(moved.answer.code.clone()) {
            if let Some((validity, pairs)) = copyuid_of(&code) {
                moved.uidvalidity = Some(validity);
                moved.landed.extend(pairs);
            }
        }
        Ok(moved)
    }

    /// Marks exactly `uid_set` of the selected folder \Deleted and expunges exactly those (UID EXPUNGE):
    /// UIDs no longer there are no error, so a repeat after a crash is harmless.
    pub async fn uid_expunge(&mut self, uid_set: &str) -> Result<Answer> {
        let flagged = self.uid_store_set(uid_set, true, &["\\Deleted".to_string()]).await?;
        if !flagged.is_ok() {
            return Ok(flagged);
        }
        self.simple(CommandBody::ExpungeUid { sequence_set: sequence(uid_set)? }).await
    }

    /// RENAME `from` to `to` (its children go with it, RFC 3501 section 6.3.5).
    pub async fn rename(&mut self, from: &str, to: &str) -> Result<Answer> {
        self.simple(CommandBody::Rename { from: mailbox_of(from)?, to: mailbox_of(to)? }).await
    }

    /// DELETE a folder.
    pub async fn delete(&mut self, wire_name: &str) -> Result<Answer> {
        self.simple(CommandBody::Delete { mailbox: mailbox_of(wire_name)? }).await
    }

    /// The UIDs the selected folder holds up to `up_to`, as ascending ranges (few for a folder whose
    /// messages were removed in runs), from `UID FETCH 1:* (UID)`, streamed, so a large folder costs no
    /// more memory than its gaps. Also returns how many UIDs came in all (above `up_to` too), for the
    /// caller to compare with EXISTS.
    pub async fn uids_present(&mut self, up_to: u32) -> Result<(Vec<(u32, u32)>, u64)> {
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        let mut count = 0u64;
        let mut unordered = false;
        self.uid_fetch(&["1:*".to_string()], &[FetchItem::Uid], None, &mut |meta| {
            count += 1;
            if meta.uid > up_to {
                return Ok(());
            }
            match ranges.last_mut() {
                Some((_, high)) if meta.uid == *high + 1 => *high = meta.uid,
                Some((_, high)) if meta.uid <= *high => unordered = true,
                _ => ranges.push((meta.uid, meta.uid)),
            }
            Ok(())
        })
        .await?;
        if unordered {
            // Not in UID order (no server seen does this): sort and merge, at the cost of memory.
            ranges = merged(ranges);
        }
        Ok((ranges, count))
    }
}

/// UID ranges in any order as ascending ranges that neither overlap nor touch.
fn merged(mut ranges: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    ranges.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (low, high) in ranges {
        match merged.last_mut() {
            Some((_, last)) if low <= last.saturating_add(1) => *last = (*last).max(high),
            _ => merged.push((low, high)),
        }
    }
    merged
}

/// Whether `uid` is in ascending, non-overlapping `ranges`.
pub fn in_ranges(ranges: &[(u32, u32)], uid: u32) -> bool {
    ranges
        .binary_search_by(|&(low, high)| {
            if high < uid {
                std::cmp::Ordering::Less
            } else if low > uid {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copyuid_from_text_and_ranges() {
        let code = Code::Other(imap_next::imap_types::response::CodeOther::unvalidated(b"COPYUID 7 3:5,9 20:23".as_ref()));
        assert_eq!(copyuid_of(&code), Some((7, vec![(3, 20), (4, 21), (5, 22), (9, 23)])));
        let uneven = Code::Other(imap_next::imap_types::response::CodeOther::unvalidated(b"COPYUID 7 3:5 20".as_ref()));
        assert_eq!(copyuid_of(&uneven), None, "a server naming fewer destinations than sources is not believed");
    }

    #[test]
    fn ranges_answer_membership() {
        let ranges = [(1, 3), (7, 7), (10, 20)];
        for (uid, inside) in [(1, true), (3, true), (4, false), (7, true), (8, false), (15, true), (21, false), (0, false)] {
            assert_eq!(in_ranges(&ranges, uid), inside, "{uid}");
        }
    }
}
