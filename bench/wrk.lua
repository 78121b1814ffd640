-- wrk script for the benchmark. The requests come from a file (BENCH_REQUESTS), one a
-- line: METHOD, a tab, the path, a tab, the JSON body (or nothing), then any headers,
-- each after a tab as "Name: value" (a token, an API key). Each thread picks
-- them at random (seeded per thread), so a run asks what real traffic asks: many ids,
-- slugs, cursors. done() prints one machine-readable line.
local requests = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(tonumber(seed) or 1)
  local handle = assert(io.open(os.getenv("BENCH_REQUESTS"), "rb"))
  for line in handle:lines() do
    local fields = {}
    for field in (line .. "\t"):gmatch("([^\t]*)\t") do
      fields[#fields + 1] = field
    end
    local method, path, body = fields[1], fields[2], fields[3]
    if method and path and body then
      local headers = {}
      if body == "" then
        body = nil
      else
        headers["Content-Type"] = "application/json"
      end
      for i = 4, #fields do
        local name, value = fields[i]:match("^([^:]+): (.*)$")
        if name then
          headers[name] = value
        end
      end
      requests[#requests + 1] = wrk.format(method, path, headers, body)
    end
  end
  handle:close()
end

function request()
  return requests[math.random(#requests)]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout,
    e.status, latency:percentile(50), latency:percentile(99), latency.max))
end
