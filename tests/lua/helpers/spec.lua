-- The set-up every spec shares: one emulator per describe block, the
-- fixture images, temporary folders, stepping a client until a condition
-- holds, the check of a runtime failure and a full collection.
--
--   local spec = require "helpers.spec"
--   describe("things", function()
--     local emu = spec.emulator()                    -- default flags
--     local slow = spec.emulator{ "--task-seconds", "60" }
--     it("...", function() local c <close> = emu:client() ... end)
--   end)
--
-- flags: the emulator's command-line flags (default DEFAULT_FLAGS), or a
-- function that returns them when the block starts (after the block's
-- earlier lazy_setup functions: a port they opened, a file they wrote).
-- spec.emulator must be called inside a describe block: it registers a
-- lazy_setup that starts the emulator before the block's first test and
-- a lazy_teardown that stops it after its last.  What it returns stands
-- for the emulator (fields and methods: emu.url, emu:client(), ...) once
-- the block runs.
local busted = require "busted"
local assert = require "luassert"
local sa = require "skinanalysis"
local emulator = require "helpers.emulator"

local M = {
  emulator_module = emulator,
  repo = emulator.repo,
  fixtures = emulator.fixtures,
  quote = emulator.quote,
  read = emulator.read,
  SD_JPG = emulator.fixtures .. "/portrait_sd.jpg",
  HD_JPG = emulator.fixtures .. "/portrait_hd.jpg",
  PNG = emulator.fixtures .. "/portrait.png",
  PNG_SIG = "\137PNG\r\n\26\n",
  -- what most specs start: short tasks, no rate limit
  DEFAULT_FLAGS = { "--task-seconds", "0.2", "--rate-limit", "off" },
}

function M.emulator(flags)
  local box = {}
  local handle = {}
  setmetatable(handle, {
    __index = function(_, k)
      local emu = box.emu
      assert(emu, "the emulator runs only inside the describe block's tests")
      local v = emu[k]
      if type(v) == "function" then
        return function(self, ...)
          if self == handle then self = emu end
          return v(self, ...)
        end
      end
      return v
    end,
    __newindex = function(_, k, v) box.emu[k] = v end,
  })
  busted.lazy_setup(function()
    local f = flags
    if type(f) == "function" then f = f() end
    box.emu = emulator.start(f or M.DEFAULT_FLAGS)
  end)
  busted.lazy_teardown(function()
    if box.emu then box.emu:stop() end
    box.emu = nil
  end)
  return handle
end

function M.rmdir(dir)
  os.execute("rm -rf " .. emulator.quote(dir))
end

-- A new empty folder (mktemp -d), and a to-be-closed value that removes
-- it: `local dir, _ <close> = spec.tmpdir()` keeps the folder until the
-- end of the test (an error included).
function M.tmpdir()
  local p = assert(io.popen("mktemp -d"))
  local dir = p:read("l")
  p:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  return dir, setmetatable({}, { __close = function() M.rmdir(dir) end })
end

-- Step client c (c:step(slice), slice 0.01 s by default) until cond()
-- returns true or `seconds` (default 10) have passed; returns cond()'s
-- last value.
function M.step_until(c, cond, seconds, slice)
  local deadline = sa.now() + (seconds or 10)
  local v = cond()
  while not v and sa.now() < deadline do
    c:step(slice or 0.01)
    v = cond()
  end
  return v
end

-- Step client c until job has a task id (it created its task); the id.
function M.task_id(c, job)
  local id = M.step_until(c, function() return job:task_id() end)
  assert(id, "the job created no task")
  return id
end

-- A task created on client c for image with actions and left unpolled
-- (a process that died): its id, for resume or delete.
function M.abandoned_task_id(c, image, actions)
  local job = assert(c:submit(image, { actions = actions }))
  local id = M.task_id(c, job)
  job:abandon()
  return id
end

-- A runtime failure r, msg, got (nil, message, code) with code `code`: r
-- is nil and msg a message; returns msg.
function M.failure(code, r, msg, got)
  assert.is_nil(r)
  assert.is_string(msg)
  assert.not_equal("", msg)
  assert.equal(code, got, msg)
  return msg
end

-- Full collections, three times: finalizers that free more run later.
function M.full_gc()
  for _ = 1, 3 do collectgarbage("collect") end
end

return M
