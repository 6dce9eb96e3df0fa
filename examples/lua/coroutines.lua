-- Straight-line code in coroutines: each analysis reads like a blocking
-- call, yet all of them run at once on one client.
--
--   lua5.4 examples/lua/coroutines.lua a.jpg b.jpg
local sa = require "skinanalysis"

assert(#arg > 0, "usage: coroutines.lua IMAGE...")
local client <close> = assert(sa.client{})

for _, path in ipairs(arg) do
  sa.spawn(function()
    local r, err, code = sa.await(client:submit(path, { actions = { "moisture", "redness" } }))
    if not r then
      print(path .. ": " .. code .. " (" .. err .. ")")
      return
    end
    print(string.format("%s: moisture %d, redness %d", path,
                        r:get("moisture").ui_score, r:get("redness").ui_score))
  end)
end

-- Scripts without a loop of their own: step the client and resume the
-- coroutines until all have finished.  A game would instead call
-- client:step() and sa.update() once per frame.
assert(sa.run(client, 300))
