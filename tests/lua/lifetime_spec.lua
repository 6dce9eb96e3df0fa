-- Handles: __close, idempotent close, __gc with live jobs, a job keeping
-- its client alive, a buffer kept alive until its job ends, closed
-- handles raising.
local spec = require "helpers.spec"

local SD_JPG = spec.SD_JPG

describe("lifetime", function()
  local emu = spec.emulator()

  it("<close> closes a client at the end of its scope, and close is idempotent", function()
    local outer
    do
      local c <close> = emu:client()
      outer = c
      assert.is_false(c:closed())
    end
    assert.is_true(outer:closed())
    outer:close()
    outer:close()
    assert.has_error(function() outer:step() end)
    assert.has_error(function() outer:submit(SD_JPG) end)
    assert.has_error(function() outer:run() end)
    assert.has_error(function() outer:active() end)
  end)

  it("<close> also runs when the scope ends with an error", function()
    local outer
    assert.error_matches(function()
      local c <close> = emu:client()
      outer = c
      error("boom")
    end, "boom")
    assert.is_true(outer:closed())
  end)

  it("<close> on a job releases it; a closed job raises", function()
    local c <close> = emu:client()
    local outer
    do
      local job <close> = assert(c:submit(SD_JPG, { actions = { "pore" } }))
      outer = job
      assert.is_truthy(job:wait(10))
    end
    assert.matches("closed", tostring(outer))
    outer:close()
    assert.has_error(function() outer:done() end)
    assert.has_error(function() outer:result() end)
    assert.has_error(function() outer:wait() end)
    assert.has_error(function() outer:cancel() end)
  end)

  it("a dropped job still ends and gets its on_done call", function()
    local c <close> = emu:client()
    local done = 0
    do
      assert(c:submit(SD_JPG, { actions = { "pore" },
                                on_done = function(job)
                                  assert.is_truthy(job:result())
                                  done = done + 1
                                end }))
    end
    spec.full_gc()
    assert.is_true(c:run(10))
    assert.equal(1, done)
  end)

  it("a job keeps its client alive", function()
    local job
    do
      local c = emu:client()
      job = assert(c:submit(SD_JPG, { actions = { "pore" } }))
    end
    spec.full_gc()
    assert.is_truthy(job:wait(10))
    assert.is_truthy(job:result():get("pore"))
  end)

  it("a buffer stays referenced until its job ends", function()
    local c <close> = emu:client()
    local before = emu:request_count()
    local png = spec.read(spec.PNG)
    local job
    do
      local copy = png:sub(1, -1) .. "" -- a new string, referenced only by the job
      job = assert(c:submit(nil, { buffer = copy, actions = { "pore" } }))
    end
    spec.full_gc()
    -- allocate and drop a lot, so a freed buffer would be overwritten
    for i = 1, 200 do local _ = string.rep(string.char(i % 256), #png) end
    spec.full_gc()
    assert.is_truthy(job:wait(10))
    local uploads = 0
    local log = emu:log()
    for i = before + 1, #log do
      if log[i].endpoint == "upload" then
        uploads = uploads + 1
        assert.equal(#png, log[i].body_size)
        assert.equal(200, log[i].status)
      end
    end
    assert.equal(1, uploads)
  end)

  it("collecting a client with running jobs does not crash", function()
    do
      local c = emu:client()
      for _ = 1, 3 do assert(c:submit(SD_JPG, { actions = { "pore" } })) end
      c:step()
    end
    spec.full_gc()
    -- and a new client works afterwards
    local c <close> = emu:client()
    assert.is_truthy(c:analyze(SD_JPG, { actions = { "pore" } }))
  end)

  it("closing a client ends its running jobs as cancelled and keeps ended ones", function()
    local c = emu:client()
    local finished = assert(c:submit(SD_JPG, { actions = { "pore" } }))
    assert.is_truthy(finished:wait(10))
    local running = assert(c:submit(SD_JPG, { actions = { "pore" } }))
    c:step()
    c:close()
    assert.is_true(running:done())
    local state, code, msg = running:status()
    assert.equal("cancelled", state)
    assert.equal("cancelled", code)
    assert.is_string(msg)
    local r, _, rcode = running:wait()
    assert.is_nil(r)
    assert.equal("cancelled", rcode)
    -- the ended job still answers from its cached end
    assert.equal("done", finished:status())
    assert.is_truthy(finished:result():get("pore"))
    assert.is_string(finished:info().task_id)
    running:close()
    running:close()
    finished:close()
  end)

  it("a result first read after its client closed is complete (built on first use)", function()
    local c = emu:client()
    local jobs, ended = {}, 0
    for i = 1, 3 do
      jobs[i] = assert(c:submit(SD_JPG, { actions = { "pore", "wrinkle" },
        on_done = function(job)
          assert.is_true(job:ok())  -- reads the state only
          ended = ended + 1
        end }))
    end
    assert.is_truthy(c:run(20))
    assert.equal(3, ended)
    c:close()
    spec.full_gc()
    for _, job in ipairs(jobs) do
      local r = assert(job:result())
      assert.is_truthy(r:get("pore"))
      assert.is_truthy(r:get("wrinkle"))
      assert.is_string(r.json)
      assert.equal(job:task_id(), r.task_id)
      assert.equal(r, job:result())  -- built once
      job:close()
    end
  end)

  it("a job closed while it runs leaves its task to the client", function()
    local c <close> = emu:client()
    local job = assert(c:submit(SD_JPG, { actions = { "pore" } }))
    local task_id = spec.task_id(c, job)
    assert.is_string(task_id)
    job:close()
    assert.is_true(c:run(10))
    local _, task = emu:control("GET", "/_control/task/" .. task_id)
    assert.equal("success", task.status)
  end)

  it("a log function receives redacted lines", function()
    local lines = {}
    local c <close> = emu:client{ log_level = "debug",
                                  log = function(level, msg) lines[#lines + 1] = level .. " " .. msg end }
    assert.is_truthy(c:analyze(SD_JPG, { actions = { "pore" } }))
    assert.truthy(#lines > 0)
    for _, line in ipairs(lines) do
      assert.matches("^%a+ ", line)
      assert.not_matches(emu.key, line, 1, true)
    end
    assert.equal(0, c:log_dropped())
  end)

  it("many clients and jobs created and dropped leave nothing behind", function()
    for _ = 1, 20 do
      local c = emu:client()
      for _ = 1, 3 do c:submit(SD_JPG, { actions = { "pore" } }) end
      if math.random() < 0.5 then c:close() end
    end
    spec.full_gc()
    local c <close> = emu:client()
    assert.is_truthy(c:analyze(SD_JPG, { actions = { "pore" } }))
  end)
end)
