-- Analyze one photo, save its masks and write one overview PNG; a frame
-- loop downloads the masks of a JSON result without blocking.
--
--   YOUCAM_API_KEY=... lua5.4 examples/lua/masks.lua face.jpg OUT_FOLDER [action...]
--   SKINANALYSIS_BASE_URL=http://127.0.0.1:PORT YOUCAM_API_KEY=emulator-key ...   (emulator)
local sa = require "skinanalysis"

local image = arg[1] or error("usage: masks.lua IMAGE OUT_FOLDER [ACTION...]")
local folder = arg[2] or error("usage: masks.lua IMAGE OUT_FOLDER [ACTION...]")
local actions = #arg > 2 and { table.unpack(arg, 3) } or { "pore", "wrinkle", "acne" }

local client <close> = assert(sa.client{})

local function die(what, err, code)
  io.stderr:write(string.format("%s failed (%s): %s\n", what, code, err))
  os.exit(1)
end

-- 1. A ZIP result arrives with its masks in result.files.
local result, err, code = client:analyze(image, { actions = actions, format = "zip", timeout = 120 })
if not result then die("analysis", err, code) end
for _, f in ipairs(result.files) do
  print(string.format("  %-36s %-4s %7d bytes", f.name, f.format or "?", #f.data))
end
local paths
paths, err, code = result:save_masks(folder)
if not paths then die("save_masks", err, code) end
print(string.format("%d masks written to %s", #paths, folder))
local out
out, err, code = result:composite(image, folder .. "/overview.png")
if not out then die("composite", err, code) end
print("overview: " .. out)

-- 2. A JSON result carries mask URLs: download them while a frame loop runs.
local job = assert(client:submit(image, { actions = actions }))
assert(job:wait(120))
local fetch = assert(client:fetch_masks(job, folder))
local frames = 0
while not fetch:done() do      -- stands for the engine's update(dt)
  client:step()
  frames = frames + 1
  sa.core.sleep(1 / 60)
end
local fetched
fetched, err, code = fetch:result()
if not fetched then die("fetch_masks", err, code) end
print(string.format("%d files downloaded in %d frames", #fetched.files, frames))
