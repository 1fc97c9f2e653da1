#!/usr/bin/env bash
# Load harness: Caddy's reverse_proxy alone ("plain") against embed_session
# in front of the same upstream ("protected", a valid session cookie), each
# in its own process; then an exchange-only run with fresh tokens against
# the memory store. Loopback only.
#
#   bench/run.sh                        # 8 paired rounds of 6 s each
#   DUR=3s ROUNDS=1 bench/run.sh        # quick look
#   AA=1 bench/run.sh                   # the noise floor: plain against plain
#   FLOOR=1 bench/run.sh                # what embed_session's wire costs
#   BASE=floor bench/run.sh             # embed_session against that wire
#   RESTART=0 bench/run.sh              # one server process per system for the whole run
#
# Per run it prints requests/s, p50/p99 latency and the serving process's
# CPU time (utime+stime from /proc) per request served; then, over the
# rounds, the medians of the per-round ratios protected/plain.
#
# A round runs both systems at the same time, each with its own wrk and
# half the connections, so that both see the same machine: on a shared VM
# the speed of the machine drifts by ±15 % from one run to the next, which
# swamps a few per cent when the systems take turns. Measured with AA=1 on
# a 2-vCPU VM, 8 rounds: per-round CPU ratios within 0.98..1.03 in pairs,
# against 0.83..1.13 taking turns. SEQUENTIAL=1 takes turns (ABBA) with all
# connections each.
#
# Both systems get the same request, session cookie included: what the
# Cookie header costs Caddy is not the gateway's cost.
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-6s}
ROUNDS=${ROUNDS:-8}
CONNS=${CONNS:-32}
SEQUENTIAL=${SEQUENTIAL:-}
# AA=1: "protected" is a second plain reverse_proxy, so the ratios show
# what the harness itself cannot tell apart.
AA=${AA:-}
# FLOOR=1: "protected" is bench/floor's handler, which puts embed_session's
# wire on the request and answer (no cookie, two identity headers, a CSP)
# with none of its checks: the part of the ratio no gateway can avoid.
FLOOR=${FLOOR:-}
# BASE=floor: the other way round, "plain" is that wire alone and
# "protected" is embed_session, so the ratio is the gateway's own work.
BASE=${BASE:-}
# Without the gateway (AA, FLOOR) there is no session or exchange to run.
nogw=$AA$FLOOR
THREADS=${THREADS:-1}
EXCHANGE_TOKENS=${EXCHANGE_TOKENS:-200000}
# EXTRA: more subdirectives for embed_session, e.g. EXTRA='assertion'.
EXTRA=${EXTRA:-}
# PIN=1: wrk on CPU 0, the three servers on the other CPUs (taskset), so
# the load generator does not compete with what it measures.
PIN=${PIN:-}
# Plain and protected are started afresh for every round, so a process's
# own offset (with RESTART=0, AA=1 fitted 1.019 ± 0.006 for a whole run)
# varies from round to round, where the median and the fit absorb it
# (AA=1 then fitted 1.000 and 0.999). RESTART=0 keeps them for the run.
RESTART=${RESTART:-1}
[ "$RESTART" = 0 ] && RESTART=
# PROFILE=dir: CPU profiles of plain and protected during round 1, taken
# from Caddy's admin endpoint (go tool pprof -top dir/protected.pprof).
PROFILE=${PROFILE:-}

if ! command -v wrk >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ]; then
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
	else
		echo "bench: wrk is required (apt-get install wrk)" >&2
		exit 1
	fi
fi

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/embedgate" ./cmd/embedgate
go build -o "$work/mint" ./bench/mint
declare -A bin=([upstream]=embedgate [plain]=embedgate [protected]=embedgate)
if [ -n "$FLOOR$BASE" ]; then
	go build -o "$work/floor" ./bench/floor/cmd
	[ -n "$FLOOR" ] && bin[protected]=floor
	[ "$BASE" = floor ] && bin[plain]=floor
fi

export BENCH_SECRET=bench-secret-0123456789abcdef0123456789
export BENCH_SESSION_KEY=bench-session-key-0123456789abcdef012345
UPSTREAM=18083 PLAIN=18081 PROTECTED=18082
TICK=$(getconf CLK_TCK)

declare -A admin=([upstream]=12010 [plain]=12011 [protected]=12012)
global() { # name
	local a="admin off"
	[ -n "$PROFILE" ] && a="admin 127.0.0.1:${admin[$1]}"
	printf '{\n\t%s\n\tpersist_config off\n\tauto_https off\n\tstorage file_system %s\n\tlog {\n\t\tlevel ERROR\n\t}\n}\n' "$a" "$work/storage-$1"
}

# The upstream app: a fixed small body.
{ global upstream; cat <<CADDY; } >"$work/upstream.caddyfile"
http://:$UPSTREAM {
	bind 127.0.0.1
	respond "hello from the app" 200
}
CADDY
# Baseline: the proxy hop alone.
{ global plain; cat <<CADDY; } >"$work/plain.caddyfile"
http://:$PLAIN {
	bind 127.0.0.1
	reverse_proxy 127.0.0.1:$UPSTREAM
}
CADDY
# The same hop behind embed_session (AA: the plain hop again; FLOOR: the
# wire alone; BASE=floor: plain becomes the wire alone).
with_floor() { sed -i "s/^\treverse_proxy/\tbench_floor\n\treverse_proxy/" "$1"; }
if [ -n "$nogw" ]; then
	sed "s/:$PLAIN /:$PROTECTED /; s/storage-plain/storage-protected/; s/:${admin[plain]}/:${admin[protected]}/" "$work/plain.caddyfile" >"$work/protected.caddyfile"
	if [ -n "$FLOOR" ]; then with_floor "$work/protected.caddyfile"; fi
else
	if [ "$BASE" = floor ]; then with_floor "$work/plain.caddyfile"; fi
	{ global protected; cat <<CADDY; } >"$work/protected.caddyfile"
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
		$EXTRA
	}
	reverse_proxy 127.0.0.1:$UPSTREAM
}
CADDY
fi

declare -A pid
srv=() gen=()
pin() { srv=(taskset -c "1-$(($(nproc) - 1))") gen=(taskset -c 0); } # servers started from now on, and wrk
if [ -n "$PIN" ]; then pin; fi
declare -A port=([upstream]=$UPSTREAM [plain]=$PLAIN [protected]=$PROTECTED)
start() { # name: start one server and wait until it answers
	"${srv[@]}" "$work/${bin[$1]}" run --config "$work/$1.caddyfile" --adapter caddyfile >>"$work/$1.log" 2>&1 &
	pid[$1]=$!
	pids+=("$!")
	for _ in $(seq 100); do
		curl -s -o /dev/null "http://127.0.0.1:${port[$1]}/" 2>/dev/null && return 0
		sleep 0.1
	done
}
stop() { kill "${pid[$1]}" && wait "${pid[$1]}" 2>/dev/null || true; }
for name in upstream plain protected; do start "$name"; done

# One session for the whole run (AA, FLOOR: a cookie of the same shape).
token=$(EMBEDGATE_SECRET=$BENCH_SECRET "$work/mint" -n 1)
if [ -n "$nogw" ]; then
	cookie="__Host-embed_session=$(head -c 150 /dev/zero | tr '\0' A)"
else
	cookie=$(curl -fsS -D - -o /dev/null -X POST "http://127.0.0.1:$PROTECTED/.embed/exchange" \
	-H 'Content-Type: application/json' -d "{\"token\":\"$token\"}" |
	tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \(__Host-embed_session=[^;]*\).*/\1/p')
fi
[ -n "$cookie" ] || { echo "bench: exchange failed" >&2; cat "$work/protected.log" >&2; exit 1; }
for port in $PLAIN $PROTECTED; do
	status=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "http://127.0.0.1:$port/")
	[ "$status" = 200 ] || { echo "bench: port $port answered $status" >&2; exit 1; }
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # name pid url [wrk args...]: one line, with CPU µs per request
	local name=$1 p=$2 url=$3
	shift 3
	local before after line reqs
	before=$(cpu_ticks "$p")
	line=$("${gen[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency "$@" "$url" | grep '^RESULT')
	after=$(cpu_ticks "$p")
	reqs=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")
	awk -v n="$name" -v l="$line" -v t=$((after - before)) -v r="$reqs" -v hz="$TICK" \
		'BEGIN { printf "%s %s cpu_us=%.1f\n", n, l, r ? t * 1e6 / hz / r : 0 }'
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%F)"
mode="paired: both systems at once, $((CONNS / 2)) connections each"
[ -n "$SEQUENTIAL" ] && mode="taking turns (ABBA), $CONNS connections each"
echo "wrk: $THREADS thread(s) per run, $DUR per run, $ROUNDS rounds, $mode; one process per system${RESTART:+, new ones every round}${AA:+; AA: protected is plain too}${FLOOR:+; FLOOR: protected is the wire alone}${BASE:+; BASE: plain is the wire alone}"
results="$work/results"
: >"$results"
# Warm-up, not counted.
wrk -t"$THREADS" -c"$CONNS" -d2s -H "Cookie: $cookie" "http://127.0.0.1:$PLAIN/" >/dev/null
wrk -t"$THREADS" -c"$CONNS" -d2s -H "Cookie: $cookie" "http://127.0.0.1:$PROTECTED/" >/dev/null
profile() { # name: a CPU profile of the run about to start
	[ -n "$PROFILE" ] && [ "$r" = 1 ] || return 0
	mkdir -p "$PROFILE"
	curl -fsS -o "$PROFILE/$1.pprof" "http://127.0.0.1:${admin[$1]}/debug/pprof/profile?seconds=$((${DUR%s} - 1))" &
}
declare -A url=([plain]="http://127.0.0.1:$PLAIN/" [protected]="http://127.0.0.1:$PROTECTED/")
measure() { # name [wrk args...]: one run of one system
	local name=$1
	shift
	profile "$name"
	run "$name" "${pid[$name]}" "${url[$name]}" -s bench/report.lua -H "Cookie: $cookie" "$@"
}
restart() { # a fresh plain and protected, warmed up together
	for name in plain protected; do stop "$name"; done
	for name in $order; do start "$name"; done
	local warm=()
	for name in plain protected; do
		wrk -t"$THREADS" -c"$((CONNS / 2))" -d1s -H "Cookie: $cookie" "${url[$name]}" >/dev/null &
		warm+=("$!")
	done
	wait "${warm[@]}"
}
for r in $(seq "$ROUNDS"); do
	# Odd rounds start plain first, even rounds protected first (ABBA), so
	# whatever the first run leaves behind cancels out.
	order="plain protected"
	[ $((r % 2)) = 0 ] && order="protected plain"
	# The session cookie stays valid: the session key is the same.
	if [ -n "$RESTART" ] && [ "$r" -gt 1 ]; then restart; fi
	if [ -n "$SEQUENTIAL" ]; then
		for name in $order; do measure "$name" | tee -a "$results"; done
		continue
	fi
	both=()
	for name in $order; do
		measure "$name" -c"$((CONNS / 2))" >"$work/$name.line" &
		both+=("$!")
	done
	wait "${both[@]}"
	cat "$work/plain.line" "$work/protected.line" | tee -a "$results"
done

tail_runs() { # suffix: the exchange with fresh tokens, then its baseline
	EMBEDGATE_SECRET=$BENCH_SECRET "$work/mint" -n "$EXCHANGE_TOKENS" >"$work/tokens"
	TOKENS="$work/tokens" THREADS=$THREADS run "exchange$1" "${pid[protected]}" "http://127.0.0.1:$PROTECTED/" -s bench/exchange.lua | tee -a "$results"
	case $(grep "^exchange$1 " "$results") in *non2xx=0*) ;; *) echo "note: tokens ran out (non-2xx answers); raise EXCHANGE_TOKENS for a full run" ;; esac
	# The tail's baseline: the same closed loop against Caddy's bare
	# respond (the upstream process). Saturated, most of p99 is queueing
	# and scheduling, which even a handler that does nothing shows.
	run "respond$1" "${pid[upstream]}" "http://127.0.0.1:$UPSTREAM/" -s bench/report.lua | tee -a "$results"
}
protected_rss() { awk '/^VmRSS/ {print $2}' "/proc/${pid[protected]}/status"; }
rss=
if [ -z "$nogw" ]; then
	tail_runs ""
	rss=$(protected_rss) # before the pinned run's new process
	# Again with wrk on CPU 0 and the server on the others (PIN's layout,
	# new processes): only one server is busy here, so none competes with
	# the load generator, and p99 shows the server's own tail rather than
	# wrk and the server queueing for the same CPUs.
	if [ -z "$PIN" ] && [ "$(nproc)" -ge 2 ]; then
		pin
		for name in upstream protected; do stop "$name" && start "$name"; done
		tail_runs _pinned
	fi
fi
[ -n "$rss" ] || rss=$(protected_rss)

awk -v rss="$rss" '
function val(s, k,   m) { if (!match(s, k "=[0-9.]+")) return 0; return substr(s, RSTART + length(k) + 1, RLENGTH - length(k) - 1) + 0 }
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
# Runs come in rounds of two (one of each, either order): a ratio a round.
$1 == "plain" { pr = val($0, "rps"); pc = val($0, "cpu_us"); keep("plain"); pair() }
$1 == "protected" { qr = val($0, "rps"); qc = val($0, "cpu_us"); keep("protected"); pair() }
function pair(   x, y) {
	if (!(pr && qr)) return
	n++; rr[n] = qr / pr; cr[n] = qc / pc
	# Sums for a least-squares fit of log CPU ratio on log req/s ratio.
	x = log(rr[n]); y = log(cr[n]); sx += x; sy += y; sxx += x * x; sxy += x * y; syy += y * y
	pr = qr = 0
}
$1 ~ /^(exchange|respond)(_pinned)?$/ { keep($1) }
function keep(k) { c[k]++; rps[k] += val($0, "rps"); p50[k] += val($0, "p50_us"); p99[k] += val($0, "p99_us"); cpu[k] += val($0, "cpu_us"); bad[k] += val($0, "errors") }
END {
	printf "\n%-16s %12s %10s %10s %14s %8s\n", "run", "requests/s", "p50", "p99", "CPU/request", "errors"
	split("plain protected exchange respond exchange_pinned respond_pinned", order, " ")
	for (i = 1; i <= 6; i++) { k = order[i]; if (!c[k]) continue
		printf "%-16s %12.0f %8.0fus %8.0fus %12.1fus %8d\n", k, rps[k]/c[k], p50[k]/c[k], p99[k]/c[k], cpu[k]/c[k], bad[k] }
	if (n) {
		printf "\nprotected/plain, median of %d per-round ratios: req/s %.3f (target >= 0.97), CPU per request %.3f (target <= 1.03)\n", n, median(rr, n), median(cr, n)
		# A process that serves fewer requests a second spends more CPU on
		# each (fewer requests per wake-up), and in a pair the scheduler
		# moves the two rates apart from round to round. A least-squares
		# fit of log CPU ratio on log req/s ratio gives the CPU ratio the
		# rounds point to at equal rates, with its standard error.
		Sxx = sxx - sx * sx / n; Sxy = sxy - sx * sy / n; Syy = syy - sy * sy / n
		if (n >= 3 && Sxx > 0 && Syy > 0) {
			b = Sxy / Sxx; a = (sy - b * sx) / n; se = sqrt((Syy - b * Sxy) / (n - 2) * (1 / n + (sx / n) ^ 2 / Sxx))
			printf "protected/plain CPU per request at equal req/s: %.3f ± %.3f (fit over %d rounds: slope %.2f, r %.2f)\n", exp(a), exp(a) * se, n, b, Sxy / sqrt(Sxx * Syy)
		}
	}
	if (c["exchange"]) printf "%s, gateway RSS after it %.0f MiB\n", tail_line("", "exchange", "in this run"), rss / 1024
	if (c["exchange_pinned"]) print tail_line("_pinned", "exchange, wrk on a CPU of its own", "so")
}
function tail_line(k, label, where) {
	return sprintf("%s: %.0f/s, p99/p50 %.1f (target < 5; bare respond %s: %.1f)", label, rps["exchange" k]/c["exchange" k], p99["exchange" k]/p50["exchange" k], where, c["respond" k] ? p99["respond" k]/p50["respond" k] : 0)
}' "$results"
