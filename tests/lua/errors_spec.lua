-- Every runtime failure comes back as nil, message, code with a stable
-- code name, from analyze(), job:wait() and job:result() alike.
local sa = require "skinanalysis"
local emulator = require "helpers.emulator"
local spec = require "helpers.spec"

local SD_JPG = spec.SD_JPG

describe("runtime failures", function()
  local emu = spec.emulator()

  after_each(function()
    emu:clear_scenario()
    emu:control("POST", "/_control/units", { key = emu.key, units = 100000 })
  end)

  -- code, then client options, analysis options, and the fault of a
  -- scenario or a setup(emu)
  local cases = {
    { "auth", client = { api_key = "wrong-key" } },
    { "credits", setup = function(e)
        e:control("POST", "/_control/units", { key = e.key, units = 3 })
      end },
    { "engine", setup = function(e)
        e:control("POST", "/_control/engine_error/next", { code = "error_no_face" })
      end },
    { "task_expired", fault = { endpoint = "task_status", fault = "invalid_task_id" } },
    { "task_timeout", fault = { endpoint = "task_status", fault = "task_timeout_500" } },
    { "server", client = { max_retries = 1 },
      fault = { endpoint = "file_create", fault = "http_503" } },
    { "rate_limited", client = { max_retries = 1 },
      fault = { endpoint = "file_create", fault = "http_429" } },
    { "ambiguous", fault = { endpoint = "task_create", fault = "close_mid_response" } },
    { "protocol", client = { max_retries = 1 },
      fault = { endpoint = "file_create", fault = "malformed_json" } },
    -- (an oversized status answer is a failed poll, polled again without a
    -- budget: the limit is final on the file slot, and max_polls when set)
    { "limit", client = { max_body_bytes = 65536, max_retries = 0 },
      fault = { endpoint = "file_create", fault = "oversized_body", size_bytes = 1000000 } },
    { "limit", client = { max_polls = 2 }, fault = { endpoint = "task_status", fault = "http_503" } },
    { "timeout", client = { request_timeout = 0.3, max_retries = 0 },
      fault = { endpoint = "file_create", fault = "delay", delay_ms = 3000 } },
    { "deadline", analyze = { deadline = 0.5 },
      fault = { endpoint = "task_status", fault = "delay", delay_ms = 800 } },
    { "bad_request", analyze = { file_id = "bm8tc3VjaC1maWxl", actions = { "pore" } } },
  }

  for _, case in ipairs(cases) do
    local code, aopts = case[1], case.analyze
    it(code, function()
      if case.fault then emu:scenario{ case.fault } end
      if case.setup then case.setup(emu) end
      local c <close> = emu:client(case.client)
      local image = SD_JPG
      if aopts and (aopts.file_id or aopts.url) then image = nil end
      local r, msg, got = c:analyze(image, aopts)
      spec.failure(code, r, msg, got)
      assert.not_matches(emu.key, msg, 1, true)
    end)
  end

  it("engine failures carry the engine code", function()
    emu:control("POST", "/_control/engine_error/next", { code = "error_src_face_too_small" })
    local c <close> = emu:client()
    local job = assert(c:submit(SD_JPG))
    spec.failure("engine", job:wait(10))
    local state, code, msg = job:status()
    assert.equal("failed", state)
    assert.equal("engine", code)
    assert.is_string(msg)
    local info = job:info()
    assert.equal("error_src_face_too_small", info.engine_error)
    assert.equal("engine", info.code)
    spec.failure("engine", job:result())
  end)

  it("auth failures never show the key", function()
    local c <close> = emu:client{ api_key = "sekrit-wrong-key" }
    local job = assert(c:submit(SD_JPG))
    local r, msg, code = job:wait(10)
    spec.failure("auth", r, msg, code)
    assert.not_matches("sekrit", msg)
    assert.equal(401, job:info().http_status)
    assert.not_matches("sekrit", tostring(job))
    assert.not_matches("sekrit", tostring(c))
  end)

  it("transport: nothing listens", function()
    local port = emulator.closed_port()
    local c <close> = emu:client{ base_url = "http://127.0.0.1:" .. port, max_retries = 0,
                                  connect_timeout = 1 }
    spec.failure("transport", c:analyze(SD_JPG))
  end)

  it("upload: the storage refuses an expired URL", function()
    local e = emulator.start{ "--task-seconds", "0.2", "--rate-limit", "off", "--upload-ttl", "0" }
    local ok, err = pcall(function()
      local c <close> = e:client{ max_retries = 0 }
      spec.failure("upload", c:analyze(SD_JPG))
    end)
    e:stop()
    assert(ok, err)
  end)

  it("wait_timeout leaves the job running", function()
    local c <close> = emu:client()
    local job = assert(c:submit(SD_JPG))
    spec.failure("wait_timeout", job:wait(0.01))
    assert.is_false(job:done())
    assert.is_truthy(job:wait(10))
  end)

  it("interrupted: SIGINT ends a blocking wait of the standalone interpreter", function()
    local e = emulator.start{ "--task-seconds", "30", "--rate-limit", "off" }
    local script = ([[
      local sa = require "skinanalysis"
      local c = assert(sa.client{ api_key = %q, base_url = %q, poll_interval = 0.1 })
      local job = assert(c:submit(%q, { actions = { "pore" } }))
      io.write("waiting\n") io.flush()
      local t0 = sa.now()
      local ok, err = pcall(function() return job:wait(20) end)
      io.write(string.format("%%s %%.1f\n", tostring(err), sa.now() - t0))
    ]]):format(e.key, e.url, SD_JPG)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(script)
    f:close()
    -- SIGINT once the emulator has seen a status poll: the script is inside
    -- job:wait (its client drives only there), however slow the machine
    local outpath = os.tmpname()
    local p = assert(io.popen("lua5.4 " .. emulator.quote(path) .. " > " ..
                              emulator.quote(outpath) .. " 2>&1 & echo $!", "r"))
    local pid = assert(tonumber(p:read("l")))
    p:close()
    local function polled()
      local n = (e:counters().requests or {}).task_status
      return n and n >= 1
    end
    local deadline = sa.now() + 30
    while not polled() and sa.now() < deadline do sa.core.sleep(0.05) end
    os.execute("kill -INT " .. pid)
    local function finished()    -- two lines written, or the process gone
      local text = emulator.read(outpath)
      return select(2, text:gsub("\n", "")) >= 2
          or not os.execute("kill -0 " .. pid .. " 2>/dev/null")
    end
    deadline = sa.now() + 30
    while not finished() and sa.now() < deadline do sa.core.sleep(0.05) end
    local out = emulator.read(outpath)
    os.remove(outpath)
    os.remove(path)
    e:stop()
    assert.matches("waiting", out)
    -- the standalone interpreter's SIGINT hook fires as soon as the wait
    -- returns: "interrupted!" well before the 20 s timeout
    assert.matches("interrupted!", out)
    local secs = tonumber(out:match("interrupted![^\n]* ([%d%.]+)\n"))
    assert.is_number(secs)
    assert.truthy(secs < 5, out)
  end)
end)

-- A server that echoes the key: no message, code or field shows it.
describe("a server echoing the API key", function()
  local KEY = "sk-LUA-echo-5e4d3c2b1a09"
  local PIECE = "echo-5e4d3c"   -- not even part of it may show
  local emu = spec.emulator{ "--task-seconds", "0", "--rate-limit", "off", "--keys", KEY }

  after_each(function()
    emu:clear_scenario()
  end)

  -- every string reachable from v (tables walked), concatenated
  local function text_of(v, seen, out)
    seen, out = seen or {}, out or {}
    if type(v) == "table" then
      if seen[v] then return out end
      seen[v] = true
      for k, x in pairs(v) do
        text_of(k, seen, out)
        text_of(x, seen, out)
      end
    elseif v ~= nil then
      out[#out + 1] = tostring(v)
    end
    return out
  end

  local function assert_clean(...)
    local text = table.concat(text_of({ ... }), "\n")
    assert.is_nil(text:find(KEY, 1, true), text)
    assert.is_nil(text:find(PIECE, 1, true), text)
  end

  local pad = string.rep("x", 482)  -- the job message then cuts the key
  local cases = {
    { "auth", { { endpoint = "file_create", fault = "respond", status = 401,
                  body = { status = 401, error = "Invalid API key Bearer " .. KEY,
                           error_code = KEY },
                  headers = { ["x-request-id"] = "Bearer " .. KEY } } } },
    { "auth", { { endpoint = "file_create", fault = "respond", status = 401,
                  body = { status = 401, error = pad .. " " .. KEY } } } },
    -- a task that exists is polled through 500s: the deadline ends the job,
    -- its message says what the last poll met (scrubbed)
    { "deadline", { { endpoint = "task_status", fault = "respond", status = 500,
                      body = { status = 500, error = "upstream: Bearer " .. KEY,
                               error_code = "E" .. KEY },
                      headers = { ["x-request-id"] = KEY } } }, { deadline = 2 } },
    { "engine", { { endpoint = "task_create", fault = "engine_error", code = KEY,
                    message = "Bearer " .. KEY } } },
    { "upload", { { endpoint = "upload", fault = "respond", status = 403,
                    content_type = "application/xml",
                    body = "<Error><Code>" .. KEY .. "</Code><Message>Bearer " .. KEY ..
                           "</Message></Error>" } } },
  }

  for i, case in ipairs(cases) do
    it(case[1] .. " #" .. i, function()
      emu:scenario(case[2])
      local lines = {}
      local c <close> = emu:client{ api_key = KEY, max_retries = 1, log_level = "debug",
                                    log = function(_, m) lines[#lines + 1] = m end }
      local job = assert(c:submit(SD_JPG, case[3]))
      local r, msg, code = job:wait(10)
      spec.failure(case[1], r, msg, code)
      assert.matches("[REDACTED]", msg, 1, true)
      local state, scode, smsg = job:status()
      c:step()  -- deliver the log lines
      assert.is_true(#lines > 0)
      assert_clean(msg, code, state, scode, smsg, job:info(), tostring(job), lines)
      assert_clean(job:result())
    end)
  end

  it("in a result", function()
    emu:scenario{ { endpoint = "task_status", fault = "patch", set = {
      ["data.task_status"] = "success",
      ["data.results"] = { output = {
        { type = "pore " .. KEY, region = "Bearer " .. KEY, ui_score = 50,
          mask_urls = { "https://r.example/" .. KEY .. ".png" } },
        { type = "resize_image", mask_urls = { "https://r.example/x.jpg?k=" .. KEY } } } } } } }
    local c <close> = emu:client{ api_key = KEY }
    local result = assert(c:analyze(SD_JPG))
    assert_clean(result, result.json)
    assert.matches("[REDACTED]", result.scores[1].concern, 1, true)
  end)
end)
