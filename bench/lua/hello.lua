-- The bare endpoint: the same server and middleware stack with no application work.
dofile(os.getenv("LUA_DIR") .. "/report.lua")
function init(args) statuses = {} end
function request() return wrk.format("GET", "/healthz") end
