SHELL := /bin/bash
# postflytt: `make run` starts it on its embedded defaults, `make test` installs the test servers it
# needs (Debian's dovecot-imapd) and runs every test, `make bench` measures speed and memory.

DATA ?= ./postflytt-data
CARGO ?= cargo
TEST_PACKAGES = dovecot-imapd dovecot-core tzdata openssl ca-certificates pkg-config libssl-dev

.PHONY: all build release run test test-deps bench clean

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# The appliance (`serve`) arrives with issue 5; until then this shows the verbs and the local state.
run: build
	./target/debug/postflytt --help
	./target/debug/postflytt --data $(DATA) status

test-deps:
	@missing=""; for p in $(TEST_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else \
			echo "the tests need these Debian packages: sudo apt-get install$$missing"; exit 1; \
		fi; \
	fi
	@# Debian's package starts a system-wide Dovecot on 143/993; the tests start their own.
	@if [ "$$(id -u)" = 0 ] && pgrep -x dovecot -u root >/dev/null 2>&1 && [ -f /run/dovecot/master.pid ]; then \
		kill "$$(cat /run/dovecot/master.pid)" 2>/dev/null || true; fi

test: test-deps
	$(CARGO) test --no-fail-fast

bench: test-deps
	$(CARGO) build --release
	$(CARGO) test --release --test bench -- --ignored --nocapture

clean:
	$(CARGO) clean
	rm -rf $(DATA)
