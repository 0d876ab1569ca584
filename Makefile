# Herald: `make run` to start on SQLite, `make test` to run every test.
GO ?= go
BIN := bin/herald

.PHONY: run build test test-short generate check-generated bench bench-go vet clean

build: generate
	$(GO) build -o $(BIN) ./cmd/herald

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

## test: every test, including PostgreSQL when HERALD_TEST_POSTGRES is set and the browser journeys.
## One package at a time (-p 1): the mailer's rate tests measure messages per
## second, and a browser journey in another package on the same two cores
## would turn them into measurements of the machine.
test: vet
	$(GO) test -p 1 -count=1 -timeout 20m ./...

test-short:
	$(GO) test -short -count=1 ./...

## bench: Go benchmarks and the load commands (figures for the closing note)
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 3x ./models/ ./mailer/...
	$(GO) test -run '^$$' -bench CampaignProgressPoll -benchtime 1000x ./web/
	./$(BIN) bench import -n 1000000
	./$(BIN) bench send -n 10000
	./$(BIN) bench send -n 10000 -dkim=false
	./$(BIN) bench send -n 200000 -dkim=false
	./$(BIN) bench track -d 8s -c 64

clean:
	rm -rf bin herald.db herald.db-wal herald.db-shm
