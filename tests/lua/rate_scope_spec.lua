-- rate_limit_scope: the option, its environment variable, and "host" scope
-- shared by two Lua processes on one key against the emulator's real
-- per-second limit (5/s): no 429, every analysis done.
local sa = require "skinanalysis"
local emulator = require "helpers.emulator"

local SD_JPG = emulator.fixtures .. "/portrait_sd.jpg"

describe("rate_limit_scope", function()
  local emu

  -- The emulator's per-second window is 0.75 s (the clients keep 5 per
  -- 1.05 s): a starved emulator stamps the requests it handles late
  -- together (4 x 429 beside stress-ng on 2 cores), while two processes
  -- that did not share the budget would still send 10/s and meet 429s.
  lazy_setup(function()
    emu = emulator.start{ "--task-seconds", "0.2", "--rate-limit", "on",
                          "--rate-window-max", "2000", "--rate-qps-seconds", "0.75" }
  end)

  lazy_teardown(function()
    if emu then emu:stop() end
  end)

  it("takes host, process and redis://, and refuses anything else with a message", function()
    for _, scope in ipairs{ "host", "process", "redis://127.0.0.1:9", "redis://localhost:9/1" } do
      local c, err = sa.client(emu:client_options{ rate_limit_scope = scope })
      assert.is_not_nil(c, err)
      c:close()
    end
    for _, bad in ipairs{ "galaxy", "redis://", "redis://h:0", "redis://h:1/x" } do
      local c, msg, code = sa.client(emu:client_options{ rate_limit_scope = bad })
      assert.is_nil(c)
      assert.equal("invalid_argument", code)
      assert.matches("rate_limit_scope", msg)
    end
    local c, msg = sa.client(emu:client_options{ rate_limit_fleet_size = 0 })
    assert.is_nil(c)
    assert.matches("rate_limit_fleet_size", msg)
    local ok, err = pcall(sa.client, emu:client_options{ rate_limit_scope = 5 })
    assert.is_false(ok)
    assert.matches("rate_limit_scope", err)
  end)

  it("is shared by two processes on one key: no 429", function()
    local script = [[
      local sa = require "skinanalysis"
      local c = assert(sa.client{ api_key = arg[1], base_url = arg[2],
                                  rate_limit_scope = "host", poll_interval = 0.3,
                                  rate_window_max = 2000 })
      local jobs, ok = {}, 0
      for i = 1, 8 do jobs[i] = assert(c:submit(arg[3], { actions = { "pore" } })) end
      for i = 1, 8 do if jobs[i]:wait(120) then ok = ok + 1 end end
      c:close()
      print("ok " .. ok)
    ]]
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(script)
    f:close()
    local cmd = "lua5.4 " .. emulator.quote(path) .. " " .. emulator.quote(emu.key) .. " " ..
        emulator.quote(emu.url) .. " " .. emulator.quote(SD_JPG)
    local a = assert(io.popen(cmd, "r"))
    local b = assert(io.popen(cmd, "r"))
    local out_a, out_b = a:read("a"), b:read("a")
    a:close()
    b:close()
    os.remove(path)
    assert.matches("ok 8", out_a)
    assert.matches("ok 8", out_b)
    local status, counters = emu:control("GET", "/_control/counters")
    assert.equal(200, status)
    assert.equal(0, counters.responses_429)
  end)

  it("is read from SKINANALYSIS_RATE_LIMIT_SCOPE by skinanalysis.client", function()
    local cmd = "SKINANALYSIS_RATE_LIMIT_SCOPE=nowhere lua5.4 -e " .. emulator.quote(
        "local sa = require 'skinanalysis'; local c, m = sa.client{ api_key = 'k', " ..
        "base_url = 'http://127.0.0.1:9' }; print(c == nil, m)")
    local p = assert(io.popen(cmd, "r"))
    local out = p:read("a")
    p:close()
    assert.matches("^true", out)
    assert.matches("rate_limit_scope", out)
  end)
end)
