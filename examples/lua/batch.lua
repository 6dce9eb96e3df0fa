-- Analyze several photos at once from a loop that never blocks, printing
-- progress -- the shape of a game's frame loop.
--
--   lua5.4 examples/lua/batch.lua a.jpg b.jpg c.png
local sa = require "skinanalysis"

assert(#arg > 0, "usage: batch.lua IMAGE...")
local client <close> = assert(sa.client{})
local jobs, state = {}, {}
for i, path in ipairs(arg) do
  local job, err, code = client:submit(path, {
    actions = { "wrinkle", "pore", "texture", "acne" },
    on_progress = function(_, name) state[i] = name end,
  })
  if job then jobs[i] = job else state[i] = "refused: " .. code .. " (" .. err .. ")" end
end

local frame = 0
while client:step() > 0 do -- one "frame": never blocks
  frame = frame + 1
  if frame % 20 == 0 then
    local line = {}
    for i = 1, #arg do line[#line + 1] = i .. ":" .. tostring(state[i]) end
    print(table.concat(line, "  "))
  end
  os.execute("sleep 0.05") -- the rest of the frame
end

for i, path in ipairs(arg) do
  local job = jobs[i]
  if job then
    local r, err, code = job:result()
    if r then
      print(string.format("%s: overall %.1f, pore %d", path, r.overall or -1, r:get("pore").ui_score))
    else
      print(string.format("%s: %s (%s)", path, code, err))
    end
  else
    print(path .. ": " .. state[i])
  end
end
