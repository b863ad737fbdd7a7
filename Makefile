SHELL := /bin/bash
# postflytt: `make run` starts it on its embedded defaults, `make test` installs the test servers it
# needs (Debian's dovecot-imapd) and runs every test, `make bench` measures speed and memory.

DATA ?= ./postflytt-data
LISTEN ?= 127.0.0.1:8025
CARGO ?= cargo
BUILD_PACKAGES = pkg-config libssl-dev ca-certificates
# python3-aiosmtpd: the SMTP relay tests/notify.rs sends its notices to (tests/fixtures/smtp_sink.py).
# radicale, xandikos: the CalDAV/CardDAV servers tests/common/dav.rs starts (issue 19).
TEST_PACKAGES = dovecot-imapd dovecot-core tzdata dnsmasq-base chromium openssl python3-aiosmtpd radicale xandikos
# The peer the benchmark compares with (mbsync) and the timer it measures every tool with; its other
# tools come with the test packages (doveadm: dovecot-core) or with Debian itself (taskset, unshare:
# util-linux). Its Cyrus and Courier sources need what surrounds their IMAP daemons: cyrus-common
# (master, the cyrus user) and courier-base (couriertcpd, authdaemond, userdb).
BENCH_PACKAGES = isync time cyrus-common courier-base
# The IMAP daemons themselves are unpacked into BENCH_SERVERS, not installed: Debian's dovecot-imapd,
# cyrus-imapd and courier-imap all Provide and Conflict imap-server (installing one removes the
# others), and the tests need dovecot-imapd. tests/bench/servers.rs looks there first.
BENCH_UNPACKED = cyrus-imapd courier-imap
BENCH_SERVERS = target/bench/servers

.PHONY: all build release run test lint build-deps test-deps bench bench-servers clean

# Installs the Debian packages in $(1) that are missing (as root), or says what to install.
define install_missing
	@missing=""; for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else \
			echo "$(2) need these Debian packages: sudo apt-get install$$missing"; exit 1; \
		fi; \
	fi
endef

all: build

build: build-deps
	$(CARGO) build

release: build-deps
	$(CARGO) build --release

build-deps:
	$(call install_missing,$(BUILD_PACKAGES),the build and the TLS library)

# The appliance on its embedded defaults: data in ./postflytt-data, page on http://127.0.0.1:8025/.
run: release
	./target/release/postflytt --data $(DATA) serve --listen $(LISTEN)

test-deps: build-deps
	$(call install_missing,$(TEST_PACKAGES),the tests)
	@# Debian's package starts a system-wide Dovecot on 143/993; the tests start their own.
	@if [ "$$(id -u)" = 0 ] && pgrep -x dovecot -u root >/dev/null 2>&1 && [ -f /run/dovecot/master.pid ]; then \
		kill "$$(cat /run/dovecot/master.pid)" 2>/dev/null || true; fi

# The layout (rustfmt.toml) and clippy with every warning an error. A toolchain without the rustfmt
# or clippy component (they cannot be fetched on a closed machine) says so and skips that check.
lint: build-deps
	@if $(CARGO) fmt --version >/dev/null 2>&1; then $(CARGO) fmt --check; else echo "lint: rustfmt is not installed; layout not checked"; fi
	@if $(CARGO) clippy --version >/dev/null 2>&1; then $(CARGO) clippy --all-targets -- -D warnings; else echo "lint: clippy is not installed; not run"; fi

# The lint, every test, then the .deb built from the same (debug) binary, installed, upgraded and purged.
test: test-deps lint
	$(CARGO) test --no-fail-fast
	$(MAKE) deb-test DEB_FLAGS="--profile dev"

bench: test-deps
	$(call install_missing,$(BENCH_PACKAGES),the benchmark)
	@$(MAKE) --no-print-directory bench-servers
	$(CARGO) build --release
	$(CARGO) test --release --test bench -- --ignored --nocapture

# Each package of BENCH_UNPACKED at the archive's candidate version, fetched with apt-get download and
# unpacked with dpkg -x (a stamp .<package>_<version> says which); a failure is reported and the bench
# goes on (it says which source it could not start and why).
bench-servers:
	@mkdir -p $(BENCH_SERVERS)/../debs; for p in $(BENCH_UNPACKED); do \
		v=$$(apt-cache policy $$p 2>/dev/null | sed -n 's/^ *Candidate: //p'); \
		if [ -z "$$v" ] || [ "$$v" = "(none)" ]; then echo "bench-servers: no candidate for $$p (apt-get update?); its source is not measured"; continue; fi; \
		[ -f "$(BENCH_SERVERS)/.$${p}_$$v" ] && continue; \
		echo "bench-servers: unpacking $$p $$v into $(BENCH_SERVERS)"; \
		rm -f $(BENCH_SERVERS)/../debs/$${p}_*.deb; \
		if (cd $(BENCH_SERVERS)/../debs && apt-get download -q "$$p=$$v" >/dev/null 2>&1) && \
			dpkg -x $(BENCH_SERVERS)/../debs/$${p}_*.deb $(BENCH_SERVERS); then \
			rm -f $(BENCH_SERVERS)/.$${p}_*; touch "$(BENCH_SERVERS)/.$${p}_$$v"; \
		else echo "bench-servers: could not download or unpack $$p $$v; its source is not measured"; fi; \
	done

clean:
	$(CARGO) clean
	rm -rf $(DATA)

# Packaging. `make deb`: target/debian/postflytt_<version>_<arch>.deb (cargo-deb, installed on first
# use; the metadata is [package.metadata.deb] in Cargo.toml, the unit, config and maintainer scripts
# are in packaging/). `make deb-test` builds it, installs it with dpkg, runs it as the unit would,
# upgrades and purges it (root; it refuses to run where postflytt is installed). `make container`:
# the image from packaging/Containerfile with podman or docker (CONTAINER_ENGINE=... to choose).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEB := target/debian/postflytt_$(VERSION)_$(DEB_ARCH).deb
DEB_FLAGS ?=
IMAGE ?= postflytt:$(VERSION)
CONTAINER_ENGINE ?=

.PHONY: deb deb-test container

deb:
	@command -v cargo-deb >/dev/null 2>&1 || { echo "installing cargo-deb (once; a few minutes)"; $(CARGO) install cargo-deb --locked; }
	$(CARGO) deb $(DEB_FLAGS)
	@test -f $(DEB) && echo "package: $(DEB)"

deb-test: deb
	DEB=$(DEB) tests/deb.sh

container:
	@engine="$(CONTAINER_ENGINE)"; \
	if [ -z "$$engine" ]; then for e in podman docker; do \
		if command -v $$e >/dev/null 2>&1 && $$e info >/dev/null 2>&1; then engine=$$e; break; fi; done; fi; \
	if [ -z "$$engine" ]; then \
		echo "make container: no working container engine here (podman, or docker with a running daemon)."; \
		echo "tests/packaging/container-rootfs.sh checks the runtime stage without one."; exit 1; fi; \
	case "$$engine" in *podman*|*buildah*) opts="--format docker --ignorefile packaging/Containerfile.dockerignore";; *) opts="";; esac; \
	echo "$$engine build $$opts -f packaging/Containerfile -t $(IMAGE) ."; \
	$$engine build $$opts -f packaging/Containerfile -t $(IMAGE) .
