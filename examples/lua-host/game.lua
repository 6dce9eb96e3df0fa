-- game.lua: a "game" that runs skin analyses while it draws frames.
--
--   lua_host --hz 60 --budget-ms 4 game.lua IMAGE [IMAGE...]
--
-- Environment: SKINANALYSIS_BASE_URL and YOUCAM_API_KEY (the emulator's
-- "emulator-key" when unset), GAME_ANALYSES (how many, default 6),
-- GAME_REPORT_EVERY (frames between status lines, default 30).
--
-- Every frame: client:step() (never blocks), resume the coroutines whose
-- analysis has ended, and now and then print a status line -- the text
-- version of a progress bar.  Each analysis is straight-line code in a
-- coroutine: submit, sa.await, read the scores.
local sa = require "skinanalysis"

local who = HOST and HOST.states > 1 and ("[state " .. HOST.state .. "] ") or ""
local images = {}
for i = 1, #arg do images[i] = arg[i] end
assert(#images > 0, "usage: game.lua IMAGE [IMAGE...]")
-- With several states, each one runs two more analyses than the one
-- before, so they finish (and are closed by the host) at different times.
local count = tonumber(os.getenv("GAME_ANALYSES") or "6") + 2 * ((HOST and HOST.state or 1) - 1)
local report_every = tonumber(os.getenv("GAME_REPORT_EVERY") or "30")

local client = assert(sa.client{
  api_key = os.getenv("YOUCAM_API_KEY") or "emulator-key",
  poll_interval = 0.25,
  backoff_initial = 0.05,
  backoff_max = 0.5,
})
local sched = sa.scheduler()
local state, outcome = {}, {}

local function read(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("a")
  f:close()
  return data
end

for i = 1, count do
  state[i] = "submit"
  sched:spawn(function()
    local image = images[(i - 1) % #images + 1]
    local opts = {
      actions = (i % 3 == 0) and { "wrinkle", "pore", "acne", "texture" } or nil, -- nil: all 16 SD
      on_progress = function(_, name) state[i] = name end,
    }
    local job, err, code
    if i % 2 == 0 then -- every other one uploads from memory
      opts.buffer = read(image)
      job, err, code = client:submit(nil, opts)
    else
      job, err, code = client:submit(image, opts)
    end
    local result
    result, err, code = sa.await(job, err, code)
    if result then
      local pore = result:get("pore")
      outcome[i] = string.format("ok overall=%.1f pore=%s", result.overall or -1,
                                 pore and pore.ui_score or "?")
    else
      outcome[i] = "FAILED " .. tostring(code) .. ": " .. tostring(err)
    end
    state[i] = result and "done" or "failed"
  end)
end

local function status_line(frame)
  local parts = {}
  for i = 1, count do parts[i] = i .. ":" .. state[i] end
  return string.format("%sframe %5d  %s", who, frame, table.concat(parts, " "))
end

function update(dt, frame) -- luacheck: ignore (global called by the host)
  local running, err, code = client:step()
  if running == nil then error("step failed: " .. tostring(code) .. ": " .. tostring(err)) end
  sched:update()
  if frame % report_every == 0 then print(status_line(frame)) end
  return sched:count() == 0
end

function finish() -- luacheck: ignore
  local ok = true
  for i = 1, count do
    print(string.format("%sanalysis %d: %s", who, i, tostring(outcome[i])))
    if not (outcome[i] or ""):match("^ok") then ok = false end
  end
  client:close()
  return ok
end
