-- Analyze one photo and print its scores (blocking).
--
--   YOUCAM_API_KEY=... lua5.4 examples/lua/analyze.lua face.jpg [action...]
--   SKINANALYSIS_BASE_URL=http://127.0.0.1:PORT YOUCAM_API_KEY=emulator-key ...   (emulator)
local sa = require "skinanalysis"

local image = arg[1] or error("usage: analyze.lua IMAGE [ACTION...]")
local actions = #arg > 1 and { table.unpack(arg, 2) } or nil -- nil: all 16 SD

local client <close> = assert(sa.client{})
local units, err, code = sa.cost(actions or sa.actions("sd"))
if not units then error(code .. ": " .. err) end
print(string.format("analyzing %s (%d units on success)", image, units))

local result
result, err, code = client:analyze(image, { actions = actions, timeout = 120 })
if not result then
  io.stderr:write(string.format("failed (%s): %s\n", code, err))
  os.exit(1)
end
print(string.format("task %s  overall %s  skin age %s", result.task_id,
                    tostring(result.overall), tostring(result.skin_age)))
for _, s in ipairs(result.scores) do
  if s.skin_type then
    print(string.format("  %-22s %-9s %s", s.concern, s.region, s.skin_type))
  else
    print(string.format("  %-22s %-9s ui %3s  raw %6.2f", s.concern, s.region,
                        tostring(s.ui_score), s.raw_score or 0))
  end
end
