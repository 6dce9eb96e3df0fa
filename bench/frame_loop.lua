-- frame_loop.lua: cost of client:step() in a frame loop (bench/run part 4).
--   lua5.4 frame_loop.lua BASE_URL IMAGE FRAMES INFLIGHT PACE_S [POLL_S]
-- Keeps INFLIGHT analyses running (a finished one is replaced at once, in
-- the loop, outside the timed call), calls client:step() once per frame,
-- and sleeps PACE_S between frames (a frame loop that also renders; 0: no
-- sleep).  Each call is timed with os.clock() (process CPU time,
-- microsecond resolution; sa.now() only has millisecond resolution, and
-- step() never blocks, so its CPU time is its duration).  POLL_S sets the
-- client's poll interval (default: the client's own, 2 s or what the
-- server asks).  The on_done callback reads job:ok() only, as a game that
-- counts outcomes would.  Prints one JSON line.
local sa = require "skinanalysis"

local base, image = arg[1], arg[2]
local frames, inflight = tonumber(arg[3]), tonumber(arg[4])
local pace, poll = tonumber(arg[5] or "0"), tonumber(arg[6] or "")

local client = assert(sa.client{ api_key = "emulator-key", base_url = base,
                                 rate_limit = false, max_connections = inflight,
                                 poll_interval = poll })
local running, done, failed = 0, 0, 0
local function submit()
  assert(client:submit(image, { on_done = function(job)
    running = running - 1
    if job:ok() then done = done + 1 else failed = failed + 1 end
    job:close()
  end }))
  running = running + 1
end
for _ = 1, inflight do submit() end

local times = {}
local now, sleep = os.clock, sa.core.sleep
local t_start = sa.now()
for f = 1, frames do
  local t0 = now()
  client:step()
  times[f] = now() - t0
  while running < inflight do submit() end
  if pace > 0 then sleep(pace) end
end
local wall = sa.now() - t_start  -- seconds
table.sort(times)
local function us(x) return x * 1e6 end
print(string.format('{"frames": %d, "done": %d, "failed": %d, "wall_s": %.2f, '
  .. '"median_us": %.2f, "p99_us": %.2f, "max_us": %.2f}', frames, done, failed, wall,
  us(times[frames // 2 + 1]), us(times[math.ceil(frames * 0.99)]), us(times[frames])))
client:run(30)
client:close()
