//! DAV XML: the multistatus answers of PROPFIND and REPORT read into [`Multistatus`], `DAV:error` bodies
//! into [`ErrorBody`], and the request bodies we send. Read with quick-xml's `NsReader`, which resolves
//! every element to its namespace URI, so `<ns0:href>` (xandikos), `<href xmlns="DAV:">` (Radicale) and
//! `<D:href>` are one name; prefixes are never compared. Reading is bounded (depth, text per property,
//! number of responses) and refuses a DTD, so an entity is never expanded. Requests are written with
//! every text and attribute escaped.

use anyhow::{Context, Result, bail};
use quick_xml::NsReader;
use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};

pub const NS_DAV: &str = "DAV:";
pub const NS_CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
pub const NS_CARDDAV: &str = "urn:ietf:params:xml:ns:carddav";
pub const NS_CS: &str = "http://calendarserver.org/ns/";
pub const NS_ICAL: &str = "http://apple.com/ns/ical/";

/// The deepest element nesting read: a multistatus needs about 8; more is an attack or garbage.
const DEPTH_MAX: usize = 32;
/// A property's text at most (a display name, an href, a token); item data has its own bound.
const TEXT_MAX: usize = 64 << 10;
/// One item's data (calendar-data, address-data) at most: the same 16 MiB as the HTTP side's
/// `DAV_ITEM_MAX` (design §2), defined here so XML does not depend on the HTTP client.
const ITEM_TEXT_MAX: usize = 16 << 20;
/// Responses in one multistatus at most (a listing of a collection of 200,000 items is far past any
/// real calendar; the HTTP side bounds the bytes as well).
const RESPONSES_MAX: usize = 200_000;
/// Elements in one response at most, so a response of a million empty elements is refused.
const NODES_MAX: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionKind {
    Calendar,
    Addressbook,
}

/// A multistatus answer (RFC 4918 §13).
#[derive(Debug, Default)]
pub struct Multistatus {
    pub responses: Vec<Member>,
    /// `D:sync-token` at the multistatus level (sync-collection, RFC 6578 §3.2).
    pub sync_token: Option<String>,
}

/// One `D:response`.
#[derive(Debug, Default)]
pub struct Member {
    /// The text of `D:href`, XML-unescaped and trimmed, not otherwise changed (`href::normalise` does that).
    pub href: String,
    /// A `D:status` directly in the response (sync-collection: 404 = gone; 507 on the request-URI =
    /// truncated, RFC 6578 §3.6).
    pub status: Option<u16>,
    /// From the propstat(s) with a 2xx status only.
    pub props: Props,
    /// Local names of properties reported in a propstat with another status (404, 403).
    pub missing: Vec<String>,
}

/// The properties we read, from whichever of our requests asked them.
#[derive(Debug, Default)]
pub struct Props {
    pub is_collection: bool,
    pub is_calendar: bool,
    pub is_addressbook: bool,
    pub is_principal: bool,
    pub is_schedule_inbox: bool,
    pub is_schedule_outbox: bool,
    /// `CS:subscribed` in the resourcetype: a calendar subscription, not a calendar.
    pub is_subscribed: bool,
    pub displayname: Option<String>,
    /// `I:calendar-color`, `#RRGGBB` or `#RRGGBBAA`.
    pub calendar_color: Option<String>,
    pub calendar_description: Option<String>,
    pub addressbook_description: Option<String>,
    /// `C:supported-calendar-component-set` comp names, e.g. "VEVENT".
    pub components: Vec<String>,
    pub ctag: Option<String>,
    /// `D:sync-token` as a property of a collection.
    pub sync_token: Option<String>,
    pub etag: Option<String>,
    pub content_length: Option<u64>,
    pub content_type: Option<String>,
    pub current_user_principal: Option<String>,
    pub calendar_home_set: Vec<String>,
    pub addressbook_home_set: Vec<String>,
    /// The href inside `D:owner` (None when the owner is empty or not an href).
    pub owner: Option<String>,
    /// Shared with the user by another owner, as far as the collection says by itself: a non-empty
    /// `CS:shared-url` or `CS:source`, or a `D:share-access` that is not `shared-owner` / `not-shared`
    /// (quirk `dav_shared_under_home`). [`Props::shared_with`] adds what needs the user's principal.
    pub shared_by_other: bool,
    /// The href of the `CS:organizer` in a `CS:invite`: the sharer of a shared calendar.
    pub invite_organizer: Option<String>,
    /// `C:calendar-data` or `CR:address-data` text (CDATA or escaped), as UTF-8 bytes.
    pub data: Option<Vec<u8>>,
    /// `D:supported-report-set` names `D:sync-collection`.
    pub supports_sync_collection: bool,
    pub quota_available: Option<u64>,
    pub quota_used: Option<u64>,
}

impl Props {
    /// Quirk `dav_shared_under_home` (SOGo, Nextcloud/SabreDAV, Zimbra; reported for Kerio): whether a
    /// collection listed under the home of `principal` belongs to someone else: [`Props::shared_by_other`],
    /// or a `D:owner` that is another principal, or a `CS:invite` organised by another principal.
    /// Hrefs are compared with `href::same`; an empty owner (xandikos) says nothing.
    pub fn shared_with(&self, principal: &str) -> bool {
        let other = |h: &Option<String>| h.as_deref().is_some_and(|h| !super::href::same(h, principal));
        self.shared_by_other || other(&self.owner) || other(&self.invite_organizer)
    }
}

/// A `DAV:error` body (RFC 4918 §16): the precondition names and the href a `no-uid-conflict` holds.
#[derive(Debug, Default)]
pub struct ErrorBody {
    /// Local names: "no-uid-conflict", "valid-sync-token", "resource-must-be-null", ...
    pub conditions: Vec<String>,
    /// The href inside `no-uid-conflict` (RFC 4791 §5.3.2.1); servers seen to leave it out (quirk
    /// `dav_no_uid_conflict_href`: Radicale 3.1.8 and xandikos 0.2.8 both do).
    pub href: Option<String>,
}

/// Which namespace an element is in: the five we read, or another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Dav,
    CalDav,
    CardDav,
    Cs,
    Ical,
    Other,
}

fn ns_of(r: &ResolveResult) -> Ns {
    match r {
        ResolveResult::Bound(Namespace(uri)) => match *uri {
            NS_DAV => Ns::Dav,
            NS_CALDAV => Ns::CalDav,
            NS_CARDDAV => Ns::CardDav,
            NS_CS => Ns::Cs,
            NS_ICAL => Ns::Ical,
            _ => Ns::Other,
        },
        _ => Ns::Other,
    }
}

/// An element read into memory: a response, or a whole small error body.
#[derive(Debug, Default)]
struct Node {
    ns: Option<Ns>,
    local: String,
    /// The `name` attribute (C:comp, prop-filter); the only attribute we read.
    name_attr: Option<String>,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn is(&self, ns: Ns, local: &str) -> bool {
        self.ns == Some(ns) && self.local == local
    }
    fn child(&self, ns: Ns, local: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.is(ns, local))
    }
    fn children_named<'a>(&'a self, ns: Ns, local: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.is(ns, local))
    }
    fn trimmed(&self) -> Option<String> {
        let t = self.text.trim();
        (!t.is_empty()).then(|| t.to_string())
    }
    /// The text of the first `D:href` child.
    fn href(&self) -> Option<String> {
        self.child(Ns::Dav, "href").and_then(Node::trimmed)
    }
    fn any_descendant(&self, ns: Ns, local: &str) -> bool {
        self.children.iter().any(|c| c.is(ns, local) || c.any_descendant(ns, local))
    }
    fn is_data(&self) -> bool {
        self.is(Ns::CalDav, "calendar-data") || self.is(Ns::CardDav, "address-data")
    }
}

/// The streaming reader: the root element's name, then each child of the root as a whole [`Node`].
struct Reader<'a> {
    xml: NsReader<&'a [u8]>,
    buf: Vec<u8>,
    /// The root was an empty element (`<multistatus/>`): there are no children to read.
    root_empty: bool,
}

impl<'a> Reader<'a> {
    fn new(body: &'a [u8]) -> Reader<'a> {
        let mut xml = NsReader::from_reader(body);
        let config = xml.config_mut();
        config.check_end_names = true;
        config.expand_empty_elements = false;
        Reader { xml, buf: Vec::new(), root_empty: false }
    }

    /// The root element (namespace, local name).
    fn root(&mut self) -> Result<(Ns, String)> {
        loop {
            self.buf.clear();
            let (res, ev) = self.xml.read_resolved_event_into(&mut self.buf).context("not XML")?;
            match ev {
                Event::Start(ref e) | Event::Empty(ref e) => {
                    self.root_empty = matches!(ev, Event::Empty(_));
                    let local = e.local_name().as_ref().to_string();
                    return Ok((ns_of(&res), local));
                }
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
                Event::Text(t) if t.trim().is_empty() => {}
                Event::DocType(_) => bail!("a document type declaration (DTD) in a DAV answer is refused"),
                Event::Eof => bail!("empty XML"),
                _ => bail!("not XML: text before the root element"),
            }
        }
    }

    /// The next whole child of the root, or None at the root's end.
    fn next_child(&mut self) -> Result<Option<Node>> {
        if self.root_empty {
            return Ok(None);
        }
        let mut stack: Vec<Node> = Vec::new();
        let mut nodes = 0usize;
        loop {
            self.buf.clear();
            let (res, ev) = self.xml.read_resolved_event_into(&mut self.buf).context("not well-formed XML")?;
            match ev {
                Event::Start(e) | Event::Empty(e) if stack.len() + 2 > DEPTH_MAX => {
                    let _ = e;
                    bail!("XML nested deeper than {DEPTH_MAX} elements");
                }
                Event::Start(ref e) | Event::Empty(ref e) => {
                    nodes += 1;
                    if nodes > NODES_MAX {
                        bail!("more than {NODES_MAX} elements in one response");
                    }
                    let mut node = Node { ns: Some(ns_of(&res)), local: e.local_name().as_ref().to_string(), ..Node::default() };
                    for attr in e.attributes().flatten() {
                        if attr.key.as_ref() == "name" {
                            node.name_attr = Some(
                                attr.normalized_value(quick_xml::XmlVersion::Implicit1_0).context("an attribute's value")?.into_owned(),
                            );
                        }
                    }
                    if matches!(ev, Event::Empty(_)) {
                        match stack.last_mut() {
                            Some(parent) => parent.children.push(node),
                            None => return Ok(Some(node)),
                        }
                    } else {
                        stack.push(node);
                    }
                }
                Event::End(_) => match stack.pop() {
                    Some(done) => match stack.last_mut() {
                        Some(parent) => parent.children.push(done),
                        None => return Ok(Some(done)),
                    },
                    None => return Ok(None),
                },
                Event::Text(t) => push_text(&mut stack, &t.xml10_content())?,
                Event::CData(t) => push_text(&mut stack, &t.xml10_content())?,
                Event::GeneralRef(r) => {
                    let c = if r.is_char_ref() {
                        r.resolve_char_ref().context("a character reference")?.map(String::from)
                    } else {
                        resolve_predefined_entity(&r).map(str::to_string)
                    };
                    match c {
                        Some(c) => push_text(&mut stack, &c)?,
                        None => bail!("an undeclared entity &{};", &*r),
                    }
                }
                Event::DocType(_) => bail!("a document type declaration (DTD) in a DAV answer is refused"),
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => bail!("the XML ends inside an element"),
            }
        }
    }
}

fn push_text(stack: &mut [Node], text: &str) -> Result<()> {
    let Some(node) = stack.last_mut() else { return Ok(()) };
    let max = if node.is_data() { ITEM_TEXT_MAX } else { TEXT_MAX };
    if node.text.len() + text.len() > max {
        bail!("the text of <{}> is longer than {max} bytes", node.local);
    }
    node.text.push_str(text);
    Ok(())
}

/// The code of a `D:status` line ("HTTP/1.1 404 Not Found" -> 404).
fn status_code(text: &str) -> Option<u16> {
    text.split_whitespace().nth(1)?.parse().ok()
}

fn parse_u64(node: &Node) -> Option<u64> {
    node.trimmed()?.parse().ok()
}

/// Reads one property (a child of `D:prop`) into `props`.
fn read_prop(p: &Node, props: &mut Props) {
    match (p.ns.unwrap_or(Ns::Other), p.local.as_str()) {
        (Ns::Dav, "resourcetype") => {
            for t in &p.children {
                match (t.ns.unwrap_or(Ns::Other), t.local.as_str()) {
                    (Ns::Dav, "collection") => props.is_collection = true,
                    (Ns::Dav, "principal") => props.is_principal = true,
                    (Ns::CalDav, "calendar") => props.is_calendar = true,
                    (Ns::CalDav, "schedule-inbox") => props.is_schedule_inbox = true,
                    (Ns::CalDav, "schedule-outbox") => props.is_schedule_outbox = true,
                    (Ns::CardDav, "addressbook") => props.is_addressbook = true,
                    (Ns::Cs, "subscribed") => props.is_subscribed = true,
                    _ => {}
                }
            }
        }
        (Ns::Dav, "displayname") => props.displayname = p.trimmed(),
        (Ns::Ical, "calendar-color") => props.calendar_color = p.trimmed(),
        (Ns::CalDav, "calendar-description") => props.calendar_description = p.trimmed(),
        (Ns::CardDav, "addressbook-description") => props.addressbook_description = p.trimmed(),
        (Ns::CalDav, "supported-calendar-component-set") => {
            props.components = p.children_named(Ns::CalDav, "comp").filter_map(|c| c.name_attr.clone()).collect();
        }
        (Ns::Cs, "getctag") => props.ctag = p.trimmed(),
        (Ns::Dav, "sync-token") => props.sync_token = p.trimmed(),
        (Ns::Dav, "getetag") => props.etag = p.trimmed(),
        (Ns::Dav, "getcontentlength") => props.content_length = parse_u64(p),
        (Ns::Dav, "getcontenttype") => props.content_type = p.trimmed(),
        (Ns::Dav, "current-user-principal") => props.current_user_principal = p.href(),
        (Ns::CalDav, "calendar-home-set") => {
            props.calendar_home_set = p.children_named(Ns::Dav, "href").filter_map(Node::trimmed).collect();
        }
        (Ns::CardDav, "addressbook-home-set") => {
            props.addressbook_home_set = p.children_named(Ns::Dav, "href").filter_map(Node::trimmed).collect();
        }
        (Ns::Dav, "owner") => props.owner = p.href(),
        (Ns::Cs, "shared-url") | (Ns::Cs, "source") => {
            // Present and naming something: an empty element in a 2xx propstat says nothing.
            props.shared_by_other |= p.href().is_some() || p.trimmed().is_some();
        }
        (Ns::Dav, "share-access") => {
            // draft-pot-webdav-resource-sharing (SabreDAV): the sharer sees shared-owner, others read or
            // read-write.
            props.shared_by_other |= p.children.iter().any(|c| !(c.is(Ns::Dav, "shared-owner") || c.is(Ns::Dav, "not-shared")));
        }
        (Ns::Cs, "invite") => props.invite_organizer = p.child(Ns::Cs, "organizer").and_then(Node::href),
        (Ns::CalDav, "calendar-data") | (Ns::CardDav, "address-data") => props.data = Some(p.text.clone().into_bytes()),
        (Ns::Dav, "supported-report-set") => props.supports_sync_collection = p.any_descendant(Ns::Dav, "sync-collection"),
        (Ns::Dav, "quota-available-bytes") => props.quota_available = parse_u64(p),
        (Ns::Dav, "quota-used-bytes") => props.quota_used = parse_u64(p),
        _ => {}
    }
}

/// Names of missing properties kept per member: what a client asks is a dozen; a hostile answer
/// repeating empty 404 properties would otherwise grow many times its size in memory.
const MISSING_MAX: usize = 32;

fn read_response(node: &Node) -> Member {
    let mut m = Member { href: node.href().unwrap_or_default(), ..Member::default() };
    m.status = node.child(Ns::Dav, "status").and_then(|s| status_code(&s.text));
    for propstat in node.children_named(Ns::Dav, "propstat") {
        let ok = propstat.child(Ns::Dav, "status").and_then(|s| status_code(&s.text)).is_some_and(|c| (200..300).contains(&c));
        for prop in propstat.children_named(Ns::Dav, "prop") {
            for p in &prop.children {
                if ok {
                    read_prop(p, &mut m.props);
                } else if m.missing.len() < MISSING_MAX {
                    m.missing.push(p.local.clone());
                }
            }
        }
    }
    m
}

/// Reads a multistatus (PROPFIND, REPORT). Bounded: depth 32, 64 KiB of text per property (16 MiB for
/// item data), 200,000 responses; a DTD is refused and no entity but XML's five is read. A clear error
/// on anything that is not a `D:multistatus`.
pub fn parse_multistatus(body: &[u8]) -> Result<Multistatus> {
    let mut r = Reader::new(body);
    let (ns, local) = r.root().context("reading a DAV multistatus")?;
    if !(ns == Ns::Dav && local == "multistatus") {
        bail!("expected a DAV multistatus, the answer's root element is <{local}>");
    }
    let mut out = Multistatus::default();
    while let Some(child) = r.next_child().context("reading a DAV multistatus")? {
        if child.is(Ns::Dav, "response") {
            if out.responses.len() >= RESPONSES_MAX {
                bail!("a DAV multistatus with more than {RESPONSES_MAX} responses");
            }
            out.responses.push(read_response(&child));
        } else if child.is(Ns::Dav, "sync-token") {
            out.sync_token = child.trimmed();
        }
    }
    Ok(out)
}

fn error_of(node: &Node, out: &mut ErrorBody) -> bool {
    if node.is(Ns::Dav, "error") {
        for c in &node.children {
            out.conditions.push(c.local.clone());
            if c.local == "no-uid-conflict" && out.href.is_none() {
                out.href = c.href();
            }
        }
        return true;
    }
    node.children.iter().any(|c| error_of(c, out))
}

/// Reads a `DAV:error` body (RFC 4918 §16). Never fails: empty on anything else. Also finds a
/// `D:error` inside a multistatus response, as xandikos 0.2.8 answers a PUT of a UID already in the
/// collection (207 with a 412 response holding `no-uid-conflict`).
pub fn parse_error(body: &[u8]) -> ErrorBody {
    let mut out = ErrorBody::default();
    let mut r = Reader::new(body);
    let Ok((ns, local)) = r.root() else { return out };
    match (ns, local.as_str()) {
        (Ns::Dav, "error") => {
            // The root's children are read one by one as whole nodes.
            while let Ok(Some(child)) = r.next_child() {
                out.conditions.push(child.local.clone());
                if child.local == "no-uid-conflict" && out.href.is_none() {
                    out.href = child.href();
                }
            }
        }
        (Ns::Dav, "multistatus") => {
            while let Ok(Some(child)) = r.next_child() {
                if error_of(&child, &mut out) {
                    break;
                }
            }
        }
        _ => {}
    }
    out
}

// --- Request bodies ---------------------------------------------------------------------------

const DECL: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n";
const XMLNS: &str = "xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\" xmlns:CR=\"urn:ietf:params:xml:ns:carddav\" \
                     xmlns:CS=\"http://calendarserver.org/ns/\" xmlns:I=\"http://apple.com/ns/ical/\"";

fn propfind(props: &[&str]) -> Vec<u8> {
    let wanted: String = props.iter().map(|p| format!("<{p}/>")).collect();
    format!("{DECL}<D:propfind {XMLNS}><D:prop>{wanted}</D:prop></D:propfind>").into_bytes()
}

/// An element with escaped text.
fn text_el(name: &str, text: &str) -> String {
    format!("<{name}>{}</{name}>", escape(text))
}

/// PROPFIND body for discovery's first step (RFC 5397).
pub fn propfind_principal() -> Vec<u8> {
    propfind(&["D:current-user-principal", "D:resourcetype"])
}

/// PROPFIND body for a principal's homes (RFC 4791 §6.2.1, RFC 6352 §7.1.1).
pub fn propfind_homes() -> Vec<u8> {
    propfind(&["C:calendar-home-set", "CR:addressbook-home-set", "D:displayname"])
}

/// PROPFIND Depth 1 body for a home's collections (design §1 step 4), with `D:share-access` for
/// SabreDAV's sharing besides CalendarServer's.
pub fn propfind_collections() -> Vec<u8> {
    propfind(&[
        "D:resourcetype",
        "D:displayname",
        "I:calendar-color",
        "C:calendar-description",
        "CR:addressbook-description",
        "C:supported-calendar-component-set",
        "CS:getctag",
        "D:sync-token",
        "D:owner",
        "D:supported-report-set",
        "CS:shared-url",
        "CS:source",
        "CS:invite",
        "D:share-access",
        "D:quota-available-bytes",
        "D:quota-used-bytes",
    ])
}

/// PROPFIND Depth 1 body for a collection's members.
pub fn propfind_members() -> Vec<u8> {
    propfind(&["D:resourcetype", "D:getetag", "D:getcontentlength", "D:getcontenttype"])
}

fn set_props(displayname: Option<&str>, colour: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(name) = displayname {
        out.push_str(&text_el("D:displayname", name));
    }
    if let Some(colour) = colour {
        out.push_str(&text_el("I:calendar-color", colour));
    }
    out
}

/// MKCALENDAR body (RFC 4791 §5.3.1); `components` empty leaves the component set to the server.
pub fn mkcalendar(displayname: &str, colour: Option<&str>, description: Option<&str>, components: &[String]) -> Vec<u8> {
    let mut props = set_props(Some(displayname), colour);
    if let Some(d) = description {
        props.push_str(&text_el("C:calendar-description", d));
    }
    if !components.is_empty() {
        props.push_str("<C:supported-calendar-component-set>");
        for c in components {
            props.push_str(&format!("<C:comp name=\"{}\"/>", escape(c.as_str())));
        }
        props.push_str("</C:supported-calendar-component-set>");
    }
    format!("{DECL}<C:mkcalendar {XMLNS}><D:set><D:prop>{props}</D:prop></D:set></C:mkcalendar>").into_bytes()
}

/// Extended MKCOL body of an address book (RFC 5689, RFC 6352 §6.3.1).
pub fn mkcol_addressbook(displayname: &str, description: Option<&str>) -> Vec<u8> {
    let mut props = String::from("<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>");
    props.push_str(&text_el("D:displayname", displayname));
    if let Some(d) = description {
        props.push_str(&text_el("CR:addressbook-description", d));
    }
    format!("{DECL}<D:mkcol {XMLNS}><D:set><D:prop>{props}</D:prop></D:set></D:mkcol>").into_bytes()
}

/// PROPPATCH body setting the display name and/or the colour.
pub fn proppatch(displayname: Option<&str>, colour: Option<&str>) -> Vec<u8> {
    let props = set_props(displayname, colour);
    format!("{DECL}<D:propertyupdate {XMLNS}><D:set><D:prop>{props}</D:prop></D:set></D:propertyupdate>").into_bytes()
}

/// calendar-multiget (RFC 4791 §7.9) or addressbook-multiget (RFC 6352 §8.7) of these hrefs, asking
/// the ETag and the data.
pub fn multiget(kind: CollectionKind, hrefs: &[&str]) -> Vec<u8> {
    let (root, data) = match kind {
        CollectionKind::Calendar => ("C:calendar-multiget", "C:calendar-data"),
        CollectionKind::Addressbook => ("CR:addressbook-multiget", "CR:address-data"),
    };
    let hrefs: String = hrefs.iter().map(|h| text_el("D:href", h)).collect();
    format!("{DECL}<{root} {XMLNS}><D:prop><D:getetag/><{data}/></D:prop>{hrefs}</{root}>").into_bytes()
}

/// sync-collection REPORT (RFC 6578 §3.2), sync-level 1; no token = the initial sync.
pub fn sync_collection(token: Option<&str>) -> Vec<u8> {
    let token = match token {
        Some(t) => text_el("D:sync-token", t),
        None => "<D:sync-token/>".to_string(),
    };
    format!(
        "{DECL}<D:sync-collection {XMLNS}>{token}<D:sync-level>1</D:sync-level>\
         <D:prop><D:getetag/><D:getcontentlength/></D:prop></D:sync-collection>"
    )
    .into_bytes()
}

/// The query for an item by UID (design §3, resolving a `putting` row): calendar-query (RFC 4791 §7.8)
/// with comp-filter VCALENDAR > `component` > prop-filter UID, or addressbook-query (RFC 6352 §8.6) with
/// prop-filter UID (`component` ignored). Both match with `i;octet` and ask the ETag. The match is
/// "equals" for calendars; for address books RFC 6352's default "contains", since xandikos 0.2.8 fails
/// every addressbook-query with a 500 anyway (quirk `xandikos_addressbook_query_500`) and the caller
/// checks the UID of what it GETs.
pub fn uid_query(kind: CollectionKind, component: &str, uid: &str) -> Vec<u8> {
    match kind {
        CollectionKind::Calendar => format!(
            "{DECL}<C:calendar-query {XMLNS}><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name=\"VCALENDAR\">\
             <C:comp-filter name=\"{}\"><C:prop-filter name=\"UID\"><C:text-match collation=\"i;octet\">{}</C:text-match>\
             </C:prop-filter></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>",
            escape(component),
            escape(uid)
        ),
        CollectionKind::Addressbook => format!(
            "{DECL}<CR:addressbook-query {XMLNS}><D:prop><D:getetag/></D:prop><CR:filter><CR:prop-filter name=\"UID\">\
             <CR:text-match collation=\"i;octet\">{}</CR:text-match></CR:prop-filter></CR:filter></CR:addressbook-query>",
            escape(uid)
        ),
    }
    .into_bytes()
}

#[cfg(test)]
#[path = "xml_tests.rs"]
mod tests;
