// postflytt status page: polls GET /api/status every 5 s and shows the phase, progress, accounts,
// domains and the quiet-period clock; operators also get the actions. Vanilla JS, no build step, no
// external assets. Every visible string comes from DICT below (Swedish and English, same keys; the
// tests check that). Text from the API is untrusted (addresses, server words): it only ever reaches
// the page through textContent and createElement, never innerHTML.
"use strict";

(function () {

// ---------------------------------------------------------------------------------------------------
// Dictionary. One entry per line, "key": "text", {name} is a placeholder. tests/page.rs parses this.
// ---------------------------------------------------------------------------------------------------
const DICT = {
  en: {
    "lang.sv": "Svenska",
    "lang.en": "English",
    "lang.label": "Language",
    "skip": "Skip to content",
    "app.title": "Mail migration",
    "app.subtitle": "mail migration",
    "signout": "Sign out",
    "role.viewer": "Customer view",
    "role.operator": "Operator",
    "loading": "Loading…",
    "login.title": "Sign in to follow the mail migration",
    "login.intro": "Enter the code you got from your IT contact. It is also in the file viewer-code on the appliance.",
    "login.code": "Viewer code",
    "login.code_hint": "Ten letters and digits, e.g. ABCDE-23456.",
    "login.limited": "Too many wrong codes were tried on this appliance, so no code is accepted for a while. This page tries again by itself.",
    "login.operator": "I am the operator",
    "login.token": "Operator token",
    "login.token_hint": "From the file operator-token in the appliance's data directory. It allows every action.",
    "login.submit": "Show the status",
    "login.empty": "Enter the viewer code, or the operator token.",
    "login.rejected": "That code was not accepted. Check it and enter it again.",
    "login.rejected_token": "That operator token was not accepted. Check it and enter it again.",
    "conn.lost": "Cannot reach the appliance. Trying again every 5 seconds; the figures below are from {time}.",
    "conn.never": "Cannot reach the appliance. Trying again every 5 seconds.",
    "updated": "Updated {time}.",
    "route": "From {source} to {target}",
    "steps.label": "Migration status",
    "steps.now": "Step {n} of {total}: {name}",
    "steps.done": "(done)",
    "steps.current": "(now)",
    "phase.setup": "Setup",
    "phase.check": "Check",
    "phase.syncing": "Copying",
    "phase.cutover": "Switch-over",
    "phase.draining": "Last mail",
    "phase.finished": "Finished",
    "next.title": "What happens next",
    "next.set_up_servers": "The operator is setting up the connection to the old and the new mail server.",
    "next.set_up_servers.op": "Enter the old and the new server under Setup below.",
    "next.import_accounts": "The operator is loading the list of mail accounts.",
    "next.import_accounts.op": "Upload the account list (Excel, CSV or zip) under Account list below.",
    "next.run_check": "Next comes a test of every account: the appliance logs in and measures the mailboxes. Nothing is moved yet.",
    "next.run_check.op": "Run the check: it logs in to every account on both servers and measures the mailboxes. It moves nothing.",
    "next.fix_accounts": "Some accounts need attention, see the marked rows below: a wrong password or a mailbox that will not fit must be fixed before that account can be moved.",
    "next.fix_accounts.op": "Fix the accounts marked below (password, room on the new host), import the list again and run the check again.",
    "next.start_passes": "Everything is ready. The copying starts when the operator starts it.",
    "next.start_passes.op": "Start the passes: the first copies everything, later ones only what is new.",
    "next.wait_sync": "The mail is being copied. The first copy takes the longest; after it, only what is new is copied. Nobody needs to do anything meanwhile.",
    "next.wait_sync.op": "The passes are copying. Wait for every account to be up to date, then switch the MX records.",
    "next.switch_mx": "The mail has been copied. Now each domain's MX records are switched so that new mail goes to the new host. Copying goes on meanwhile, nothing is lost.",
    "next.switch_mx.op": "Switch each domain's MX records to the new host (see Domains). The passes keep running.",
    "next.wait_quiet": "Every domain points at the new host. The appliance now waits until no new mail has reached the old server for the quiet period, and keeps copying what still arrives.",
    "next.wait_quiet.op": "Wait for the quiet period: no new mail on the old server. The passes keep running.",
    "next.finish": "It is safe to finish. The operator makes a last copy, checks that every message has arrived and writes the report.",
    "next.finish.op": "Safe to finish: use Finish below for the last pass, the verification and the report.",
    "next.done": "The migration is finished. The report lists every account and what you still need to do.",
    "next.go.setup": "Go to Setup",
    "next.go.import": "Go to Account list",
    "next.go.check": "Go to Check",
    "next.go.passes": "Go to Passes",
    "next.go.finish": "Go to Finish",
    "next.go.domains": "Go to Domains",
    "safe.title": "Safe to finish",
    "safe.text": "Every domain points at the new host and no new mail has reached the old server for {period}.",
    "finished.title": "The migration is finished",
    "finished.text": "Finished {when}. The report lists every account, what was moved, and what you still need to do.",
    "finished.report": "Open the report",
    "finished.report_csv": "Download the report (CSV)",
    "finished.wait": "The report is being written…",
    "totals.title": "Progress",
    "totals.copied": "{done} of {total} copied",
    "totals.not_measured": "The size of the mailboxes is measured by the check.",
    "totals.messages": "Messages copied",
    "totals.accounts": "Accounts ready",
    "totals.speed": "Speed",
    "totals.eta": "Time left",
    "totals.skipped": "Skipped items",
    "totals.passes": "Passes",
    "totals.check": "Check",
    "staging.title": "Staging",
    "staging.operator": "Limit set by the operator",
    "staging.default": "Default limit: a quarter of the free disk, at most {max}",
    "staging.free": "{free} free on the appliance's disk",
    "staging.full": "Full for now: fetching waits while the new host takes what is staged.",
    "legend.pushed": "copied to the new host",
    "legend.staged": "fetched from the old server",
    "of": "{done} of {total}",
    "per_second": "{amount}/s",
    "eta.unknown": "not known yet",
    "eta.about": "about {d}",
    "eta.done": "done",
    "passes.on": "on, every {every}",
    "passes.off": "stopped",
    "passes.active": "a pass is running now",
    "passes.last": "last finished {ago}",
    "passes.next": "next {when}",
    "passes.count": "{n} so far",
    "check.never": "not run yet",
    "check.running": "running now…",
    "check.done": "done {ago}",
    "quiet.title": "Switch-over and quiet period",
    "quiet.last_mail": "Last new mail on the old server",
    "quiet.none": "none seen",
    "quiet.period": "Quiet period",
    "quiet.elapsed": "{elapsed} of {period} without new mail",
    "quiet.left": "Time left",
    "quiet.reached": "reached",
    "quiet.domains": "Domains pointing at the new host",
    "quiet.bar": "Quiet period",
    "accounts.title": "Accounts",
    "accounts.attention_only": "Only those that need attention",
    "accounts.none": "No accounts yet.",
    "accounts.none_attention": "No account needs attention.",
    "accounts.summary": "{n} accounts, {a} need attention.",
    "accounts.summary_ok": "{n} accounts, none needs attention.",
    "accounts.summary.one": "1 account; it needs attention.",
    "accounts.summary_ok.one": "1 account; it needs no attention.",
    "col.account": "Account",
    "col.status": "Status",
    "col.progress": "Progress",
    "col.speed": "Speed",
    "col.eta": "Time left",
    "col.last_pass": "Last pass",
    "col.last_mail": "Last new mail on the old server",
    "col.domain": "Domain",
    "col.mx": "Mail servers (MX)",
    "col.points": "Points at the new host",
    "col.flipped": "Switched",
    "col.checked": "Checked",
    "col.verdict": "Result",
    "col.messages": "Messages",
    "col.size": "Size",
    "col.room": "Room on the new host",
    "col.largest": "Largest message",
    "col.over": "Over the size limit",
    "acc.target": "New login: {login}",
    "acc.aliases": "Also: {list}",
    "acc.messages": "{done} of {total} messages",
    "acc.bytes": "{done} of {total}",
    "acc.fetched": "fetched {amount}",
    "acc.not_measured": "not measured yet",
    "acc.empty": "empty mailbox",
    "acc.problem": "Problem",
    "acc.throttled": "The server asked the last pass to slow down {n} times; postflytt waited as asked (not an error).",
    "acc.error": "Last error",
    "acc.skipped": "{n} skipped items",
    "acc.skipped_one": "1 skipped item",
    "acc.progress_label": "Progress of {login}",
    "dav.line": "Calendars and contacts: {parts}, {done} of {total} items copied",
    "dav.calendars": "{n} calendars",
    "dav.calendars_one": "1 calendar",
    "dav.books": "{n} address books",
    "dav.books_one": "1 address book",
    "dav.refused": "{n} could not be moved",
    "dav.skipped_collections": "{n} left out (shared or subscribed)",
    "skip.folder": "Folder",
    "skip.reason": "Reason",
    "skip.server": "The server said",
    "status.not_checked": "Not checked",
    "status.checking": "Being checked",
    "status.ready": "Ready",
    "status.copying": "Copying",
    "status.copying_pct": "Copying, {pct}",
    "status.up_to_date": "Up to date",
    "status.waiting_for_pass": "New mail waits for the next pass",
    "status.failed": "Failed",
    "status.will_not_fit": "Will not fit",
    "status.finished": "Moved",
    "reason.source_login_failed": "cannot log in on the old server",
    "reason.target_login_failed": "cannot log in on the new host",
    "reason.pass_failed": "the last pass stopped with an error",
    "status.failed_why": "Failed: {why}",
    "acc.looking": "looking for new mail",
    "totals.looking": "The passes look for new mail; the percentage returns when they have counted it.",
    "verdict.ready": "Check OK",
    "verdict.source_login_failed": "Login failed on the old server",
    "verdict.target_login_failed": "Login failed on the new host",
    "verdict.will_not_fit": "Will not fit",
    "verdict.over_size_limit": "Messages too large",
    "domains.title": "Domains",
    "domains.intro": "Where each domain's mail goes (its MX records). The appliance looks them up regularly.",
    "domains.none": "No domains yet. They are taken from the account addresses and aliases.",
    "domains.no_mx": "no MX records",
    "domains.error": "Lookup failed: {error}",
    "yes": "Yes",
    "no": "No",
    "not_yet": "not yet",
    "just_now": "just now",
    "ago": "{d} ago",
    "in": "in {d}",
    "soon": "soon",
    "dur.s": "{n} s",
    "dur.min": "{n} min",
    "dur.h": "{n} h",
    "dur.h_min": "{h} h {m} min",
    "dur.d": "{n} d",
    "dur.d_h": "{d} d {h} h",
    "unit.B": "B",
    "unit.KB": "KB",
    "unit.MB": "MB",
    "unit.GB": "GB",
    "unit.TB": "TB",
    "op.title": "Operator",
    "op.passes": "Passes",
    "op.start": "Start passes",
    "op.stop": "Stop passes",
    "op.set_interval": "Change interval",
    "op.started": "Passes started.",
    "op.stopped": "No new pass will start; a running one finishes its current step.",
    "op.interval_set": "Interval changed.",
    "op.interval_bad": "Enter the minutes between passes (at least 1).",
    "op.check": "Check",
    "op.check_help": "Logs in to every account on both servers and measures folders, sizes, the largest message and the room on the new host. It moves nothing.",
    "op.run_check": "Run the check",
    "op.check_started": "The check has started; the results appear below.",
    "op.csv": "Download as CSV",
    "op.check_none": "No check results yet.",
    "op.unknown": "unknown",
    "op.import": "Account list",
    "op.import_help": "An Excel file (.xlsx), .ods, CSV, or a .zip holding one of them. Columns: e-mail address and password on the old server; optionally new login, new password and aliases. Importing again updates accounts by login.",
    "op.file": "File",
    "op.choose": "Choose a file…",
    "op.no_file": "No file chosen",
    "op.upload": "Import",
    "op.template": "Download a blank account list (Excel)",
    "op.template_csv": "or as CSV",
    "op.template_file": "account-list.csv",
    "op.template_xlsx_file": "account-list.xlsx",
    "op.imported": "The list now has {n} accounts.",
    "op.imported.one": "The list now has 1 account.",
    "op.imported_counts": "Imported. New accounts: {added}. Updated: {updated}.",
    "op.not_in_file": "In the list before but not in this file (kept, not removed): {list}",
    "op.warnings": "Worth a look:",
    "op.imported_plain": "Imported.",
    "op.choose_file": "Choose a file first.",
    "op.setup": "Setup",
    "op.setup_show": "Show the settings",
    "op.setup_summary": "Old server: {source}. New server: {target}.",
    "op.setup_none": "not set",
    "op.source": "Old server (source)",
    "op.target": "New server (target)",
    "op.cutover": "Switch-over",
    "op.more": "More settings",
    "op.save": "Save the setup",
    "op.saved": "Saved.",
    "op.nothing": "Nothing to save: fill in at least one field.",
    "op.finish": "Finish",
    "op.finish_help": "A last pass, a verification that every message is on the new host, the report, and then the passwords and the fetched mail are deleted from the appliance.",
    "op.finish_btn": "Finish the migration…",
    "op.finish_safe": "It is safe to finish.",
    "op.finish_not_safe": "Not yet safe to finish: a domain still points at the old server, or new mail reached it within the quiet period.",
    "op.finish_done": "The migration is finished.",
    "op.finishing": "Finishing has started: the last pass, the verification and the report.",
    "f.host": "Host name",
    "f.port": "Port",
    "f.tls": "Connection",
    "f.kind": "Kind",
    "kind.imap": "IMAP server (passwords from the account list)",
    "kind.m365": "Microsoft 365 (app registration)",
    "f.tenant": "Tenant ID",
    "f.client_id": "Application (client) ID",
    "f.client_secret": "Client secret",
    "f.client_secret_hint": "Stored encrypted and never shown again. Leave empty to keep the stored one.",
    "f.pin": "Trust certificate by fingerprint (SHA-256)",
    "f.pin_hint": "Only for an old server with an expired or self-signed certificate. Leave empty to check the certificate normally.",
    "f.pin_hint_target": "Only for a new server whose certificate cannot be checked the normal way. Leave empty to check it normally.",
    "f.dav": "Calendars and contacts (CalDAV/CardDAV)",
    "f.dav_hint": "Optional. A host name is enough (e.g. dav.example.com); a full address (https, with its path) also works. Leave empty to move calendars and contacts by hand.",
    "f.mx": "MX hosts of the new host, one per line",
    "f.mx_hint": "A * matches any part, e.g. *.mail.protection.outlook.com.",
    "f.interval": "Minutes between passes",
    "f.quiet": "Quiet period (hours)",
    "f.parallel": "Accounts at once",
    "f.resolver": "DNS server for MX look-ups",
    "f.quota": "Mailbox size per account, if the new host does not tell (e.g. 50G)",
    "f.sizelimit": "Largest message the new host takes (e.g. 35M)",
    "f.staging": "Most disk for staging (e.g. 2G, at least 16M; auto for the default)",
    "tls.implicit": "TLS (usually port 993)",
    "tls.starttls": "STARTTLS (usually port 143)",
    "tls.plain": "Unencrypted (this machine only)",
    "tlsshort.implicit": "TLS",
    "tlsshort.starttls": "STARTTLS",
    "tlsshort.plain": "unencrypted",
    "dlg.title": "Finish the migration?",
    "dlg.text": "postflytt makes a last pass, verifies that every message is on the new host and writes the report. Then it deletes every password and all fetched mail from the appliance. This cannot be undone.",
    "dlg.not_safe": "The page does not yet say that it is safe to finish.",
    "dlg.cancel": "Cancel",
    "dlg.confirm": "Yes, finish",
    "err.status": "The appliance answered with an error ({status}).",
    "err.network": "Cannot reach the appliance. Check the connection and try again.",
    "err.forbidden": "Only the operator may do this.",
    "err.expired": "The code is no longer accepted. Enter it again.",
    "busy": "Working…",
    "dash": "–",
    // setup checks itself
    "verdict.source_certificate": "Not checked: the old server's certificate is not trusted",
    "verdict.target_certificate": "Not checked: the new server's certificate is not trusted",
    "verdict.dav_source_login_failed": "Calendar login failed on the old server",
    "verdict.dav_target_login_failed": "Calendar login failed on the new server",
    "check.dav": "Calendars and contacts: {cal}, {book}, {items}",
    "check.dav_cal": "{n} calendars",
    "check.dav_cal.one": "{n} calendar",
    "check.dav_book": "{n} address books",
    "check.dav_book.one": "{n} address book",
    "check.dav_items": "{n} items",
    "check.dav_items.one": "{n} item",
    "check.dav_login_source": "Calendars and contacts: the calendar login failed on the old server",
    "check.dav_login_target": "Calendars and contacts: the calendar login failed on the new server",
    "check.dav_problem": "Calendars and contacts: {problem}",
    "check.dav_left_out": "{n} shared or subscribed left out",
    "reason.source_certificate": "not tried, the old server's certificate is not trusted yet",
    "reason.target_certificate": "not tried, the new server's certificate is not trusted yet",
    "cert.viewer.source": "The old mail server's security certificate must be confirmed before the accounts can be checked. The operator is taking care of it.",
    "cert.viewer.target": "The new mail server's security certificate must be confirmed before the accounts can be checked. The operator is taking care of it.",
    "cert.title.source": "The old server's certificate is not trusted",
    "cert.title.target": "The new server's certificate is not trusted",
    "cert.why": "Why: {why}",
    "cert.subject": "Made out to",
    "cert.issuer": "Issued by",
    "cert.until": "Valid until",
    "cert.sha256": "SHA-256 fingerprint",
    "cert.openssl": "OpenSSL says",
    "cert.advice": "Compare the fingerprint with the one the server's administrator gives you. If they match, trust this certificate; postflytt then accepts exactly this certificate from this server.",
    "cert.trust": "Trust this certificate",
    "cert.trusted": "The certificate is trusted. Run the check again.",
    "cert.cli": "On the command line: {command}",
    "certproblem.self_signed": "it is self-signed",
    "certproblem.expired": "it has expired or is not yet valid",
    "certproblem.wrong_name": "it is made out to another name",
    "certproblem.untrusted": "it is issued by an authority this appliance does not trust",
    "certproblem.pin_mismatch": "it is not the certificate that was trusted before",
    "certproblem.other": "it was not accepted",
    "test.title.source": "The old server: {outcome}",
    "test.title.target": "The new server: {outcome}",
    "test.outcome.ok": "reached, connection secure",
    "test.outcome.unreachable": "could not be reached",
    "test.outcome.certificate": "the certificate is not trusted",
    "test.outcome.tls_failed": "a secure connection could not be set up",
    "test.outcome.not_imap": "connected, but no mail server answered",
    "test.unreachable.dns": "the name is not found in DNS",
    "test.unreachable.refused": "the connection was refused (is the port right?)",
    "test.unreachable.timeout": "no answer (a firewall, or the wrong address?)",
    "test.unreachable.other": "the connection failed",
    // repair and finished
    "acc.not_verified": "Not verified: {n} missing",
    "op.repair": "Repair",
    "op.repair_state": "Verification found {n} messages missing on the new host. Repair copies them again; then finish again.",
    "op.repair_btn": "Copy the missing messages again",
    "op.repair_started": "Repair started: the missing messages are copied again in a pass now.",
    "finished.forced": "Finished although verification found problems: {n} messages in {accounts} accounts are missing on the new host. The report names them.",
    // accounts one at a time
    "status.paused": "Paused",
    "status.removed": "Removed",
    "next.resume_accounts": "Every domain points at the new host. Some accounts are paused by the operator; the migration is finished once they are resumed and copied, or removed.",
    "next.resume_accounts.op": "Accounts are paused (see the rows marked Paused): resume them so the passes copy them, or remove them; finishing waits for them.",
    "acct.pause": "Pause",
    "acct.resume": "Resume",
    "acct.sync": "Sync now",
    "acct.password": "New password",
    "acct.remove": "Remove",
    "acct.remove_confirm": "Remove {login} from the migration? Its passwords are deleted at once and no more mail is copied for it. What was already copied stays. Importing the account again brings it back.",
    "acct.source_password": "Password on the old server",
    "acct.target_password": "Password on the new server",
    "acct.password_hint": "Leave a field empty to keep that password.",
    "acct.save": "Save",
    "acct.cancel": "Cancel",
    "acct.paused_done": "Paused.",
    "acct.resumed_done": "Resumed: the next pass copies it.",
    "acct.sync_done": "A pass for this account starts now, or right after the one running.",
    "acct.password_done": "Saved. Run the check again for this account.",
    "acct.removed_done": "Removed.",
    "acct.password_empty": "Enter at least one password.",
    // e-mail notices
    "notify.off": "E-mail notices: off (set them up with postflytt setup --smtp, see docs/api.md).",
    "notify.incomplete": "E-mail notices: not complete yet: a sender and at least one address are needed (postflytt status says what is missing).",
    "notify.on": "E-mail notices: to {operator} (operator) and {customer} (customer) through {relay}.",
    "notify.last_ok": "The last one was sent {ago}.",
    "notify.last_failed": "The last one could not be sent ({ago}): {error}",
    // issue 17
    "mirror.mirroring": "Follows moves and deletions on the old server",
    "mirror.off": "Does not follow moves and deletions on the old server (mirroring is off)",
    "mirror.switched_mx": "Switched {when} (MX)",
    "mirror.switched_operator": "Switched {when} (operator)",
    "mirror.counts": "{moved} moved and {removed} deleted on the new host",
    "acct.switched": "Users have switched",
    "acct.switched_confirm": "Have the users of {login} switched to the new host? From now on nothing is moved or deleted on the new host for this account, whatever they do on the old server. This cannot be undone.",
    "acct.switched_done": "Marked as switched: the new host no longer follows the old server for this account.",
    "f.mirror": "Until the users switch, follow their moves and deletions on the old server",
    "f.mirror_on": "Yes (mail postflytt copied is moved and deleted on the new host too)",
    "f.mirror_off": "No (the new host keeps everything)",
    "f.compress": "Compress the connections to the mail servers (where they offer it)",
    "f.compress_auto": "When the server is beyond the local network (a round trip of 4 ms or more)",
    "f.compress_on": "Always",
    "f.compress_off": "Never",
    // issue 18 (lead)
    "f.newer": "Move only mail received from (date)",
    "f.older": "Move only mail received before (date)",
    "f.maxsize": "Move only messages up to (e.g. 25M)",
    "f.filter_hint": "Mail outside these limits is left out and listed as skipped in the report. Leave empty to move everything.",
    "f.total": "Package size for all accounts together (e.g. 500G)",
    "op.zip_password": "Password of a locked .zip (if any)",
    "check.package_fits": "All accounts together: {need} to move into a package of {total}. It fits, with {left} left.",
    "check.package_missing": "All accounts together: {need} to move into a package of {total}. It does not fit: {missing} missing.",
    "check.package_unmeasured": "{n} accounts could not be measured, so more may be needed.",
    "check.left_out": "{n} messages ({size}) left out by the filter",
    "acc.left_out": "{n} messages ({size}) left out by the operator's filter; the report lists them per folder.",
    // issue 18 (admin)
    "op.import_admin": "With an admin login on a server (postflytt setup --source-admin or --target-admin), that server's password column may stay empty: an account's own password is used first, else the admin's.",
    // issue 18 (folderpage)
    "fold.title": "Folders",
    "fold.help": "Which folders move, for every account. Other users' and shared folders are left out by default, and so are calendars, contacts, tasks, notes and outboxes when the old server is Microsoft 365, Exchange, Kerio or Zimbra; a folder that already has mail copied keeps moving. The choice can change until the first pass has copied mail.",
    "fold.exclude": "Leave out folders (one pattern a line)",
    "fold.include": "Take back folders left out by default (one pattern a line)",
    "fold.map": "Put a folder elsewhere (SOURCE=TARGET, one a line)",
    "fold.hint": "* stands for any characters within one level and ? for one character; a folder's name covers its children. INBOX is always copied.",
    "fold.save": "Save the folder choice",
    "fold.saved": "Saved. Run the check to see which folders each account moves.",
    "fold.locked": "Copying has begun, so which folders move is fixed now: changing it in the middle would leave half-copied folders.",
    "fold.mapping": "Each account's folders",
    "fold.account": "Account",
    "fold.none": "No folders read for this account yet: run the check, which lists them.",
    "fold.no_accounts": "No accounts yet: import the account list first.",
    "fold.summary": "{moves} folders move and {left} are left out (as the last check or pass found them).",
    "fold.col_source": "Folder on the old server",
    "fold.col_target": "Folder on the new server",
    "fold.left_out": "Left out: {why}",
    "fold.mapped": "moved there by the folder choice",
    "fold.why.operator": "the pattern “{detail}” in the folder choice",
    "fold.why.account_list": "the account list's pattern “{detail}”",
    "fold.why.not_mail": "not mail (calendar, contacts, tasks, notes or the outbox; left out by default)",
    "fold.why.other_users": "another user's folder (left out by default)",
    "fold.why.shared": "a shared folder (left out by default)",
    "check.folders_left_out": "{n} folders left out",
    "check.folders_left_out.one": "1 folder left out",
    "check.folder_left_out": "{name}: {why} ({n} messages, {size})",
    "check.folder_left_out.one": "{name}: {why} (1 message, {size})",
  },
  sv: {
    "lang.sv": "Svenska",
    "lang.en": "English",
    "lang.label": "Språk",
    "skip": "Hoppa till innehållet",
    "app.title": "E-postflytt",
    "app.subtitle": "e-postflytt",
    "signout": "Logga ut",
    "role.viewer": "Kundvy",
    "role.operator": "Operatör",
    "loading": "Hämtar…",
    "login.title": "Logga in för att följa e-postflytten",
    "login.intro": "Ange koden som du har fått av din IT-kontakt. Den finns också i filen viewer-code på enheten.",
    "login.code": "Visningskod",
    "login.code_hint": "Tio bokstäver och siffror, t.ex. ABCDE-23456.",
    "login.limited": "För många felaktiga koder har provats på enheten, så ingen kod godtas på en stund. Sidan försöker igen av sig själv.",
    "login.operator": "Jag är operatör",
    "login.token": "Operatörsnyckel",
    "login.token_hint": "Från filen operator-token i enhetens datakatalog. Den tillåter alla åtgärder.",
    "login.submit": "Visa status",
    "login.empty": "Ange visningskoden eller operatörsnyckeln.",
    "login.rejected": "Koden godtogs inte. Kontrollera den och ange den igen.",
    "login.rejected_token": "Operatörsnyckeln godtogs inte. Kontrollera den och ange den igen.",
    "conn.lost": "Når inte enheten. Försöker igen var 5:e sekund; siffrorna nedan är från {time}.",
    "conn.never": "Når inte enheten. Försöker igen var 5:e sekund.",
    "updated": "Uppdaterad {time}.",
    "route": "Från {source} till {target}",
    "steps.label": "Flyttens läge",
    "steps.now": "Steg {n} av {total}: {name}",
    "steps.done": "(klart)",
    "steps.current": "(pågår)",
    "phase.setup": "Inställningar",
    "phase.check": "Kontroll",
    "phase.syncing": "Kopiering",
    "phase.cutover": "Omställning",
    "phase.draining": "Sista posten",
    "phase.finished": "Klart",
    "next.title": "Det här händer nu",
    "next.set_up_servers": "Operatören ställer in anslutningen till den gamla och den nya e-postservern.",
    "next.set_up_servers.op": "Fyll i den gamla och den nya servern under Inställningar nedan.",
    "next.import_accounts": "Operatören läser in listan över e-postkonton.",
    "next.import_accounts.op": "Ladda upp kontolistan (Excel, CSV eller zip) under Kontolista nedan.",
    "next.run_check": "Nu kommer en kontroll av varje konto: enheten loggar in och mäter brevlådorna. Inget flyttas än.",
    "next.run_check.op": "Kör kontrollen: den loggar in på varje konto på båda servrarna och mäter brevlådorna. Den flyttar ingenting.",
    "next.fix_accounts": "Några konton behöver åtgärdas, se de markerade raderna nedan: ett felaktigt lösenord eller en brevlåda som inte får plats måste rättas innan kontot kan flyttas.",
    "next.fix_accounts.op": "Rätta de markerade kontona nedan (lösenord, utrymme på nya servern), läs in listan igen och kör kontrollen igen.",
    "next.start_passes": "Allt är klart. Kopieringen börjar när operatören startar den.",
    "next.start_passes.op": "Starta omgångarna: den första kopierar allt, de följande bara det som är nytt.",
    "next.wait_sync": "Posten kopieras. Den första kopieringen tar längst tid; därefter kopieras bara det som är nytt. Ingen behöver göra något under tiden.",
    "next.wait_sync.op": "Körningarna kopierar. Vänta tills varje konto är i fas och ställ sedan om MX-posterna.",
    "next.switch_mx": "Posten är kopierad. Nu ställs varje domäns MX-poster om så att ny post går till nya servern. Kopieringen fortsätter under tiden, inget går förlorat.",
    "next.switch_mx.op": "Ställ om varje domäns MX-poster till nya servern (se Domäner). Omgångarna fortsätter.",
    "next.wait_quiet": "Alla domäner pekar på nya servern. Enheten väntar nu tills ingen ny post har kommit till den gamla servern under den tysta perioden och kopierar det som ändå kommer.",
    "next.wait_quiet.op": "Vänta ut den tysta perioden: ingen ny post på gamla servern. Omgångarna fortsätter.",
    "next.finish": "Det går bra att avsluta. Operatören gör en sista kopiering, kontrollerar att alla meddelanden har kommit fram och skriver rapporten.",
    "next.finish.op": "Klart att avsluta: använd Avsluta nedan för sista omgången, kontrollen och rapporten.",
    "next.done": "Flytten är klar. Rapporten visar varje konto och vad ni själva behöver göra.",
    "next.go.setup": "Till Inställningar",
    "next.go.import": "Till Kontolista",
    "next.go.check": "Till Kontroll",
    "next.go.passes": "Till Omgångar",
    "next.go.finish": "Till Avsluta",
    "next.go.domains": "Till Domäner",
    "safe.title": "Klart att avsluta",
    "safe.text": "Alla domäner pekar på nya servern och ingen ny post har kommit till den gamla servern på {period}.",
    "finished.title": "Flytten är klar",
    "finished.text": "Avslutad {when}. Rapporten visar varje konto, vad som flyttades och vad ni själva behöver göra.",
    "finished.report": "Öppna rapporten",
    "finished.report_csv": "Ladda ner rapporten (CSV)",
    "finished.wait": "Rapporten skrivs…",
    "totals.title": "Förlopp",
    "totals.copied": "{done} av {total} kopierat",
    "totals.not_measured": "Brevlådornas storlek mäts av kontrollen.",
    "totals.messages": "Kopierade meddelanden",
    "totals.accounts": "Konton klara att flytta",
    "totals.speed": "Hastighet",
    "totals.eta": "Tid kvar",
    "totals.skipped": "Överhoppade",
    "totals.passes": "Omgångar",
    "totals.check": "Kontroll",
    "staging.title": "Mellanlager",
    "staging.operator": "Gränsen är satt av operatören",
    "staging.default": "Standardgräns: en fjärdedel av det lediga diskutrymmet, högst {max}",
    "staging.free": "{free} ledigt på enhetens disk",
    "staging.full": "Fullt just nu: hämtningen väntar medan nya servern tar emot det som ligger i mellanlagret.",
    "legend.pushed": "kopierat till nya servern",
    "legend.staged": "hämtat från gamla servern",
    "of": "{done} av {total}",
    "per_second": "{amount}/s",
    "eta.unknown": "inte känt än",
    "eta.about": "cirka {d}",
    "eta.done": "klart",
    "passes.on": "på, var {every}",
    "passes.off": "stoppade",
    "passes.active": "en omgång pågår nu",
    "passes.last": "senast klar {ago}",
    "passes.next": "nästa {when}",
    "passes.count": "{n} hittills",
    "check.never": "inte körd än",
    "check.running": "pågår…",
    "check.done": "klar {ago}",
    "quiet.title": "Omställning och tyst period",
    "quiet.last_mail": "Senaste nya post på gamla servern",
    "quiet.none": "ingen sedd",
    "quiet.period": "Tyst period",
    "quiet.elapsed": "{elapsed} av {period} utan ny post",
    "quiet.left": "Tid kvar",
    "quiet.reached": "uppnådd",
    "quiet.domains": "Domäner som pekar på nya servern",
    "quiet.bar": "Tyst period",
    "accounts.title": "Konton",
    "accounts.attention_only": "Bara de som behöver åtgärdas",
    "accounts.none": "Inga konton än.",
    "accounts.none_attention": "Inget konto behöver åtgärdas.",
    "accounts.summary": "{n} konton, {a} behöver åtgärdas.",
    "accounts.summary_ok": "{n} konton, inget behöver åtgärdas.",
    "accounts.summary.one": "1 konto; det behöver åtgärdas.",
    "accounts.summary_ok.one": "1 konto; det behöver inte åtgärdas.",
    "col.account": "Konto",
    "col.status": "Läge",
    "col.progress": "Förlopp",
    "col.speed": "Hastighet",
    "col.eta": "Tid kvar",
    "col.last_pass": "Senaste omgång",
    "col.last_mail": "Senaste nya post på gamla servern",
    "col.domain": "Domän",
    "col.mx": "E-postservrar (MX)",
    "col.points": "Pekar på nya servern",
    "col.flipped": "Omställd",
    "col.checked": "Kontrollerad",
    "col.verdict": "Resultat",
    "col.messages": "Meddelanden",
    "col.size": "Storlek",
    "col.room": "Utrymme på nya servern",
    "col.largest": "Största meddelandet",
    "col.over": "Över storleksgränsen",
    "acc.target": "Ny inloggning: {login}",
    "acc.aliases": "Även: {list}",
    "acc.messages": "{done} av {total} meddelanden",
    "acc.bytes": "{done} av {total}",
    "acc.fetched": "hämtat {amount}",
    "acc.not_measured": "inte mätt än",
    "acc.empty": "tom brevlåda",
    "acc.problem": "Problem",
    "acc.throttled": "Servern bad senaste omgången vänta {n} gånger; postflytt väntade som den ombads (inget fel).",
    "acc.error": "Senaste fel",
    "acc.skipped": "{n} överhoppade",
    "acc.skipped_one": "1 överhoppad",
    "acc.progress_label": "Förlopp för {login}",
    "dav.line": "Kalendrar och kontakter: {parts}, {done} av {total} objekt kopierade",
    "dav.calendars": "{n} kalendrar",
    "dav.calendars_one": "1 kalender",
    "dav.books": "{n} adressböcker",
    "dav.books_one": "1 adressbok",
    "dav.refused": "{n} kunde inte flyttas",
    "dav.skipped_collections": "{n} lämnades kvar (delade eller prenumererade)",
    "skip.folder": "Mapp",
    "skip.reason": "Orsak",
    "skip.server": "Servern svarade",
    "status.not_checked": "Inte kontrollerat",
    "status.checking": "Kontrolleras",
    "status.ready": "Redo",
    "status.copying": "Kopieras",
    "status.copying_pct": "Kopieras, {pct}",
    "status.up_to_date": "I fas",
    "status.waiting_for_pass": "Ny post väntar på nästa körning",
    "status.failed": "Misslyckades",
    "status.will_not_fit": "Får inte plats",
    "status.finished": "Flyttat",
    "reason.source_login_failed": "inloggningen på gamla servern fungerar inte",
    "reason.target_login_failed": "inloggningen på nya servern fungerar inte",
    "reason.pass_failed": "senaste körningen avbröts av ett fel",
    "status.failed_why": "Misslyckades: {why}",
    "acc.looking": "letar efter ny post",
    "totals.looking": "Körningarna letar efter ny post; procenten visas igen när den är räknad.",
    "verdict.ready": "Kontroll OK",
    "verdict.source_login_failed": "Inloggningen misslyckades på gamla servern",
    "verdict.target_login_failed": "Inloggningen misslyckades på nya servern",
    "verdict.will_not_fit": "Får inte plats",
    "verdict.over_size_limit": "För stora meddelanden",
    "domains.title": "Domäner",
    "domains.intro": "Vart varje domäns post går (dess MX-poster). Enheten slår upp dem regelbundet.",
    "domains.none": "Inga domäner än. De tas från kontonas adresser och alias.",
    "domains.no_mx": "inga MX-poster",
    "domains.error": "Uppslaget misslyckades: {error}",
    "yes": "Ja",
    "no": "Nej",
    "not_yet": "inte än",
    "just_now": "nyss",
    "ago": "för {d} sedan",
    "in": "om {d}",
    "soon": "snart",
    "dur.s": "{n} s",
    "dur.min": "{n} min",
    "dur.h": "{n} tim",
    "dur.h_min": "{h} tim {m} min",
    "dur.d": "{n} d",
    "dur.d_h": "{d} d {h} tim",
    "unit.B": "B",
    "unit.KB": "kB",
    "unit.MB": "MB",
    "unit.GB": "GB",
    "unit.TB": "TB",
    "op.title": "Operatör",
    "op.passes": "Omgångar",
    "op.start": "Starta omgångarna",
    "op.stop": "Stoppa omgångarna",
    "op.set_interval": "Ändra intervallet",
    "op.started": "Omgångarna har startat.",
    "op.stopped": "Ingen ny omgång startar; en pågående avslutar sitt nuvarande steg.",
    "op.interval_set": "Intervallet är ändrat.",
    "op.interval_bad": "Ange antal minuter mellan omgångarna (minst 1).",
    "op.check": "Kontroll",
    "op.check_help": "Loggar in på varje konto på båda servrarna och mäter mappar, storlek, största meddelandet och utrymmet på nya servern. Den flyttar ingenting.",
    "op.run_check": "Kör kontrollen",
    "op.check_started": "Kontrollen har startat; resultatet visas nedan.",
    "op.csv": "Ladda ner som CSV",
    "op.check_none": "Inga kontrollresultat än.",
    "op.unknown": "okänt",
    "op.import": "Kontolista",
    "op.import_help": "En Excelfil (.xlsx), .ods, CSV eller en .zip med en sådan fil. Kolumner: e-postadress och lösenord på gamla servern; valfritt ny inloggning, nytt lösenord och alias. En ny inläsning uppdaterar kontona efter inloggning.",
    "op.file": "Fil",
    "op.choose": "Välj fil…",
    "op.no_file": "Ingen fil vald",
    "op.upload": "Läs in",
    "op.template": "Ladda ner en tom kontolista (Excel)",
    "op.template_csv": "eller som CSV",
    "op.template_file": "kontolista.csv",
    "op.template_xlsx_file": "kontolista.xlsx",
    "op.imported": "Listan har nu {n} konton.",
    "op.imported.one": "Listan har nu 1 konto.",
    "op.imported_counts": "Inläst. Nya konton: {added}. Uppdaterade: {updated}.",
    "op.not_in_file": "Fanns i listan förut men inte i den här filen (finns kvar, tas inte bort): {list}",
    "op.warnings": "Värt att titta på:",
    "op.imported_plain": "Inläst.",
    "op.choose_file": "Välj en fil först.",
    "op.setup": "Inställningar",
    "op.setup_show": "Visa inställningarna",
    "op.setup_summary": "Gamla servern: {source}. Nya servern: {target}.",
    "op.setup_none": "inte inställd",
    "op.source": "Gamla servern (källa)",
    "op.target": "Nya servern (mål)",
    "op.cutover": "Omställning",
    "op.more": "Fler inställningar",
    "op.save": "Spara inställningarna",
    "op.saved": "Sparat.",
    "op.nothing": "Inget att spara: fyll i minst ett fält.",
    "op.finish": "Avsluta",
    "op.finish_help": "En sista omgång, en kontroll av att varje meddelande finns på nya servern, rapporten, och sedan raderas lösenorden och den hämtade posten från enheten.",
    "op.finish_btn": "Avsluta flytten…",
    "op.finish_safe": "Det går bra att avsluta.",
    "op.finish_not_safe": "Inte klart att avsluta än: en domän pekar fortfarande på gamla servern, eller så har ny post kommit dit under den tysta perioden.",
    "op.finish_done": "Flytten är avslutad.",
    "op.finishing": "Avslutningen har börjat: sista omgången, kontrollen och rapporten.",
    "f.host": "Värdnamn",
    "f.port": "Port",
    "f.tls": "Anslutning",
    "f.kind": "Typ",
    "kind.imap": "IMAP-server (lösenord från kontolistan)",
    "kind.m365": "Microsoft 365 (appregistrering)",
    "f.tenant": "Klient-ID (tenant)",
    "f.client_id": "Program-ID (klient-ID)",
    "f.client_secret": "Klienthemlighet",
    "f.client_secret_hint": "Sparas krypterad och visas aldrig igen. Lämna tomt för att behålla den sparade.",
    "f.pin": "Lita på certifikatet via fingeravtryck (SHA-256)",
    "f.pin_hint": "Bara för en gammal server med utgånget eller egensignerat certifikat. Lämna tomt för vanlig kontroll av certifikatet.",
    "f.pin_hint_target": "Bara för en ny server vars certifikat inte kan kontrolleras på vanligt sätt. Lämna tomt för vanlig kontroll.",
    "f.dav": "Kalendrar och kontakter (CalDAV/CardDAV)",
    "f.dav_hint": "Valfritt. Ett värdnamn räcker (t.ex. dav.example.com); en hel adress (https, med sökväg) går också. Lämna tomt för att flytta kalendrar och kontakter för hand.",
    "f.mx": "Nya serverns MX-värdar, en per rad",
    "f.mx_hint": "En * matchar vilken del som helst, t.ex. *.mail.protection.outlook.com.",
    "f.interval": "Minuter mellan omgångarna",
    "f.quiet": "Tyst period (timmar)",
    "f.parallel": "Konton samtidigt",
    "f.resolver": "DNS-server för MX-uppslag",
    "f.quota": "Brevlådans storlek per konto, om nya servern inte anger den (t.ex. 50G)",
    "f.sizelimit": "Största meddelandet nya servern tar emot (t.ex. 35M)",
    "f.staging": "Största diskutrymme för mellanlagret (t.ex. 2G, minst 16M; auto för standard)",
    "tls.implicit": "TLS (oftast port 993)",
    "tls.starttls": "STARTTLS (oftast port 143)",
    "tls.plain": "Okrypterad (bara denna dator)",
    "tlsshort.implicit": "TLS",
    "tlsshort.starttls": "STARTTLS",
    "tlsshort.plain": "okrypterad",
    "dlg.title": "Avsluta flytten?",
    "dlg.text": "postflytt gör en sista omgång, kontrollerar att varje meddelande finns på nya servern och skriver rapporten. Sedan raderas alla lösenord och all hämtad post från enheten. Det går inte att ångra.",
    "dlg.not_safe": "Sidan säger ännu inte att det går bra att avsluta.",
    "dlg.cancel": "Avbryt",
    "dlg.confirm": "Ja, avsluta",
    "err.status": "Enheten svarade med ett fel ({status}).",
    "err.network": "Når inte enheten. Kontrollera anslutningen och försök igen.",
    "err.forbidden": "Bara operatören får göra detta.",
    "err.expired": "Koden godtas inte längre. Ange den igen.",
    "busy": "Arbetar…",
    "dash": "–",
    // setup checks itself
    "verdict.source_certificate": "Inte kontrollerat: gamla serverns certifikat är inte betrott",
    "verdict.target_certificate": "Inte kontrollerat: nya serverns certifikat är inte betrott",
    "verdict.dav_source_login_failed": "Kalenderinloggningen misslyckades på gamla servern",
    "verdict.dav_target_login_failed": "Kalenderinloggningen misslyckades på nya servern",
    "check.dav": "Kalendrar och kontakter: {cal}, {book}, {items}",
    "check.dav_cal": "{n} kalendrar",
    "check.dav_cal.one": "{n} kalender",
    "check.dav_book": "{n} adressböcker",
    "check.dav_book.one": "{n} adressbok",
    "check.dav_items": "{n} objekt",
    "check.dav_items.one": "{n} objekt",
    "check.dav_login_source": "Kalendrar och kontakter: kalenderinloggningen misslyckades på gamla servern",
    "check.dav_login_target": "Kalendrar och kontakter: kalenderinloggningen misslyckades på nya servern",
    "check.dav_problem": "Kalendrar och kontakter: {problem}",
    "check.dav_left_out": "{n} delade eller prenumererade utelämnas",
    "reason.source_certificate": "inte provat, gamla serverns certifikat är inte betrott än",
    "reason.target_certificate": "inte provat, nya serverns certifikat är inte betrott än",
    "cert.viewer.source": "Den gamla e-postserverns säkerhetscertifikat måste godkännas innan kontona kan kontrolleras. Operatören tar hand om det.",
    "cert.viewer.target": "Den nya e-postserverns säkerhetscertifikat måste godkännas innan kontona kan kontrolleras. Operatören tar hand om det.",
    "cert.title.source": "Gamla serverns certifikat är inte betrott",
    "cert.title.target": "Nya serverns certifikat är inte betrott",
    "cert.why": "Orsak: {why}",
    "cert.subject": "Utfärdat för",
    "cert.issuer": "Utfärdat av",
    "cert.until": "Giltigt till",
    "cert.sha256": "SHA-256-fingeravtryck",
    "cert.openssl": "OpenSSL säger",
    "cert.advice": "Jämför fingeravtrycket med det som serverns administratör ger dig. Om de stämmer, lita på certifikatet; postflytt godtar då just det här certifikatet från den här servern.",
    "cert.trust": "Lita på certifikatet",
    "cert.trusted": "Certifikatet är betrott. Kör kontrollen igen.",
    "cert.cli": "På kommandoraden: {command}",
    "certproblem.self_signed": "det är självsignerat",
    "certproblem.expired": "det har gått ut eller gäller ännu inte",
    "certproblem.wrong_name": "det är utfärdat för ett annat namn",
    "certproblem.untrusted": "det är utfärdat av en utfärdare som enheten inte litar på",
    "certproblem.pin_mismatch": "det är inte certifikatet som godkändes tidigare",
    "certproblem.other": "det godtogs inte",
    "test.title.source": "Gamla servern: {outcome}",
    "test.title.target": "Nya servern: {outcome}",
    "test.outcome.ok": "nåddes, anslutningen är säker",
    "test.outcome.unreachable": "kunde inte nås",
    "test.outcome.certificate": "certifikatet är inte betrott",
    "test.outcome.tls_failed": "ingen säker anslutning kunde upprättas",
    "test.outcome.not_imap": "anslutningen gick, men ingen e-postserver svarade",
    "test.unreachable.dns": "namnet finns inte i DNS",
    "test.unreachable.refused": "anslutningen nekades (stämmer porten?)",
    "test.unreachable.timeout": "inget svar (en brandvägg, eller fel adress?)",
    "test.unreachable.other": "anslutningen misslyckades",
    // repair and finished
    "acc.not_verified": "Inte verifierat: {n} saknas",
    "op.repair": "Reparera",
    "op.repair_state": "Verifieringen hittade {n} meddelanden som saknas på den nya servern. Reparera kopierar dem igen; avsluta sedan igen.",
    "op.repair_btn": "Kopiera de saknade meddelandena igen",
    "op.repair_started": "Reparationen har startat: de saknade meddelandena kopieras igen i en körning nu.",
    "finished.forced": "Avslutad trots att verifieringen hittade problem: {n} meddelanden i {accounts} konton saknas på den nya servern. Rapporten visar vilka.",
    // accounts one at a time
    "status.paused": "Pausat",
    "status.removed": "Borttaget",
    "next.resume_accounts": "Alla domäner pekar på den nya servern. Några konton har pausats av operatören; flytten avslutas när de har återupptagits och kopierats, eller tagits bort.",
    "next.resume_accounts.op": "Konton är pausade (se raderna märkta Pausat): återuppta dem så att de kopieras, eller ta bort dem; avslutet väntar på dem.",
    "acct.pause": "Pausa",
    "acct.resume": "Återuppta",
    "acct.sync": "Kopiera nu",
    "acct.password": "Nytt lösenord",
    "acct.remove": "Ta bort",
    "acct.remove_confirm": "Ta bort {login} ur flytten? Kontots lösenord raderas direkt och ingen mer e-post kopieras för det. Det som redan har kopierats finns kvar. Läs in kontot igen för att ta tillbaka det.",
    "acct.source_password": "Lösenord på den gamla servern",
    "acct.target_password": "Lösenord på den nya servern",
    "acct.password_hint": "Lämna ett fält tomt för att behålla det lösenordet.",
    "acct.save": "Spara",
    "acct.cancel": "Avbryt",
    "acct.paused_done": "Pausat.",
    "acct.resumed_done": "Återupptaget: nästa omgång kopierar kontot.",
    "acct.sync_done": "En kopiering av kontot börjar nu, eller direkt efter den som pågår.",
    "acct.password_done": "Sparat. Kör kontrollen igen för kontot.",
    "acct.removed_done": "Borttaget.",
    "acct.password_empty": "Ange minst ett lösenord.",
    // e-mail notices
    "notify.off": "E-postaviseringar: av (ställ in dem med postflytt setup --smtp, se docs/api.md).",
    "notify.incomplete": "E-postaviseringar: inte klara än: en avsändare och minst en adress behövs (postflytt status säger vad som saknas).",
    "notify.on": "E-postaviseringar: till {operator} (operatör) och {customer} (kund) via {relay}.",
    "notify.last_ok": "Den senaste skickades {ago}.",
    "notify.last_failed": "Den senaste kunde inte skickas ({ago}): {error}",
    // issue 17
    "mirror.mirroring": "Följer flyttar och raderingar på den gamla servern",
    "mirror.off": "Följer inte flyttar och raderingar på den gamla servern (speglingen är avstängd)",
    "mirror.switched_mx": "Gick över {when} (MX)",
    "mirror.switched_operator": "Gick över {when} (operatören)",
    "mirror.counts": "{moved} flyttade och {removed} raderade på den nya servern",
    "acct.switched": "Användarna har gått över",
    "acct.switched_confirm": "Har användarna av {login} gått över till den nya servern? Från och med nu flyttas eller raderas ingenting på den nya servern för det här kontot, vad de än gör på den gamla servern. Det går inte att ångra.",
    "acct.switched_done": "Klart: den nya servern följer inte längre den gamla servern för det här kontot.",
    "f.mirror": "Följ användarnas flyttar och raderingar på den gamla servern tills de går över",
    "f.mirror_on": "Ja (e-post som postflytt kopierat flyttas och raderas på den nya servern också)",
    "f.mirror_off": "Nej (den nya servern behåller allt)",
    "f.compress": "Komprimera förbindelserna till e-postservrarna (där de erbjuder det)",
    "f.compress_auto": "När servern finns utanför det lokala nätet (4 ms eller mer fram och tillbaka)",
    "f.compress_on": "Alltid",
    "f.compress_off": "Aldrig",
    // issue 18 (lead)
    "f.newer": "Flytta bara e-post mottagen från och med (datum)",
    "f.older": "Flytta bara e-post mottagen före (datum)",
    "f.maxsize": "Flytta bara meddelanden upp till (t.ex. 25M)",
    "f.filter_hint": "E-post utanför gränserna lämnas kvar och listas som överhoppad i rapporten. Lämna tomt för att flytta allt.",
    "f.total": "Paketets storlek för alla konton tillsammans (t.ex. 500G)",
    "op.zip_password": "Lösenord till en låst .zip (om den har ett)",
    "check.package_fits": "Alla konton tillsammans: {need} att flytta till ett paket på {total}. Det ryms, med {left} kvar.",
    "check.package_missing": "Alla konton tillsammans: {need} att flytta till ett paket på {total}. Det ryms inte: {missing} saknas.",
    "check.package_unmeasured": "{n} konton kunde inte mätas, så det kan behövas mer.",
    "check.left_out": "{n} meddelanden ({size}) lämnas kvar av filtret",
    "acc.left_out": "{n} meddelanden ({size}) lämnades kvar av operatörens filter; rapporten listar dem per mapp.",
    // issue 18 (admin)
    "op.import_admin": "Med en admininloggning på en server (postflytt setup --source-admin eller --target-admin) får den serverns lösenordskolumn vara tom: ett kontos eget lösenord används i första hand, annars administratörens.",
    // issue 18 (folderpage)
    "fold.title": "Mappar",
    "fold.help": "Vilka mappar som flyttas, för alla konton. Andra användares och delade mappar lämnas kvar som standard, och likaså kalendrar, kontakter, uppgifter, anteckningar och utkorgar när den gamla servern är Microsoft 365, Exchange, Kerio eller Zimbra; en mapp som redan har fått e-post kopierad fortsätter att flyttas. Valet kan ändras tills den första omgången har kopierat e-post.",
    "fold.exclude": "Lämna kvar mappar (ett mönster per rad)",
    "fold.include": "Ta med mappar som annars lämnas kvar (ett mönster per rad)",
    "fold.map": "Lägg en mapp någon annanstans (KÄLLA=MÅL, en per rad)",
    "fold.hint": "* står för valfria tecken inom en nivå och ? för ett tecken; en mapps namn omfattar dess undermappar. INBOX kopieras alltid.",
    "fold.save": "Spara valet av mappar",
    "fold.saved": "Sparat. Kör kontrollen för att se vilka mappar varje konto flyttar.",
    "fold.locked": "Kopieringen har börjat, så vilka mappar som flyttas ligger fast nu: att ändra mitt i skulle lämna halvkopierade mappar.",
    "fold.mapping": "Varje kontos mappar",
    "fold.account": "Konto",
    "fold.none": "Inga mappar lästa för det här kontot än: kör kontrollen, som listar dem.",
    "fold.no_accounts": "Inga konton än: läs in kontolistan först.",
    "fold.summary": "{moves} mappar flyttas och {left} lämnas kvar (som den senaste kontrollen eller omgången hittade dem).",
    "fold.col_source": "Mapp på den gamla servern",
    "fold.col_target": "Mapp på den nya servern",
    "fold.left_out": "Lämnas kvar: {why}",
    "fold.mapped": "flyttas dit enligt valet av mappar",
    "fold.why.operator": "mönstret ”{detail}” i valet av mappar",
    "fold.why.account_list": "kontolistans mönster ”{detail}”",
    "fold.why.not_mail": "inte e-post (kalender, kontakter, uppgifter, anteckningar eller utkorgen; lämnas kvar som standard)",
    "fold.why.other_users": "en annan användares mapp (lämnas kvar som standard)",
    "fold.why.shared": "en delad mapp (lämnas kvar som standard)",
    "check.folders_left_out": "{n} mappar lämnas kvar",
    "check.folders_left_out.one": "1 mapp lämnas kvar",
    "check.folder_left_out": "{name}: {why} ({n} meddelanden, {size})",
    "check.folder_left_out.one": "{name}: {why} (1 meddelande, {size})",
  },
};

const PHASES = ["setup", "check", "syncing", "cutover", "draining", "finished"];
const POLL_MS = 5000;
// The default staging limit's ceiling (DEFAULT_STAGING_LIMIT in src/store/space.rs).
const STAGING_DEFAULT_MAX = 2 * 1024 * 1024 * 1024;
const LS_CRED = "postflytt.credential";
const LS_LANG = "postflytt.lang";
// Where "what happens next" sends an operator.
const NEXT_TARGET = {
  set_up_servers: ["op-setup", "next.go.setup"],
  import_accounts: ["op-import", "next.go.import"],
  run_check: ["op-check", "next.go.check"],
  fix_accounts: ["op-check", "next.go.check"],
  start_passes: ["op-passes", "next.go.passes"],
  switch_mx: ["domains", "next.go.domains"],
  finish: ["op-finish", "next.go.finish"],
};

const S = {
  lang: "en",
  cred: null,            // {kind: "viewer" | "operator", value}
  status: null,          // last GET /api/status answer
  skew: 0,               // server clock minus browser clock, seconds
  lastOk: 0,             // browser ms of the last good poll
  failing: false,
  limited: false,        // the last poll was refused while guessing is limited (429)
  timer: 0,
  gen: 0,
  loginMsg: null,        // dictionary key shown above the login form
  rows: new Map(),       // login -> account row parts
  openSkipped: new Set(),
  check: null,           // last GET /api/check answer (array)
  checkKey: undefined,
  checkLoading: false,
  reportKey: null,
  reportUrl: null,
  setupFilled: false,
  setupOpened: false,
  intervalSeen: null,
  checkRendered: null,
  domainsKey: null,
};

// ---------------------------------------------------------------------------------------------------
// Small helpers.
// ---------------------------------------------------------------------------------------------------
const $ = (id) => document.getElementById(id);

function store(key, value) {
  try {
    if (value === null) localStorage.removeItem(key); else localStorage.setItem(key, value);
  } catch (e) { /* private mode: the page still works, it only forgets */ }
}
function load(key) {
  try { return localStorage.getItem(key); } catch (e) { return null; }
}

// "Calendars and contacts: 3 calendars, 2 address books, 767 of 767 items copied" and what could not be
// moved (its reasons are in the account's skipped list, under the collection's name).
function davLine(d) {
  const n = (v) => num(v) || 0;
  const count = (v, key) => (n(v) === 1 ? t(key + "_one") : t(key, { n: fmtInt(n(v)) }));
  const parts = [count(d.calendars, "dav.calendars"), count(d.address_books, "dav.books")].join(", ");
  let line = t("dav.line", { parts, done: fmtInt(n(d.copied)), total: fmtInt(n(d.items)) });
  if (n(d.refused) > 0) line += " · " + t("dav.refused", { n: fmtInt(n(d.refused)) });
  if (n(d.skipped_collections) > 0) line += " · " + t("dav.skipped_collections", { n: fmtInt(n(d.skipped_collections)) });
  return line;
}

function t(key, vars) {
  const table = DICT[S.lang] || DICT.en;
  let s = table[key];
  if (s === undefined) s = DICT.en[key];
  if (s === undefined) return "⟦" + key + "⟧";
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] === undefined ? m : String(vars[k])));
  return s;
}

// The ".one" form of a key when n is 1 and the dictionary has one.
function tn(key, n, vars) {
  const table = DICT[S.lang] || DICT.en;
  return n === 1 && table[key + ".one"] !== undefined ? t(key + ".one", vars) : t(key, vars);
}

// createElement with class, text and attributes; children are nodes or strings (as text).
function el(tag, props, children) {
  const e = document.createElement(tag);
  if (props) {
    for (const k of Object.keys(props)) {
      const v = props[k];
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : String(v));
    }
  }
  if (children) for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function show(node, on) {
  if (node.hidden === !!on) node.hidden = !on;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

function num(v) {
  return typeof v === "number" && isFinite(v) ? v : null;
}

function locale() { return S.lang === "sv" ? "sv-SE" : "en-GB"; }

function fmtInt(n) {
  n = num(n);
  if (n === null) return t("dash");
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: 0 }).format(n);
}

function fmtBytes(n) {
  n = num(n);
  if (n === null) return t("dash");
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  const digits = i === 0 ? 0 : 1;
  const f = new Intl.NumberFormat(locale(), { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return f.format(n) + "\u00a0" + t("unit." + units[i]);
}

// Bytes as `setup` takes them back: "2G", "48M", else the number.
function sizeText(n) {
  n = num(n);
  if (n === null || n <= 0) return "";
  for (const [unit, f] of [["G", 1024 * 1024 * 1024], ["M", 1024 * 1024], ["K", 1024]]) if (n % f === 0) return n / f + unit;
  return String(n);
}

function fmtDur(sec) {
  sec = Math.max(0, Math.round(sec));
  if (sec < 60) return t("dur.s", { n: sec });
  const min = Math.round(sec / 60);
  if (min < 60) return t("dur.min", { n: min });
  const h = Math.floor(sec / 3600), m = Math.round((sec % 3600) / 60);
  if (h < 48) {
    if (h >= 10 || m === 0 || m === 60) return t("dur.h", { n: m === 60 ? h + 1 : h });
    return t("dur.h_min", { h: h, m: m });
  }
  const d = Math.floor(sec / 86400), hh = Math.round((sec % 86400) / 3600);
  if (d >= 10 || hh === 0 || hh === 24) return t("dur.d", { n: hh === 24 ? d + 1 : d });
  return t("dur.d_h", { d: d, h: hh });
}

function serverNow() { return Date.now() / 1000 + S.skew; }

function fmtAgo(ts) {
  const d = serverNow() - ts;
  if (d < 0) return d > -45 ? t("soon") : t("in", { d: fmtDur(-d) });
  if (d < 45) return t("just_now");
  return t("ago", { d: fmtDur(d) });
}

function fmtDate(ts) {
  return new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeStyle: "short" }).format(new Date(ts * 1000));
}

// A <time> saying "3 h ago", with the full date as its tooltip; `fallback` when ts is null.
function timeNode(ts, fallback) {
  ts = num(ts);
  if (ts === null) return el("span", { class: "muted", text: fallback || t("dash") });
  return el("time", { datetime: new Date(ts * 1000).toISOString(), title: fmtDate(ts), text: fmtAgo(ts) });
}

function fraction(part, whole) {
  part = num(part); whole = num(whole);
  if (part === null || whole === null || whole <= 0) return 0;
  return Math.max(0, Math.min(1, part / whole));
}

// Percent for humans: never shows 100 before everything is there.
function pctText(f) {
  const p = f >= 1 ? 100 : Math.floor(f * 100);
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: 0 }).format(p) + "\u00a0%";
}

// A progress bar: dark part `done`, light part `behind` (both 0..1), with an accessible value.
function bar(done, behind, label, valueText, extraClass) {
  const b = el("div", {
    class: "bar" + (extraClass ? " " + extraClass : ""), role: "progressbar", "aria-valuemin": 0,
    "aria-valuemax": 100, "aria-valuenow": Math.floor(done * 100), "aria-label": label,
    "aria-valuetext": valueText,
  });
  const staged = el("span", { class: "bar-staged" });
  const pushed = el("span", { class: "bar-pushed" });
  staged.style.width = (Math.max(done, behind || 0) * 100).toFixed(2) + "%";
  pushed.style.width = (done * 100).toFixed(2) + "%";
  b.append(staged, pushed);
  return b;
}

function badge(kind, text) {
  return el("span", { class: "badge badge-" + kind, text: text });
}

function showMsg(node, kind, text) {
  node.className = "msg msg-" + kind;
  clear(node);
  if (text === null) { node.hidden = true; return; }
  node.append(text);
  node.hidden = false;
}

// ---------------------------------------------------------------------------------------------------
// API.
// ---------------------------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, message, body) {
    super(message || ("HTTP " + status));
    this.status = status;
    this.serverMessage = message;
    this.body = body;
  }
}

function authHeaders(cred) {
  const h = {};
  if (!cred) return h;
  if (cred.kind === "operator") h["Authorization"] = "Bearer " + cred.value;
  else h["X-Viewer-Code"] = cred.value;
  return h;
}

async function api(method, path, opts) {
  opts = opts || {};
  const headers = Object.assign(authHeaders(S.cred), opts.headers || {});
  // The server's sentences (errors, import warnings) in the language the page shows.
  headers["Accept-Language"] = S.lang === "sv" ? "sv" : "en";
  let body;
  if (opts.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.json);
  } else if (opts.body !== undefined) {
    headers["Content-Type"] = opts.type || "application/octet-stream";
    body = opts.body;
  }
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), opts.timeout || 20000);
  let res;
  try {
    res = await fetch(path, { method, headers, body, signal: ctrl.signal, cache: "no-store", credentials: "omit" });
  } catch (e) {
    throw new ApiError(0, null, null);
  } finally {
    clearTimeout(timer);
  }
  if (opts.raw && res.ok) return res;
  let data = null;
  try {
    const text = await res.text();
    data = text ? JSON.parse(text) : null;
  } catch (e) { data = null; }
  if (!res.ok) {
    const err = data && typeof data === "object" && data.error;
    const msg = err && typeof err.message === "string" ? err.message : null;
    throw new ApiError(res.status, msg, data);
  }
  return data;
}

// The words for a failed action: the server's sentence when it gave one.
function errorText(e) {
  if (!(e instanceof ApiError)) return t("err.network");
  if (e.serverMessage) return e.serverMessage;
  if (e.status === 0) return t("err.network");
  if (e.status === 403) return t("err.forbidden");
  return t("err.status", { status: e.status });
}

// Runs an operator action: disables the button, shows the outcome next to it, polls right after.
async function act(button, msgNode, fn, okText) {
  if (button) button.disabled = true;
  showMsg(msgNode, "info", t("busy"));
  try {
    const res = await fn();
    const text = typeof okText === "function" ? okText(res) : okText;
    showMsg(msgNode, "ok", text);
    pollNow();
    return res;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) { signOut("err.expired"); return undefined; }
    const node = document.createDocumentFragment();
    node.append(errorText(e));
    // An import may name several rows; show them all if the server lists them.
    const list = e instanceof ApiError && e.body && e.body.error && Array.isArray(e.body.error.errors) ? e.body.error.errors : null;
    if (list && list.length) {
      const ul = el("ul", { class: "errors" });
      for (const item of list.slice(0, 50)) {
        ul.append(el("li", { text: typeof item === "string" ? item : (item && item.message) || JSON.stringify(item) }));
      }
      node.append(ul);
    }
    showMsg(msgNode, "error", node);
    return undefined;
  } finally {
    if (button) button.disabled = false;
    refreshButtons();
  }
}

function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name });
  a.style.display = "none";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

async function downloadFrom(path, name, button, msgNode) {
  if (button) button.disabled = true;
  try {
    const res = await api("GET", path, { raw: true, timeout: 60000 });
    download(await res.blob(), name);
    if (msgNode) showMsg(msgNode, "ok", null);
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403) && !isOperator()) { signOut("login.rejected"); return; }
    if (msgNode) showMsg(msgNode, "error", errorText(e));
  } finally {
    if (button) button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------------
// Credential, language and views.
// ---------------------------------------------------------------------------------------------------
function isOperator() { return !!S.cred && S.cred.kind === "operator"; }

function setCred(cred) {
  S.cred = cred;
  store(LS_CRED, cred ? JSON.stringify(cred) : null);
}

function signOut(msgKey) {
  const wasOperator = isOperator();
  setCred(null);
  S.gen++;
  clearTimeout(S.timer);
  S.status = null;
  S.check = null;
  S.checkKey = undefined;
  S.setupFilled = false;
  S.setupOpened = false;
  S.intervalSeen = null;
  S.loginMsg = msgKey ? (msgKey === "login.rejected" && wasOperator ? "login.rejected_token" : msgKey) : null;
  showView("login");
  $("login-op").open = wasOperator;
  const field = wasOperator ? $("login-token") : $("login-code");
  field.value = "";
  field.focus();
}

function showView(which) {
  if (which === "loading" && !S.failing) setText($("loading-text"), t("loading"));
  show($("login"), which === "login");
  show($("loading"), which === "loading");
  show($("app"), which === "app");
  const signedIn = which !== "login";
  show($("signout"), signedIn);
  show($("role"), signedIn);
  setText($("role"), isOperator() ? t("role.operator") : t("role.viewer"));
  $("role").className = "role" + (isOperator() ? " role-op" : "");
  const msg = $("login-msg");
  if (S.loginMsg) { setText(msg, t(S.loginMsg)); msg.hidden = false; } else msg.hidden = true;
}

function pickLang() {
  const stored = load(LS_LANG);
  if (stored === "sv" || stored === "en") return stored;
  const langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
  return String(langs[0] || "en").toLowerCase().startsWith("sv") ? "sv" : "en";
}

function setLang(lang, remember) {
  S.lang = lang === "sv" ? "sv" : "en";
  if (remember) store(LS_LANG, S.lang);
  document.documentElement.lang = S.lang;
  applyStatic();
  // Rows are built once and updated in place; a new language rebuilds them.
  S.rows.clear();
  const table = $("accounts-table");
  for (const tb of Array.from(table.tBodies)) tb.remove();
  S.checkRendered = null;
  render();
  showView($("login").hidden ? ($("app").hidden ? "loading" : "app") : "login");
}

function applyStatic() {
  for (const node of document.querySelectorAll("[data-i18n]")) setText(node, t(node.getAttribute("data-i18n")));
  for (const node of document.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of node.getAttribute("data-i18n-attr").split(";")) {
      const [attr, key] = pair.split(":");
      node.setAttribute(attr, t(key));
    }
  }
  for (const b of document.querySelectorAll(".lang-btn")) b.setAttribute("aria-pressed", String(b.dataset.lang === S.lang));
  document.title = t("app.title") + " – postflytt";
}

// `#code=ABCDE-23456&lang=en`: take the code (staff send the customer such a link; `#token=` for the operator),
// then clean the address bar so the credential stays out of history and bookmarks.
function readFragment() {
  const hash = location.hash.replace(/^#/, "");
  if (!hash) return;
  const params = new URLSearchParams(hash);
  let used = false;
  const code = params.get("code");
  const token = params.get("token");
  if (token && token.trim()) {
    // The operator's own bookmark (and the page test); the token never leaves the browser in a URL.
    setCred({ kind: "operator", value: token.trim() });
    used = true;
  } else if (code && code.trim()) {
    setCred({ kind: "viewer", value: code.replace(/\s+/g, "") });
    used = true;
  }
  const lang = params.get("lang");
  if (lang === "sv" || lang === "en") {
    store(LS_LANG, lang);
    used = true;
  }
  if (used && history.replaceState) history.replaceState(null, "", location.pathname + location.search);
}

// ---------------------------------------------------------------------------------------------------
// Polling.
// ---------------------------------------------------------------------------------------------------
function schedule(ms) {
  clearTimeout(S.timer);
  S.timer = setTimeout(poll, ms);
}

function pollNow() { schedule(0); }

async function poll() {
  if (!S.cred) return;
  const gen = ++S.gen;
  clearTimeout(S.timer);
  try {
    const s = await api("GET", "/api/status");
    if (gen !== S.gen) return;
    if (!s || typeof s !== "object") throw new ApiError(500, null, null);
    S.status = s;
    S.skew = num(s.now) !== null ? s.now - Date.now() / 1000 : 0;
    S.lastOk = Date.now();
    S.failing = false;
    S.limited = false;
    S.loginMsg = null;
    showView("app");
    render();
    loadCheck();
    loadReport();
  } catch (e) {
    if (gen !== S.gen) return;
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) { signOut("login.rejected"); return; }
    // Guessing is being slowed down: nothing is compared for a while, the right code included. The
    // code is kept (it may well be right) and the poll simply tries again.
    S.limited = e instanceof ApiError && e.status === 429;
    S.failing = true;
    if (!S.status) showView("loading");
    renderConn();
  }
  schedule(POLL_MS);
}

async function loadCheck() {
  if (!isOperator() || S.checkLoading) return;
  const c = S.status.check || {};
  // While a check runs, fetch its results every 10 s or so; otherwise only when they change.
  const key = String(c.checked_at) + "/" + String(c.running) + (c.running ? "/" + Math.floor(Date.now() / 10000) : "");
  if (key === S.checkKey) return;
  S.checkLoading = true;
  try {
    const data = await api("GET", "/api/check");
    S.check = checkRows(data);
    S.checkPackage = data && typeof data === "object" && data.package && typeof data.package === "object" ? data.package : null;
    S.checkKey = key;
    renderCheck();
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) { S.check = []; S.checkKey = key; renderCheck(); }
  } finally {
    S.checkLoading = false;
  }
}

// GET /api/check: an array of results, or an object holding one.
function checkRows(data) {
  if (Array.isArray(data)) return data;
  if (data && typeof data === "object") {
    for (const k of ["results", "accounts", "checks"]) if (Array.isArray(data[k])) return data[k];
  }
  return [];
}

// /report is an HTML page behind the viewer code: fetch it with the header and open it as a blob.
async function loadReport() {
  const s = S.status;
  if (!s.report_available) return;
  const key = String(s.finished_at) + "/" + S.lang;
  if (S.reportKey === key) return;
  S.reportKey = key;
  try {
    const res = await api("GET", "/report?lang=" + S.lang, { raw: true, timeout: 60000 });
    const blob = await res.blob();
    if (S.reportUrl) URL.revokeObjectURL(S.reportUrl);
    S.reportUrl = URL.createObjectURL(new Blob([blob], { type: "text/html;charset=utf-8" }));
    $("report-link").href = S.reportUrl;
    renderSafe();
  } catch (e) {
    S.reportKey = null;
    showMsg($("report-msg"), "error", errorText(e));
  }
}

// ---------------------------------------------------------------------------------------------------
// Rendering.
// ---------------------------------------------------------------------------------------------------
function render() {
  if (!S.status) return;
  renderConn();
  renderRoute();
  renderSetupProblems();
  renderSteps();
  renderNext();
  renderSafe();
  renderTotals();
  renderQuiet();
  renderAccounts();
  renderDomains();
  renderOperator();
  renderCheck();
  renderFolders();
}

function renderConn() {
  const c = $("conn");
  if (S.failing) {
    // An absolute time, so the live region does not speak again on every failed poll.
    const at = new Intl.DateTimeFormat(locale(), { timeStyle: "short" }).format(new Date(S.lastOk));
    const words = S.limited ? t("login.limited") : S.lastOk ? t("conn.lost", { time: at }) : t("conn.never");
    setText(c, words);
    show(c, true);
    if (!S.status) setText($("loading-text"), S.limited ? t("login.limited") : t("conn.never"));
  } else show(c, false);
  if (S.lastOk) {
    const time = new Intl.DateTimeFormat(locale(), { timeStyle: "medium" }).format(new Date(S.lastOk));
    setText($("updated"), t("updated", { time: time }));
  }
}

function renderRoute() {
  const s = S.status;
  const src = s.source && s.source.host, dst = s.target && s.target.host;
  const r = $("route");
  if (src && dst) { setText(r, t("route", { source: src, target: dst })); show(r, true); } else show(r, false);
}

// What the setup test found wrong with each side. A certificate problem is one setup problem: the
// customer reads a sentence in their language; the operator the certificate and a button trusting it
// (POST /api/setup with the pin alone). Other findings (not reached...) are for the operator only.
function renderSetupProblems() {
  const s = S.status;
  const box = $("setup-problems");
  const key = JSON.stringify([s.source_test, s.target_test, isOperator(), S.lang]);
  if (S.setupProblemsKey === key) return;
  S.setupProblemsKey = key;
  clear(box);
  for (const side of ["source", "target"]) {
    const test = s[side + "_test"];
    if (!test || test.outcome === "ok") continue;
    const cert = test.outcome === "certificate" ? test.certificate || {} : null;
    if (!isOperator()) {
      if (cert) box.append(el("div", { class: "banner banner-warn", role: "status", text: t("cert.viewer." + side) }));
      continue;
    }
    const banner = el("div", { class: "banner banner-warn", role: "status" });
    if (!cert) {
      let why = t("test.outcome." + test.outcome);
      if (test.unreachable) why += ": " + t("test.unreachable." + test.unreachable);
      banner.append(el("p", {}, [el("strong", { text: t("test.title." + side, { outcome: why }) })]));
      if (test.message) banner.append(el("p", { class: "muted", text: String(test.message) }));
      box.append(banner);
      continue;
    }
    banner.append(el("p", {}, [el("strong", { text: t("cert.title." + side) })]));
    if (cert.problem) banner.append(el("p", { text: t("cert.why", { why: t("certproblem." + cert.problem) }) }));
    const facts = el("dl", { class: "cert-facts" });
    const fact = (k, v) => { if (v) facts.append(el("dt", { text: t(k) }), el("dd", { text: String(v) })); };
    fact("cert.subject", cert.subject);
    fact("cert.issuer", cert.issuer);
    fact("cert.until", num(cert.not_after) !== null ? fmtDate(cert.not_after) : "");
    fact("cert.sha256", cert.sha256);
    fact("cert.openssl", cert.error);
    banner.append(facts, el("p", { text: t("cert.advice") }));
    const msg = el("p", { class: "msg", role: "status", hidden: "" });
    const button = el("button", { type: "button", class: "btn", text: t("cert.trust") });
    button.addEventListener("click", () => act(button, msg, async () => {
      const res = await api("POST", "/api/setup", { json: { [side]: { pin_sha256: String(cert.sha256) } } });
      // The setup form sends its pin field with the next save: it must hold the pin trusted now.
      $(side === "source" ? "src-pin" : "tgt-pin").value = String(cert.sha256);
      await poll();
      return res;
    }, t("cert.trusted")));
    banner.append(el("p", {}, [button]), msg, el("p", { class: "muted", text: t("cert.cli", { command: "postflytt setup --" + side + "-pin " + cert.sha256 }) }));
    box.append(banner);
  }
}

function currentPhase() {
  const i = PHASES.indexOf(S.status.phase);
  return i < 0 ? 0 : i;
}

function renderSteps() {
  const ol = $("steps");
  const cur = currentPhase();
  const finished = S.status.phase === "finished";
  clear(ol);
  PHASES.forEach((p, i) => {
    const done = i < cur || (finished && i === cur);
    const li = el("li", { class: "step " + (done ? "step-done" : i === cur ? "step-current" : "step-todo"), "data-phase": p });
    if (i === cur) li.setAttribute("aria-current", "step");
    li.append(
      el("span", { class: "step-dot", "aria-hidden": "true", text: done ? "✓" : String(i + 1) }),
      el("span", { class: "step-label", text: t("phase." + p) }),
      el("span", { class: "sr-only", text: " " + (done ? t("steps.done") : i === cur ? t("steps.current") : "") }),
    );
    ol.append(li);
  });
  setText($("step-now"), t("steps.now", { n: cur + 1, total: PHASES.length, name: t("phase." + PHASES[cur]) }));
}

function renderNext() {
  const step = S.status.next_step;
  const known = typeof step === "string" && DICT.en["next." + step] !== undefined;
  let text = known ? t("next." + step) : "";
  if (known && isOperator() && DICT.en["next." + step + ".op"] !== undefined) text = t("next." + step + ".op");
  setText($("next-text"), text);
  const link = $("next-link");
  const target = isOperator() && known ? NEXT_TARGET[step] : null;
  if (target) {
    const a = link.firstElementChild;
    a.href = "#" + target[0];
    setText(a, t(target[1]));
    show(link, true);
  } else show(link, false);
}

function renderSafe() {
  const s = S.status;
  const finished = s.phase === "finished" || num(s.finished_at) !== null;
  const safe = !!s.safe_to_finish && !finished;
  show($("safe"), safe);
  if (safe) setText($("safe-text"), t("safe.text", { period: fmtDur(num(s.quiet_period_seconds) || 0) }));
  show($("finished"), finished);
  if (finished) {
    setText($("finished-text"), num(s.finished_at) !== null ? t("finished.text", { when: fmtDate(s.finished_at) }) : t("finished.wait"));
    // Finished by force with mail missing: said here too, never "all well".
    const unverified = (s.accounts || []).filter((a) => a.verified === false);
    const missing = unverified.reduce((sum, a) => sum + (num(a.missing_messages) || 0), 0);
    show($("finished-forced"), unverified.length > 0);
    setText($("finished-forced"), t("finished.forced", { n: fmtInt(missing), accounts: fmtInt(unverified.length) }));
    // The link opens the report fetched with the credential (a plain link could not send the header).
    show($("report-link"), !!s.report_available && !!S.reportUrl);
    show($("report-csv"), !!s.report_available);
    if (!s.report_available) showMsg($("report-msg"), "info", t("finished.wait"));
    else if ($("report-msg").classList.contains("msg-info")) showMsg($("report-msg"), "info", null);
  }
}

function renderTotals() {
  const s = S.status;
  const tot = s.totals || {};
  const known = tot.total_known !== false;
  const done = num(tot.done_bytes) !== null ? num(tot.done_bytes) : num(tot.pushed_bytes);
  const f = known && num(tot.percent) !== null ? num(tot.percent) / 100 : fraction(done, tot.bytes);
  const fs = fraction(tot.staged_bytes, tot.bytes);
  const measured = num(tot.bytes) !== null && tot.bytes > 0;
  const looking = measured && !known;
  setText($("totals-pct"), measured && known ? pctText(f) : "");
  show($("totals-pct").parentNode, measured && known);
  const copied = t("totals.copied", { done: fmtBytes(tot.pushed_bytes), total: fmtBytes(tot.bytes) });
  setText($("totals-copied"), looking ? t("totals.looking") : measured ? copied : t("totals.not_measured"));
  const holder = $("totals-bar");
  clear(holder);
  holder.append(bar(f, fs, t("totals.title"), measured && known ? pctText(f) + ", " + copied : looking ? t("totals.looking") : t("acc.not_measured"), "bar-big"));

  const facts = $("totals-facts");
  clear(facts);
  const fact = (label, value, cls) => {
    const div = el("div", { class: "fact" + (cls ? " " + cls : "") });
    div.append(el("dt", { text: label }), el("dd", null, [value]));
    facts.append(div);
  };
  fact(t("totals.messages"), t("of", { done: fmtInt(tot.pushed_messages), total: fmtInt(tot.messages) }));
  fact(t("totals.eta"), known ? etaText(tot.eta_seconds, done, tot.bytes) : t("eta.unknown"));
  const speed = num(tot.throughput_bytes_per_second);
  fact(t("totals.speed"), speed ? t("per_second", { amount: fmtBytes(speed) }) : t("dash"));
  fact(t("totals.accounts"), t("of", { done: fmtInt(tot.ready), total: fmtInt(tot.accounts) }));
  if (num(tot.skipped)) fact(t("totals.skipped"), fmtInt(tot.skipped), "fact-warn");

  const p = s.passes || {};
  const passBits = [p.running ? t("passes.on", { every: fmtDur(num(p.interval_seconds) || 0) }) : t("passes.off")];
  if (p.active) passBits.push(t("passes.active"));
  else if (num(p.last_finished_at) !== null) passBits.push(t("passes.last", { ago: fmtAgo(p.last_finished_at) }));
  if (p.running && !p.active && num(p.next_at) !== null) passBits.push(t("passes.next", { when: fmtAgo(p.next_at) }));
  if (num(p.count)) passBits.push(t("passes.count", { n: fmtInt(p.count) }));
  fact(t("totals.passes"), passBits.join(", "), "fact-wide");

  const c = s.check || {};
  fact(t("totals.check"), c.running ? t("check.running") : num(c.checked_at) !== null ? t("check.done", { ago: fmtAgo(c.checked_at) }) : t("check.never"));
  const staging = stagingFact(s);
  if (staging) facts.append(staging);
}

// Staging against its limit. The customer sees it too: it takes the place of the disk line the page
// always showed them, and "full for now" explains a pause in the copying without alarm. Where the limit
// comes from and the free disk are for the operator, who can change it.
function stagingFact(s) {
  const used = num(s.staging_used_bytes), limit = num(s.staging_limit_bytes);
  if (used === null || limit === null) return null;
  const op = isOperator();
  const dd = el("dd", null, [el("span", { id: "staging-used", text: t("of", { done: fmtBytes(used), total: fmtBytes(limit) }) })]);
  if (op) {
    const why = s.staging_limit_set_by === "operator" ? t("staging.operator") : t("staging.default", { max: fmtBytes(STAGING_DEFAULT_MAX) });
    dd.append(el("span", { id: "staging-why", class: "sub", text: why }));
    if (num(s.free_disk_bytes) !== null) dd.append(el("span", { class: "sub", text: t("staging.free", { free: fmtBytes(s.free_disk_bytes) }) }));
  }
  if (limit > 0 && used >= limit) dd.append(el("span", { id: "staging-full", class: "sub", text: t("staging.full") }));
  return el("div", { id: "staging", class: "fact" + (op ? " fact-wide" : "") }, [el("dt", { text: t("staging.title") }), dd]);
}

function etaText(eta, done, total) {
  if (num(total) && num(done) !== null && done >= total) return t("eta.done");
  eta = num(eta);
  if (eta === null) return t("eta.unknown");
  if (eta <= 0) return t("eta.done");
  return t("eta.about", { d: fmtDur(eta) });
}

function renderQuiet() {
  const s = S.status;
  const sec = $("quiet");
  const domains = Array.isArray(s.domains) ? s.domains : [];
  const flipped = domains.filter((d) => d && d.points_at_target).length;
  const relevant = s.phase === "cutover" || s.phase === "draining" || (s.phase !== "finished" && (s.safe_to_finish || flipped > 0));
  show(sec, relevant);
  if (!relevant) return;
  const period = num(s.quiet_period_seconds) || 0;
  const last = num(s.last_new_mail_at);
  const elapsed = last === null ? period : Math.max(0, serverNow() - last);
  const f = s.safe_to_finish ? 1 : period > 0 ? Math.min(1, elapsed / period) : 1;
  const holder = $("quiet-bar");
  clear(holder);
  const valueText = t("quiet.elapsed", { elapsed: fmtDur(Math.min(elapsed, period)), period: fmtDur(period) });
  holder.append(el("p", { class: "quiet-clock", text: valueText }));
  holder.append(bar(f, 0, t("quiet.bar"), valueText, "bar-quiet" + (f >= 1 ? " bar-full" : "")));

  const facts = $("quiet-facts");
  clear(facts);
  const fact = (label, value) => {
    const div = el("div", { class: "fact" });
    div.append(el("dt", { text: label }), el("dd", null, [value]));
    facts.append(div);
  };
  fact(t("quiet.last_mail"), timeNode(last, t("quiet.none")));
  fact(t("quiet.period"), fmtDur(period));
  fact(t("quiet.left"), f >= 1 ? t("quiet.reached") : fmtDur(period - elapsed));
  fact(t("quiet.domains"), t("of", { done: fmtInt(flipped), total: fmtInt(domains.length) }));
}

// E-mail notices as the operator reads them in the setup card: off, not complete, or to whom, and how
// the last one went (set up with postflytt setup --smtp ... or the API's "notify"; docs/api.md).
function notifyText(n) {
  if (!n || !n.relay) return t("notify.off");
  if (!n.configured) return t("notify.incomplete");
  const list = (l) => (Array.isArray(l) && l.length ? l.map(String).join(", ") : t("dash"));
  let text = t("notify.on", { operator: list(n.operator), customer: list(n.customer), relay: String(n.relay.host) });
  const last = n.last;
  if (last && num(last.at) !== null) text += " " + (last.ok ? t("notify.last_ok", { ago: fmtAgo(last.at) }) : t("notify.last_failed", { ago: fmtAgo(last.at), error: String(last.error || "") }));
  return text;
}

function needsAttention(a) {
  // A removed account is out of the migration: whatever it had does not need anyone any more.
  if (a.status === "removed") return false;
  return (a.verdict && a.verdict !== "ready") || a.status === "failed" || a.status === "will_not_fit" || !!a.last_error || a.verified === false ||
    (Array.isArray(a.skipped) && a.skipped.length > 0);
}

function accountKey(a) { return String(a.login); }

// Builds the parts of one account once; updateRow fills them on every poll.
function buildRow() {
  const tb = el("tbody", { class: "acc" });
  const tr = el("tr", { class: "acc-main" });
  const cell = (label, tag) => el(tag || "td", { "data-label": label });
  const r = {
    tb,
    name: cell(t("col.account"), "th"),
    status: cell(t("col.status")),
    progress: cell(t("col.progress")),
    speed: cell(t("col.speed")),
    eta: cell(t("col.eta")),
    pass: cell(t("col.last_pass")),
    mail: cell(t("col.last_mail")),
  };
  r.name.setAttribute("scope", "row");
  r.login = el("span", { class: "acct-name" });
  r.sub = el("span", { class: "sub" });
  r.name.append(r.login, r.sub);
  buildActions(r);
  tr.append(r.name, r.status, r.progress, r.speed, r.eta, r.pass, r.mail);
  r.detailRow = el("tr", { class: "acc-detail" });
  r.detail = el("td", { colspan: 7 });
  r.detailRow.append(r.detail);
  tb.append(tr, r.detailRow);
  r.last = {};
  return r;
}

// Replaces a cell's content only when it changed, so focus and open <details> survive a poll.
function fill(r, slot, node, key) {
  if (r.last[slot] === key) return;
  r.last[slot] = key;
  clear(r[slot]);
  if (node) r[slot].append(node);
}

function updateRow(r, a) {
  setText(r.login, String(a.login));
  const subs = [];
  if (a.target_login && a.target_login !== a.login) subs.push(t("acc.target", { login: a.target_login }));
  if (Array.isArray(a.aliases) && a.aliases.length) subs.push(t("acc.aliases", { list: a.aliases.join(", ") }));
  setText(r.sub, subs.join(" · "));
  updateMirror(r, a);
  updateActions(r, a);
  r.tb.classList.toggle("attention", needsAttention(a));

  // One status per row (the server folds check, pass and progress into it), and the check's verdict
  // beside it only where it adds something the status does not say.
  const st = typeof a.status === "string" ? a.status : "not_checked";
  const stKind = { up_to_date: "ok", finished: "ok", ready: "ok", copying: "info", checking: "info", waiting_for_pass: "info", failed: "err", will_not_fit: "warn", paused: "warn" }[st] || "neutral";
  const pct = num(a.percent);
  let stText = DICT.en["status." + st] !== undefined ? t("status." + st) : st;
  if (st === "copying" && pct !== null) stText = t("status.copying_pct", { pct: pctText(pct / 100) });
  if (st === "failed" && DICT.en["reason." + a.status_reason] !== undefined) stText = t("status.failed_why", { why: t("reason." + a.status_reason) });
  const v = a.verdict;
  const vKind = v === "over_size_limit" && st !== "failed" ? "warn" : null;
  const badges = el("span", { class: "badges" });
  badges.append(badge(stKind, stText));
  if (vKind) badges.append(badge(vKind, t("verdict." + v)));
  if (a.verified === false) badges.append(badge("err", t("acc.not_verified", { n: fmtInt(a.missing_messages || 0) })));
  fill(r, "status", badges, st + "|" + stText + "|" + v + "|" + a.verified + "|" + a.missing_messages + "|" + S.lang);

  // Progress: copied (dark) and fetched (light) of the total, as a percentage only when the total is
  // known (a later pass may be listing new mail the total does not hold yet).
  const measured = num(a.bytes) !== null && a.bytes > 0;
  const known = a.total_known !== false;
  const done = (num(a.pushed_bytes) || 0) + (num(a.refused_bytes) || 0);
  const f = known && num(a.percent) !== null ? num(a.percent) / 100 : fraction(done, a.bytes);
  const fs = fraction(a.staged_bytes, a.bytes);
  const prog = el("div", { class: "prog" });
  const msgs = t("acc.messages", { done: fmtInt(a.pushed_messages), total: fmtInt(a.messages) });
  const empty = !measured && (a.verdict === "ready" || st === "up_to_date") && num(a.messages) === 0;
  const head = !known ? t("acc.looking") : measured ? t("acc.bytes", { done: fmtBytes(a.pushed_bytes), total: fmtBytes(a.bytes) }) : empty ? t("acc.empty") : t("acc.not_measured");
  const line2 = measured && known ? msgs + " · " + t("acc.fetched", { amount: fmtBytes(a.staged_bytes) }) : "";
  prog.append(
    el("div", { class: "prog-head" }, [measured && known ? el("span", { class: "prog-pct", text: pctText(f) }) : null, el("span", { class: "prog-msgs", text: head })]),
    bar(f, fs, t("acc.progress_label", { login: a.login }), measured && known ? pctText(f) + ", " + head + ", " + msgs : head),
  );
  if (line2) prog.append(el("div", { class: "prog-bytes", text: line2 }));
  // Calendars and contacts, only when DAV servers are set up (the status then has `dav`).
  if (a.dav) prog.append(el("div", { class: "prog-dav", text: davLine(a.dav) }));
  fill(r, "progress", prog, [a.pushed_bytes, a.staged_bytes, a.bytes, a.pushed_messages, a.messages, a.percent, known, S.lang, JSON.stringify(a.dav || null)].join("|"));

  const speed = num(a.throughput_bytes_per_second);
  fill(r, "speed", document.createTextNode(speed ? t("per_second", { amount: fmtBytes(speed) }) : t("dash")), String(speed) + S.lang);
  const eta = measured && known ? etaText(a.eta_seconds, done, a.bytes) : t("dash");
  fill(r, "eta", document.createTextNode(eta), eta);
  const pass = timeNode(a.last_pass_at, t("not_yet"));
  fill(r, "pass", pass, pass.textContent + "|" + a.last_pass_at);
  const mail = timeNode(a.last_new_mail_at, t("dash"));
  fill(r, "mail", mail, mail.textContent + "|" + a.last_new_mail_at);

  // Details: the problem from the check, the last error, and what was skipped.
  const skipped = Array.isArray(a.skipped) ? a.skipped : [];
  const key = JSON.stringify([a.problem, a.last_error, a.throttled_last_pass, skipped, a.left_out_messages, S.lang]);
  if (r.last.detail !== key) {
    r.last.detail = key;
    const wasOpen = S.openSkipped.has(accountKey(a));
    clear(r.detail);
    if (a.problem && !/_certificate$/.test(String(a.verdict))) r.detail.append(el("p", { class: "note note-warn" }, [el("strong", { text: t("acc.problem") + ": " }), String(a.problem)]));
    if (a.last_error) r.detail.append(el("p", { class: "note note-err" }, [el("strong", { text: t("acc.error") + ": " }), String(a.last_error)]));
    // Throttling is the server's doing and was waited out: information, not an error.
    if (num(a.throttled_last_pass) > 0) r.detail.append(el("p", { class: "note" }, [t("acc.throttled", { n: fmtInt(a.throttled_last_pass) })]));
    // The operator's choice, not a problem: counted here, listed per folder in the report.
    if (num(a.left_out_messages) > 0) r.detail.append(el("p", { class: "note" }, [t("acc.left_out", { n: fmtInt(a.left_out_messages), size: fmtBytes(a.left_out_bytes) })]));
    if (skipped.length) {
      const det = el("details", { class: "skipped" });
      det.open = wasOpen;
      det.addEventListener("toggle", () => {
        if (det.open) S.openSkipped.add(accountKey(a)); else S.openSkipped.delete(accountKey(a));
      });
      det.append(el("summary", { text: skipped.length === 1 ? t("acc.skipped_one") : t("acc.skipped", { n: fmtInt(skipped.length) }) }));
      const ul = el("ul", { class: "skip-list" });
      for (const item of skipped) {
        const li = el("li");
        const dl = el("dl");
        const row = (label, value, cls) => {
          if (value === null || value === undefined || value === "") return;
          dl.append(el("dt", { text: label }), el("dd", { class: cls || null, text: String(value) }));
        };
        row(t("skip.folder"), item && item.folder);
        row(t("skip.reason"), item && item.reason);
        row(t("skip.server"), item && item.server_says, "server-words");
        li.append(dl);
        ul.append(li);
      }
      det.append(ul);
      r.detail.append(det);
    }
    show(r.detailRow, r.detail.childNodes.length > 0);
  }
}

// Accounts one at a time: the operator's small actions under the account's name (built once per row,
// so a half-typed password survives the polls).
function buildActions(r) {
  const b = (cls) => el("button", { type: "button", class: "btn-small " + cls });
  r.act = {
    box: el("div", { class: "acc-actions" }),
    pause: b("acct-pause"), sync: b("acct-sync"), password: b("acct-password"), remove: b("acct-remove btn-danger"), switched: b("acct-switched"),
    msg: el("p", { class: "msg", role: "status" }),
    form: el("form", { class: "acct-password-form" }),
    source: el("input", { type: "password", autocomplete: "off", class: "acct-source-password" }),
    target: el("input", { type: "password", autocomplete: "new-password", class: "acct-target-password" }),
    sourceLabel: el("label"), targetLabel: el("label"), hint: el("p", { class: "sub" }),
    save: el("button", { type: "submit", class: "btn-small acct-save" }), cancel: b("acct-cancel"),
  };
  const x = r.act;
  x.msg.hidden = true;
  x.form.hidden = true;
  x.sourceLabel.append(x.source);
  x.targetLabel.append(x.target);
  x.form.append(x.sourceLabel, x.targetLabel, x.hint, x.save, x.cancel);
  x.box.append(x.pause, x.sync, x.password, x.switched, x.remove, x.form, x.msg);
  r.name.append(x.box);
  const path = (action) => "/api/accounts/" + encodeURIComponent(r.login.textContent) + (action ? "/" + action : "");
  x.pause.addEventListener("click", () => {
    const resume = x.pause.dataset.paused === "1";
    act(x.pause, x.msg, () => api("POST", path(resume ? "resume" : "pause")), t(resume ? "acct.resumed_done" : "acct.paused_done"));
  });
  x.sync.addEventListener("click", () => act(x.sync, x.msg, () => api("POST", path("sync")), t("acct.sync_done")));
  x.password.addEventListener("click", () => { show(x.form, x.form.hidden); if (!x.form.hidden) x.source.focus(); });
  x.cancel.addEventListener("click", () => { x.source.value = ""; x.target.value = ""; show(x.form, false); });
  x.form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = {};
    if (x.source.value) body.source_password = x.source.value;
    if (x.target.value) body.target_password = x.target.value;
    if (!Object.keys(body).length) { showMsg(x.msg, "error", t("acct.password_empty")); return; }
    const done = await act(x.save, x.msg, () => api("POST", path("passwords"), { json: body }), t("acct.password_done"));
    if (done) { x.source.value = ""; x.target.value = ""; show(x.form, false); }
  });
  // The switch cannot be undone, so it is confirmed like a removal.
  x.switched.addEventListener("click", () => {
    if (!window.confirm(t("acct.switched_confirm", { login: r.login.textContent }))) return;
    act(x.switched, x.msg, () => api("POST", "/api/switched", { json: { accounts: [r.login.textContent] } }), t("acct.switched_done"));
  });
  x.remove.addEventListener("click", () => {
    if (!window.confirm(t("acct.remove_confirm", { login: r.login.textContent }))) return;
    act(x.remove, x.msg, () => api("DELETE", path("")), t("acct.removed_done"));
  });
}

// Issue 17: whether the new host still follows the users' moves and deletions on the old server, or
// they have switched (when, and who said so), and what that following moved and deleted so far.
function updateMirror(r, a) {
  if (!r.mirror) { r.mirror = el("span", { class: "sub acc-mirror" }); r.sub.after(r.mirror); }
  let text = "";
  if (a.mirror === "switched") {
    const when = num(a.switched_at) !== null ? fmtDate(a.switched_at) : t("dash");
    text = t(a.switched_by === "mx" ? "mirror.switched_mx" : "mirror.switched_operator", { when: when });
  } else if (a.mirror === "mirroring" || a.mirror === "off") text = t("mirror." + a.mirror);
  const moved = num(a.moved_messages) || 0, removed = num(a.removed_messages) || 0;
  if (text && (moved || removed)) text += " · " + t("mirror.counts", { moved: fmtInt(moved), removed: fmtInt(removed) });
  setText(r.mirror, a.state === "removed" ? "" : text);
  show(r.mirror, a.state !== "removed" && text !== "");
}

function updateActions(r, a) {
  const x = r.act;
  const finished = S.status && (S.status.phase === "finished" || num(S.status.finished_at) !== null);
  show(x.box, isOperator() && !finished && a.state !== "removed");
  const paused = a.state === "paused";
  x.pause.dataset.paused = paused ? "1" : "0";
  setText(x.pause, t(paused ? "acct.resume" : "acct.pause"));
  setText(x.sync, t("acct.sync"));
  x.sync.disabled = paused;
  setText(x.password, t("acct.password"));
  setText(x.remove, t("acct.remove"));
  setText(x.switched, t("acct.switched"));
  show(x.switched, a.mirror !== "switched");
  setText(x.save, t("acct.save"));
  setText(x.cancel, t("acct.cancel"));
  setText(x.hint, t("acct.password_hint"));
  if (x.sourceLabel.firstChild.nodeType === 3) x.sourceLabel.firstChild.textContent = t("acct.source_password") + " ";
  else x.sourceLabel.prepend(t("acct.source_password") + " ");
  if (x.targetLabel.firstChild.nodeType === 3) x.targetLabel.firstChild.textContent = t("acct.target_password") + " ";
  else x.targetLabel.prepend(t("acct.target_password") + " ");
}

function renderAccounts() {
  const s = S.status;
  const list = Array.isArray(s.accounts) ? s.accounts.filter((a) => a && a.login) : [];
  const only = $("attention-only").checked;
  const table = $("accounts-table");
  const attention = list.filter(needsAttention).length;
  setText($("accounts-count"), list.length ? "(" + fmtInt(list.length) + ")" : "");
  setText($("accounts-summary"), list.length ? (attention ? tn("accounts.summary", list.length, { n: fmtInt(list.length), a: fmtInt(attention) }) : tn("accounts.summary_ok", list.length, { n: fmtInt(list.length) })) : "");
  const shown = only ? list.filter(needsAttention) : list;
  const seen = new Set();
  let i = 0;
  for (const a of shown) {
    const key = accountKey(a);
    seen.add(key);
    let r = S.rows.get(key);
    if (!r) { r = buildRow(); S.rows.set(key, r); }
    updateRow(r, a);
    // Keep order without moving rows that are already in place (moving would drop focus).
    if (table.tBodies[i] !== r.tb) table.insertBefore(r.tb, table.tBodies[i] || null);
    i++;
  }
  for (const [key, r] of S.rows) {
    if (!seen.has(key)) { r.tb.remove(); if (!list.some((a) => accountKey(a) === key)) S.rows.delete(key); }
  }
  const empty = $("accounts-empty");
  show(table, shown.length > 0);
  if (!shown.length) { setText(empty, list.length ? t("accounts.none_attention") : t("accounts.none")); show(empty, true); } else show(empty, false);
}

function renderDomains() {
  const s = S.status;
  const list = Array.isArray(s.domains) ? s.domains.filter((d) => d && d.domain) : [];
  const body = $("domains-body");
  const key = JSON.stringify([list, S.lang, Math.floor(serverNow() / 30)]);
  if (S.domainsKey === key) return;
  S.domainsKey = key;
  clear(body);
  for (const d of list) {
    const tr = el("tr");
    const name = el("th", { scope: "row", "data-label": t("col.domain"), text: String(d.domain) });
    const hosts = el("td", { "data-label": t("col.mx") });
    if (Array.isArray(d.hosts) && d.hosts.length) {
      const ul = el("ul", { class: "hosts" });
      for (const h of d.hosts) ul.append(el("li", { text: String(h) }));
      hosts.append(ul);
    } else hosts.append(el("span", { class: "muted", text: d.error ? t("dash") : num(d.checked_at) === null ? t("not_yet") : t("domains.no_mx") }));
    if (d.error) hosts.append(el("p", { class: "note note-err", text: t("domains.error", { error: String(d.error) }) }));
    const points = el("td", { "data-label": t("col.points") }, [d.points_at_target ? badge("ok", t("yes")) : badge("neutral", t("no"))]);
    const flippedTd = el("td", { "data-label": t("col.flipped") });
    if (num(d.flipped_at) !== null) flippedTd.append(el("time", { datetime: new Date(d.flipped_at * 1000).toISOString(), text: fmtDate(d.flipped_at) }));
    else flippedTd.append(el("span", { class: "muted", text: t("dash") }));
    const checked = el("td", { "data-label": t("col.checked") }, [timeNode(d.checked_at, t("not_yet"))]);
    tr.append(name, hosts, points, flippedTd, checked);
    body.append(tr);
  }
  show($("domains-table"), list.length > 0);
  const empty = $("domains-empty");
  setText(empty, t("domains.none"));
  show(empty, list.length === 0);
}

// ---------------------------------------------------------------------------------------------------
// Operator.
// ---------------------------------------------------------------------------------------------------
function renderOperator() {
  const op = isOperator();
  show($("operator"), op);
  if (!op) return;
  const s = S.status;
  const p = s.passes || {};
  const bits = [p.running ? t("passes.on", { every: fmtDur(num(p.interval_seconds) || 0) }) : t("passes.off")];
  if (p.active) bits.push(t("passes.active"));
  if (p.running && !p.active && num(p.next_at) !== null) bits.push(t("passes.next", { when: fmtAgo(p.next_at) }));
  const state = bits.join(", ");
  setText($("op-passes-state"), state.charAt(0).toUpperCase() + state.slice(1));
  // Filled from the server whenever its interval changes (the setup form or the CLI may set it), but
  // never while the operator is typing in it.
  if (num(p.interval_seconds) && S.intervalSeen !== p.interval_seconds && document.activeElement !== $("interval-min")) {
    $("interval-min").value = String(Math.round(p.interval_seconds / 60));
    S.intervalSeen = p.interval_seconds;
  }
  const c = s.check || {};
  const cs = c.running ? t("check.running") : num(c.checked_at) !== null ? t("check.done", { ago: fmtAgo(c.checked_at) }) : t("check.never");
  setText($("op-check-state"), t("totals.check") + ": " + cs);
  const finished = s.phase === "finished" || num(s.finished_at) !== null;
  setText($("finish-state"), finished ? t("op.finish_done") : s.safe_to_finish ? t("op.finish_safe") : t("op.finish_not_safe"));
  $("finish-state").className = finished || s.safe_to_finish ? "note note-ok" : "note";
  const ep = (e) => (e && e.host ? e.host + (e.port ? ":" + e.port : "") + (e.tls ? " (" + (DICT.en["tlsshort." + e.tls] !== undefined ? t("tlsshort." + e.tls) : e.tls) + ")" : "") : t("op.setup_none"));
  setText($("setup-summary"), t("op.setup_summary", { source: ep(s.source), target: ep(s.target) }));
  setText($("notify-summary"), notifyText(s.notify));
  if (!S.setupOpened) {
    S.setupOpened = true;
    if (s.phase === "setup" || !(s.source && s.source.host) || !(s.target && s.target.host)) $("setup-details").open = true;
  }
  fillSetup();
  refreshButtons();
}

function refreshButtons() {
  const s = S.status;
  if (!s) return;
  const p = s.passes || {};
  const finished = s.phase === "finished" || num(s.finished_at) !== null;
  $("passes-start").disabled = !!p.running || finished;
  $("passes-stop").disabled = !p.running || finished;
  $("check-run").disabled = !!(s.check && s.check.running) || finished;
  $("finish-open").disabled = finished;
  showFinishedActions(s, finished);
}

// A finished migration is read-only: its changing actions leave the page (the server refuses them
// anyway). Repair is offered while verification says messages are missing and it is not finished.
function showFinishedActions(s, finished) {
  for (const id of ["op-setup", "op-import", "op-check", "op-passes", "op-finish"]) show($(id), !finished);
  const missing = (s.accounts || []).reduce((sum, a) => sum + (num(a.missing_messages) || 0), 0);
  show($("op-repair"), !finished && missing > 0);
  setText($("repair-state"), t("op.repair_state", { n: fmtInt(missing) }));
}

// Fills the setup form from the status once (the status has no MX patterns, package limits or pins; an
// operator's staging limit it has).
function fillSetup() {
  if (S.setupFilled) return;
  const s = S.status;
  const put = (id, v) => { if (v !== null && v !== undefined && v !== "") $(id).value = String(v); };
  for (const [side, pre] of [["source", "src"], ["target", "tgt"]]) {
    const e = s[side] || {};
    put(pre + "-host", e.host);
    put(pre + "-port", e.port);
    put(pre + "-pin", e.pin_sha256);
    put(pre + "-dav", davUrl(s, side));
    if (e.tls === "implicit" || e.tls === "starttls" || e.tls === "plain") $(pre + "-tls").value = e.tls;
    if (!$(pre + "-port").value) $(pre + "-port").value = $(pre + "-tls").value === "implicit" ? "993" : "143";
    const kind = s[side + "_kind"] === "m365" ? "m365" : "imap";
    $(pre + "-kind").value = kind;
    show($(pre + "-m365"), kind === "m365");
  }
  if (num(s.passes && s.passes.interval_seconds)) put("setup-interval", Math.round(s.passes.interval_seconds / 60));
  if (num(s.quiet_period_seconds) !== null) put("setup-quiet", Math.round(s.quiet_period_seconds / 360) / 10);
  if (Array.isArray(s.target_mx)) put("target-mx", s.target_mx.join("\n"));
  if (s.staging_limit_set_by === "operator") put("setup-staging", sizeText(s.staging_limit_bytes));
  if (s.mirror === "on" || s.mirror === "off") $("setup-mirror").value = s.mirror;
  if (["auto", "on", "off"].includes(s.compress)) $("setup-compress").value = s.compress;
  const filter = s.filter || {};
  put("setup-newer", filter.newer_than);
  put("setup-older", filter.older_than);
  put("setup-maxsize", sizeText(filter.max_message_size));
  put("setup-total", sizeText(s.quota_total_bytes));
  S.setupFilled = true;
}

// A side's DAV server address as the status has it, "" when none is set up.
function davUrl(s, side) {
  const d = s && s.dav && s.dav[side];
  return d && typeof d.url === "string" ? d.url : "";
}

function setupBody() {
  const body = {};
  const val = (id) => $(id).value.trim();
  // The DAV servers: sent when changed; an emptied field removes the side's (null).
  for (const [side, pre] of [["source", "src"], ["target", "tgt"]]) {
    if (val(pre + "-dav") !== davUrl(S.status, side)) body[side + "_dav"] = val(pre + "-dav") || null;
  }
  for (const [side, pre] of [["source", "src"], ["target", "tgt"]]) {
    const host = val(pre + "-host");
    if (!host) continue;
    const e = { host: host, tls: $(pre + "-tls").value };
    const port = parseInt(val(pre + "-port"), 10);
    if (port > 0) e.port = port;
    const pin = val(pre + "-pin");
    if (pin) e.pin_sha256 = pin;
    body[side] = e;
  }
  for (const [side, pre] of [["source", "src"], ["target", "tgt"]]) {
    const kind = $(pre + "-kind").value;
    if (kind !== (S.status && S.status[side + "_kind"] === "m365" ? "m365" : "imap")) body[side + "_kind"] = kind;
    if (kind !== "m365") continue;
    const app = {};
    if (val(pre + "-tenant")) app.tenant = val(pre + "-tenant");
    if (val(pre + "-client")) app.client_id = val(pre + "-client");
    // The secret is sent once and the field emptied after saving; the page never gets it back.
    if ($(pre + "-secret").value) app.client_secret = $(pre + "-secret").value;
    if (Object.keys(app).length) body[side + "_m365"] = app;
  }
  const mx = $("target-mx").value.split(/[\n,;]+/).map((x) => x.trim()).filter(Boolean);
  if (mx.length) body.target_mx = mx;
  const interval = parseFloat(val("setup-interval"));
  if (interval > 0) body.pass_interval_seconds = Math.round(interval * 60);
  const quiet = parseFloat(val("setup-quiet").replace(",", "."));
  if (quiet >= 0) body.quiet_period_seconds = Math.round(quiet * 3600);
  const parallel = parseInt(val("setup-parallel"), 10);
  if (parallel > 0) body.parallel = parallel;
  if (val("setup-quota")) body.quota_per_account = val("setup-quota");
  if (val("setup-limit")) body.message_size_limit = val("setup-limit");
  if (val("setup-staging")) body.staging_limit = val("setup-staging");
  if (val("setup-resolver")) body.resolver = val("setup-resolver");
  if (S.status && $("setup-mirror").value !== S.status.mirror) body.mirror = $("setup-mirror").value;
  if (S.status && $("setup-compress").value !== S.status.compress) body.compress = $("setup-compress").value;
  // The filter and the package's total: sent when changed; an emptied field removes it (null).
  const filter = (S.status && S.status.filter) || {};
  const stored = { "setup-newer": filter.newer_than || "", "setup-older": filter.older_than || "", "setup-maxsize": sizeText(filter.max_message_size), "setup-total": sizeText(S.status && S.status.quota_total_bytes) };
  for (const [id, key] of [["setup-newer", "newer_than"], ["setup-older", "older_than"], ["setup-maxsize", "max_message_size"], ["setup-total", "quota_total"]]) {
    if (val(id) !== stored[id]) body[key] = val(id) || null;
  }
  return body;
}

function renderCheck() {
  if (!isOperator()) return;
  const rows = S.check;
  const key = JSON.stringify([rows, S.lang]);
  if (S.checkRendered === key) return;
  S.checkRendered = key;
  const body = $("check-body");
  clear(body);
  const list = Array.isArray(rows) ? rows.filter((r) => r && typeof r === "object") : [];
  for (const r of list) {
    const tr = el("tr");
    const name = el("th", { scope: "row", "data-label": t("col.account") }, [el("span", { class: "acct-name", text: String(r.account || r.login || "") })]);
    if (r.target_account && r.target_account !== r.account) name.append(el("span", { class: "sub", text: t("acc.target", { login: r.target_account }) }));
    const v = r.verdict;
    const vKind = { ready: "ok", source_login_failed: "err", target_login_failed: "err", will_not_fit: "warn", over_size_limit: "warn", source_certificate: "err", target_certificate: "err", dav_source_login_failed: "warn", dav_target_login_failed: "warn" }[v] || "neutral";
    const verdict = el("td", { "data-label": t("col.verdict") }, [badge(vKind, DICT.en["verdict." + v] !== undefined ? t("verdict." + v) : String(v || t("dash")))]);
    if (r.problem) verdict.append(el("p", { class: "note", text: String(r.problem) }));
    const msgs = el("td", { "data-label": t("col.messages"), class: "num", text: fmtInt(r.messages) });
    if (num(r.left_out_messages) > 0) msgs.append(el("span", { class: "sub", text: t("check.left_out", { n: fmtInt(r.left_out_messages), size: fmtBytes(r.left_out_bytes) }) }));
    checkLeftOutFolders(msgs, r.excluded);
    const davLine = checkDavLine(r.dav);
    if (davLine) name.append(el("span", { class: "sub", text: davLine }));
    const size = el("td", { "data-label": t("col.size"), class: "num", text: fmtBytes(r.bytes) });
    const room = el("td", { "data-label": t("col.room"), class: "num", text: num(r.target_room) !== null ? fmtBytes(r.target_room) : t("op.unknown") });
    const largest = el("td", { "data-label": t("col.largest") });
    if (r.largest && typeof r.largest === "object") {
      largest.append(el("span", { text: fmtBytes(r.largest.size) }), el("span", { class: "sub", text: [r.largest.folder, r.largest.subject].filter(Boolean).join(": ") }));
    } else largest.append(el("span", { class: "muted", text: t("dash") }));
    const overList = Array.isArray(r.over_limit) ? r.over_limit : [];
    const over = el("td", { "data-label": t("col.over"), class: "num" });
    if (overList.length) {
      const det = el("details");
      det.append(el("summary", { text: fmtInt(overList.length) }));
      const ul = el("ul", { class: "skip-list" });
      for (const m of overList.slice(0, 200)) {
        ul.append(el("li", { text: [fmtBytes(m && m.size), m && m.folder, m && m.date, m && m.subject].filter(Boolean).join(" · ") }));
      }
      det.append(ul);
      over.append(det);
    } else over.append(document.createTextNode("0"));
    tr.append(name, verdict, msgs, size, room, largest, over);
    body.append(tr);
  }
  show($("check-table"), list.length > 0);
  const empty = $("check-empty");
  setText(empty, t("op.check_none"));
  show(empty, rows !== null && list.length === 0);
  renderPackage(list.length > 0 ? S.checkPackage : null);
}

// The account's calendars and contacts under its name (issue 19): counts, or the failed login in words.
function checkDavLine(d) {
  if (!d || typeof d !== "object") return "";
  if (d.login_failed === "source") return t("check.dav_login_source");
  if (d.login_failed === "target") return t("check.dav_login_target");
  const cols = Array.isArray(d.collections) ? d.collections.filter((c) => c && typeof c === "object") : [];
  if (d.problem && !cols.length) return t("check.dav_problem", { problem: String(d.problem) });
  const kept = cols.filter((c) => !c.skipped);
  const plural = (key, n) => tn(key, n, { n: fmtInt(n) });
  const items = kept.reduce((sum, c) => sum + (num(c.items) || 0), 0);
  let line = t("check.dav", { cal: plural("check.dav_cal", kept.filter((c) => c.kind === "calendar").length), book: plural("check.dav_book", kept.filter((c) => c.kind === "addressbook").length), items: plural("check.dav_items", items) });
  const skipped = cols.length - kept.length;
  if (skipped > 0) line += "; " + t("check.dav_left_out", { n: fmtInt(skipped) });
  return line;
}

// Whether all accounts together fit the package's total (`setup --quota-total`), from GET /api/check.
function renderPackage(p) {
  const box = $("check-package");
  clear(box);
  show(box, !!p);
  if (!p) return;
  const words = { need: fmtBytes(p.bytes), total: fmtBytes(p.quota_total_bytes), left: fmtBytes(p.left_bytes), missing: fmtBytes(p.missing_bytes) };
  box.className = "msg " + (p.fits ? "msg-ok" : "msg-error");
  let text = t(p.fits ? "check.package_fits" : "check.package_missing", words);
  if (num(p.accounts_unmeasured) > 0) text += " " + t("check.package_unmeasured", { n: fmtInt(p.accounts_unmeasured) });
  box.append(document.createTextNode(text));
}

function wireOperator() {
  $("repair-run").addEventListener("click", (e) => act(e.currentTarget, $("repair-msg"), () => api("POST", "/api/repair", { json: {} }), t("op.repair_started")));
  $("passes-start").addEventListener("click", (e) => act(e.currentTarget, $("passes-msg"), () => api("POST", "/api/passes/start", { json: {} }), t("op.started")));
  $("passes-stop").addEventListener("click", (e) => act(e.currentTarget, $("passes-msg"), () => api("POST", "/api/passes/stop", { json: {} }), t("op.stopped")));
  $("interval-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const min = parseFloat($("interval-min").value);
    if (!(min >= 1)) { showMsg($("passes-msg"), "error", t("op.interval_bad")); $("interval-min").focus(); return; }
    act(e.submitter || null, $("passes-msg"), () => api("POST", "/api/passes/interval", { json: { seconds: Math.round(min * 60) } }), t("op.interval_set"));
  });
  $("check-run").addEventListener("click", (e) => act(e.currentTarget, $("check-msg"), () => api("POST", "/api/check", { json: {} }), t("op.check_started")));
  $("check-csv").addEventListener("click", (e) => downloadFrom("/api/check?format=csv", "postflytt-check.csv", e.currentTarget, $("check-msg")));
  $("report-csv").addEventListener("click", (e) => downloadFrom("/api/report?format=csv", "postflytt-report.csv", e.currentTarget, $("report-msg")));
  $("import-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const file = $("import-file").files && $("import-file").files[0];
    if (!file) { showMsg($("import-msg"), "error", t("op.choose_file")); $("import-file").focus(); return; }
    act(e.submitter || null, $("import-msg"), async () => {
      // A locked zip's password goes in a header (never in the URL) and the field is emptied after.
      const zipPassword = $("import-zip-password").value;
      // Percent-encoded UTF-8: a header cannot carry å, ä, ö (the door decodes it).
      const headers = zipPassword ? { "X-Zip-Password": encodeURIComponent(zipPassword) } : {};
      const res = await api("POST", "/api/accounts?name=" + encodeURIComponent(file.name), { body: file, type: "application/octet-stream", timeout: 120000, headers: headers });
      $("import-zip-password").value = "";
      await poll();
      return res;
    }, importSummary);
  });
  $("import-file").addEventListener("change", () => {
    const f = $("import-file").files && $("import-file").files[0];
    const name = $("import-file-name");
    if (f) { name.removeAttribute("data-i18n"); setText(name, f.name); }
    else { name.setAttribute("data-i18n", "op.no_file"); setText(name, t("op.no_file")); }
    showMsg($("import-msg"), "info", null);
  });
  // The blank account lists the server makes (both languages' headers, a filled-in example row).
  $("template").addEventListener("click", () => downloadFrom("/api/template?format=xlsx", t("op.template_xlsx_file"), $("template"), $("import-msg")));
  $("template-csv").addEventListener("click", () => downloadFrom("/api/template?format=csv", t("op.template_file"), $("template-csv"), $("import-msg")));
  for (const sel of document.querySelectorAll("select[data-tls-for]")) {
    sel.addEventListener("change", () => {
      const port = $(sel.dataset.tlsFor);
      const p = port.value.trim();
      if (p === "" || p === "993" || p === "143") port.value = sel.value === "implicit" ? "993" : "143";
    });
  }
  for (const sel of document.querySelectorAll("select[data-m365-for]")) {
    sel.addEventListener("change", () => show($(sel.dataset.m365For), sel.value === "m365"));
  }
  $("setup-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const body = setupBody();
    if (!Object.keys(body).length) { showMsg($("setup-msg"), "error", t("op.nothing")); return; }
    act(e.submitter || null, $("setup-msg"), () => api("POST", "/api/setup", { json: body }), t("op.saved")).then((res) => {
      if (res !== undefined) for (const id of ["src-secret", "tgt-secret"]) $(id).value = "";
    });
  });
  const dlg = $("finish-dialog");
  $("finish-open").addEventListener("click", () => {
    const warn = $("dlg-warn");
    const safe = S.status && S.status.safe_to_finish;
    setText(warn, safe ? "" : t("dlg.not_safe"));
    show(warn, !safe);
    dlg.returnValue = "";
    if (typeof dlg.showModal === "function") dlg.showModal();
    else if (window.confirm(t("dlg.title") + "\n\n" + t("dlg.text"))) finish();
  });
  dlg.addEventListener("close", () => { if (dlg.returnValue === "confirm") finish(); });
}

// ---------------------------------------------------------------------------------------------------
// Folders (issue 18): the operator's folder choice (three lists saved through POST /api/setup, closed
// once the status says copying has begun) and each account's folders as the last check or pass
// recorded them (GET /api/accounts/LOGIN/folders), every left-out folder with why in words.
// ---------------------------------------------------------------------------------------------------
const FOLDER_LISTS = [["folders-exclude", "exclude_folders"], ["folders-include", "include_folders"], ["folders-map", "map_folders"]];

// Why a folder is left out: the server's kind and detail in the page's words (its English sentence
// when the kind is one this page does not know).
function leftOutWhy(f) {
  const key = "fold.why." + (f && f.kind);
  return DICT.en[key] !== undefined ? t(key, { detail: String(f.detail || "") }) : String((f && f.reason) || "");
}

// The check card's row: its folders the choice leaves out, with what they hold (not in the totals).
function checkLeftOutFolders(cell, excluded) {
  const list = Array.isArray(excluded) ? excluded.filter((f) => f && typeof f === "object") : [];
  if (!list.length) return;
  const det = el("details", { class: "sub" });
  det.append(el("summary", { text: tn("check.folders_left_out", list.length, { n: fmtInt(list.length) }) }));
  const ul = el("ul", { class: "skip-list" });
  for (const f of list.slice(0, 200)) {
    const n = num(f.messages) || 0;
    ul.append(el("li", { text: tn("check.folder_left_out", n, { name: String(f.source || ""), why: leftOutWhy(f), n: fmtInt(n), size: fmtBytes(f.bytes) }) }));
  }
  det.append(ul);
  cell.append(det);
}

function renderFolders() {
  if (!isOperator()) return;
  const s = S.status;
  // The lists from the status, once and after a save (never while the operator types in them).
  if (!S.foldersFilled) {
    for (const [id, key] of FOLDER_LISTS) {
      if (document.activeElement === $(id)) continue;
      // As the field's default too, so the stored lists are the text a reader (and a test) finds in it.
      $(id).defaultValue = $(id).value = (Array.isArray(s[key]) ? s[key] : []).join("\n");
    }
    S.foldersFilled = true;
  }
  const finished = s.phase === "finished" || num(s.finished_at) !== null;
  const locked = !!s.folder_choice_locked || finished;
  for (const [id] of FOLDER_LISTS) $(id).disabled = locked;
  $("folders-save").disabled = locked;
  setText($("folders-locked"), t("fold.locked"));
  show($("folders-locked"), !!s.folder_choice_locked);
  const sel = $("folders-account");
  const logins = (Array.isArray(s.accounts) ? s.accounts : []).map((a) => String(a.login));
  if (S.foldersLogins !== logins.join("\n")) {
    const keep = sel.value;
    clear(sel);
    for (const login of logins) sel.append(el("option", { value: login, text: login }));
    if (logins.includes(keep)) sel.value = keep;
    S.foldersLogins = logins.join("\n");
  }
  loadFolders();
}

// Fetched again when the account, a check or a pass changes what is recorded.
async function loadFolders() {
  const s = S.status;
  const login = $("folders-account").value;
  const c = s.check || {};
  const p = s.passes || {};
  const key = [login, c.checked_at, c.running, p.last_finished_at, p.active].join("/");
  if (key !== S.foldersKey && !S.foldersLoading) {
    S.foldersLoading = true;
    try {
      S.folders = login ? await api("GET", "/api/accounts/" + encodeURIComponent(login) + "/folders") : null;
    } catch (e) {
      S.folders = null;
    } finally {
      S.foldersLoading = false;
    }
    S.foldersKey = key;
  }
  drawFolders();
}

function drawFolders() {
  const d = S.folders && typeof S.folders === "object" ? S.folders : null;
  const key = JSON.stringify([d, S.lang, $("folders-account").value]);
  if (S.foldersDrawn === key) return;
  S.foldersDrawn = key;
  const list = d && Array.isArray(d.folders) ? d.folders.filter((f) => f && typeof f === "object") : [];
  const body = $("folders-body");
  clear(body);
  const why = new Map((d && Array.isArray(d.left_out) ? d.left_out : []).map((f) => [f && f.source, f]));
  let left = 0;
  for (const f of list) {
    const tr = el("tr", f.excluded ? { class: "muted" } : null);
    tr.append(el("th", { scope: "row", "data-label": t("fold.col_source"), text: String(f.source || "") }));
    const target = el("td", { "data-label": t("fold.col_target") });
    if (f.excluded) {
      left++;
      target.append(el("span", { text: t("fold.left_out", { why: leftOutWhy(why.get(f.source) || { reason: f.note }) }) }));
    } else {
      target.append(el("span", { text: String(f.target || t("dash")) }));
      if (f.reason === "operator's mapping") target.append(el("span", { class: "sub", text: t("fold.mapped") }));
    }
    tr.append(target);
    body.append(tr);
  }
  show($("folders-table"), list.length > 0);
  setText($("folders-summary"), list.length ? t("fold.summary", { moves: fmtInt(list.length - left), left: fmtInt(left) }) : "");
  show($("folders-summary"), list.length > 0);
  setText($("folders-empty"), $("folders-account").value ? t("fold.none") : t("fold.no_accounts"));
  show($("folders-empty"), list.length === 0);
}

function wireFolders() {
  $("folders-account").addEventListener("change", () => loadFolders());
  $("folders-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const body = {};
    for (const [id, key] of FOLDER_LISTS) body[key] = $(id).value.split("\n").map((x) => x.trim()).filter(Boolean);
    act(e.submitter || null, $("folders-msg"), () => api("POST", "/api/setup", { json: body }), t("fold.saved")).then((res) => {
      if (res !== undefined) S.foldersFilled = false;
    });
  });
}

// POST /api/accounts answers {added, updated, not_in_file: [...], warnings: [...]}.
function importSummary(res) {
  const out = document.createDocumentFragment();
  const total = S.status && S.status.totals ? num(S.status.totals.accounts) : null;
  const r = res && typeof res === "object" ? res : {};
  let text = num(r.added) !== null && num(r.updated) !== null
    ? t("op.imported_counts", { added: fmtInt(r.added), updated: fmtInt(r.updated) })
    : t("op.imported_plain");
  if (total !== null) text += " " + tn("op.imported", total, { n: fmtInt(total) });
  out.append(el("p", { class: "msg-line", text: text }));
  if (Array.isArray(r.not_in_file) && r.not_in_file.length) {
    out.append(el("p", { class: "msg-line", text: t("op.not_in_file", { list: r.not_in_file.map(String).join(", ") }) }));
  }
  if (Array.isArray(r.warnings) && r.warnings.length) {
    const ul = el("ul", { class: "errors" });
    for (const w of r.warnings.slice(0, 50)) ul.append(el("li", { text: String(w) }));
    out.append(el("p", { class: "msg-line", text: t("op.warnings") }), ul);
  }
  return out;
}

function finish() {
  act($("finish-open"), $("finish-msg"), () => api("POST", "/api/finish", { json: { confirm: true }, timeout: 60000 }), t("op.finishing"));
}

// ---------------------------------------------------------------------------------------------------
// Start.
// ---------------------------------------------------------------------------------------------------
function wire() {
  for (const b of document.querySelectorAll(".lang-btn")) b.addEventListener("click", () => setLang(b.dataset.lang, true));
  $("signout").addEventListener("click", () => signOut(null));
  $("next-link").addEventListener("click", (e) => {
    if (e.target.closest("a") && e.target.closest("a").getAttribute("href") === "#op-setup") $("setup-details").open = true;
  });
  $("attention-only").addEventListener("change", () => renderAccounts());
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("login-op").open ? $("login-token").value.trim() : "";
    const code = $("login-code").value.replace(/\s+/g, "");
    if (!token && !code) {
      S.loginMsg = "login.empty";
      showView("login");
      $("login-code").focus();
      return;
    }
    S.loginMsg = null;
    setCred(token ? { kind: "operator", value: token } : { kind: "viewer", value: code });
    $("login-token").value = "";
    S.status = null;
    S.failing = false;
    showView("loading");
    pollNow();
  });
  document.addEventListener("visibilitychange", () => { if (!document.hidden && S.cred) pollNow(); });
  wireOperator();
  wireFolders();
}

function start() {
  readFragment();
  S.lang = pickLang();
  document.documentElement.lang = S.lang;
  applyStatic();
  wire();
  const saved = load(LS_CRED);
  if (!S.cred && saved) {
    try {
      const c = JSON.parse(saved);
      if (c && (c.kind === "viewer" || c.kind === "operator") && typeof c.value === "string" && c.value) S.cred = c;
    } catch (e) { store(LS_CRED, null); }
  }
  if (S.cred) { showView("loading"); pollNow(); } else { showView("login"); }
  // A link with `#code=` pasted into a tab that already shows the page: the browser does not reload,
  // so take the new code (or language) from the fragment here and start over with it.
  window.addEventListener("hashchange", () => {
    const before = S.cred ? S.cred.kind + ":" + S.cred.value : "";
    readFragment();
    const lang = load(LS_LANG);
    if ((lang === "sv" || lang === "en") && lang !== S.lang) setLang(lang, false);
    const after = S.cred ? S.cred.kind + ":" + S.cred.value : "";
    if (after && after !== before) {
      S.gen++;
      S.status = null;
      showView("loading");
      pollNow();
    }
  });
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
