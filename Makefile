# Veil: IKEv2/IPsec daemon. `make build`, `make test`, `make demo`, `make lint`.
GO            ?= go
BIN           := bin
VERSION       ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS       := -X github.com/veil-ipsec/veil/core/version.Version=$(VERSION)
STATICCHECK   ?= $(shell $(GO) env GOPATH)/bin/staticcheck
STATICCHECK_VERSION := v0.8.2
FUZZTIME      ?= 30s
# Packages whose tests need root, network namespaces or external daemons run
# with the same `go test`; they skip only when a prerequisite is truly absent
# (CI installs all of them, see .ci/run).
TESTFLAGS     ?= -count=1 -timeout 30m

.PHONY: all build test lint demo proto fuzz bench bench-smoke clean tools

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...
	$(GO) build -o $(BIN)/ ./examples/plugins/keystore-env

test: build
	$(GO) test $(TESTFLAGS) ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@test -x $(STATICCHECK) || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(STATICCHECK) ./...

tools:
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

demo: build
	./test/demo/demo.sh

# Each fuzz target for FUZZTIME (the issue asks for >= 5m: make fuzz FUZZTIME=5m).
fuzz:
	./test/fuzz.sh $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./core/...

# The plugin RPC budget's benchmarks (bench/plugin-rpc-budget.txt), a few
# hundred iterations: CI runs them so they keep working; figures come
# from full runs.
bench-smoke:
	$(GO) test -run '^$$' -bench 'ResponderPlugins|ProcessRoundTripFloor|AuthVerify' -benchtime 200x ./core/engine/ ./core/pluginhost/

# Regenerates sdk/proto/*.pb.go and the control API's code with pinned
# generators (protoc from Debian's protobuf-compiler).
proto:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" protoc -I sdk/proto \
	  --go_out=sdk/proto --go_opt=paths=source_relative \
	  --go-grpc_out=sdk/proto --go-grpc_opt=paths=source_relative sdk/proto/*.proto
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" protoc -I core/control/controlpb \
	  --go_out=core/control/controlpb --go_opt=paths=source_relative \
	  --go-grpc_out=core/control/controlpb --go-grpc_opt=paths=source_relative core/control/controlpb/control.proto

clean:
	rm -rf $(BIN)
