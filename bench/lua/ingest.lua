-- Metric ingest: batches of BATCH samples, each node's sequence numbers increasing; every thread owns
-- a disjoint slice of nodes so a node's batches arrive in order, as the agent's outbox sends them.
dofile(os.getenv("LUA_DIR") .. "/report.lua")
local creds = {}
for line in io.lines(os.getenv("NODES")) do
  creds[#creds + 1] = "Bearer " .. line:match("^(%S+)")
end
local BATCH = tonumber(os.getenv("BATCH") or "50")
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
