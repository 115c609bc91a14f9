# Roomwire. `make run` starts the game server; `make test` runs the tests.
GO ?= go
BOTS ?= 50
DURATION ?= 20s
DEMO_ADDR ?= quic://127.0.0.1:7777

.PHONY: run test bench demo fuzz build vet matrix soak perf perf-idle cluster cluster-demo

run:
	$(GO) run ./cmd/gameserver

# The JavaScript client's unit tests, the race-checked Go tests (with the
# browser test, cmd/gameserver's TestBrowser: chromium and playwright-core),
# then the tests that time bots or requests at a real latency on their
# own, one package at a time, still under the detector: the loss × latency
# goals (bots against a 30 Hz server), the drain of 30 bots over three
# nodes and the request round trip with reliable copies at 150 ms and 20 %
# loss, since other packages' tests running beside them would starve them
# of CPU (the drain test missed its room moves, the copies test its p99,
# in CI runs beside every other package), then the allocation guards and
# the memory test of 500 away sessions, which need a build without the
# race detector (it makes sync.Pool drop items on purpose, and changes
# what the heap holds), and
# the drain test's 1 s goal for the handoff pause, which the race
# detector's slowdown would blur, and the node-loss test, whose bots,
# slowed by the detector beside every other package's tests, miss its
# deadline, and the capped-link test of snapshots over WebSocket, whose
# 250 ms bound on a snapshot's age (about 190 ms alone, with or without the
# detector) the detector's slowdown beside every other package can cross.
# That last step runs one package at a time (-p 1), so that each timed test
# has the cores to itself. (The node-loss test's rare miss of its deadline
# came both with and without -p 1: its cause is not load; the test says
# where everything is when it fails.)
test: node_modules/playwright-core/package.json
	$(GO) vet ./...
	node --test web/client/test/
	@bash -o pipefail -c "$(GO) test -race -count=1 -skip '^(TestMatrixGoals|TestDrainHandsRoomsOff|TestReliableCopiesUnderLoss|TestNodeLossBotsGetBackIntoPlay|TestWebSocketSnapshotsThroughACappedLink)\$$' ./... 2>&1 | tee .race.log" || \
	  { if grep -q '^WARNING: DATA RACE' .race.log; then \
	      echo '== the data races above, again, whole, so a cut log keeps them =='; \
	      sed -n '/^WARNING: DATA RACE/,/^==================/p' .race.log | head -400; \
	    fi; rm -f .race.log; exit 1; }
	@rm -f .race.log
	$(GO) test -race -count=1 -p 1 -run '^(TestMatrixGoals|TestDrainHandsRoomsOff|TestReliableCopiesUnderLoss)$$' ./loadtest/ ./cluster/ ./rooms/
	$(GO) test -count=1 -p 1 -run 'Allocs|^TestAwaySessionsMemory$$|^TestDrainHandsRoomsOff$$|^TestNodeLossBotsGetBackIntoPlay$$|^TestWebSocketSnapshotsThroughACappedLink$$' ./...

# The browser test's only npm dependency, pinned in package-lock.json.
node_modules/playwright-core/package.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

build:
	$(GO) build ./...

bench:
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./...

# Server plus $(BOTS) bots for $(DURATION), then the bots' report: the
# table, and bin/report.html with its charts (its path printed last).
# DEMO_NET puts the bots behind network presets, e.g.
# DEMO_NET='-net-mix wifi:70,mobile:20,bad:10'.
DEMO_NET ?=
demo:
	$(GO) build -o bin/gameserver ./cmd/gameserver
	$(GO) build -o bin/botclient ./cmd/botclient
	@./bin/gameserver -log warn & pid=$$!; \
	trap 'kill -INT $$pid 2>/dev/null; wait $$pid' EXIT; \
	sleep 1; \
	./bin/botclient -addr $(DEMO_ADDR) -insecure -n $(BOTS) -per-room 10 -duration $(DURATION) $(DEMO_NET) -html bin/report.html

# Each fuzz target for a bounded number of executions (CI runs this too).
# A count, not a duration: go1.26's fuzz coordinator can fail a duration run
# with a spurious "context deadline exceeded" at the deadline on a busy
# machine (golang/go#75804, fixed in go1.27).
FUZZTIME ?= 100000x
fuzz:
	@for pkg in ./reliable ./unreliable ./netcode/token ./netcode/transport/secure ./netcode/transport/websocket; do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$t"; \
	    $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# The loss × latency matrix (BENCHMARKS.md): a game server on loopback
# (ports of its own, so a `make run` elsewhere is undisturbed), then every
# cell (QUIC and KCP × 0/5/20 % loss × 0/50/150/300 ms RTT, ±10 ms jitter)
# through an impairment proxy, one cell after another, as a Markdown table.
# About 24 × (MATRIX_DURATION + 2 s): 5 minutes with the defaults. Needs the
# machine to itself; never in CI. MATRIX_CELLS picks cells, e.g.
# MATRIX_CELLS='*/150ms/*'.
MATRIX_BOTS ?= 20
MATRIX_DURATION ?= 10s
MATRIX_CELLS ?= all
MATRIX_COPIES ?= auto
MATRIX_QUIC ?= 127.0.0.1:17777
MATRIX_KCP ?= 127.0.0.1:17778
MATRIX_HTTP ?= 127.0.0.1:18080
matrix:
	$(GO) build -o bin/gameserver ./cmd/gameserver
	$(GO) build -o bin/botclient ./cmd/botclient
	$(GO) build -o bin/netmatrix ./cmd/netmatrix
	@./bin/gameserver -log warn -copies $(MATRIX_COPIES) -quic $(MATRIX_QUIC) -kcp $(MATRIX_KCP) -http $(MATRIX_HTTP) & pid=$$!; \
	trap 'kill -INT $$pid 2>/dev/null; wait $$pid' EXIT; \
	./bin/netmatrix -quic quic://$(MATRIX_QUIC) -kcp kcp://$(MATRIX_KCP) -http http://$(MATRIX_HTTP) -insecure \
	  -bots $(MATRIX_BOTS) -duration $(MATRIX_DURATION) -cells '$(MATRIX_CELLS)' -copies $(MATRIX_COPIES) -md

# A bounded soak, never in CI: $(SOAK_BOTS) bots (QUIC and KCP) reconnect to
# the next room every $(SOAK_CHURN) for $(SOAK_DURATION), while the server's
# goroutines and live heap are sampled from its side port; it fails unless
# both stay within 10 % of their mean after the warm-up. Needs the machine
# to itself.
SOAK_BOTS ?= 200
SOAK_DURATION ?= 10m
SOAK_CHURN ?= 20s
SOAK_WARMUP ?= 2m
soak:
	$(GO) build -o bin/gameserver ./cmd/gameserver
	$(GO) build -o bin/botclient ./cmd/botclient
	@./bin/gameserver -log warn -quic 127.0.0.1:27777 -kcp 127.0.0.1:27778 -http 127.0.0.1:28080 & pid=$$!; \
	trap 'kill -INT $$pid 2>/dev/null; wait $$pid' EXIT; \
	sleep 1; \
	./bin/botclient -addr quic://127.0.0.1:27777,kcp://127.0.0.1:27778 -insecure -n $(SOAK_BOTS) -per-room 10 \
	  -duration $(SOAK_DURATION) -churn $(SOAK_CHURN) -sample http://127.0.0.1:28080/metrics.json -warmup $(SOAK_WARMUP)

# The server's CPU per delivered snapshot on each transport (cmd/perf): for
# each of $(PERF_TRANSPORTS) in turn, a game server on free loopback ports
# pinned to CPU 0 and $(PERF_ROOMS) × $(PERF_PLAYERS) bots pinned to CPU 1;
# the server's CPU time over $(PERF_DURATION) after every bot joined and a
# 3 s warm-up, as a Markdown table. About (PERF_DURATION + 15 s) a
# transport. Needs the machine to itself; never in CI.
PERF_ROOMS ?= 10
PERF_PLAYERS ?= 10
PERF_HZ ?= 30
PERF_DURATION ?= 20s
PERF_TRANSPORTS ?= quic,kcp,ws
perf:
	$(GO) build -o bin/gameserver ./cmd/gameserver
	$(GO) build -o bin/botclient ./cmd/botclient
	$(GO) run ./cmd/perf -transports $(PERF_TRANSPORTS) -rooms $(PERF_ROOMS) -players $(PERF_PLAYERS) \
	  -hz $(PERF_HZ) -duration $(PERF_DURATION) -gameserver bin/gameserver -botclient bin/botclient

# What idle sessions cost the server (cmd/perf -idle): for each of
# $(PERF_TRANSPORTS) in turn, and bare quic-go before quic, $(PERF_IDLE)
# clients that connect, in waves of 32, and do nothing; the server's CPU
# over 10 s after they connected and 5 s settle, and its live heap,
# goroutine stacks, goroutines and RSS per session (after a forced GC,
# less the same before any connection). About 30 s a subject. Needs the
# machine to itself; never in CI.
PERF_IDLE ?= 1000
perf-idle:
	$(GO) build -o bin/gameserver ./cmd/gameserver
	$(GO) build -o bin/botclient ./cmd/botclient
	$(GO) run ./cmd/perf -idle $(PERF_IDLE) -transports $(PERF_TRANSPORTS) \
	  -gameserver bin/gameserver -botclient bin/botclient

# Three game server nodes on loopback in one cluster, each with its own
# embedded NATS routed to the others' (QUIC 7777/7787/7797, KCP +1, side
# ports 8080-8082, NATS 4222-4224, routes 6222-6224); Ctrl-C stops all.
cluster:
	$(GO) build -o bin/gameserver ./cmd/gameserver
	@pids=""; trap 'kill -INT $$pids 2>/dev/null; wait' INT TERM EXIT; \
	for i in 0 1 2; do \
	  routes=""; for j in 0 1 2; do [ $$j = $$i ] || routes="$$routes,nats://127.0.0.1:$$((6222+j))"; done; \
	  ./bin/gameserver -cluster demo -node-id node$$((i+1)) -log warn \
	    -quic 127.0.0.1:$$((7777+10*i)) -kcp 127.0.0.1:$$((7778+10*i)) -http 127.0.0.1:$$((8080+i)) \
	    -nats-listen 127.0.0.1:$$((4222+i)) -nats-cluster 127.0.0.1:$$((6222+i)) -nats-routes $${routes#,} & \
	  pids="$$pids $$!"; \
	done; \
	wait

# Bots against all three nodes of `make cluster` (run it first, in another
# terminal): 10 per node, in the rooms demo-0 and demo-1 whichever node
# made them; each run's bots whose room is elsewhere follow the redirect.
cluster-demo:
	$(GO) build -o bin/botclient ./cmd/botclient
	@for i in 0 1 2; do \
	  ./bin/botclient -addr quic://127.0.0.1:$$((7777+10*i)) -insecure -n 10 -per-room 5 -room-prefix demo -duration $(DURATION) & \
	done; \
	wait; curl -s http://127.0.0.1:8080/rooms
