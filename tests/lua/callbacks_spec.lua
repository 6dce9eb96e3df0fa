-- Lua callbacks run after the core call returns, under lua_pcall; the
-- first error is re-raised by the method that delivered it (step, run,
-- wait), the job still ends, later events stay queued.
local sa = require "skinanalysis"
local spec = require "helpers.spec"

local SD_JPG = spec.SD_JPG

-- Step until cond() is true; errors raised by step are collected.
local function step_until(c, cond, errors)
  local deadline = sa.now() + 20
  while not cond() and sa.now() < deadline do
    local ok, err = pcall(c.step, c, 0.01)
    if not ok then errors[#errors + 1] = err end
  end
  assert.is_true(cond(), "timed out")
end

describe("callbacks", function()
  local emu = spec.emulator()

  it("a raising on_progress is re-raised by step(); the job still ends", function()
    local c <close> = emu:client()
    local done, calls = 0, 0
    local job = assert(c:submit(SD_JPG, {
      actions = { "pore" },
      on_progress = function(_, state)
        calls = calls + 1
        if state == "upload" then error("progress boom") end
      end,
      on_done = function() done = done + 1 end,
    }))
    local errors = {}
    step_until(c, function() return done > 0 end, errors)
    assert.equal(1, #errors)
    assert.matches("progress boom", errors[1])
    assert.equal(1, done)
    assert.equal("done", job:status())
    assert.is_truthy(job:result())
    assert.truthy(calls >= 4)
  end)

  it("a raising on_done is re-raised by wait() with its error object", function()
    local c <close> = emu:client()
    local token = setmetatable({}, { __tostring = function() return "token" end })
    local job = assert(c:submit(SD_JPG, { actions = { "pore" }, on_done = function() error(token) end }))
    local ok, err = pcall(job.wait, job, 10)
    assert.is_false(ok)
    assert.equal(token, err)
    -- the job has ended; waiting again returns its result without raising
    assert.is_true(job:done())
    assert.is_truthy(job:wait(1))
  end)

  it("events after a raising callback stay queued for the next call", function()
    local c <close> = emu:client()
    local seen = {}
    local jobs = {}
    for i = 1, 2 do
      jobs[i] = assert(c:submit(SD_JPG, {
        actions = { "pore" },
        on_done = function()
          seen[#seen + 1] = i
          error("done boom " .. i)
        end,
      }))
    end
    local errors = {}
    step_until(c, function() return #seen == 2 end, errors)
    assert.equal(2, #errors)
    assert.matches("done boom", errors[1])
    assert.matches("done boom", errors[2])
    assert.is_true(jobs[1]:done() and jobs[2]:done())
  end)

  it("run() re-raises too", function()
    local c <close> = emu:client()
    assert(c:submit(SD_JPG, { actions = { "pore" }, on_done = function() error("run boom") end }))
    local ok, err = pcall(c.run, c, 10)
    assert.is_false(ok)
    assert.matches("run boom", err)
    assert.is_true(c:run(10))
  end)

  it("a raising log function is re-raised by step()", function()
    local c <close> = emu:client{ log_level = "debug", log = function() error("log boom") end }
    local job = assert(c:submit(SD_JPG, { actions = { "pore" } }))
    local errors = {}
    step_until(c, function() return job:done() end, errors)
    assert.truthy(#errors >= 1)
    assert.matches("log boom", errors[1])
  end)

  it("callbacks may call back into the library", function()
    local c <close> = emu:client()
    local inner_result, second
    local job
    job = assert(c:submit(SD_JPG, {
      actions = { "pore" },
      on_done = function(j)
        assert.equal(job, j)
        inner_result = j:result()
        -- nested submit and blocking wait from inside a callback
        second = assert(c:submit(SD_JPG, { actions = { "acne" } }))
        assert.is_truthy(second:wait(10))
        j:close()
      end,
    }))
    assert.is_true(c:run(20))
    assert.is_truthy(inner_result:get("pore"))
    assert.is_truthy(second:result():get("acne"))
    assert.has_error(function() job:done() end) -- closed by its callback
  end)

  it("a callback may close the client", function()
    local c = emu:client()
    local job = assert(c:submit(SD_JPG, {
      actions = { "pore" },
      on_progress = function(_, state)
        if state == "task_create" then c:close() end
      end,
    }))
    spec.failure("cancelled", job:wait(10))
    assert.is_true(c:closed())
  end)

  it("a callback that yields gets an error, not a crash", function()
    local c <close> = emu:client()
    local job = assert(c:submit(SD_JPG, { actions = { "pore" }, on_done = function() coroutine.yield() end }))
    local co = coroutine.create(function() return job:wait(10) end)
    local ok, err = coroutine.resume(co)
    assert.is_false(ok)
    assert.matches("yield", err)
    assert.is_true(job:done())
  end)
end)
