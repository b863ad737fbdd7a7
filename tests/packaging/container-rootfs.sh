#!/bin/bash
# The container image's runtime stage, checked without a container engine (none runs on the build
# machines). It reads packaging/Containerfile, makes the runtime stage's base (debian:SUITE-slim)
# with debootstrap --variant=minbase (cached in /var/tmp/postflytt-rootfs), applies the stage's
# RUN and COPY lines (the build stage's binary is this checkout's release build), then starts the
# image's ENTRYPOINT + CMD the way an engine would: as the image's USER, with its ENV and WORKDIR,
# as PID 1 of its own PID namespace, in its own network namespace, with the root file system read-only
# and a volume on the VOLUME directory. It checks the libraries resolve, the HEALTHCHECK command
# fails before the service is up and passes after, the page and /api/status answer on the EXPOSEd
# port, logs go to stderr, SIGTERM to PID 1 stops it cleanly, and the volume keeps the data across a
# restart. Needs root (chroot, namespaces), debootstrap and network access to the Debian mirror.
#   BIN=path        the binary to put in the image (default: target/release/postflytt, built if missing)
#   MIRROR=url      Debian mirror for debootstrap (default http://deb.debian.org/debian)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
CF=$REPO/packaging/Containerfile
IGNORE=$REPO/packaging/Containerfile.dockerignore
# shellcheck source=tests/packaging/rootfs.sh
. "$REPO/tests/packaging/rootfs.sh"

step() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
fail() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (chroot and namespaces): sudo $0"
for tool in debootstrap unshare chroot curl ip; do
    command -v "$tool" >/dev/null 2>&1 || fail "this test needs '$tool' (apt-get install debootstrap util-linux curl iproute2)"
done

if [ -z "${BIN:-}" ]; then
    BIN=$REPO/target/release/postflytt
    [ -x "$BIN" ] || (cd "$REPO" && cargo build --release)
fi
[ -x "$BIN" ] || fail "no binary at $BIN"

WORK=$(mktemp -d /var/tmp/ctrtest.XXXXXX)
cleanup() {
    # The mounts live in private mount namespaces that are gone with their processes.
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

# --- the runtime stage of the Containerfile: its instructions, continuation lines joined -------
step "read the runtime stage of packaging/Containerfile"
mapfile -t INSTR < <(sed -e 's/[[:space:]]*#.*$//;' -e '/^[[:space:]]*$/d' "$CF" \
    | awk '{ if (sub(/\\$/, "")) { buf = buf $0 " " } else { print buf $0; buf = "" } }' \
    | awk '/^FROM /{ n = NR } { line[NR] = $0 } END { for (i = n; i <= NR; i++) print line[i] }')
base=${INSTR[0]#FROM }
base=${base%% *}
case "$base" in
    *debian:*-slim) suite=${base##*debian:}; suite=${suite%-slim} ;;
    *) fail "the runtime stage is FROM $base; this test only knows debian:SUITE-slim" ;;
esac
ok "FROM $base (${#INSTR[@]} instructions)"

# JSON array ["a", "b"] -> words (the arrays here have no spaces inside elements).
json_words() { sed -e 's/^[[:space:]]*\[//; s/\][[:space:]]*$//; s/"//g; s/,/ /g' <<<"$1"; }

# --- the base: debian:SUITE-slim is a minbase debootstrap without docs ---------------------------
step "base root file system (debootstrap --variant=minbase $suite)"
R=$WORK/rootfs
base_rootfs "$suite" "$R" || fail "no base root file system (debootstrap failed)"
ok "$(du -sh "$R" | cut -f1), cached in $ROOTFS_CACHE/$suite-minbase.tar.gz"

# --- apply the instructions --------------------------------------------------------------------
step "apply the runtime stage"
ENVS=() USER_SPEC="0:0" WORKDIR=/ VOLUMES=() PORTS=() HEALTH=() ENTRY=() CMD=() STOPSIG=SIGTERM
in_root() { in_rootfs "$R" "${ENVS[@]}" /bin/sh -c "$1"; }  # RUN: /bin/sh -c, as the engine does
ignored() {  # whether the build context would leave this path out (only the patterns used here)
    local p=$1 keep=1 pat
    while IFS= read -r pat; do
        pat=${pat%%#*}; pat=${pat%"${pat##*[![:space:]]}"}
        [ -z "$pat" ] && continue
        case "$pat" in
            '*') keep=0 ;;
            !*) pat=${pat#!}; pat=${pat%/}; [[ $p == "$pat" || $p == "$pat"/* ]] && keep=1 ;;
        esac
    done < "$IGNORE"
    [ $keep = 0 ]
}
for line in "${INSTR[@]:1}"; do
    op=${line%% *}; arg=${line#* }
    case "$op" in
    RUN)
        in_root "$arg" > "$WORK/run.log" 2>&1 || { tail -n 20 "$WORK/run.log" >&2; fail "RUN failed: $arg"; }
        ok "RUN ${arg:0:70}..." ;;
    COPY)
        read -r -a words <<<"$arg"
        from=""; [[ ${words[0]} == --from=* ]] && { from=${words[0]#--from=}; words=("${words[@]:1}"); }
        src=${words[0]} dst=${words[1]}
        if [ "$from" = build ]; then
            [ "$src" = /src/target/release/postflytt ] || fail "COPY --from=build of $src: this test only maps the binary"
            file=$BIN
        else
            ignored "$src" && fail "COPY $src: the build context leaves it out ($IGNORE)"
            file=$REPO/$src
        fi
        [ -e "$file" ] || fail "COPY: no $file"
        mkdir -p "$R$(dirname "$dst")"
        cp -a --no-preserve=ownership "$file" "$R$dst"
        chown -R 0:0 "$R$dst"
        ok "COPY ${from:+--from=$from }$src $dst" ;;
    ENV) read -r -a words <<<"$arg"; ENVS+=("${words[@]}"); ok "ENV ${words[*]}" ;;
    USER) USER_SPEC=$arg; ok "USER $arg" ;;
    WORKDIR) WORKDIR=$arg; mkdir -p "$R$arg" ;;
    VOLUME) read -r -a words <<<"$(json_words "$arg")"; VOLUMES+=("${words[@]}") ;;
    EXPOSE) read -r -a words <<<"$arg"; PORTS+=("${words[@]}") ;;
    STOPSIGNAL) STOPSIG=$arg ;;
    HEALTHCHECK) read -r -a HEALTH <<<"$(json_words "${arg#* CMD }")" ;;
    ENTRYPOINT) read -r -a ENTRY <<<"$(json_words "$arg")" ;;
    CMD) read -r -a CMD <<<"$(json_words "$arg")" ;;
    ARG|LABEL) ;;
    *) fail "this test does not know the instruction $op" ;;
    esac
done
[ ${#VOLUMES[@]} = 1 ] || fail "expected one VOLUME, got: ${VOLUMES[*]}"
[ ${#PORTS[@]} = 1 ] || fail "expected one EXPOSE, got: ${PORTS[*]}"
[ ${#HEALTH[@]} -ge 1 ] || fail "no HEALTHCHECK CMD"
[ "$USER_SPEC" != "0:0" ] && [ "${USER_SPEC%%:*}" != 0 ] && [ "${USER_SPEC%%:*}" != root ] || fail "the image runs as root"
VOL=${VOLUMES[0]} PORT=${PORTS[0]%/tcp}

# --- what the image holds ----------------------------------------------------------------------
step "image contents"
exe=${ENTRY[0]}
missing=$(chroot "$R" ldd "$exe" 2>&1 | grep -i "not found" || true)
[ -z "$missing" ] || fail "libraries missing in the image: $missing"
libs=$(chroot "$R" ldd "$exe" | awk '{print $1}' | tr '\n' ' ')
ok "$exe links: $libs"
for p in libssl3 ca-certificates; do
    chroot "$R" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || fail "$p is not in the image"
done
for p in gcc cargo rustc libssl-dev pkg-config curl; do
    chroot "$R" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" && fail "$p should not be in the runtime image"
done
[ -s "$R/etc/ssl/certs/ca-certificates.crt" ] || fail "no CA bundle"
uid=${USER_SPEC%%:*} gid=${USER_SPEC#*:}
chroot "$R" getent passwd "$uid" >/dev/null || fail "USER $uid has no passwd entry in the image"
[ "$(stat -c '%u:%g %a' "$R$VOL")" = "$uid:$gid 700" ] || fail "$VOL is $(stat -c '%u:%g %a' "$R$VOL"), want $uid:$gid 700"
ok "libssl3 and ca-certificates, no build tools; user $(chroot "$R" getent passwd "$uid" | cut -d: -f1) ($USER_SPEC); $VOL $uid:$gid 0700"

# --- run it as an engine would -----------------------------------------------------------------
# A named volume starts as a copy of the image's directory (owner and mode included).
VOLDIR=$WORK/volume
cp -a "$R$VOL" "$VOLDIR"

# Runs "$@" (ENTRYPOINT + CMD, or a health check) in the image: read-only root, the volume, a tmpfs
# /tmp, as USER with ENV and WORKDIR. Called inside the test's network namespace.
image_exec() {
    local pidns=$1; shift
    unshare --mount --propagation private $pidns bash -c '
        set -e; R=$1 VOLDIR=$2 VOL=$3 USP=$4 WD=$5 PIDNS=$6; shift 6
        mount --bind "$R" "$R"; mount -o remount,bind,ro "$R"
        mount --bind "$VOLDIR" "$R$VOL"
        mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
        mount -t tmpfs tmpfs "$R/dev"; for d in null zero random urandom; do touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"; done
        if [ -n "$PIDNS" ]; then mount -t proc proc "$R/proc"; fi
        cd "$R"
        exec chroot --userspec="$USP" "$R" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOSTNAME=postflytt "$@"' \
        _ "$R" "$VOLDIR" "$VOL" "$USER_SPEC" "$WORKDIR" "$pidns" "${ENVS[@]}" /bin/sh -c 'cd "$0" && exec "$@"' "$WORKDIR" "$@"
}

# The rest runs in a network namespace of its own (the container's), with loopback up.
export -f image_exec step ok fail json_words
export R VOLDIR VOL USER_SPEC WORKDIR WORK PORT STOPSIG
ENVS_Q=$(printf '%q ' "${ENVS[@]}") ENTRY_Q=$(printf '%q ' "${ENTRY[@]}" "${CMD[@]}") HEALTH_Q=$(printf '%q ' "${HEALTH[@]}")
export ENVS_Q ENTRY_Q HEALTH_Q uid gid

unshare --net bash -c '
set -euo pipefail
eval "ENVS=($ENVS_Q)"; eval "RUNCMD=($ENTRY_Q)"; eval "HEALTH=($HEALTH_Q)"
ip link set lo up
url=http://127.0.0.1:$PORT
# On a failure: PID 1 takes its whole PID namespace with it.
OUTER="" PID1=""
on_exit() {
    if [ -n "$PID1" ]; then kill -KILL "$PID1" 2>/dev/null || true; fi
    if [ -n "$OUTER" ]; then pkill -KILL -P "$OUTER" 2>/dev/null || true; fi
}
trap on_exit EXIT

step "health check before the service runs"
if image_exec "" "${HEALTH[@]}" > "$WORK/health.out" 2>&1; then fail "the HEALTHCHECK passes with nothing running"; fi
ok "fails: $(head -n 1 "$WORK/health.out")"

start() {
    # PID 1 of its own PID namespace, as in a container.
    image_exec "--pid --fork" "${RUNCMD[@]}" > "$WORK/stdout.log" 2> "$WORK/stderr.log" &
    OUTER=$!
    local i
    for i in $(seq 1 100); do
        curl -s -o /dev/null --max-time 2 "$url/" && break
        kill -0 "$OUTER" 2>/dev/null || { cat "$WORK/stderr.log" >&2; fail "the container exited: $(tail -n 3 "$WORK/stderr.log")"; }
        sleep 0.1
    done
    curl -s -o /dev/null --max-time 2 "$url/" || fail "nothing answers on $url within 10 s"
    # The descendant that is PID 1 inside its namespace (NSpid: OUTER-PID 1).
    PID1="" queue=("$OUTER")
    while [ ${#queue[@]} -gt 0 ] && [ -z "$PID1" ]; do
        p=${queue[0]}; queue=("${queue[@]:1}")
        if grep -qE "^NSpid:[[:space:]]+[0-9]+[[:space:]]+1$" "/proc/$p/status" 2>/dev/null; then PID1=$p; fi
        queue+=($(pgrep -P "$p" || true))
    done
    [ -n "$PID1" ] || fail "no process is PID 1 of a PID namespace"
    [ "$(basename "$(readlink "/proc/$PID1/exe")")" = "$(basename "${RUNCMD[0]}")" ] \
        || fail "PID 1 is $(readlink "/proc/$PID1/exe"), not ${RUNCMD[0]}"
    [ "$(stat -c %u "/proc/$PID1")" = "$uid" ] || fail "PID 1 does not run as uid $uid"
}
stop() {
    kill -s "${STOPSIG#SIG}" "$PID1"
    local i rc
    for i in $(seq 1 150); do kill -0 "$OUTER" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$OUTER" 2>/dev/null && fail "PID 1 did not stop within 15 s of $STOPSIG"
    rc=0; wait "$OUTER" || rc=$?
    [ $rc = 0 ] || fail "PID 1 exited with $rc after $STOPSIG: $(tail -n 3 "$WORK/stderr.log")"
}

step "run ENTRYPOINT + CMD: ${RUNCMD[*]}"
start
ok "PID 1 in its PID namespace, uid $uid, root file system read-only, answering on the EXPOSEd port $PORT"
code=$(cat "$VOLDIR/viewer-code")
got=$(curl -s -o "$WORK/body" -w "%{http_code} %{content_type}" "$url/")
[[ $got == "200 text/html"* ]] || fail "GET / answered $got"
got=$(curl -s -o "$WORK/body" -w "%{http_code}" "$url/api/status")
[ "$got" = 401 ] || fail "GET /api/status without the viewer code answered $got"
got=$(curl -s -o "$WORK/body" -w "%{http_code}" -H "X-Viewer-Code: $code" "$url/api/status")
[ "$got" = 200 ] || fail "GET /api/status with the viewer code answered $got"
ok "GET / 200 (page); /api/status 401 without the viewer code, 200 with it"
image_exec "" "${HEALTH[@]}" > "$WORK/health.out" 2>&1 || fail "the HEALTHCHECK fails while the service runs: $(cat "$WORK/health.out")"
ok "HEALTHCHECK ${HEALTH[*]}: passes"
for f in key operator-token viewer-code; do
    [ "$(stat -c "%u:%g %a" "$VOLDIR/$f")" = "$uid:$gid 600" ] || fail "$VOL/$f is $(stat -c "%u:%g %a" "$VOLDIR/$f")"
done
[ -s "$VOLDIR/postflytt.sqlite" ] || fail "no database in the volume"
ok "the volume holds postflytt.sqlite, key, operator-token, viewer-code (0600, uid $uid)"
grep -q "^<[0-7]>" "$WORK/stderr.log" || fail "no syslog-prefixed log lines on stderr"
grep -q "operator-token" "$WORK/stderr.log" || fail "the log does not say where the operator token is"
ok "logs on stderr ($(wc -l < "$WORK/stderr.log") lines, <N> prefixes), e.g. $(head -n 1 "$WORK/stderr.log")"
sums=$(cd "$VOLDIR" && sha256sum key operator-token viewer-code)
stop
ok "$STOPSIG to PID 1: clean stop, exit 0"
if image_exec "" "${HEALTH[@]}" > "$WORK/health.out" 2>&1; then fail "the HEALTHCHECK passes after the service stopped"; fi
ok "HEALTHCHECK after the stop: fails ($(head -n 1 "$WORK/health.out"))"

step "restart with the same volume"
start
[ "$(cd "$VOLDIR" && sha256sum key operator-token viewer-code)" = "$sums" ] || fail "a restart changed the key or the credentials"
got=$(curl -s -o /dev/null -w "%{http_code}" -H "X-Viewer-Code: $code" "$url/api/status")
[ "$got" = 200 ] || fail "GET /api/status after the restart answered $got"
stop
ok "same key, token and viewer code; /api/status 200"

step "a CLI verb instead of CMD (docker run IMAGE status)"
image_exec "" "${RUNCMD[0]}" status > "$WORK/status.out" 2>&1 || fail "status: $(cat "$WORK/status.out")"
ok "postflytt status runs in the image"
'
printf '\nPASS: the Containerfile runtime stage (base %s via debootstrap; binary %s)\n' "$base" "$BIN"
