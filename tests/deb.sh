#!/bin/bash
# The .deb, end to end, on this machine (run by `make deb-test`; needs root and dpkg):
#   build it (make deb, a release build) unless DEB=path is given; check its contents and the unit
#   (systemd-analyze verify and security where available); dpkg -i; start the installed binary the
#   way the unit does (its User=, UMask=, EnvironmentFile= and ExecStart=; this machine need not run
#   systemd); check the page and /api/status; reinstall over itself and upgrade to a newer version
#   (data, key, credentials and an edited conffile kept); dpkg -r (data kept); dpkg -P (user, group,
#   data, config and every file gone).
# It refuses to run where postflytt is already installed or its user or data exist, because the
# purge at the end would delete them.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PKG=postflytt
UNIT=/usr/lib/systemd/system/postflytt.service
CONF=/etc/postflytt/postflytt.conf
DATA=/var/lib/postflytt
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}

step() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
fail() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || fail "this test needs '$1'"; }

[ "$(id -u)" = 0 ] || fail "run as root (it installs and purges the package): sudo tests/deb.sh"
if ! command -v curl >/dev/null 2>&1; then
    echo "installing curl (the test's HTTP client)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=120 --no-install-recommends curl >/dev/null
fi
for tool in dpkg dpkg-deb setpriv curl getent od sha256sum; do need "$tool"; done

if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -qv "not-installed"; then
    fail "$PKG is installed on this machine (state: $(dpkg-query -W -f='${Status}' $PKG)); this test ends with a purge. Run it on a scratch machine or 'apt purge $PKG' first."
fi
getent passwd "$PKG" >/dev/null && fail "a user '$PKG' exists already; this test would delete it"
getent group "$PKG" >/dev/null && fail "a group '$PKG' exists already; this test would delete it"
[ -e "$DATA" ] && fail "$DATA exists already; this test would delete it"
[ -e /etc/postflytt ] && fail "/etc/postflytt exists already; this test would delete it"

WORK=$(mktemp -d /tmp/debtest.XXXXXX)
SERVE_PID=""
INSTALLED=""
cleanup() {
    rc=$?
    if [ -n "$SERVE_PID" ] && kill -0 "$SERVE_PID" 2>/dev/null; then kill -KILL "$SERVE_PID" 2>/dev/null || true; fi
    if [ -n "$INSTALLED" ] && [ "${KEEP:-}" != 1 ]; then
        dpkg -P "$PKG" >/dev/null 2>&1 || true
    fi
    if [ $rc != 0 ] && [ -s "$WORK/serve.log" ]; then
        echo "--- last serve log:" >&2; tail -n 20 "$WORK/serve.log" >&2
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# dpkg, waiting for the lock when another apt/dpkg run (e.g. make test-deps) holds it.
dpkg_() {
    local out _
    for _ in $(seq 1 60); do
        if out=$(dpkg "$@" 2>&1); then printf '%s\n' "$out"; return 0; fi
        if grep -q "lock" <<<"$out"; then sleep 2; continue; fi
        printf '%s\n' "$out" >&2; return 1
    done
    printf '%s\n' "$out" >&2; return 1
}

# Everything on this machine whose path names postflytt (outside the checkout and this test).
snapshot_paths() {
    find /etc /var /usr /opt /srv /run -path "$WORK" -prune -o -path "$ROOT" -prune -o \
        -iname '*postflytt*' -print 2>/dev/null | sort
}
mode_owner() { stat -c '%a %U:%G' "$1"; }
expect_mode_owner() {
    local got; got=$(mode_owner "$1")
    [ "$got" = "$2" ] || fail "$1: expected mode/owner '$2', got '$got'"
}

# ---------------------------------------------------------------------------------------------
step "build"
if [ -z "${DEB:-}" ]; then
    make -C "$ROOT" --no-print-directory deb
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n 1)
    DEB="$ROOT/target/debian/${PKG}_${version}_$(dpkg --print-architecture).deb"
fi
[ -f "$DEB" ] || fail "no package at $DEB"
case "$(basename "$DEB")" in ${PKG}_*_*.deb) ;; *) fail "unexpected file name $(basename "$DEB")" ;; esac
ok "$DEB ($(du -h "$DEB" | cut -f1))"
START=$(date +%s)

step "package contents"
VERSION=$(dpkg-deb -f "$DEB" Version)
dpkg-deb -c "$DEB" | awk '{print $1, $6}' > "$WORK/contents"
for want in "-rwxr-xr-x ./usr/bin/postflytt" \
            "-rw-r--r-- ./usr/lib/systemd/system/postflytt.service" \
            "-rw-r--r-- ./etc/postflytt/postflytt.conf"; do
    grep -qxF -- "$want" "$WORK/contents" || fail "the package lacks '$want'; it has: $(cat "$WORK/contents")"
done
dpkg-deb -e "$DEB" "$WORK/control"
grep -qx /etc/postflytt/postflytt.conf "$WORK/control/conffiles" || fail "postflytt.conf is not a conffile"
depends=$(dpkg-deb -f "$DEB" Depends)
grep -q "adduser" <<<"$depends" || fail "Depends lacks adduser: $depends"
grep -q "libssl" <<<"$depends" || fail "Depends lacks libssl (the binary links it): $depends"
for script in postinst postrm; do
    [ -x "$WORK/control/$script" ] || fail "no $script"
    sh -n "$WORK/control/$script" || fail "$script: syntax error"
    grep -q '#DEBHELPER#' "$WORK/control/$script" && fail "$script: #DEBHELPER# was not replaced"
done
grep -q "deb-systemd-helper" "$WORK/control/postinst" || fail "postinst does not enable the unit"
ok "version $VERSION; binary, unit, conffile; Depends: $depends"

# The shipped config: every line a comment, blank, or KEY=VALUE (what EnvironmentFile= accepts).
bad=$(grep -nvE '^[[:space:]]*([#;].*)?$|^[A-Z_][A-Z0-9_]*=' "$ROOT/packaging/postflytt.conf" || true)
[ -z "$bad" ] || fail "postflytt.conf lines systemd would not read: $bad"
for key in POSTFLYTT_LISTEN POSTFLYTT_DATA POSTFLYTT_RESOLVER POSTFLYTT_LOG; do
    grep -q "^$key=" "$ROOT/packaging/postflytt.conf" || fail "postflytt.conf does not set $key"
done
ok "postflytt.conf: listen, data, resolver, log level"

before=$(snapshot_paths)

# ---------------------------------------------------------------------------------------------
step "install (dpkg -i)"
INSTALLED=1
dpkg_ -i "$DEB" > "$WORK/install.log"
cat "$WORK/install.log" | sed 's/^/   | /'
grep -q "$DATA/operator-token" "$WORK/install.log" || fail "the postinst does not say where the operator token is"
dpkg-query -W -f='${Status}' "$PKG" | grep -q "install ok installed" || fail "not installed"

uid=$(getent passwd "$PKG" | cut -d: -f3)
gid=$(getent group "$PKG" | cut -d: -f3)
[ -n "$uid" ] && [ -n "$gid" ] || fail "no user/group $PKG"
[ "$uid" -lt 1000 ] || fail "$PKG is not a system user (uid $uid)"
shell=$(getent passwd "$PKG" | cut -d: -f7)
case "$shell" in */nologin|*/false) ;; *) fail "$PKG has a login shell: $shell" ;; esac
expect_mode_owner "$DATA" "700 $PKG:$PKG"
for f in key operator-token viewer-code; do
    [ -s "$DATA/$f" ] || fail "no $DATA/$f after install"
    expect_mode_owner "$DATA/$f" "600 $PKG:$PKG"
done
[ -s "$DATA/postflytt.sqlite" ] || fail "no database after install"
grep -qxE '[A-HJKMNP-Z2-9]{5}-[A-HJKMNP-Z2-9]{5}' "$DATA/viewer-code" || fail "viewer code is not ten characters in two groups: $(cat "$DATA/viewer-code")"
grep -qxE '[0-9a-f]{48}' "$DATA/operator-token" || fail "operator token is not 48 hex digits"
cmp -s "$CONF" "$ROOT/packaging/postflytt.conf" || fail "the installed config differs from packaging/postflytt.conf"
expect_mode_owner "$CONF" "644 root:root"
ok "user $PKG (uid $uid, $shell), $DATA 0700 with key, operator-token, viewer-code (0600), database"

# ---------------------------------------------------------------------------------------------
step "the unit"
grep -qx "User=$PKG" "$UNIT" || fail "the unit does not run as $PKG"
for want in 'Restart=on-failure' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' \
            'PrivateTmp=yes' 'StateDirectory=postflytt' 'SystemCallFilter=@system-service' \
            'EnvironmentFile=-/etc/postflytt/postflytt.conf'; do
    grep -qxF "$want" "$UNIT" || fail "the unit lacks $want"
done
grep -qE '^RestrictAddressFamilies=AF_' "$UNIT" || fail "the unit lacks RestrictAddressFamilies"
if command -v systemd-analyze >/dev/null 2>&1; then
    out=$(cd / && systemd-analyze verify "$UNIT" 2>&1) || fail "systemd-analyze verify: $out"
    [ -z "$out" ] || fail "systemd-analyze verify says: $out"
    ok "systemd-analyze verify: clean"
    if out=$(cd / && systemd-analyze security --offline=true --no-pager "$UNIT" 2>&1); then
        score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
        [ -n "$score" ] || fail "no exposure score in: $out"
        awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' \
            || fail "exposure $score is above $MAX_EXPOSURE: $out"
        ok "systemd-analyze security: exposure $score ($(sed -n 's/.*Overall exposure level for [^:]*: [0-9.]* //p' <<<"$out"))"
    else
        ok "systemd-analyze security --offline not available here (systemd < 250): skipped"
    fi
else
    ok "systemd-analyze not installed: verify/security skipped"
fi

# ---------------------------------------------------------------------------------------------
# Starting it the way the unit does, from the installed unit file: User=/Group=, UMask=, the
# environment from EnvironmentFile= (and Environment=), ExecStart=, working directory /.
unit_value() { sed -n "s/^$1=//p" "$UNIT" | tail -n 1; }
unit_env() {
    local line file
    while IFS= read -r line; do printf '%s\n' $line; done < <(sed -n 's/^Environment=//p' "$UNIT")
    while IFS= read -r file; do
        file=${file#-}
        [ -r "$file" ] || continue
        sed -nE 's/^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)=[[:space:]]*"?([^"]*)"?[[:space:]]*$/\1=\2/p' "$file"
    done < <(sed -n 's/^EnvironmentFile=//p' "$UNIT")
}
start_like_unit() {
    local user group umask cmd envs=() v
    user=$(unit_value User); group=$(unit_value Group); umask=$(unit_value UMask)
    cmd=$(unit_value ExecStart)
    while IFS= read -r v; do envs+=("$v"); done < <(unit_env)
    # ${VAR} and $VAR in ExecStart= come from that environment.
    for v in "${envs[@]}"; do cmd=${cmd//\$\{${v%%=*}\}/${v#*=}}; done
    # systemd names the journal stream it gives the service's stderr (JOURNAL_STREAM=DEVICE:INODE),
    # and postflytt prefixes syslog priorities only for that stream: here the log file stands in.
    : > "$WORK/serve.log"
    local journal
    journal=$(stat -c '%d:%i' "$WORK/serve.log")
    # shellcheck disable=SC2086
    ( cd / && umask "${umask:-0022}" && exec env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 "${envs[@]}" JOURNAL_STREAM="$journal" \
        setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs --inh-caps=-all --bounding-set=-all \
        $cmd ) 2>"$WORK/serve.log" &
    SERVE_PID=$!
}
base_url() { local l; l=$(sed -n 's/^POSTFLYTT_LISTEN=//p' "$CONF" | tail -n 1); echo "http://${l/0.0.0.0/127.0.0.1}"; }
wait_up() {
    local _
    for _ in $(seq 1 100); do
        curl -s -o /dev/null --max-time 2 "$(base_url)/" && return 0
        kill -0 "$SERVE_PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; fail "postflytt serve exited: $(tail -n 3 "$WORK/serve.log")"; }
        sleep 0.1
    done
    fail "postflytt serve did not answer on $(base_url) within 10 s"
}
http() { curl -s -o "$WORK/body" -w '%{http_code} %{content_type}' --max-time 10 "$@"; }
stop_serve() {
    local _
    kill -TERM "$SERVE_PID"
    for _ in $(seq 1 150); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$SERVE_PID" 2>/dev/null && fail "postflytt serve did not stop within 15 s of SIGTERM"
    wait "$SERVE_PID" || fail "postflytt serve exited with $? after SIGTERM"
    SERVE_PID=""
}
check_serving() {
    local code got
    got=$(ps -o user= -p "$SERVE_PID" | tr -d ' ')
    [ "$got" = "$PKG" ] || fail "the service runs as '$got', not $PKG"
    got=$(http "$(base_url)/")
    [[ $got == "200 text/html"* ]] || fail "GET / answered '$got'"
    grep -qi '<html' "$WORK/body" || fail "GET / is not the page"
    got=$(http "$(base_url)/api/status")
    [[ $got == 401* ]] || fail "GET /api/status without the viewer code answered '$got'"
    code=$(cat "$DATA/viewer-code")
    got=$(http -H "X-Viewer-Code: $code" "$(base_url)/api/status")
    [[ $got == "200 application/json"* ]] || fail "GET /api/status with the viewer code answered '$got': $(head -c 300 "$WORK/body")"
    grep -q '"phase"' "$WORK/body" || fail "/api/status has no phase: $(head -c 300 "$WORK/body")"
    ok "as $PKG on $(base_url): GET / 200 (page), /api/status 401 without the viewer code, 200 with it"
}

step "start it as the unit does"
# An admin's edit to the conffile (a free port for this test), to be kept across upgrades.
port=$(( 20000 + RANDOM % 20000 ))
while curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; do port=$((port + 1)); done
sed -i "s/^POSTFLYTT_LISTEN=.*/POSTFLYTT_LISTEN=127.0.0.1:$port/" "$CONF"
sums() { (cd "$DATA" && sha256sum key operator-token viewer-code); }
sums > "$WORK/sums.installed"
start_like_unit
wait_up
check_serving
sums | cmp -s - "$WORK/sums.installed" || fail "serve replaced the key or credentials the postinst made"
grep -q '^<[0-7]>' "$WORK/serve.log" || fail "no syslog-prefixed log lines on stderr: $(head -n 3 "$WORK/serve.log")"
grep -q "operator-token" "$WORK/serve.log" || fail "the log does not say where the operator token is"
# The operator token from the postinst opens operator actions: a setting that must survive upgrades.
token=$(cat "$DATA/operator-token")
got=$(http -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    --data '{"pass_interval_seconds": 4321}' "$(base_url)/api/setup")
[[ $got == 200* ]] || fail "POST /api/setup with the operator token answered '$got': $(head -c 300 "$WORK/body")"
got=$(http -X POST -H "Authorization: Bearer $(cat "$DATA/viewer-code")" --data '{}' "$(base_url)/api/setup")
[[ $got == 40[13]* ]] || fail "POST /api/setup without the operator token answered '$got'"
ok "operator token works (POST /api/setup), log lines carry <N> priorities"
stop_serve
grep -qi "stopped" "$WORK/serve.log" || fail "no clean stop in the log: $(tail -n 3 "$WORK/serve.log")"
ok "SIGTERM: clean stop, exit 0"

# After an upgrade: data, key, credentials, the setting and the edited conffile are still there.
check_kept() {
    sums | cmp -s - "$WORK/sums.installed" || fail "$1 changed the key or the credentials"
    grep -qx "POSTFLYTT_LISTEN=127.0.0.1:$port" "$CONF" || fail "$1 did not keep the edited $CONF"
    [ "$(getent passwd "$PKG" | cut -d: -f3)" = "$uid" ] || fail "$1 changed the user's uid"
    expect_mode_owner "$DATA" "700 $PKG:$PKG"
    start_like_unit
    wait_up
    check_serving
    grep -q '"interval_seconds": *4321' "$WORK/body" || fail "$1 lost the database (interval setting): $(head -c 400 "$WORK/body")"
    stop_serve
    ok "$1 kept the data, key, token, viewer code, the setting in the database and the edited config"
}

# ---------------------------------------------------------------------------------------------
step "reinstall over itself (dpkg -i, same version)"
dpkg_ -i "$DEB" > "$WORK/reinstall.log"
grep -q "upgraded from $VERSION" "$WORK/reinstall.log" || fail "the postinst did not see an upgrade: $(cat "$WORK/reinstall.log")"
check_kept "reinstalling"

step "upgrade to a newer version (dpkg -i)"
dpkg-deb -R "$DEB" "$WORK/next"
sed -i "s/^Version: .*/Version: ${VERSION}+debtest1/" "$WORK/next/DEBIAN/control"
dpkg-deb --root-owner-group -b "$WORK/next" "$WORK/next.deb" >/dev/null
dpkg_ -i "$WORK/next.deb" > "$WORK/upgrade.log"
[ "$(dpkg-query -W -f='${Version}' "$PKG")" = "${VERSION}+debtest1" ] || fail "not upgraded"
grep -q "upgraded from $VERSION" "$WORK/upgrade.log" || fail "the postinst did not see the upgrade"
check_kept "upgrading"

# ---------------------------------------------------------------------------------------------
step "remove (dpkg -r, as apt remove)"
dpkg_ -r "$PKG" >/dev/null
[ -e /usr/bin/postflytt ] && fail "the binary is still there after remove"
[ -e "$UNIT" ] && fail "the unit is still there after remove"
sums | cmp -s - "$WORK/sums.installed" || fail "remove changed or deleted the data"
[ -s "$DATA/postflytt.sqlite" ] || fail "remove deleted the database"
getent passwd "$PKG" >/dev/null || fail "remove deleted the user (the data's owner)"
grep -qx "POSTFLYTT_LISTEN=127.0.0.1:$port" "$CONF" || fail "remove deleted the config"
ok "binary and unit gone; data, key, credentials, config and user kept"

step "install again after remove"
dpkg_ -i "$DEB" > "$WORK/again.log"
check_kept "installing again after remove"

# ---------------------------------------------------------------------------------------------
step "purge (dpkg -P, as apt purge)"
files=$(dpkg -L "$PKG" | grep -v '^/\.$')
dpkg_ -P "$PKG" >/dev/null
INSTALLED=""
dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -qv "not-installed" && fail "dpkg still knows $PKG after purge"
getent passwd "$PKG" >/dev/null && fail "the user $PKG is left after purge"
getent group "$PKG" >/dev/null && fail "the group $PKG is left after purge"
for f in $files; do
    case "$f" in /usr|/usr/*/|/etc|/usr/bin|/usr/lib|/usr/lib/systemd|/usr/lib/systemd/system|/usr/share|/usr/share/doc) continue ;; esac
    [ -e "$f" ] && [ ! -d "$f" ] && fail "$f is left after purge"
done
[ -e "$DATA" ] && fail "$DATA is left after purge"
[ -e /etc/postflytt ] && fail "/etc/postflytt is left after purge"
after=$(snapshot_paths)
left=$(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after") | grep -v '^$' || true)
[ -z "$left" ] || fail "left behind after purge: $left"
owned=$(find /etc /var /usr /opt /srv /run /tmp /home -path "$WORK" -prune -o \( -uid "$uid" -o -gid "$gid" \) -print 2>/dev/null | head -n 5)
[ -z "$owned" ] || fail "files of the old uid/gid $uid/$gid are left: $owned"
ok "user, group, data, key, config, unit links and package files gone; nothing named postflytt left"

printf '\nPASS: .deb build, install, run, reinstall, upgrade, remove, purge (%s s after the build)\n' "$(( $(date +%s) - START ))"
