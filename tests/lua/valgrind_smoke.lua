-- A representative run of the Lua binding for valgrind (tests/lua/run.sh):
-- blocking and stepping paths, every handle's close/__close/__gc, queued
-- callbacks that raise, validation and server errors, results, zip
-- results, mask downloads and composites, webhooks, the coroutine
-- scheduler, and a client collected with jobs still running.
-- Plain Lua (no busted), so valgrind sees only the interpreter, the module,
-- libcurl and OpenSSL.  Exits non-zero on the first failed check.
package.path = (os.getenv("SA_REPO") or ".") .. "/tests/lua/?.lua;" .. package.path
local sa = require "skinanalysis"
local emulator = require "helpers.emulator"

local SD_JPG = emulator.fixtures .. "/portrait_sd.jpg"
local PNG = emulator.fixtures .. "/portrait.png"
local emu = emulator.start{ "--task-seconds", "0.2", "--rate-limit", "off" }
local checks = 0

local function check(cond, what)
  checks = checks + 1
  if not cond then
    emu:stop()
    error("check failed: " .. what, 2)
  end
end

local ok, err = pcall(function()
  -- blocking, path and buffer sources
  do
    local c <close> = emu:client()
    local r = c:analyze(SD_JPG)
    check(r and r:get("pore") and r:get("skin_type").skin_type, "analyze path")
    r = c:analyze(nil, { buffer = emulator.read(PNG), actions = { "acne" }, format = "zip" })
    check(r and r:get("acne") and #r.files == 1, "analyze buffer zip")
    local _, _, code = c:analyze(SD_JPG, { actions = { "wrinkles" } })
    check(code == "unknown_action", "validation")
    _, _, code = c:analyze(SD_JPG, { miniserver_args = { nope = 1 } })
    check(code == "bad_option", "miniserver_args")
  end

  -- stepping with callbacks, one of which raises
  do
    local c <close> = emu:client{ log_level = "debug", log = function() end }
    local done, raised = 0, 0
    for i = 1, 4 do
      assert(c:submit(SD_JPG, {
        actions = { "pore", "wrinkle" },
        on_progress = function(_, state) if i == 2 and state == "upload" then error("boom") end end,
        on_done = function() done = done + 1 end,
      }))
    end
    local deadline = sa.now() + 20
    while done < 4 and sa.now() < deadline do
      local okstep = pcall(c.step, c, 0.01)
      if not okstep then raised = raised + 1 end
    end
    check(done == 4 and raised == 1, "stepping with callbacks")
  end

  -- server-side failures
  do
    local c <close> = emu:client{ api_key = "wrong" }
    local _, _, code = c:analyze(SD_JPG)
    check(code == "auth", "auth")
    emu:control("POST", "/_control/engine_error/next", { code = "error_no_face" })
    local c2 <close> = emu:client()
    local job <close> = assert(c2:submit(SD_JPG))
    local _, _, ecode = job:wait(10)
    check(ecode == "engine" and job:info().engine_error == "error_no_face", "engine")
  end

  -- lifetimes: dropped jobs, a job keeping its client, close twice,
  -- a client closed with running jobs, a client collected with running jobs
  do
    local c = emu:client()
    local finished = 0
    for _ = 1, 2 do
      c:submit(nil, { buffer = emulator.read(PNG):sub(1, -1), actions = { "pore" },
                      on_done = function() finished = finished + 1 end })
    end
    collectgarbage() collectgarbage()
    check(c:run(10) and finished == 2, "dropped jobs end")
    local job = assert(c:submit(SD_JPG, { actions = { "pore" } }))
    c = nil -- luacheck: ignore
    collectgarbage() collectgarbage()
    check(job:wait(10), "job keeps client")
    job:close() job:close()

    local c3 = emu:client()
    local running = assert(c3:submit(SD_JPG))
    c3:step()
    c3:close() c3:close()
    check(select(2, running:status()) == "cancelled", "close cancels")

    local c4 = emu:client()
    for _ = 1, 3 do c4:submit(SD_JPG, { actions = { "pore" } }) end
    c4:step()
    c4 = nil -- luacheck: ignore
    collectgarbage() collectgarbage()
  end

  -- coroutines
  do
    local c <close> = emu:client()
    local got = 0
    for _, a in ipairs({ "pore", "acne" }) do
      sa.spawn(function()
        local r = sa.await(c:submit(SD_JPG, { actions = { a } }))
        if r and r:get(a) then got = got + 1 end
      end)
    end
    check(sa.run(c, 20) and got == 2, "coroutines")
  end

  -- zip results, masks, composites, notify
  do
    local dir = io.popen("mktemp -d"):read("l")
    local c <close> = emu:client()
    local z = c:analyze(SD_JPG, { actions = { "pore", "acne" }, format = "zip" })
    check(z and #z.files == 2 and z:file(z:get("pore").mask_name), "zip files")
    local r = c:analyze(SD_JPG, { actions = { "pore" } })
    local paths = r and r:save_masks(dir)
    check(paths and #paths == 2, "save_masks json")
    check(z:composite(SD_JPG, dir .. "/o.png") == dir .. "/o.png", "composite")
    local job = assert(c:submit(SD_JPG, { actions = { "wrinkle" } }))
    check(c:notify(job:task_id() or "none") >= 0, "notify")
    assert(job:wait(10))
    local fetch = assert(c:fetch_masks(job, dir))
    local deadline = sa.now() + 10
    while not fetch:done() and sa.now() < deadline do c:step(0.01) end
    check(fetch:result() and #fetch:result().files == 2, "fetch_masks")
    local dropped = assert(c:fetch_masks(job))
    c:step()
    dropped:close()
    -- a fetch whose job and result are collected while it runs (it used to
    -- read the freed job in lsa_job_event)
    local src = assert(c:submit(SD_JPG, { actions = { "pore" } }))
    local res = assert(src:wait(10))
    local f = assert(c:fetch_masks(src))
    src, res = nil, nil   -- luacheck: ignore
    collectgarbage() collectgarbage()
    deadline = sa.now() + 10
    while not f:done() and sa.now() < deadline do c:step(0.05) end
    check(f:result() and #f:result().files == 2, "fetch outliving its job")
    os.execute("rm -rf '" .. dir .. "'")
  end

  -- webhooks
  do
    local body = '{"created_at": 1, "data": {"task_id": "t", "task_status": "success"}}'
    local secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    local p = io.popen("python3 '" .. emulator.repo .. "/tests/lua/helpers/receiver.py' sign " ..
                       secret .. " m 100 '" .. body .. "'")
    local headers = { ["Webhook-Id"] = "m", ["webhook-timestamp"] = "100", ["webhook-signature"] = p:read("l") }
    p:close()
    local d = sa.verify_webhook(secret, headers, body, { now = 100 })
    check(d and d.task_id == "t", "verify_webhook")
    local _, _, code = sa.verify_webhook(secret, headers, body .. " ", { now = 100 })
    check(code == "webhook_signature", "forged webhook")
  end

  -- results without a server
  local r = sa.parse_result(emulator.read(emulator.fixtures ..
                                          "/spec/examples/task-status-success-json-hd.json"))
  check(r and r:get("pore", "nose"), "parse_result")
  check(sa.cost(sa.actions("hd")) == 22, "cost")
end)
emu:stop()
if not ok then error(err, 0) end
collectgarbage()
print("valgrind_smoke: " .. checks .. " checks passed")
