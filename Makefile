# Sluice build. `make` = `make build`. Every target works on a fresh Debian 12
# machine as root: `make deps` installs what is missing and is quick when
# nothing is.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

NODE    ?= node
BUILD   := build
ESBUILD := node_modules/.bin/esbuild
VERSION := $(shell $(NODE) -p "require('./package.json').version")

# Debian packages: build toolchain, then what the tests and demo drive. The
# DNS servers are only run by tests, in their own namespaces: installing them
# must not start their system services (policy-rc.d says no while apt runs).
APT_BUILD := clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev g++ make pkg-config
APT_TEST  := python3 python3-prometheus-client iproute2 iputils-ping util-linux containernetworking-plugins iperf3 iptables containerd runc busybox-static nsd unbound dnsmasq-base dnsperf bind9-dnsutils etcd-server openssl conntrack
APT_PACKAGES := $(APT_BUILD) $(APT_TEST)

TS_SOURCES  := $(shell find src -name '*.ts' ! -name '*.test.ts' 2>/dev/null)
BPF_SOURCES := $(wildcard bpf/*.c)
BPF_HEADERS := $(shell find bpf -name '*.h' 2>/dev/null)
BPF_OBJECTS := $(patsubst bpf/%.c,$(BUILD)/bpf/%.o,$(BPF_SOURCES))

.PHONY: all build deps apt npm k8s typecheck bundle bpf native test test-unit fuzz demo bench clean image e2e-upstream docs-capture

all: build

# ---------------------------------------------------------------- deps
deps: apt npm

# Kubernetes v1.31.4 (apiserver, kubelet, kubectl, …, agnhost, CoreDNS, and the
# upstream e2e.test whose NetworkPolicy subset make test runs) built through the
# Go module proxy into /var/cache/sluice-k8s for the tests that run a real
# cluster (test/k8s, test/deploy): ~12 min once on a new machine, then nothing.
k8s:
	PATH="$$PATH:/usr/local/go/bin" timeout 45m test/k8s/build.sh

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  guard=; if [ ! -e /usr/sbin/policy-rc.d ]; then guard=1; printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi; \
	  rc=0; apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null || rc=$$?; \
	  if [ -n "$$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi; exit $$rc; \
	fi

# npm may gate dependency install scripts; none of ours needs one (the addon
# is built below, esbuild ships its binary as an optional dependency).
npm: node_modules/.package-lock.json
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

# ---------------------------------------------------------------- build
build: deps typecheck bpf native bundle

typecheck: npm
	node_modules/.bin/tsc -p tsconfig.json --noEmit

# vmlinux.h from the running kernel's BTF: the objects use CO-RE-free UAPI
# structs only, but the header keeps every kernel type at hand.
$(BUILD)/bpf/vmlinux.h:
	@test -r /sys/kernel/btf/vmlinux || { echo "error: /sys/kernel/btf/vmlinux missing: Sluice needs a kernel with BTF (CONFIG_DEBUG_INFO_BTF=y)" >&2; exit 1; }
	@mkdir -p $(@D)
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(BUILD)/bpf/%.o: bpf/%.c $(BPF_HEADERS) $(BUILD)/bpf/vmlinux.h
	clang -target bpf -O2 -g -Wall -Werror -I$(BUILD)/bpf -Ibpf -c $< -o $@

bpf: $(BPF_OBJECTS)

native: npm

-include native/build.mk

# Single-file CommonJS bundles with a shebang. import.meta.url is mapped to
# the bundle's own file URL so module-relative paths (the addon) resolve.
# AGENT_NODE_ENV and AGENT_NODE_FLAGS go into the shebang (`env -S ENV node
# FLAGS`); whoever runs the bundle with `node` reads them back from there
# (src/config/node-flags.ts).
# A 4 MiB young generation: V8's default grows to 2 x 16 MiB under the
# agent's compile garbage and never gives it back (docs/benchmarks.md, memory).
AGENT_NODE_FLAGS := --max-semi-space-size=4
# glibc's malloc arenas capped at two: each thread that meets contention (V8's
# and libuv's workers) otherwise keeps an arena of its own, and what it frees
# stays resident (~16 MiB at 1,000 endpoints; docs/benchmarks.md, memory). Read
# at process start, so it goes in the shebang too (`env -S NAME=value node`).
AGENT_NODE_ENV := MALLOC_ARENA_MAX=2
ESBUILD_FLAGS := --bundle --platform=node --target=node20 --format=cjs --log-level=warning \
  --define:import.meta.url=__sluice_import_meta_url --define:SLUICE_VERSION='"$(VERSION)"' \
  --banner:js=$$'\#!/usr/bin/env -S $(AGENT_NODE_ENV) node $(AGENT_NODE_FLAGS)\nconst __sluice_import_meta_url = require("url").pathToFileURL(__filename).href;'

$(BUILD)/package.json:
	@mkdir -p $(@D)
	echo '{"type":"commonjs"}' > $@

$(BUILD)/bin/sluice: $(TS_SOURCES) package-lock.json $(BUILD)/package.json | npm
	$(ESBUILD) src/main.ts $(ESBUILD_FLAGS) --outfile=$@
	chmod +x $@

# The CNI binary is a small static C program: Node's own start-up (~50 ms)
# would dominate every pod's ADD. It forwards to the agent (docs/cni.md).
$(BUILD)/bin/sluice-cni: native/cni/sluice-cni.c
	@mkdir -p $(@D)
	$(CC) -O2 -Wall -Wextra -Werror -static -s -o $@ $<

$(BUILD)/demo/demo.cjs: $(TS_SOURCES) package-lock.json $(BUILD)/package.json | npm
	$(ESBUILD) src/demo/main.ts $(ESBUILD_FLAGS) --outfile=$@

# The Kubernetes client (@kubernetes/client-node) in a bundle of its own,
# loaded only in Kubernetes mode (src/kubernetes/load-client.ts).
$(BUILD)/bin/sluice-kube-client.cjs: $(TS_SOURCES) package-lock.json $(BUILD)/package.json | npm
	$(ESBUILD) src/kubernetes/client.ts $(ESBUILD_FLAGS) --outfile=$@

bundle: $(BUILD)/bin/sluice $(BUILD)/bin/sluice-kube-client.cjs $(BUILD)/bin/sluice-cni $(BUILD)/demo/demo.cjs

# The agent's container image, a docker-archive tagged sluice/sluice:VERSION
# (docs/kubernetes.md): this machine's Node and its libraries plus the build
# outputs, written by deploy/image/build.mjs. No registry, no Docker daemon;
# the same inputs give the same digest.
IMAGE_INPUTS := deploy/image/build.mjs $(BUILD)/bin/sluice $(BUILD)/bin/sluice-kube-client.cjs $(BUILD)/bin/sluice-cni $(NATIVE_OUT) $(BPF_OBJECTS) cni-conf/10-sluice.conflist package.json

$(BUILD)/image/sluice.tar: $(IMAGE_INPUTS)
	$(NODE) deploy/image/build.mjs --out $@ --tag sluice/sluice:$(VERSION)

image: $(BUILD)/image/sluice.tar

# ---------------------------------------------------------------- run
test: build image k8s
	node_modules/.bin/vitest run

test-unit: npm
	node_modules/.bin/vitest run src

# The DNS parser fuzz at 1,000,000 generated packets per path (the suite runs
# 100,000). SLUICE_FUZZ_SEED=<seed> replays a run; the seed is printed.
FUZZ_PACKETS ?= 1000000
fuzz: npm
	SLUICE_FUZZ_PACKETS=$(FUZZ_PACKETS) node_modules/.bin/vitest run src/dns/fuzz.test.ts

# The upstream Kubernetes NetworkPolicy e2e suite (e2e.test v1.31.4: the 45
# Netpol specs without SCTP) against Sluice on the two-node test cluster
# (test/k8s/e2e-upstream.ts); writes the result table to docs/conformance.md
# ("Latest run") and fails if a spec did. The specs get E2E_TIMEOUT; the hard
# cap also covers waiting for the cluster lock.
E2E_TIMEOUT ?= 90m
e2e-upstream: build image k8s
	timeout --kill-after=2m 130m $(NODE) test/k8s/e2e-upstream.mjs --timeout $(E2E_TIMEOUT) --doc docs/conformance.md

# docs/operations.md's example outputs, captured from a real run (test/docs/operations.test.ts).
docs-capture: build
	SLUICE_CAPTURE_DOCS=1 timeout 5m npx vitest run test/docs/operations.test.ts

demo: build
	$(NODE) $(BUILD)/demo/demo.cjs

bench: build
	$(NODE) bench/run.mjs

clean:
	rm -rf $(BUILD)
