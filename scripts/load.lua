-- The original's load test shape, for wrk (scripts/load.sh runs it):
-- 1000 lists, list_1 .. list_1000; a random day of December 2013;
-- 80% GET /entries, 20% POST /add_entry. With TODO_TOKEN set in the
-- environment, every request sends it as Authorization: Bearer.

local threads = 0

local token = os.getenv("TODO_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

function init(args)
  -- Each thread draws its own sequence.
  math.randomseed(os.time() * 1000 + (seed or 0) * 7919)
end

function request()
  local query = "list=list_" .. math.random(1, 1000) .. string.format("&date=201312%02d", math.random(1, 31))
  if math.random(1, 10) <= 8 then
    return wrk.format("GET", "/entries?" .. query)
  end
  return wrk.format("POST", "/add_entry?" .. query .. "&title=Dentist")
end
