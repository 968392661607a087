-- Metric ingest: batches of BATCH samples, each node's sequence numbers increasing; every thread owns
-- a disjoint slice of nodes so a node's batches arrive in order, as the agent's outbox sends them.
local creds = {}
for line in io.lines(os.getenv("NODES")) do
  creds[#creds + 1] = "Bearer " .. line:match("^(%S+)")
end
local BATCH = tonumber(os.getenv("BATCH") or "50")
local threads = {}
local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end
function init(args)
  mine = {}
  local total = tonumber(os.getenv("THREADS"))
  for k = tid, #creds, total do mine[#mine + 1] = k end
  seqs = {}
  j = 0
  statuses = {}
  ts = os.date("!%Y-%m-%dT%H:%M:%SZ")
end
function request()
  j = j % #mine + 1
  local k = mine[j]
  local seq = seqs[k] or 0
  local items = {}
  for s = 1, BATCH do
    items[s] = string.format('{"seq":%d,"ts":"%s","name":"latency_ms","value":%d.5}', seq + s, ts, s)
  end
  seqs[k] = seq + BATCH
  local body = '{"samples":[' .. table.concat(items, ",") .. ']}'
  return wrk.format("POST", "/api/node/v1/metrics",
    { ["Authorization"] = creds[k], ["Content-Type"] = "application/json" }, body)
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
