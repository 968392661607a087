-- Conditional desired-state polls, rotating through many nodes' credentials and current ETags.
-- Input file (env NODES): one "credential etag" per line.
local nodes = {}
for line in io.lines(os.getenv("NODES")) do
  local cred, etag = line:match("^(%S+) (.+)$")
  nodes[#nodes + 1] = { "Bearer " .. cred, etag }
end
local threads = {}
local id = 0
function setup(thread)
  id = id + 1
  thread:set("tid", id)
  table.insert(threads, thread)
end
function init(args)
  i = tid * 7919 % #nodes
  statuses = {}
end
function request()
  i = i % #nodes + 1
  local n = nodes[i]
  return wrk.format("GET", "/api/node/v1/desired-state", { ["Authorization"] = n[1], ["If-None-Match"] = n[2] })
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local counts = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do counts[k] = (counts[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(counts) do parts[#parts + 1] = string.format('"%d": %d', k, v) end
  io.write(string.format('RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status,
    table.concat(parts, ", ")))
end
