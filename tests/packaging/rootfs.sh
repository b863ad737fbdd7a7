# shellcheck shell=bash
# Sourced by the packaging tests: base_rootfs SUITE DIR unpacks a Debian SUITE root file system made
# like the debian:SUITE-slim image (debootstrap --variant=minbase, no documentation, no package lists),
# cached as /var/tmp/postflytt-rootfs/SUITE-minbase.tar.gz (the first run needs a Debian mirror and
# takes a few minutes). MIRROR=url chooses the mirror.
ROOTFS_CACHE=/var/tmp/postflytt-rootfs

base_rootfs() {
    local suite=$1 dest=$2 tmp
    mkdir -p "$ROOTFS_CACHE"
    if [ ! -s "$ROOTFS_CACHE/$suite-minbase.tar.gz" ]; then
        command -v debootstrap >/dev/null 2>&1 || { echo "needs debootstrap: apt-get install debootstrap" >&2; return 1; }
        tmp=$(mktemp -d "$ROOTFS_CACHE/build.XXXXXX")
        chmod 755 "$tmp"
        if ! debootstrap --variant=minbase "$suite" "$tmp" "${MIRROR:-http://deb.debian.org/debian}" > "$tmp.log" 2>&1; then
            tail -n 20 "$tmp.log" >&2; rm -rf "$tmp" "$tmp.log"; return 1
        fi
        # What the slim image leaves out: downloaded packages, package lists, documentation.
        cat > "$tmp/etc/dpkg/dpkg.cfg.d/slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
SLIM
        rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
        find "$tmp/usr/share/doc" "$tmp/usr/share/man" "$tmp/usr/share/info" "$tmp/usr/share/locale" \
            -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
        tar -C "$tmp" --numeric-owner -czf "$tmp.tar.gz" .
        mv "$tmp.tar.gz" "$ROOTFS_CACHE/$suite-minbase.tar.gz"
        rm -rf "$tmp" "$tmp.log"
    fi
    mkdir -p "$dest"
    tar -C "$dest" --numeric-owner -xzf "$ROOTFS_CACHE/$suite-minbase.tar.gz"
    chmod 755 "$dest"
}

# in_rootfs DIR COMMAND...: runs COMMAND chrooted in DIR with /dev, /proc and the host's DNS.
in_rootfs() {
    local dir=$1; shift
    cp /etc/resolv.conf "$dir/etc/resolv.conf"
    unshare --mount --propagation private sh -c '
        set -e; R=$1; shift
        mount --rbind /dev "$R/dev"; mount -t proc proc "$R/proc"
        exec chroot "$R" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"' _ "$dir" "$@"
}
