-- Straight-line code in coroutines: sa.await yields until a job ends while
-- the loop steps the client; the built-in scheduler; foreign schedulers.
local sa = require "skinanalysis"
local spec = require "helpers.spec"

local SD_JPG = spec.SD_JPG

describe("coroutines", function()
  local emu = spec.emulator()

  it("sa.spawn + sa.await + sa.run", function()
    local c <close> = emu:client()
    local out = {}
    for i, action in ipairs({ "pore", "acne", "wrinkle" }) do
      sa.spawn(function(a)
        local r, err, code = sa.await(c:submit(SD_JPG, { actions = { a } }))
        assert(r, err)
        out[i] = { a, r:get(a).ui_score, code }
      end, action)
    end
    assert.is_true(sa.run(c, 20))
    assert.equal(3, #out)
    for i, action in ipairs({ "pore", "acne", "wrinkle" }) do
      assert.equal(action, out[i][1])
      assert.is_number(out[i][2])
    end
  end)

  it("a frame loop: client:step() and sched:update() once per frame", function()
    local c <close> = emu:client()
    local sched = sa.scheduler()
    local log = {}
    sched:spawn(function()
      local job = assert(c:submit(SD_JPG, { actions = { "pore" } }))
      log[#log + 1] = "submitted"
      local r = sa.await(job)
      log[#log + 1] = r and "done" or "failed"
      -- a second analysis in the same straight-line code
      local r2, _, code2 = sa.await(c:submit(SD_JPG, { actions = { "wrinkles" } }))
      log[#log + 1] = r2 and "?" or code2
    end)
    local frames = 0
    while sched:count() > 0 and frames < 5000 do
      c:step()
      sched:update()
      frames = frames + 1
      os.execute("sleep 0.005")
    end
    assert.same({ "submitted", "done", "unknown_action" }, log)
    assert.truthy(frames > 2)
  end)

  it("await outside a coroutine blocks", function()
    local c <close> = emu:client()
    local r = sa.await(assert(c:submit(SD_JPG, { actions = { "pore" } })))
    assert.is_truthy(r:get("pore"))
  end)

  it("await in a foreign coroutine yields the job to the resumer", function()
    local c <close> = emu:client()
    local job = assert(c:submit(SD_JPG, { actions = { "pore" } }))
    local co = coroutine.create(function() return sa.await(job) end)
    local ok, yielded = coroutine.resume(co)
    assert.is_true(ok)
    assert.equal(job, yielded)
    local result
    for _ = 1, 2000 do
      c:step(0.01)
      local rok, r = coroutine.resume(co)
      assert.is_true(rok)
      if coroutine.status(co) == "dead" then result = r break end
    end
    assert.is_truthy(result:get("pore"))
  end)

  it("await_all and sleep", function()
    local c <close> = emu:client()
    local results
    local t0 = sa.now()
    sa.spawn(function()
      sa.sleep(0.1)
      results = sa.await_all{
        assert(c:submit(SD_JPG, { actions = { "pore" } })),
        assert(c:submit(SD_JPG, { actions = { "acne" } })),
      }
    end)
    assert.is_true(sa.run(c, 20))
    assert.truthy(sa.now() - t0 >= 0.1)
    assert.equal(2, #results)
    assert.is_truthy(results[1].result:get("pore"))
    assert.is_truthy(results[2].result:get("acne"))
  end)

  it("an error in a coroutine is raised by update() with its traceback", function()
    local c <close> = emu:client()
    local sched = sa.scheduler()
    local other_done = false
    sched:spawn(function() error("script bug") end)
    sched:spawn(function()
      sa.await(c:submit(SD_JPG, { actions = { "pore" } }))
      other_done = true
    end)
    local ok, err = pcall(sched.update, sched)
    assert.is_false(ok)
    assert.matches("script bug", err)
    assert.matches("traceback", err)
    assert.equal(1, sched:count())
    assert.is_true(sched:run(c, 20))
    assert.is_true(other_done)
  end)

  it("run() gives up after its timeout", function()
    local c <close> = emu:client()
    local sched = sa.scheduler()
    sched:spawn(function() sa.sleep(30) end)
    local ok, msg, code = sched:run(c, 0.1)
    assert.is_nil(ok)
    assert.is_string(msg)
    assert.equal("wait_timeout", code)
  end)
end)
