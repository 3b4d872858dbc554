-- wrk script: replays pre-signed webhook requests, one file per thread. Each thread has one
-- connection, so a response always answers the request that thread sent last; that lets
-- done() report exactly which requests were answered 2xx (for the zero-loss check).

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
  print(string.format("bench-summary %d %d %d %d %d %d %d %d %d", summary.requests,
    summary.duration, errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency:percentile(50), latency:percentile(99)))
  for _, thread in ipairs(threads) do
    local runs = thread:get("acked")
    local parts = {}
    for i = 1, #runs do parts[i] = tostring(runs[i]) end
    print(string.format("bench-thread %d %d %d %s", thread:get("number"), thread:get("failed"),
      thread:get("wrapped"), table.concat(parts, ",")))
  end
end
