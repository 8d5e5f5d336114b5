# JetStreamProto / DevLink build entry points. See README.md.
GO        ?= go
DATA_DIR  ?= .jsp-data
BIN       := bin/jsp
# Fuzz time per target for `make fuzz`.
FUZZTIME  ?= 60s

.PHONY: all build run dev-keys chat test test-short deps generate vet bench bench-tools fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/jsp

# Starts the server with embedded defaults and prints its QUIC, TCP and
# WebSocket addresses.
run: build dev-keys
	./$(BIN) server --data-dir $(DATA_DIR) --audience jsp \
	    --token-keys "$$(ls $(DEV_KEYS)/token-*.pub | head -n 1)"

# The development server's token signing key, under the data directory:
# `make run` accepts tokens it signs (and anonymous clients, as before);
# `make chat` issues one for CHAT_USER. Created once, kept across runs.
DEV_KEYS  := $(DATA_DIR)/token-keys
CHAT_USER ?= alice
CHAT_URL  ?= jsp://localhost

dev-keys: build
	@ls $(DEV_KEYS)/token-*.pub >/dev/null 2>&1 || \
	    { mkdir -p $(DEV_KEYS) && ./$(BIN) token keygen --out $(DEV_KEYS); }

# A terminal chat client as CHAT_USER against the server `make run` started
# (in another terminal): `make chat CHAT_USER=bob`. See docs/chat.md.
chat: build dev-keys
	./$(BIN) token issue --key "$$(ls $(DEV_KEYS)/token-*.key | head -n 1)" \
	    --aud jsp --sub $(CHAT_USER) --ttl 1h > $(DATA_DIR)/$(CHAT_USER).tok
	./$(BIN) chat $(CHAT_URL) --ca $(DATA_DIR)/jsp-dev-cert.pem --token @$(DATA_DIR)/$(CHAT_USER).tok

# Go modules, the PostgreSQL server binaries the storage tests start, and
# the media tools of the real-media tests (from the distribution's packages
# when missing; needs root to install).
deps:
	$(GO) mod download
	bash .ci/postgres.sh || echo "make: PostgreSQL is not available; its storage tests will skip"
	bash .ci/media-tools.sh || echo "make: media tools are not available; the real-media tests will skip"

generate:
	$(GO) generate ./...

vet:
	$(GO) vet ./...

# Installs what the tests need and runs every test, with the race detector.
test: deps vet
	$(GO) test -race -count=1 -timeout 20m ./...

test-short: deps
	$(GO) test -short -count=1 ./...

# Binaries of the fan-out and idle-connection benchmarks: the JSP server,
# the two harnesses, the Centrifugo and NATS drivers (module
# bench/centrifugo) and the Centrifugo server (module
# bench/centrifugo/server); neither module is part of the project's go.mod.
BENCH_BIN         ?= bin/bench
# Sizes for `make bench` (a few minutes on 2 cores); docs/benchmarks.md
# gives the full-size commands behind its figures.
FANOUT_CASES      ?= 1x1,1x100,1x10000,1000x10
FANOUT_DELIVERIES ?= 5000,50000
FANOUT_RUNS       ?= 1
IDLE_SESSIONS     ?= 2000,4000
IDLE_RUNS         ?= 1
SFU_SCENARIOS     ?= audio,video
SFU_SYSTEMS       ?= jsp,jsp-nack,livekit
SFU_RUNS          ?= 3

# LiveKit's server (bench/livekit/server) is optional: when its module
# cannot be built the SFU benchmark reports LiveKit's runs as failed and
# runs JSP alone (docs/benchmarks.md says why it might not build).
bench-tools:
	mkdir -p $(BENCH_BIN)
	$(GO) build -o $(BENCH_BIN)/jsp ./cmd/jsp
	$(GO) build -o $(BENCH_BIN)/fanout ./bench/fanout
	$(GO) build -o $(BENCH_BIN)/idle ./bench/idle
	cd bench/centrifugo && $(GO) build -o $(abspath $(BENCH_BIN))/benchpeer .
	cd bench/centrifugo/server && $(GO) build -o $(abspath $(BENCH_BIN))/centrifugo github.com/centrifugal/centrifugo/v6
	$(GO) build -o $(BENCH_BIN)/sfu ./bench/sfu
	cd bench/livekit && $(GO) build -o $(abspath $(BENCH_BIN))/lkbench .
	-cd bench/livekit/server && $(GO) build -o $(abspath $(BENCH_BIN))/livekit-server github.com/livekit/livekit-server/cmd/server

# Side-by-side benchmarks (JSP vs the raw transport in one run): medians and
# same-run ratios as a markdown table; then fan-out (JSP vs Centrifugo vs
# raw NATS) and idle connections (JSP vs Centrifugo and the bare TLS and
# QUIC floors), then the SFU (JSP vs LiveKit, when its server builds); see
# docs/benchmarks.md.
bench: bench-tools
	$(GO) run ./bench/cmd/benchreport -runs 7 -benchtime 2s
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./wire ./session ./qos
	./$(BENCH_BIN)/fanout -bin $(BENCH_BIN) -cases $(FANOUT_CASES) -deliveries $(FANOUT_DELIVERIES) \
	    -runs $(FANOUT_RUNS) -duration 4s -drain 3s -workers 64 -out bench/results/fanout-latest.txt
	./$(BENCH_BIN)/idle -bin $(BENCH_BIN) -sessions $(IDLE_SESSIONS) -runs $(IDLE_RUNS) \
	    -out bench/results/idle-latest.txt
	./$(BENCH_BIN)/sfu -bin $(BENCH_BIN) -scenarios $(SFU_SCENARIOS) -systems $(SFU_SYSTEMS) -runs $(SFU_RUNS) \
	    -out bench/results/sfu-latest.txt

# Runs every fuzz target for FUZZTIME each.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin $(DATA_DIR)
