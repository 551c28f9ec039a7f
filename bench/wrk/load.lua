-- wrk's script for bench/versus.py: wrk -s bench/wrk/load.lua URL -- METHOD [BODIES TOKEN N SKIP]
-- GET: the URL as given. POST: each request a body of its own, from the file BODIES (one
-- JSON body a line; thread i of N sends lines SKIP+i, SKIP+i+N, …, so no two requests of a
-- run share one), with the bearer TOKEN.
-- At the end it prints one line, "WRK " and JSON: the answers by status, the requests, the
-- seconds, wrk's socket errors and timeouts, and latency percentiles in ms.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  bodies = {}
  next_body = 1
  if args[1] ~= "POST" then
    return
  end
  local n, skip, count = tonumber(args[4]), tonumber(args[5]), 0
  for line in io.lines(args[2]) do
    if count >= skip and (count - skip) % n == id then
      table.insert(bodies, line)
    end
    count = count + 1
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. args[3]
end

function request()
  local body = bodies[next_body]
  if body == nil then
    return wrk.format()
  end
  next_body = next_body + 1
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local by_status = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      by_status[tostring(status)] = (by_status[tostring(status)] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(by_status) do
    table.insert(parts, string.format('"%s": %d', status, count))
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK {"statuses": {%s}, "requests": %d, "seconds": %.6f, "errors": %d, ' ..
    '"p50_ms": %.3f, "p99_ms": %.3f}\n',
    table.concat(parts, ", "), summary.requests, summary.duration / 1e6,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
