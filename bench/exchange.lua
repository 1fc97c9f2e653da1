-- wrk script for the exchange-only run: POST a different one-time token to
-- /.embed/exchange on every request (tokens from $TOKENS, one per line).
-- Each thread takes its own slice of the file, so no token is sent twice
-- while a thread has tokens left.
local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

local tokens, first, count, i = {}, 0, 0, 0

function init(args)
  local all = {}
  for line in io.lines(os.getenv("TOKENS")) do
    all[#all + 1] = line
  end
  local nthreads = tonumber(os.getenv("THREADS") or "2")
  count = math.floor(#all / nthreads)
  first = id * count
  for k = 1, count do
    tokens[k] = all[first + k]
  end
end

function request()
  i = i + 1
  local tok = tokens[((i - 1) % count) + 1]
  return wrk.format("POST", "/.embed/exchange", {["Content-Type"] = "application/json"}, '{"token":"' .. tok .. '"}')
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  -- Only successful exchanges count: a 401 (a token sent twice once a
  -- thread ran out) is not an exchange.
  local ok = summary.requests - summary.errors.status
  io.write(string.format("RESULT rps=%.0f ok=%d p50_us=%d p99_us=%d requests=%d errors=%d non2xx=%d\n",
    ok / secs, ok, latency:percentile(50), latency:percentile(99), summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
