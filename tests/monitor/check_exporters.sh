#!/usr/bin/env bash
# gort's exporters read by real clients (docs/monitoring.md, "Tested with"):
#   check_exporters.sh BUILD_DIR
# starts BUILD_DIR/samples/exporter and checks, one line "ok: ..." or "FAILED: ..." each:
#   1. curl fetches /metrics plainly and gzipped; promtool check metrics finds nothing to say;
#   2. its families (HELP and TYPE lines) equal those of a Go program using client_golang 1.14's
#      Go collector, built here from tests/monitor/go_peer.go;
#   3. /debug/vars parses as JSON (python3's parser) and its memstats keys are Go's expvar keys,
#      in Go's order;
#   4. a Prometheus server scrapes it: the target is up and go_memstats_heap_alloc_bytes has a
#      sample;
#   5. go tool pprof reads /debug/pprof/heap and puts the sample's allocating function,
#      tree(int), at the top of alloc_space;
#   6. go tool pprof reads /debug/pprof/goroutine and counts the sample's goroutines (main and
#      its workers, closures of main's lambda).
# Exit status: the number of failed checks.
set -uo pipefail
build=$(realpath "$1")
here=$(dirname "$(realpath "$0")")
work=$(mktemp -d)
failed=0
check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@" >"$work/out" 2>&1; then echo "ok: $what"; else echo "FAILED: $what"; sed 's/^/    /' "$work/out" | head -20; failed=$((failed + 1)); fi
}
cleanup() {
  [ -n "${exporter_pid:-}" ] && kill "$exporter_pid" 2>/dev/null
  [ -n "${prom_pid:-}" ] && kill "$prom_pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$build/samples/exporter" 127.0.0.1:0 120 >"$work/exporter.out" &
exporter_pid=$!
for _ in $(seq 100); do grep -q "serving on port" "$work/exporter.out" && break; sleep 0.1; done
port=$(sed -n 's/serving on port //p' "$work/exporter.out")
if [ -z "$port" ]; then echo "FAILED: the exporter sample did not start"; cat "$work/exporter.out"; exit 1; fi
base=http://127.0.0.1:$port

check "curl /metrics" sh -c "curl -sSf '$base/metrics' >'$work/metrics.txt' && grep -q '^go_memstats_heap_alloc_bytes ' '$work/metrics.txt'"
check "curl /metrics gzipped" sh -c "curl -sSf -H 'Accept-Encoding: gzip' -D '$work/headers' '$base/metrics' | gunzip | grep -q '^go_goroutines ' && grep -qi '^content-encoding: gzip' '$work/headers'"
check "promtool check metrics" sh -c "promtool check metrics <'$work/metrics.txt' && [ -z \"\$(promtool check metrics <'$work/metrics.txt' 2>&1)\" ]"

# The Go peer, built once per machine (GOPATH mode: Debian's packaged Go libraries).
peer=$work/go_peer
check "build the Go peer (client_golang 1.14)" sh -c "cd '$here' && GOPATH=/usr/share/gocode GO111MODULE=off GOCACHE='${GOCACHE:-$HOME/.cache/go-build}' go build -o '$peer' go_peer.go"
check "families equal client_golang's Go collector" bash -c "diff <('$peer' metrics | grep '^# ') <(grep '^# ' '$work/metrics.txt')"
check "curl /debug/vars, a JSON parser, Go's memstats keys in Go's order" python3 - "$base/debug/vars" "$peer" <<'PY'
import json, subprocess, sys, urllib.request
doc = json.loads(urllib.request.urlopen(sys.argv[1]).read())
assert isinstance(doc["cmdline"], list) and doc["cmdline"][0].endswith("exporter"), doc["cmdline"]
go = json.loads(subprocess.run([sys.argv[2], "vars"], capture_output=True, check=True).stdout)
assert list(doc["memstats"].keys()) == list(go.keys()), (list(doc["memstats"].keys()), list(go.keys()))
assert list(doc["memstats"]["BySize"][3].keys()) == list(go["BySize"][3].keys())
assert [c["Size"] for c in doc["memstats"]["BySize"]] == [c["Size"] for c in go["BySize"]]
PY

# The heap profile, read by Go's own pprof: the workload allocates in tree(int) only.
check "go tool pprof -top reads /debug/pprof/heap and names tree(int)" sh -c "
  curl -sSf -o '$work/heap.pb.gz' '$base/debug/pprof/heap?gc=1' &&
  go tool pprof -top -sample_index=alloc_space '$work/heap.pb.gz' >'$work/top.txt' 2>&1 &&
  grep -A1 -E '^ +flat +flat%' '$work/top.txt' | tail -1 | grep -q 'tree(int)' || { cat '$work/top.txt'; exit 1; }"

# The goroutine profile: the sample's main goroutine and its four workers sleep in main's lambdas.
check "go tool pprof -top reads /debug/pprof/goroutine and counts main's goroutines" sh -c "
  curl -sSf -o '$work/goroutine.pb.gz' '$base/debug/pprof/goroutine' &&
  go tool pprof -top '$work/goroutine.pb.gz' >'$work/gtop.txt' 2>&1 &&
  grep -q '^Type: goroutine' '$work/gtop.txt' && grep -q 'main::{lambda' '$work/gtop.txt' || { cat '$work/gtop.txt'; exit 1; }"

# A Prometheus server scraping every 200 ms.
prom_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/prometheus.yml" <<YML
global:
  scrape_interval: 200ms
  scrape_timeout: 200ms
scrape_configs:
  - job_name: gort
    static_configs:
      - targets: ['127.0.0.1:$port']
YML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
prom_pid=$!
scraped() {
  for _ in $(seq 150); do
    if curl -sf "http://127.0.0.1:$prom_port/api/v1/query?query=go_memstats_heap_alloc_bytes" 2>/dev/null |
         python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; sys.exit(0 if r and float(r[0]["value"][1]) > 0 else 1)' 2>/dev/null &&
       curl -sf "http://127.0.0.1:$prom_port/api/v1/query?query=up" |
         python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; sys.exit(0 if r and r[0]["value"][1] == "1" else 1)'; then
      return 0
    fi
    sleep 0.2
  done
  echo "no sample after 30 s; prometheus said:"; tail -5 "$work/prometheus.log"
  return 1
}
check "a Prometheus server scrapes it (up == 1, heap_alloc_bytes > 0)" scraped
exit $failed
