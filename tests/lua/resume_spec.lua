-- What a hostile or broken server cannot do (issue 12): a task is resumed
-- from its id (client:resume, client:resume_wait) and yields its result
-- with no second task; a storm of failed polls past the old retry budget
-- still ends with the result.
local sa = require "skinanalysis"
local spec = require "helpers.spec"

local SD_JPG = spec.SD_JPG

describe("resume", function()
  local emu = spec.emulator{ "--task-seconds", "0.3", "--rate-limit", "off" }

  before_each(function()
    emu:clear_scenario()
    emu:reset()
  end)

  -- A task created for SD_JPG and left unpolled (a process that died).
  local function abandoned_task()
    local c <close> = emu:client()
    return spec.abandoned_task_id(c, SD_JPG, { "pore", "wrinkle" })
  end

  local function count(log, endpoint)
    local n = 0
    for _, rec in ipairs(log) do
      if rec.endpoint == endpoint then n = n + 1 end
    end
    return n
  end

  it("resumes a task another client abandoned: its result, no new task", function()
    local id = abandoned_task()
    local before = #emu:log()
    local c <close> = emu:client()
    local job, err, code = c:resume(id)
    assert.is_nil(code, err)
    assert.equal(id, job:task_id())       -- known at once
    assert.equal(0, job:info().units)
    local r, werr, wcode = job:wait(20)
    assert.is_nil(wcode, werr)
    assert.equal(id, r.task_id)
    assert.is_table(r:get("pore"))
    assert.is_table(r:get("wrinkle"))
    assert.equal(1, emu:counters().tasks_created)
    local log = emu:log()
    local since = {}
    for i = before + 1, #log do since[#since + 1] = log[i] end
    assert.is_true(count(since, "task_status") >= 1)
    assert.equal(0, count(since, "task_create"))
    assert.equal(0, count(since, "file_create"))
    assert.equal(0, count(since, "upload"))
  end)

  it("resume_wait is the blocking form, with options", function()
    local id = abandoned_task()
    local before = #emu:log()
    local c <close> = emu:client()
    local events = {}
    local r, err, code = c:resume_wait(id, {
      version = "2.0", deadline = 30, timeout = 20,
      on_progress = function(_, state) events[#events + 1] = state end,
    })
    assert.is_nil(code, err)
    assert.equal(id, r.task_id)
    assert.is_table(r:get("pore"))
    assert.is_true(#events >= 1)
    local log, polls = emu:log(), 0
    for i = before + 1, #log do   -- the polls of the resumed job: v2.0
      assert.equal("task_status", log[i].endpoint)
      assert.matches("^/s2s/v2%.0/task/skin%-analysis/", log[i].path)
      polls = polls + 1
    end
    assert.is_true(polls >= 1)
    assert.equal(1, emu:counters().tasks_created)
  end)

  it("resumes a zip result", function()
    local c <close> = emu:client()
    local done = assert(c:analyze(spec.HD_JPG, { actions = { "hd_pore" }, format = "zip" }))
    local r, err, code = c:resume_wait(done.task_id)
    assert.is_nil(code, err)
    assert.equal("zip", r.format)
    assert.is_true(#r.files > 0)
    assert.equal(1, emu:counters().tasks_created)
  end)

  it("an unknown id ends task_expired", function()
    local c <close> = emu:client()
    assert.matches("no%-such%-task", spec.failure("task_expired", c:resume_wait("no-such-task")))
  end)

  it("refuses a bad id before anything is sent", function()
    local c <close> = emu:client()
    for _, bad in ipairs{ "", "a:b", "a!b", "a b", "a?b", "a\nb", "a\0b", "..", ("x"):rep(4097) } do
      local job, err, code = c:resume(bad)
      assert.is_nil(job)
      assert.equal("source", code, bad)
      assert.matches("task_id", err)
    end
    assert.equal(0, #emu:log())
    -- programmer errors raise
    assert.has_error(function() c:resume({}) end)
    assert.has_error(function() c:resume("abc", { format = "zip" }) end)
    assert.has_error(function() c:resume("abc", "opts") end)
    assert.has_error(function() c:resume_wait("abc", "opts") end)
  end)

  it("a storm of 503s past the old retry budget still ends with the result", function()
    emu:scenario{ { endpoint = "task_status", times = 25, fault = "http_503" } }
    local c <close> = emu:client()
    local r, err, code = c:analyze(SD_JPG, { actions = { "pore" }, timeout = 30 })
    assert.is_nil(code, err)
    assert.is_table(r:get("pore"))
    local counters = emu:counters()
    assert.equal(1, counters.tasks_created)
    assert.equal(25, counters.faults_applied.http_503)
  end)

  it("works with a coroutine and the stepping path", function()
    local id = abandoned_task()
    local c <close> = emu:client()
    local got
    local sched = sa.scheduler()
    sched:spawn(function()
      got = assert(sa.await(c:resume(id)))
    end)
    assert.is_true(sched:run(c, 20))
    assert.equal(id, got.task_id)
  end)
end)
