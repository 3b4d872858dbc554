-- wrk script: replays pre-signed webhook requests, one file per thread. Each thread has one
-- connection, so a response always answers the request that thread sent last; that lets
-- done() report exactly which requests were answered 2xx (for the zero-loss check).
-- Arguments: file prefix, path, and optionally rate and connections: then each connection
-- sends on a fixed schedule (delay() before each request waits for the next slot, one every
-- connections/rate ms from its first), so that all together send `rate` per second whatever
-- the answers take; a connection behind its schedule sends at once until it has caught up.

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local clock = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("number", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1] .. "." .. number, "rb"))
  pool = {}
  while true do
    local line = file:read("*l")
    if not line then break end
    local length, signature = line:match("^(%d+) (%S+)$")
    local body = file:read(tonumber(length))
    pool[#pool + 1] = wrk.format("POST", args[2], {
      ["Content-Type"] = "application/json",
      ["Stripe-Signature"] = signature,
    }, body)
  end
  file:close()
  current, wrapped, failed = 0, 0, 0
  acked = {} -- runs of 2xx-answered request numbers: first, last, first, last, ...
  local rate, connections = tonumber(args[3]), tonumber(args[4])
  if rate then
    -- wrk calls delay() only if the script defines it (checked after the first init).
    interval = 1000 * connections / rate
    -- Stagger the first sends evenly over one interval rather than all at once.
    stagger = interval * number / connections
    delay = paced_delay
  end
end

-- The slots are absolute times, so waiting whole milliseconds (wrk's unit) never drifts.
function paced_delay()
  local now = now_ms()
  due = (due or now + stagger) + interval
  local wait = due - interval - now
  if wait <= 0 then
    return 0
  end
  return math.floor(wait)
end

function request()
  current = current + 1
  if current > #pool then
    current, wrapped = 1, wrapped + 1
  end
  return pool[current]
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    failed = failed + 1
    return
  end
  local n = #acked
  if n > 0 and acked[n] == current - 1 then
    acked[n] = current
  else
    acked[n + 1], acked[n + 2] = current, current
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  print(string.format("bench-summary %d %d %d %d %d %d %d %d %d %d", summary.requests,
    summary.duration, errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
  -- The whole latency histogram (µs value:count), so rounds can be merged exactly.
  local bins = {}
  for i = 1, #latency do
    local value, count = latency(i)
    bins[i] = string.format("%d:%d", value, count)
  end
  print("bench-latency " .. table.concat(bins, ","))
  for _, thread in ipairs(threads) do
    local runs = thread:get("acked")
    local parts = {}
    for i = 1, #runs do parts[i] = tostring(runs[i]) end
    print(string.format("bench-thread %d %d %d %s", thread:get("number"), thread:get("failed"),
      thread:get("wrapped"), table.concat(parts, ",")))
  end
end
