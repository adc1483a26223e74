-- wrk script of bench/feed_api.py: GET wrk.path with an Authorization header
-- rotating over many users' tokens (one per line in $BENCH_WRK_TOKENS), so the
-- load is not one hot snapshot key; each thread starts at a different user.
-- Prints one line "BENCH_JSON {...}" with the counts and latency percentiles (µs).

local requests = {}
local counter = 0
local threads = {}

function setup(thread)
   thread:set("thread_index", #threads)
   table.insert(threads, thread)
end

function init(args)
   for token in io.lines(os.getenv("BENCH_WRK_TOKENS")) do
      if token ~= "" then
         table.insert(requests, wrk.format("GET", wrk.path, {["Authorization"] = "Token " .. token}))
      end
   end
   counter = (thread_index or 0) * 7919
end

function request()
   counter = counter + 1
   return requests[(counter % #requests) + 1]
end

function done(summary, latency, requests_)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, "read_errors": %d, ' ..
      '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p95_us": %d, ' ..
      '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
      latency.max, latency.mean))
end
