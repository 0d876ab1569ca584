# Herald: `make run` to start on SQLite, `make test` to run every test.
GO ?= go
BIN := bin/herald
BENCH_BIN := bin/herald-bench

.PHONY: run build build-bench test test-short generate check-generated tidy-check bench bench-go vet clean

build: generate
	$(GO) build -o $(BIN) ./cmd/herald

## build-bench: the load-test command (cmd/herald-bench), apart from the server
build-bench: generate
	$(GO) build -o $(BENCH_BIN) ./cmd/herald-bench

## run: build and start Herald on SQLite (./herald.db), printing where to log in
run: build
	./$(BIN) serve

## generate: regenerate templ components (committed *_templ.go)
generate:
	$(GO) tool templ generate -path views

## check-generated: fail when committed *_templ.go are stale
check-generated:
	$(GO) tool templ generate -path views
	@git diff --exit-code -- views || (echo "views/*_templ.go are stale: run make generate and commit" && exit 1)

vet:
	$(GO) vet ./...

## tidy-check: fail when go.mod or go.sum is not what go mod tidy would write
tidy-check:
	@$(GO) mod tidy -diff >/dev/null 2>&1 || { $(GO) mod tidy -diff; echo "go.mod/go.sum are not tidy: run go mod tidy and commit the result"; exit 1; }

## test: every test, including PostgreSQL when HERALD_TEST_POSTGRES is set and the browser journeys.
## One package at a time (-p 1): the mailer's rate tests measure messages per
## second, and a browser journey in another package on the same two cores
## would turn them into measurements of the machine.
## -parallel 2 concerns the end-to-end tests that call t.Parallel (no other
## package does): functional tests, two at a time.
## The two PostgreSQL outages (one of five minutes) mostly wait, and what they
## check does not depend on the machine's speed: they run last, beside the web
## package, rather than after every other end-to-end test (which cost CI about
## four minutes). Their output follows the web package's.
OUTAGES := ^TestPostgresOutage
test: vet
	$(GO) test -p 1 -parallel 2 -count=1 -timeout 20m -skip '$(OUTAGES)' $$($(GO) list ./... | grep -v '/web$$')
	@$(GO) test -count=1 -timeout 20m -run '$(OUTAGES)' ./internal/e2e/ > .outages.log 2>&1 & outages=$$!; \
	echo "$(GO) test -count=1 -timeout 20m ./web/   (beside: $(GO) test -run '$(OUTAGES)' ./internal/e2e/)"; \
	$(GO) test -count=1 -timeout 20m ./web/; web=$$?; \
	wait $$outages; o=$$?; cat .outages.log; rm -f .outages.log; \
	test $$web -eq 0 -a $$o -eq 0

test-short:
	$(GO) test -short -count=1 ./...

## bench: Go benchmarks and the load commands (figures for the closing note);
## with HERALD_TEST_POSTGRES set, the import also runs on PostgreSQL, in a
## schema of its own that it drops afterwards
bench: build-bench
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 3x ./models/ ./mailer/...
	$(GO) test -run '^$$' -bench CampaignProgressPoll -benchtime 1000x ./web/
	./$(BENCH_BIN) import -n 1000000
	@if [ -n "$$HERALD_TEST_POSTGRES" ]; then ./$(BENCH_BIN) import -n 1000000 -database-url "$$HERALD_TEST_POSTGRES"; \
	else echo "HERALD_TEST_POSTGRES not set: import benchmark on PostgreSQL skipped"; fi
	./$(BENCH_BIN) automation -n 100000 -send
	@if [ -n "$$HERALD_TEST_POSTGRES" ]; then ./$(BENCH_BIN) automation -n 100000 -send -database-url "$$HERALD_TEST_POSTGRES"; \
	else echo "HERALD_TEST_POSTGRES not set: automation benchmark on PostgreSQL skipped"; fi
	./$(BENCH_BIN) search -n 1000000
	@if [ -n "$$HERALD_TEST_POSTGRES" ]; then ./$(BENCH_BIN) search -n 1000000 -database-url "$$HERALD_TEST_POSTGRES"; \
	else echo "HERALD_TEST_POSTGRES not set: search benchmark on PostgreSQL skipped"; fi
	./$(BENCH_BIN) segment -n 1000000 -rounds 2
	@if [ -n "$$HERALD_TEST_POSTGRES" ]; then ./$(BENCH_BIN) segment -n 1000000 -rounds 2 -database-url "$$HERALD_TEST_POSTGRES"; \
	else echo "HERALD_TEST_POSTGRES not set: segment benchmark on PostgreSQL skipped"; fi
	./$(BENCH_BIN) send -n 10000
	./$(BENCH_BIN) send -n 10000 -dkim=false
	./$(BENCH_BIN) send -n 20000 -dkim=false
	./$(BENCH_BIN) send -n 20000 -dkim=false -database-url "$${HERALD_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
	./$(BENCH_BIN) send -n 200000 -dkim=false
	./$(BENCH_BIN) send -relay -n 20000 -domains 50 -conns 10 -rounds 4
	./$(BENCH_BIN) send -relay -n 20000 -domains 50 -conns 10 -rounds 4 -dkim=false
	./$(BENCH_BIN) track -d 8s -c 64

clean:
	rm -rf bin herald.db herald.db-wal herald.db-shm
