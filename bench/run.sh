#!/usr/bin/env bash
# Load harness: Caddy's reverse_proxy alone vs. embed_session (valid session
# cookie) in front of the same upstream, alternated round by round in one
# go, plus an exchange-only run with the memory store. Loopback only.
#
#   bench/run.sh                      # 3 rounds of 10 s each
#   DUR=5s ROUNDS=1 bench/run.sh      # quick look
#
# Prints requests/s, p50/p99 latency and the protected/plain ratio.
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-10s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
EXCHANGE_TOKENS=${EXCHANGE_TOKENS:-600000}

if ! command -v wrk >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ]; then
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
	else
		echo "bench: wrk is required (apt-get install wrk)" >&2
		exit 1
	fi
fi

work=$(mktemp -d)
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/embedgate" ./cmd/embedgate
go build -o "$work/mint" ./bench/mint

export BENCH_SECRET=bench-secret-0123456789abcdef0123456789
export BENCH_SESSION_KEY=bench-session-key-0123456789abcdef012345
PLAIN=18081 PROTECTED=18082 UPSTREAM=18083 ADMIN=12019

cat >"$work/Caddyfile" <<CADDY
{
	admin 127.0.0.1:$ADMIN
	storage file_system $work/storage
	auto_https off
	log {
		level ERROR
	}
}

# The upstream app: a fixed small body.
http://:$UPSTREAM {
	bind 127.0.0.1
	respond "hello from the app" 200
}

# Baseline: the proxy hop alone.
http://:$PLAIN {
	bind 127.0.0.1
	reverse_proxy 127.0.0.1:$UPSTREAM
}

# The same hop behind embed_session.
http://:$PROTECTED {
	bind 127.0.0.1
	embed_session {
		tenant bench {
			key {env.BENCH_SECRET}
			frame_ancestors https://app.bench.test
		}
		session_key {env.BENCH_SESSION_KEY}
		idle_timeout 8h
		max_token_age 120s
	}
	reverse_proxy 127.0.0.1:$UPSTREAM
}
CADDY

"$work/embedgate" run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	curl -fsS -o /dev/null "http://127.0.0.1:$PLAIN/" 2>/dev/null && break
	sleep 0.1
done

# One session for the whole protected run.
token=$(EMBEDGATE_SECRET=$BENCH_SECRET "$work/mint" -n 1)
cookie=$(curl -fsS -D - -o /dev/null -X POST "http://127.0.0.1:$PROTECTED/.embed/exchange" \
	-H 'Content-Type: application/json' -d "{\"token\":\"$token\"}" |
	tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \(__Host-embed_session=[^;]*\).*/\1/p')
[ -n "$cookie" ] || { echo "bench: exchange failed" >&2; cat "$work/caddy.log" >&2; exit 1; }
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "http://127.0.0.1:$PROTECTED/")
[ "$status" = 200 ] || { echo "bench: session request answered $status" >&2; exit 1; }

run() { # name url [wrk args...]
	local name=$1 url=$2
	shift 2
	local line
	line=$(wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency -s bench/report.lua "$@" "$url" | grep '^RESULT')
	echo "$name $line"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%F)"
echo "wrk: $THREADS threads, $CONNS connections, $DUR per run, $ROUNDS rounds alternating"
results="$work/results"
: >"$results"
# Warm-up, not counted.
wrk -t"$THREADS" -c"$CONNS" -d2s "http://127.0.0.1:$PLAIN/" >/dev/null
wrk -t"$THREADS" -c"$CONNS" -d2s -H "Cookie: $cookie" "http://127.0.0.1:$PROTECTED/" >/dev/null
for r in $(seq "$ROUNDS"); do
	run plain "http://127.0.0.1:$PLAIN/" | tee -a "$results"
	run protected "http://127.0.0.1:$PROTECTED/" -H "Cookie: $cookie" | tee -a "$results"
done

EMBEDGATE_SECRET=$BENCH_SECRET "$work/mint" -n "$EXCHANGE_TOKENS" >"$work/tokens"
exline=$(TOKENS="$work/tokens" THREADS=$THREADS wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency -s bench/exchange.lua \
	"http://127.0.0.1:$PROTECTED/" | grep '^RESULT')
echo "exchange $exline" | tee -a "$results"
case $exline in *non2xx=0*) ;; *) echo "note: tokens ran out (non-2xx answers); raise EXCHANGE_TOKENS for a full run" ;; esac

awk '
function val(s, k,   m) { match(s, k "=[0-9]+"); return substr(s, RSTART + length(k) + 1, RLENGTH - length(k) - 1) }
{ n[$1]++; rps[$1] += val($0, "rps"); p50[$1] += val($0, "p50_us"); p99[$1] += val($0, "p99_us"); bad[$1] += val($0, "errors") + val($0, "non2xx") }
END {
	printf "\n%-10s %12s %10s %10s %8s\n", "run", "requests/s", "p50", "p99", "errors"
	split("plain protected exchange", order, " ")
	for (i = 1; i <= 3; i++) { k = order[i]; if (!n[k]) continue
		printf "%-10s %12.0f %8.0fus %8.0fus %8d\n", k, rps[k]/n[k], p50[k]/n[k], p99[k]/n[k], bad[k] }
	if (n["plain"] && n["protected"]) printf "\nratio protected/plain: %.3f (target >= 0.90)\n", (rps["protected"]/n["protected"]) / (rps["plain"]/n["plain"])
	if (n["exchange"]) printf "exchanges/s: %.0f (target >= 5000, memory store)\n", rps["exchange"]/n["exchange"]
}' "$results"
