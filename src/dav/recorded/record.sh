#!/bin/bash
# Re-records src/dav/recorded/SERVER/ and tests/fixtures/dav/served/SERVER/ (the tests of src/dav/xml.rs
# and src/dav/content.rs include them). Start the servers by hand on loopback as tests/common/dav.rs
# does, with user anna, password pw:
#   radicale --config CONF   (hosts = 127.0.0.1:25232, htpasswd plain "anna:pw", rights owner_only)
#   xandikos --defaults -d DIR -l 127.0.0.1 -p 25233 --current-user-principal /anna/
# then, from the repository's root:
#   src/dav/recorded/record.sh radicale 25232 http://127.0.0.1:25232/anna/ http://127.0.0.1:25232/anna/
#   src/dav/recorded/record.sh xandikos 25233 http://127.0.0.1:25233/anna/calendars/ http://127.0.0.1:25233/anna/contacts/
# Recorded 2026-12-07 from Debian 12's radicale 3.1.8 and xandikos 0.2.8.
set -u
name=$1; port=$2; calhome=$3; cardhome=$4
out=./src/dav/recorded/$name
served=./tests/fixtures/dav/served/$name
mkdir -p $out $served
B=http://127.0.0.1:$port
C="curl -s -u anna:pw -H Content-Type:application/xml;charset=utf-8"
NS='xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CR="urn:ietf:params:xml:ns:carddav" xmlns:CS="http://calendarserver.org/ns/" xmlns:I="http://apple.com/ns/ical/"'
X='<?xml version="1.0" encoding="utf-8"?>'
$C -X PROPFIND -H 'Depth: 0' --data-binary "$X<D:propfind $NS><D:prop><D:current-user-principal/><D:resourcetype/></D:prop></D:propfind>" $B/ > $out/principal.xml
$C -X PROPFIND -H 'Depth: 0' --data-binary "$X<D:propfind $NS><D:prop><C:calendar-home-set/><CR:addressbook-home-set/><D:displayname/></D:prop></D:propfind>" $B/anna/ > $out/homes.xml
$C -X MKCALENDAR --data-binary "$X<C:mkcalendar $NS><D:set><D:prop><D:displayname>Jobb &amp; fritid</D:displayname><I:calendar-color>#1E90FFFF</I:calendar-color><C:calendar-description>Arbete</C:calendar-description><C:supported-calendar-component-set><C:comp name=\"VEVENT\"/><C:comp name=\"VTODO\"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>" ${calhome}jobb/ -o $out/mkcalendar.xml -w 'mkcalendar %{http_code}\n'
$C -X PROPPATCH --data-binary "$X<D:propertyupdate $NS><D:set><D:prop><I:calendar-color>#1E90FFFF</I:calendar-color></D:prop></D:set></D:propertyupdate>" ${calhome}jobb/ -o /dev/null -w 'proppatch %{http_code}\n'
$C -X MKCOL --data-binary "$X<D:mkcol $NS><D:set><D:prop><D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype><D:displayname>Kontakter</D:displayname><CR:addressbook-description>Alla kunder</CR:addressbook-description></D:prop></D:set></D:mkcol>" ${cardhome}kontakter/ -o /dev/null -w 'mkcol %{http_code}\n'
for f in ./tests/fixtures/dav/*.ics; do curl -s -u anna:pw -X PUT -H 'If-None-Match: *' -H 'Content-Type: text/calendar; charset=utf-8' --data-binary @$f ${calhome}jobb/$(basename $f) -o /dev/null -w "put $(basename $f) %{http_code}\n"; done
for f in ./tests/fixtures/dav/*.vcf; do curl -s -u anna:pw -X PUT -H 'If-None-Match: *' -H 'Content-Type: text/vcard; charset=utf-8' --data-binary @$f ${cardhome}kontakter/$(basename $f) -o /dev/null -w "put $(basename $f) %{http_code}\n"; done
COLL="<D:propfind $NS><D:prop><D:resourcetype/><D:displayname/><I:calendar-color/><C:calendar-description/><CR:addressbook-description/><C:supported-calendar-component-set/><CS:getctag/><D:sync-token/><D:owner/><D:supported-report-set/><CS:shared-url/><CS:source/><CS:invite/><D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>"
$C -X PROPFIND -H 'Depth: 1' --data-binary "$X$COLL" $calhome > $out/collections.xml
if [ "$calhome" != "$cardhome" ]; then $C -X PROPFIND -H 'Depth: 1' --data-binary "$X$COLL" $cardhome > $out/collections-card.xml; fi
MEM="<D:propfind $NS><D:prop><D:resourcetype/><D:getetag/><D:getcontentlength/><D:getcontenttype/></D:prop></D:propfind>"
$C -X PROPFIND -H 'Depth: 1' --data-binary "$X$MEM" ${calhome}jobb/ > $out/members.xml
hrefs=""; for f in ./tests/fixtures/dav/*.ics; do p=${calhome#$B}; hrefs="$hrefs<D:href>${p}jobb/$(basename $f)</D:href>"; done
$C -X REPORT -H 'Depth: 1' --data-binary "$X<C:calendar-multiget $NS><D:prop><D:getetag/><C:calendar-data/></D:prop>$hrefs<D:href>${calhome#$B}jobb/saknas.ics</D:href></C:calendar-multiget>" ${calhome}jobb/ > $out/calendar-multiget.xml
hrefs=""; for f in ./tests/fixtures/dav/*.vcf; do p=${cardhome#$B}; hrefs="$hrefs<D:href>${p}kontakter/$(basename $f)</D:href>"; done
$C -X REPORT -H 'Depth: 1' --data-binary "$X<CR:addressbook-multiget $NS><D:prop><D:getetag/><CR:address-data/></D:prop>$hrefs</CR:addressbook-multiget>" ${cardhome}kontakter/ > $out/addressbook-multiget.xml
for f in ./tests/fixtures/dav/*.ics; do curl -s -u anna:pw ${calhome}jobb/$(basename $f) > $served/$(basename $f); done
for f in ./tests/fixtures/dav/*.vcf; do curl -s -u anna:pw ${cardhome}kontakter/$(basename $f) > $served/$(basename $f); done
SYNC1="<D:sync-collection $NS><D:sync-token/><D:sync-level>1</D:sync-level><D:prop><D:getetag/><D:getcontentlength/></D:prop></D:sync-collection>"
$C -X REPORT --data-binary "$X$SYNC1" ${calhome}jobb/ > $out/sync-initial.xml
tok=$(grep -o 'sync-token>[^<]*<' $out/sync-initial.xml | head -1 | sed 's/sync-token>//; s/<$//')
echo "token $tok"
curl -s -u anna:pw -X DELETE ${calhome}jobb/midsommar.ics -o /dev/null -w 'delete %{http_code}\n'
$C -X REPORT --data-binary "$X<D:sync-collection $NS><D:sync-token>$tok</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/><D:getcontentlength/></D:prop></D:sync-collection>" ${calhome}jobb/ > $out/sync-deleted.xml
$C -X REPORT --data-binary "$X<D:sync-collection $NS><D:sync-token>http://example.invalid/bogus/1</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>" ${calhome}jobb/ -o $out/error-sync-token.xml -w 'badtoken %{http_code}\n'
curl -s -u anna:pw -X PUT -H 'If-None-Match: *' -H 'Content-Type: text/calendar; charset=utf-8' --data-binary @./tests/fixtures/dav/veckomote.ics ${calhome}jobb/annat-namn.ics -o $out/error-uid-conflict.xml -w 'dupuid %{http_code}\n'
$C -X REPORT -H 'Depth: 1' --data-binary "$X<C:calendar-query $NS><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name=\"VCALENDAR\"><C:comp-filter name=\"VEVENT\"><C:prop-filter name=\"UID\"><C:text-match collation=\"i;octet\">veckomote-7f3a@postflytt.test</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>" ${calhome}jobb/ > $out/uid-query.xml
$C -X REPORT -H 'Depth: 1' --data-binary "$X<CR:addressbook-query $NS><D:prop><D:getetag/></D:prop><CR:filter><CR:prop-filter name=\"UID\"><CR:text-match collation=\"i;octet\" match-type=\"equals\">asa-oberg-3@postflytt.test</CR:text-match></CR:prop-filter></CR:filter></CR:addressbook-query>" ${cardhome}kontakter/ > $out/uid-query-card.xml
