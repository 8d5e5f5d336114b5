# JetStreamProto / DevLink build entry points. See README.md.
GO        ?= go
DATA_DIR  ?= .jsp-data
BIN       := bin/jsp
# Fuzz time per target for `make fuzz`.
FUZZTIME  ?= 60s

.PHONY: all build run test test-short deps generate vet bench fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/jsp

# Starts the server with embedded defaults and prints its QUIC, TCP and
# WebSocket addresses.
run: build
	./$(BIN) server --data-dir $(DATA_DIR)

# Go modules, and the PostgreSQL server binaries the storage tests start
# (from the distribution's packages when missing; needs root to install).
deps:
	$(GO) mod download
	bash .ci/postgres.sh || echo "make: PostgreSQL is not available; its storage tests will skip"

generate:
	$(GO) generate ./...

vet:
	$(GO) vet ./...

# Installs what the tests need and runs every test, with the race detector.
test: deps vet
	$(GO) test -race -count=1 -timeout 20m ./...

test-short: deps
	$(GO) test -short -count=1 ./...

# Side-by-side benchmarks (JSP vs the raw transport in one run): medians and
# same-run ratios as a markdown table; see docs/benchmarks.md.
bench:
	$(GO) run ./bench/cmd/benchreport -runs 7 -benchtime 2s
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./wire ./session ./qos

# Runs every fuzz target for FUZZTIME each.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin $(DATA_DIR)
