-- Shared by the bench/wrk scenario scripts (loaded with require "common"): numbers the threads,
-- counts answers by status and by body "status" (created / queued / duplicate), spreads clients
-- over many addresses, and prints one machine-readable line that scripts/bench parses:
--   BENCH requests=… duration_us=… p50_us=… p99_us=… errors_…=… status_202=… body_queued=…
-- and, when BENCH_HIST names a file, writes the whole latency histogram there ("µs count" per
-- line), so scripts/bench can take exact percentiles over several runs (the slices of a load).
local M = {}

-- Main state: every thread, to read its counters in done().
local threads = {}

function M.install()
  -- Thread states: counters read by done() through thread:get().
  statuses = {}
  kinds = {}
  wrapped = 0

  function setup(thread)
    table.insert(threads, thread)
    thread:set("id", #threads)
  end

  function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
    if status < 300 and body then
      local kind = body:match('"status":"(%a+)"')
      if kind then
        kinds[kind] = (kinds[kind] or 0) + 1
      end
    end
  end

  function done(summary, latency, requests)
    local status_total, kind_total, wrapped_total = {}, {}, 0
    for _, thread in ipairs(threads) do
      for code, n in pairs(thread:get("statuses") or {}) do
        status_total[code] = (status_total[code] or 0) + n
      end
      for kind, n in pairs(thread:get("kinds") or {}) do
        kind_total[kind] = (kind_total[kind] or 0) + n
      end
      wrapped_total = wrapped_total + (thread:get("wrapped") or 0)
    end
    local e = summary.errors
    local out = {
      "BENCH",
      string.format("requests=%d", summary.requests),
      string.format("duration_us=%d", summary.duration),
      string.format("p50_us=%d", latency:percentile(50)),
      string.format("p99_us=%d", latency:percentile(99)),
      string.format("max_us=%d", latency.max),
      string.format("errors_connect=%d", e.connect),
      string.format("errors_read=%d", e.read),
      string.format("errors_write=%d", e.write),
      string.format("errors_timeout=%d", e.timeout),
      string.format("wrapped=%d", wrapped_total),
    }
    for code, n in pairs(status_total) do
      table.insert(out, string.format("status_%d=%d", code, n))
    end
    for kind, n in pairs(kind_total) do
      table.insert(out, string.format("body_%s=%d", kind, n))
    end
    io.write(table.concat(out, " ") .. "\n")
    M.write_histogram(latency)
  end
end

-- Every distinct latency (µs) with its count, to the file BENCH_HIST names (when set).
function M.write_histogram(latency)
  local path = os.getenv("BENCH_HIST")
  if not path or path == "" then
    return
  end
  local file = assert(io.open(path, "w"))
  for i = 1, #latency do
    local value, count = latency(i)
    file:write(string.format("%d %d\n", value, count))
  end
  file:close()
end

-- The n-th client address of thread `id`: 10.id.x.y, 16,384 per thread, so each address stays
-- far below the per-address limit (120/min, burst 30) up to ~80,000 requests/s per thread.
function M.client_address(id, n)
  local m = n % 16384
  return string.format("10.%d.%d.%d", id, math.floor(m / 256), m % 256)
end

-- A run tag from scripts/bench, so no two runs send the same signup.
M.run = os.getenv("BENCH_RUN") or "run"

return M
