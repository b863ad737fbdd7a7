#!/bin/bash
# The .deb under a real systemd, with every hardening setting of the unit applied: boots a Debian
# root file system (debootstrap, cached) with systemd as PID 1 in systemd-nspawn, installs the
# package there and checks that the postinst starts the service as the postflytt user, the page and
# /api/status answer, the sandbox lets it resolve names, connect and do TLS (a check against a local
# openssl s_server), the journal gets its priorities, SIGKILL is followed by a restart
# (Restart=on-failure), an upgrade restarts it with the data kept, remove stops it and keeps the
# data, purge leaves nothing. Also prints `systemd-analyze security` for the running unit.
# The machine itself need not run systemd. Needs root, systemd-nspawn (apt-get install
# systemd-container), debootstrap and a Debian mirror for the first run.
#   DEB=path   the package (default: make deb, then target/debian/postflytt_<version>_<arch>.deb)
#   SUITE=...  the Debian release to boot (default: bookworm)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
SUITE=${SUITE:-bookworm}
# shellcheck source=tests/packaging/rootfs.sh
. "$REPO/tests/packaging/rootfs.sh"

step() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
fail() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root: sudo $0"
command -v systemd-nspawn >/dev/null 2>&1 || fail "needs systemd-nspawn: apt-get install systemd-container"

if [ -z "${DEB:-}" ]; then
    make -C "$REPO" --no-print-directory deb
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n 1)
    DEB="$REPO/target/debian/postflytt_${version}_$(dpkg --print-architecture).deb"
fi
[ -f "$DEB" ] || fail "no package at $DEB"

WORK=$(mktemp -d /var/tmp/nspawntest.XXXXXX)
trap 'rm -rf --one-file-system "$WORK"' EXIT
R=$WORK/root

step "a $SUITE root file system with systemd"
# The systemd layer is cached next to the base.
layer=$ROOTFS_CACHE/$SUITE-systemd.tar.gz
if [ ! -s "$layer" ]; then
    base_rootfs "$SUITE" "$R" || fail "debootstrap failed"
    in_rootfs "$R" /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends systemd systemd-sysv dbus adduser libssl3 ca-certificates curl openssl >/dev/null \
        && apt-get clean && rm -rf /var/lib/apt/lists/*' > "$WORK/apt.log" 2>&1 \
        || { tail -n 20 "$WORK/apt.log" >&2; fail "installing systemd in the root file system failed"; }
    tar -C "$R" --numeric-owner -czf "$layer.tmp" . && mv "$layer.tmp" "$layer"
else
    mkdir -p "$R" && tar -C "$R" --numeric-owner -xzf "$layer" && chmod 755 "$R"
fi
ok "$(du -sh "$R" | cut -f1)"

cp "$DEB" "$R/root/postflytt.deb"
# debootstrap writes no /etc/hosts (an installer or a container engine does).
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$R/etc/hosts"
# The test, run by a oneshot unit once the container has booted; it powers the container off.
cat > "$R/root/deb-test.sh" <<'INNER'
#!/bin/bash
set -uo pipefail
exec > /root/result.log 2>&1
ok() { printf '   ok: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; journalctl -u postflytt --no-pager -o cat | tail -n 30; echo "RESULT: FAIL"; systemctl poweroff; exit 1; }
u=http://127.0.0.1:8025
up() { local i; for i in $(seq 1 100); do curl -s -o /dev/null "$u/" && return 0; sleep 0.1; done; fail "nothing answers on $u"; }
mainpid() { systemctl show -P MainPID postflytt; }

dpkg -i /root/postflytt.deb > /root/install.log 2>&1 || { cat /root/install.log; fail "dpkg -i"; }
[ "$(systemctl is-enabled postflytt)" = enabled ] || fail "not enabled"
up
[ "$(systemctl is-active postflytt)" = active ] || fail "not active after install"
pid=$(mainpid)
[ "$(stat -c %U "/proc/$pid")" = postflytt ] || fail "runs as $(stat -c %U "/proc/$pid")"
ok "dpkg -i: enabled, started by the postinst, running as postflytt (pid $pid)"

code=$(cat /var/lib/postflytt/viewer-code); tok=$(cat /var/lib/postflytt/operator-token)
[ "$(curl -s -o /dev/null -w '%{http_code}' "$u/")" = 200 ] || fail "GET /"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$u/api/status")" = 401 ] || fail "/api/status without code"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "X-Viewer-Code: $code" "$u/api/status")" = 200 ] || fail "/api/status with code"
ok "GET / 200; /api/status 401 without the viewer code, 200 with it"

# Names, sockets and TLS inside the sandbox: a check against a local TLS server with a self-signed
# certificate must get as far as the certificate (and no "permission denied" / "not permitted").
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 -keyout /root/k.pem -out /root/c.pem >/dev/null 2>&1
openssl s_server -quiet -accept 127.0.0.1:9993 -cert /root/c.pem -key /root/k.pem >/dev/null 2>&1 &
sleep 0.5
curl -s -o /root/setup.json -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
    --data '{"source":{"host":"localhost","port":9993,"tls":"implicit"},"target":{"host":"localhost","port":9993,"tls":"implicit"}}' "$u/api/setup"
printf 'E-post;Lösenord\nalice@kund.se;x\n' > /root/a.csv
curl -s -o /root/accounts.json -H "Authorization: Bearer $tok" --data-binary @/root/a.csv "$u/api/accounts?name=a.csv"
curl -s -o /root/check-start.json -H "Authorization: Bearer $tok" --data '{}' "$u/api/check"
for i in $(seq 1 100); do
    curl -s -H "X-Viewer-Code: $code" "$u/api/check" > /root/check.json
    grep -q '"problem": *"' /root/check.json && break; sleep 0.2
done
problem=$(grep -o '"problem": *"[^"]*' /root/check.json | head -n 1)
grep -qi 'certificate' <<<"$problem" || fail "the check did not reach the TLS certificate: $problem
$(head -c 600 /root/setup.json /root/accounts.json /root/check-start.json /root/check.json)"
grep -qiE 'not permitted|permission denied|os error (1|13|97)\b' <<<"$problem" && fail "the sandbox got in the way: $problem"
ok "resolve + connect + TLS from inside the sandbox: ${problem:0:110}..."

journalctl -u postflytt -o json --no-pager | grep -q '"PRIORITY":"6".*serving the page\|serving the page.*"PRIORITY":"6"' \
    || fail "the journal did not take the <6> prefix as priority 6"
ok "journal: info lines at priority 6"

systemctl kill -s KILL postflytt
sleep 7
[ "$(systemctl is-active postflytt)" = active ] || fail "not restarted after SIGKILL"
[ "$(systemctl show -P NRestarts postflytt)" -ge 1 ] || fail "NRestarts did not go up"
up
ok "SIGKILL: restarted (Restart=on-failure)"

pid=$(mainpid)
dpkg -i /root/postflytt.deb > /root/upgrade.log 2>&1 || { cat /root/upgrade.log; fail "upgrade"; }
up
[ "$(mainpid)" != "$pid" ] || fail "the upgrade did not restart the service"
[ "$(cat /var/lib/postflytt/viewer-code)" = "$code" ] || fail "the upgrade changed the viewer code"
curl -s -H "X-Viewer-Code: $code" "$u/api/status" | grep -q '"port": *9993' || fail "the upgrade lost the settings"
ok "upgrade: restarted, data kept"

systemctl stop postflytt
[ "$(systemctl show -P Result postflytt)" = success ] || fail "stop: Result=$(systemctl show -P Result postflytt)"
[ "$(systemctl show -P ExecMainStatus postflytt)" = 0 ] || fail "stop: exit status $(systemctl show -P ExecMainStatus postflytt)"
ok "systemctl stop: clean (Result=success, exit 0)"
systemctl start postflytt; up

echo "--- systemd-analyze security postflytt (online):"
systemd-analyze security postflytt --no-pager | tail -n 1

dpkg -r postflytt > /root/remove.log 2>&1 || { cat /root/remove.log; fail "remove"; }
systemctl is-active -q postflytt && fail "still running after remove"
[ -s /var/lib/postflytt/key ] || fail "remove deleted the key"
ok "dpkg -r: stopped, data kept"
dpkg -P postflytt > /root/purge.log 2>&1 || { cat /root/purge.log; fail "purge"; }
getent passwd postflytt && fail "user left"
[ -e /var/lib/postflytt ] && fail "data left"
[ -e /etc/postflytt ] && fail "config left"
left=$(find /etc /var /usr /run -iname '*postflytt*' ! -path /root/postflytt.deb 2>/dev/null)
[ -z "$left" ] || fail "left after purge: $left"
grep -iE "could not|warn|error|crontab" /root/purge.log && fail "purge complained (above)"
ok "dpkg -P: user, data, config, unit links gone"
echo "RESULT: PASS"
systemctl poweroff
INNER
chmod 755 "$R/root/deb-test.sh"
cat > "$R/etc/systemd/system/deb-test.service" <<'UNIT'
[Unit]
Description=postflytt .deb test
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/root/deb-test.sh
[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/deb-test.service "$R/etc/systemd/system/multi-user.target.wants/deb-test.service"

step "boot it (systemd-nspawn --boot) and run the test inside"
(cd / && timeout 300 systemd-nspawn --quiet -D "$R" --boot --register=no --keep-unit \
    -M "pftest$$" > "$WORK/boot.log" 2>&1) || true
[ -s "$R/root/result.log" ] || { tail -n 30 "$WORK/boot.log" >&2; fail "the test did not run in the container"; }
cat "$R/root/result.log"
grep -qx "RESULT: PASS" "$R/root/result.log" || fail "under systemd"
printf '\nPASS: the .deb under systemd (%s, nspawn): hardened unit runs, restarts, upgrades, purges\n' "$SUITE"
