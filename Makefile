# nova-container-agent — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/nova-container-agent
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
FUZZTIME ?= 20s

.PHONY: help build unit test test-integration fuzz demo aio-up aio-down fmt lint bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## build the agent into bin/
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/nova-container-agent

unit: ## unit tests: no root, no daemons
	$(GO) test -race -shuffle on ./...

fuzz: ## run every fuzz target for FUZZTIME each
	tests/fuzz.sh $(FUZZTIME)

test-integration: build ## integration and end-to-end suites against the real all-in-one (starts it, builds the cached test images)
	tests/aio/up.sh
	tests/images/build.sh small xfs lvm
	tests/run-integration.sh

test: unit fuzz test-integration ## everything CI runs

aio-up: ## start the all-in-one control plane (idempotent)
	tests/aio/up.sh

aio-down: ## stop the agent and what aio-up started (PURGE=1: also drop its databases and state)
	tests/agent.sh stop
	tests/aio/down.sh $(if $(PURGE),--purge)

demo: build ## the all-in-one demo: control plane, agent, a booted instance
	tests/demo.sh

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

lint: ## gofmt check and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

bench: ## benchmarks printing figures beside their baselines (needs the all-in-one)
	tests/bench/agent.sh
	tests/bench/images.sh
