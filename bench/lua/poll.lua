-- Conditional desired-state polls, rotating through many nodes' credentials and current ETags.
-- Input file (env NODES): one "credential etag group" per line.
dofile(os.getenv("LUA_DIR") .. "/report.lua")
local nodes = {}
for line in io.lines(os.getenv("NODES")) do
  local cred, etag = line:match("^(%S+) (%S+)")
  nodes[#nodes + 1] = { "Bearer " .. cred, etag }
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
