//! Swedish for the sentences the server writes in English, for the Swedish page: a catalog of English
//! sentences (with `{}` where a name, a number or a quoted cell goes) and their Swedish, matched against
//! a whole sentence, the way gettext matches its message ids. The CLI and the logs stay in English; the
//! API answers in Swedish when the request asks for it (`Accept-Language: sv`, which the page sends when
//! it shows Swedish). A sentence the catalog does not know stays in English rather than be guessed at.

/// English sentence (pattern) and its Swedish. A `{}` matches any text, which the Swedish takes over in
/// the same order.
const CATALOG: &[(&str, &str)] = &[
    // The account list (import).
    ("empty login", "inloggningen är tom"),
    ("empty password", "lösenordet är tomt"),
    ("it is missing", "den saknas"),
    ("above the header row; ignored", "ovanför rubrikraden; hoppas över"),
    ("not a column postflytt knows; ignored", "ingen kolumn som postflytt känner till; hoppas över"),
    ("has no login, password or alias; ignored", "har ingen inloggning, inget lösenord och inget alias; hoppas över"),
    ("the file has no rows; fill in the template and import it again", "filen har inga rader; fyll i mallen och läs in den igen"),
    ("the workbook has no rows; fill in the template and import it again", "arbetsboken har inga rader; fyll i mallen och läs in den igen"),
    (
        "the password begins or ends with a space; it is used exactly as written",
        "lösenordet börjar eller slutar med mellanslag; det används precis som det är skrivet",
    ),
    ("login \"{}\" is also on row {}", "inloggningen \"{}\" finns också på rad {}"),
    ("login \"{}\" contains a line break or control character", "inloggningen \"{}\" innehåller en radbrytning eller ett styrtecken"),
    ("login \"{}\" contains a space or line break", "inloggningen \"{}\" innehåller mellanslag eller radbrytning"),
    ("login \"{}\" contains more than one @", "inloggningen \"{}\" innehåller mer än ett @"),
    (
        "login \"{}\" is not an e-mail address of the form name@domain.se",
        "inloggningen \"{}\" är ingen e-postadress på formen namn@domän.se",
    ),
    ("alias \"{}\" contains a space or line break", "aliaset \"{}\" innehåller mellanslag eller radbrytning"),
    ("alias \"{}\" contains more than one @", "aliaset \"{}\" innehåller mer än ett @"),
    ("alias \"{}\" is not an e-mail address of the form name@domain.se", "aliaset \"{}\" är ingen e-postadress på formen namn@domän.se"),
    ("alias \"{}\" is also an alias on row {}", "aliaset \"{}\" är också ett alias på rad {}"),
    ("alias \"{}\" is the login of the account on row {}", "aliaset \"{}\" är inloggningen för kontot på rad {}"),
    ("alias \"{}\" is this account's own login; left out", "aliaset \"{}\" är kontots egen inloggning; utelämnas"),
    (
        "the new login \"{}\" is also the new login on row {}; both accounts will be copied into the same mailbox",
        "den nya inloggningen \"{}\" är också den nya inloggningen på rad {}; båda kontona kopieras till samma brevlåda",
    ),
    ("the cell shows the formula error {}; type the value in instead", "cellen visar formelfelet {}; skriv in värdet i stället"),
    (
        "an example row like the template's (the domain is reserved for examples); ignored. Replace it with a real account or delete it",
        "en exempelrad som mallens (domänen är reserverad för exempel); hoppas över. Byt ut den mot ett riktigt konto eller ta bort den",
    ),
    (
        "no column for the login on the old server; name one of the header cells {}",
        "ingen kolumn för inloggningen på gamla servern; döp en av rubrikcellerna till {}",
    ),
    (
        "no column for the password on the old server; name one of the header cells {}",
        "ingen kolumn för lösenordet på gamla servern; döp en av rubrikcellerna till {}",
    ),
    ("the list has more than {} rows; is this the right file?", "listan har fler än {} rader; är det rätt fil?"),
    ("the list has more than {} cells; is this the right file?", "listan har fler än {} celler; är det rätt fil?"),
    ("the row uses more than {} columns; is this the right file?", "raden använder fler än {} kolumner; är det rätt fil?"),
    ("the file is larger than {} MB; an account list is much smaller", "filen är större än {} MB; en kontolista är mycket mindre"),
    (
        "the zip archive is empty; put the account list (.xlsx, .ods or .csv) in it",
        "zip-arkivet är tomt; lägg kontolistan (.xlsx, .ods eller .csv) i det",
    ),
    (
        "a zip inside the zip; put the list itself in the zip, or send it without one",
        "en zip i zip-filen; lägg själva listan i zip-filen eller skicka den utan zip",
    ),
    // The API's own answers.
    (
        "the viewer code only shows the status; this action needs the operator token",
        "visningskoden visar bara läget; det här kräver operatörsnyckeln",
    ),
    ("wrong code or token", "fel kod eller nyckel"),
    ("the body is not valid JSON: {}", "innehållet är inte giltig JSON: {}"),
    ("the migration is already finished", "flytten är redan avslutad"),
    (
        "the migration is finished: passwords and staged mail are purged, so nothing more can be imported, checked, set up or copied; the report stays available",
        "flytten är avslutad: lösenord och mellanlagrad post är raderade, så inget mer kan läsas in, kontrolleras, ställas in eller kopieras; rapporten finns kvar",
    ),
    (
        "the migration is finishing: wait until it is finished (the status shows it), then read the report",
        "flytten avslutas just nu: vänta tills den är klar (läget visar det) och läs sedan rapporten",
    ),
    // Setup.
    (
        "{}plain IMAP to {} would send every password unprotected; plain is allowed only to loopback (127.0.0.1, ::1, localhost, e.g. an SSH tunnel): use implicit or starttls",
        "{}okrypterad IMAP till {} skulle skicka varje lösenord oskyddat; okrypterat går bara till den egna maskinen (127.0.0.1, ::1, localhost, t.ex. en SSH-tunnel): välj implicit eller starttls",
    ),
    (
        "{} is not a SHA-256 fingerprint: {} is not a hex digit; give the 64 hex digits the status or `openssl x509 -fingerprint -sha256` shows (colons allowed)",
        "{} är inget SHA-256-fingeravtryck: {} är ingen hexadecimal siffra; ange de 64 hexsiffror som läget eller `openssl x509 -fingerprint -sha256` visar (kolon går bra)",
    ),
    (
        "{} is not a SHA-256 fingerprint: it has {} hex digits, a SHA-256 fingerprint has 64 (a SHA-1 one has 40; give the SHA-256 one)",
        "{} är inget SHA-256-fingeravtryck: det har {} hexsiffror, ett SHA-256-fingeravtryck har 64 (ett SHA-1-fingeravtryck har 40; ange SHA-256)",
    ),
    ("{} must be a number from {} to {}", "{} måste vara ett tal från {} till {}"),
    (
        "mirror must be on or off (got {}): on makes the new host follow the users' moves and deletions on the old server until they switch, off leaves the new host alone",
        "mirror måste vara on eller off (fick {}): on gör att den nya servern följer användarnas flyttar och raderingar på den gamla servern tills de har gått över, off lämnar den nya servern orörd",
    ),
    ("mirror must be \"on\" or \"off\"", "mirror måste vara \"on\" eller \"off\""),
    // The DAV servers (issue 19): `dav::url`'s sentences after the key, and setup's own.
    (
        "{}: the DAV address is empty: give e.g. https://dav.example.com/ or a host name",
        "{}: DAV-adressen är tom: ange t.ex. https://dav.example.com/ eller ett värdnamn",
    ),
    (
        "{}: the DAV address is not a URL: give e.g. https://dav.example.com/",
        "{}: DAV-adressen är ingen URL: ange t.ex. https://dav.example.com/",
    ),
    (
        "{}: the DAV address must begin with https:// (or http:// to a server on this machine)",
        "{}: DAV-adressen måste börja med https:// (eller http:// till en server på den här maskinen)",
    ),
    (
        "{}: the DAV address must not hold a login or password: the account list gives them",
        "{}: DAV-adressen får inte innehålla inloggning eller lösenord: de anges i kontolistan",
    ),
    (
        "{}: the DAV address must not hold a query (?) or fragment (#)",
        "{}: DAV-adressen får inte innehålla en fråga (?) eller ett fragment (#)",
    ),
    (
        "{}: the DAV address has a path but no https://: write https://{}",
        "{}: DAV-adressen har en sökväg men inget https://: skriv https://{}",
    ),
    (
        "{}: http:// (without TLS) is allowed only to a server on this machine; use https://{}",
        "{}: http:// (utan TLS) är tillåtet bara till en server på den här maskinen; använd https://{}",
    ),
    ("{}: the DAV address has no valid host name", "{}: DAV-adressen har inget giltigt värdnamn"),
    (
        "{} must be the DAV server's address as a string (e.g. \"dav.example.com\"), or null to remove it",
        "{} måste vara DAV-serverns adress som text (t.ex. \"dav.example.com\"), eller null för att ta bort den",
    ),
    (
        "{}: no {} DAV server is set up yet, so there is nothing to pin: give its address too ({})",
        "{}: ingen DAV-server är inställd för {} ännu, så det finns inget att lita på: ange dess adress också ({})",
    ),
    // The switch (issue 17) and accounts one at a time.
    ("no account {}: see the account list (postflytt status)", "inget konto {}: se kontolistan (postflytt status)"),
    (
        "say which accounts' users have switched to the new host: give their logins, or {} for every account",
        "ange vilka kontons användare som har gått över till den nya servern: ange deras inloggningar, eller {} för alla konton",
    ),
    ("give either logins or {}, not both", "ange antingen inloggningar eller {}, inte båda"),
    ("give {\"accounts\": [\"login\", ...]} or {\"all\": true}", "ange {\"accounts\": [\"login\", ...]} eller {\"all\": true}"),
    (
        "there are no accounts in the migration yet: import the account list first",
        "det finns inga konton i flytten än: läs in kontolistan först",
    ),
    ("{} must be a size like \"35M\"", "{} måste vara en storlek som \"35M\""),
    // What the operator decides (issue 18): the filter, the package, locked zips.
    (
        "{} \"{}\" is not a date: write it as YYYY-MM-DD, e.g. 2020-01-01 (or off to remove it)",
        "{} \"{}\" är inget datum: skriv det som ÅÅÅÅ-MM-DD, t.ex. 2020-01-01 (eller off för att ta bort det)",
    ),
    (
        "{} \"{}\": give a year from 1970 on (mail has no earlier dates)",
        "{} \"{}\": ange ett år från 1970 (e-post har inga tidigare datum)",
    ),
    (
        "--newer-than {} and --older-than {} leave no day between them, so no message would move; --newer-than must be the earlier date",
        "--newer-than {} och --older-than {} lämnar ingen dag emellan, så inget meddelande skulle flyttas; --newer-than måste vara det tidigare datumet",
    ),
    (
        "{} 0 would allow nothing; give a size such as 25M or 500G, or off to remove it",
        "{} 0 skulle inte tillåta något; ange en storlek som 25M eller 500G, eller off för att ta bort den",
    ),
    (
        "{} must be a string (a date YYYY-MM-DD or a size like \"25M\") or null",
        "{} måste vara en sträng (ett datum ÅÅÅÅ-MM-DD eller en storlek som \"25M\") eller null",
    ),
    (
        "the zip archive is password-protected; give its password with --zip-password-file FILE (the API: header X-Zip-Password), or send it without one (the list is kept encrypted on the appliance)",
        "zip-arkivet är lösenordsskyddat; skriv lösenordet i fältet för låsta .zip-filer (eller --zip-password-file FIL), eller skicka det utan lösenord (listan lagras krypterad på enheten)",
    ),
    (
        "the password does not open the zip archive; check --zip-password-file (or the X-Zip-Password header) against the password the customer sent",
        "lösenordet öppnar inte zip-arkivet; jämför det med lösenordet som kunden skickade",
    ),
    // Admin logins (issue 18): what the page's setup can meet when the CLI set an admin login.
    (
        "the target is Microsoft 365, where postflytt logs in with the app registration, so it takes no admin login; an admin login is for IMAP servers (remove it with postflytt setup --no-target-admin, or target_admin: null)",
        "den nya servern är Microsoft 365, där postflytt loggar in med appregistreringen, så den tar ingen admininloggning; en admininloggning är till för IMAP-servrar (ta bort den med postflytt setup --no-target-admin, eller target_admin: null)",
    ),
    (
        "the source is Microsoft 365, where postflytt logs in with the app registration, so it takes no admin login; an admin login is for IMAP servers (remove it with postflytt setup --no-source-admin, or source_admin: null)",
        "den gamla servern är Microsoft 365, där postflytt loggar in med appregistreringen, så den tar ingen admininloggning; en admininloggning är till för IMAP-servrar (ta bort den med postflytt setup --no-source-admin, eller source_admin: null)",
    ),
    // The folder choice (issue 18): bad patterns and mappings (prefixed by the API's key), and the refusal
    // once mail is copied.
    (
        "{}: a folder pattern is empty; write a folder name such as Kalender or Arkiv/2019, or a glob such as Arkiv/*",
        "{}: ett mappmönster är tomt; skriv ett mappnamn som Kalender eller Arkiv/2019, eller ett mönster som Arkiv/*",
    ),
    ("{}: the folder pattern {} is longer than {} characters", "{}: mappmönstret {} är längre än {} tecken"),
    (
        "{}: the folder pattern {} is only separators; name a folder, e.g. Arkiv or Arkiv/*",
        "{}: mappmönstret {} består bara av avgränsare; ange en mapp, t.ex. Arkiv eller Arkiv/*",
    ),
    (
        "{}: the folder pattern {} holds a control character (a line break or tab?)",
        "{}: mappmönstret {} innehåller ett styrtecken (en radbrytning eller tabb?)",
    ),
    (
        "{}: the folder pattern {} has an empty level (\"//\"); write each level's name, or * for any",
        "{}: mappmönstret {} har en tom nivå (\"//\"); skriv varje nivås namn, eller * för vilket namn som helst",
    ),
    (
        "{}: INBOX is always copied, so the pattern {} is refused; to leave out folders under it, name them (e.g. INBOX/Gammalt)",
        "{}: INBOX kopieras alltid, så mönstret {} godtas inte; för att lämna kvar mappar under den, ange dem (t.ex. INBOX/Gammalt)",
    ),
    (
        "{}: {} folder patterns are more than the {} postflytt takes; a parent folder's name covers its children",
        "{}: {} mappmönster är fler än de {} som postflytt tar emot; en mapps namn omfattar också dess undermappar",
    ),
    (
        "{}: {} folder mappings are more than the {} postflytt takes; a folder's children follow it",
        "{}: {} mappningar är fler än de {} som postflytt tar emot; en mapps undermappar följer med den",
    ),
    (
        "{}: the folder mapping {} has no '=': write SOURCE=TARGET, e.g. \"INBOX.Gamla kunder=Arkiv/Kunder\"",
        "{}: mappningen {} saknar '=': skriv KÄLLA=MÅL, t.ex. \"INBOX.Gamla kunder=Arkiv/Kunder\"",
    ),
    (
        "{}: the folder mapping {} names its source with a wildcard; name one folder (its children follow it)",
        "{}: mappningen {} anger sin källa med jokertecken; ange en enda mapp (dess undermappar följer med)",
    ),
    ("{}: the folder mapping {} has no target name after '='", "{}: mappningen {} har inget målnamn efter '='"),
    (
        "{}: the folder mapping {} has a target name that is too long or holds a control character",
        "{}: mappningen {} har ett målnamn som är för långt eller innehåller ett styrtecken",
    ),
    (
        "{}: the folder mapping {}: a target folder name cannot hold '*' or '%' (IMAP servers refuse them)",
        "{}: mappningen {}: ett målmappnamn kan inte innehålla '*' eller '%' (IMAP-servrar godtar dem inte)",
    ),
    (
        "{}: the folder mapping {} has an empty level in its target name (\"//\")",
        "{}: mappningen {} har en tom nivå i sitt målnamn (\"//\")",
    ),
    (
        "{}: the folder mapping {} would pour a folder into INBOX; postflytt keeps each folder its own target folder",
        "{}: mappningen {} skulle lägga en mapp i INBOX; postflytt ger varje mapp en egen målmapp",
    ),
    ("{}: the folder {} is mapped twice ({} and {})", "{}: mappen {} mappas två gånger ({} och {})"),
    (
        "{}: the folder mappings {} and {} would put two source folders into one target folder; postflytt keeps each folder its own target folder",
        "{}: mappningarna {} och {} skulle lägga två källmappar i samma målmapp; postflytt ger varje mapp en egen målmapp",
    ),
    (
        "{} must be a list of strings, e.g. [\"Kalender\", \"Arkiv/*\"] ([] clears it)",
        "{} måste vara en lista med strängar, t.ex. [\"Kalender\", \"Arkiv/*\"] ([] tömmer den)",
    ),
    (
        "{} must be a list of strings, e.g. [\"Kalender\", \"Arkiv/*\"]",
        "{} måste vara en lista med strängar, t.ex. [\"Kalender\", \"Arkiv/*\"]",
    ),
    (
        "the folder choice cannot change now: {} and {} more accounts already had mail copied, and changing which folders move in the middle of a migration would leave half-copied folders; it can change before an account's first pass copies anything",
        "valet av mappar kan inte ändras nu: {} och {} konton till har redan fått e-post kopierad, och att ändra vilka mappar som flyttas mitt i en flytt skulle lämna halvkopierade mappar; det kan ändras innan ett kontos första omgång har kopierat något",
    ),
    (
        "the folder choice cannot change now: {} already had mail copied, and changing which folders move in the middle of a migration would leave half-copied folders; it can change before an account's first pass copies anything",
        "valet av mappar kan inte ändras nu: {} har redan fått e-post kopierad, och att ändra vilka mappar som flyttas mitt i en flytt skulle lämna halvkopierade mappar; det kan ändras innan ett kontos första omgång har kopierat något",
    ), // The check's calendar and contact verdicts (issue 19), as the export and notices say them.
    ("calendar login failed on the old server", "kalenderinloggningen misslyckades på gamla servern"),
    ("calendar login failed on the new server", "kalenderinloggningen misslyckades på nya servern"),
];

/// The Swedish of one English sentence, or the sentence as it is when the catalog does not know it.
pub fn sentence(english: &str) -> String {
    for (pattern, swedish) in CATALOG {
        if let Some(parts) = matches(pattern, english) {
            let mut out = String::new();
            let mut parts = parts.into_iter();
            for (i, literal) in swedish.split("{}").enumerate() {
                if i > 0 {
                    out.push_str(parts.next().unwrap_or_default());
                }
                out.push_str(literal);
            }
            return out;
        }
    }
    english.to_string()
}

/// Every line of a text, each in Swedish where the catalog knows it.
pub fn lines(english: &str) -> String {
    english.lines().map(sentence).collect::<Vec<_>>().join("\n")
}

/// The texts `{}` stands for when `text` is `pattern` with them filled in; each `{}` takes the
/// shortest text after which the rest still matches.
fn matches<'t>(pattern: &str, text: &'t str) -> Option<Vec<&'t str>> {
    let literals: Vec<&str> = pattern.split("{}").collect();
    let first = literals.first()?;
    let mut rest = text.strip_prefix(first)?;
    let mut taken = Vec::new();
    for (i, literal) in literals.iter().enumerate().skip(1) {
        let last = i == literals.len() - 1;
        let at = if last {
            // The last literal ends the text.
            if !rest.ends_with(literal) {
                return None;
            }
            rest.len() - literal.len()
        } else if literal.is_empty() {
            return None;
        } else {
            rest.find(literal)?
        };
        taken.push(&rest[..at]);
        rest = &rest[at + literal.len()..];
    }
    if literals.len() == 1 && !rest.is_empty() {
        return None;
    }
    Some(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_sentences_are_swedish_and_keep_their_names_and_numbers() {
        assert_eq!(sentence("empty login"), "inloggningen är tom");
        assert_eq!(sentence("login \"anna@kund.se\" is also on row 7"), "inloggningen \"anna@kund.se\" finns också på rad 7");
        assert_eq!(
            sentence("alias \"a b@kund.se\" contains a space or line break"),
            "aliaset \"a b@kund.se\" innehåller mellanslag eller radbrytning"
        );
        assert_eq!(sentence("the body is not valid JSON: EOF at line 1"), "innehållet är inte giltig JSON: EOF at line 1");
        assert_eq!(
            sentence(
                "source: \"abc\" is not a SHA-256 fingerprint: it has 3 hex digits, a SHA-256 fingerprint has 64 (a SHA-1 one has 40; give the SHA-256 one)"
            ),
            "source: \"abc\" är inget SHA-256-fingeravtryck: det har 3 hexsiffror, ett SHA-256-fingeravtryck har 64 (ett SHA-1-fingeravtryck har 40; ange SHA-256)"
        );
    }

    #[test]
    fn the_operators_filter_and_locked_zips_in_swedish() {
        assert_eq!(
            sentence("newer_than \"igår\" is not a date: write it as YYYY-MM-DD, e.g. 2020-01-01 (or off to remove it)"),
            "newer_than \"igår\" är inget datum: skriv det som ÅÅÅÅ-MM-DD, t.ex. 2020-01-01 (eller off för att ta bort det)"
        );
        assert!(
            sentence("quota_total 0 would allow nothing; give a size such as 25M or 500G, or off to remove it")
                .starts_with("quota_total 0 skulle")
        );
    }

    #[test]
    fn the_folder_choice_in_swedish() {
        assert_eq!(
            sentence("exclude_folders: the folder pattern \"a//b\" has an empty level (\"//\"); write each level's name, or * for any"),
            "exclude_folders: mappmönstret \"a//b\" har en tom nivå (\"//\"); skriv varje nivås namn, eller * för vilket namn som helst"
        );
        let locked = "the folder choice cannot change now: anna@kund.se and 2 more accounts already had mail copied, and changing which \
                      folders move in the middle of a migration would leave half-copied folders; it can change before an account's \
                      first pass copies anything";
        assert!(
            sentence(locked).starts_with("valet av mappar kan inte ändras nu: anna@kund.se och 2 konton till har redan"),
            "{}",
            sentence(locked)
        );
    }

    #[test]
    fn unknown_sentences_stay_as_they_are() {
        assert_eq!(sentence("something new"), "something new");
        assert_eq!(sentence("empty login, and more"), "empty login, and more", "a whole sentence, not a prefix");
        assert_eq!(lines("empty login\nsomething new"), "inloggningen är tom\nsomething new");
    }

    #[test]
    fn every_pattern_has_as_many_places_in_both_languages() {
        for (english, swedish) in CATALOG {
            assert_eq!(english.matches("{}").count(), swedish.matches("{}").count(), "{english}");
            assert!(!english.contains("{}{}"), "two places side by side cannot be told apart: {english}");
        }
    }
}
