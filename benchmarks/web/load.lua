-- wrk script of the HTTP benchmark and the soak: POST JSON with a token, count statuses,
-- print a JSON summary. Environment: BENCH_TOKEN; BENCH_BODY (one body for every request)
-- or BENCH_PATHS (a mix: comma-separated paths, repeated for weight, each request with its
-- own request_id prefixed by BENCH_RUN); optionally BENCH_RATE (requests per second over all
-- BENCH_THREADS threads; unset = as fast as possible).
local token = os.getenv("BENCH_TOKEN") or ""
local rate = tonumber(os.getenv("BENCH_RATE") or "0")
local threads_n = tonumber(os.getenv("BENCH_THREADS") or "1")
local run = os.getenv("BENCH_RUN") or "bench"
local paths = {}
for path in string.gmatch(os.getenv("BENCH_PATHS") or "", "[^,]+") do
  table.insert(paths, path)
end

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Token " .. token

local threads = {}
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

if #paths > 0 then
  local counter = 0
  function init(args)
    math.randomseed(tid * 7919 + os.time())
  end

  function request()
    counter = counter + 1
    local path = paths[math.random(#paths)]
    local rid = run .. "-" .. tid .. "-" .. counter
    local body
    if string.find(path, "/tags/") then
      body = '{"tags": ["t' .. math.random(20) .. '"], "request_id": "' .. rid .. '"}'
    else
      body = '{"request_id": "' .. rid .. '"}'
    end
    return wrk.format("POST", path, nil, body)
  end
end

n200, n202, nother = 0, 0, 0
function response(status, headers, body)
  if status == 200 then
    n200 = n200 + 1
  elseif status == 202 then
    n202 = n202 + 1
  else
    nother = nother + 1
  end
end

if rate > 0 then
  -- A schedule per thread (wrk has no clock in Lua: ask libc), so that the load is offered
  -- at a fixed rate whatever the answers' latency.
  local ffi = require("ffi")
  ffi.cdef [[
    typedef struct { long tv_sec; long tv_usec; } bench_timeval;
    int gettimeofday(bench_timeval *tv, void *tz);
  ]]
  local tv = ffi.new("bench_timeval")
  local function now_ms()
    ffi.C.gettimeofday(tv, nil)
    return tonumber(tv.tv_sec) * 1000 + tonumber(tv.tv_usec) / 1000
  end
  local interval = 1000 * threads_n / rate
  local next_at = nil
  function delay()
    local now = now_ms()
    if next_at == nil or next_at < now - 1000 then
      next_at = now -- behind by more than a second: do not burst to catch up
    end
    local wait = next_at - now
    next_at = next_at + interval
    if wait < 1 then
      return 0
    end
    return math.floor(wait)
  end
end

function done(summary, latency, requests)
  local c200, c202, cother = 0, 0, 0
  for _, thread in ipairs(threads) do
    c200 = c200 + thread:get("n200")
    c202 = c202 + thread:get("n202")
    cother = cother + thread:get("nother")
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "status_200": %d, "status_202": %d, ' ..
    '"status_other": %d, "socket_errors": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d}\n',
    summary.requests, summary.duration, c200, c202, cother,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
