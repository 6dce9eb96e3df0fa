-- The game-engine proof: examples/lua-host/lua_host runs game.lua at 60 Hz
-- against the emulator with added latency and faults.  Every analysis
-- must complete, and no frame's script time may exceed the budget.
--
-- Budget: 4 ms of script time per frame (a quarter of a 60 Hz frame),
-- which includes client:step() -- the network work -- and the
-- coroutine scheduler.  With a sanitized build (run.sh preloads ASan) the
-- budget is 12 ms: ASan and UBSan make the code 2-3 times slower.
local emulator = require "helpers.emulator"
local spec = require "helpers.spec"
local json = require "dkjson"

local sanitized = (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) ~= nil
local BUDGET_MS = sanitized and 12 or 4
local build = os.getenv("SA_BUILD_DIR") or (emulator.repo .. "/build")
local host = build .. "/examples/lua-host/lua_host"
local game = emulator.repo .. "/examples/lua-host/game.lua"
local images = emulator.quote(emulator.fixtures .. "/portrait_sd.jpg") .. " " ..
    emulator.quote(emulator.fixtures .. "/portrait.png")

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Latency on every third request, and transient faults the client must
-- ride out (retries with backoff): a 503 on a file slot, a 500 on an
-- upload, 502s and a dropped connection on status polls.
local SCENARIO = {
  faults = {
    { endpoint = "file_create", nth = { 2 }, fault = "http_503" },
    { endpoint = "upload", nth = { 3 }, fault = "http_500_html" },
    { endpoint = "task_status", nth = { 2, 9 }, fault = "http_502_html" },
    { endpoint = "task_status", nth = { 5 }, fault = "close_before_response" },
    { endpoint = "any", every = 3, fault = "delay", delay_ms = 300 },
  },
}

local function run_host(emu, flags, env)
  local vars = { "SKINANALYSIS_BASE_URL=" .. emulator.quote(emu.url),
                 "YOUCAM_API_KEY=" .. emulator.quote(emu.key) }
  if sanitized then
    -- In a sanitized build the host runs with ASan and UBSan, but without
    -- LeakSanitizer: under load its exit-time tracer crashed now and then
    -- ("Tracer caught signal 11") after a clean run.  The host's leaks are
    -- checked by the valgrind test of the normal build instead.
    vars[#vars + 1] = "ASAN_OPTIONS=detect_leaks=0"
  end
  for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "=" .. emulator.quote(v) end
  local cmd = "env " .. table.concat(vars, " ") .. " " .. flags .. " " ..
      emulator.quote(game) .. " " .. images .. " 2>&1; echo EXIT:$?"
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  p:close()
  return out, tonumber(out:match("EXIT:(%d+)%s*$"))
end

-- The host's frame-time line: its figures by name, and the line.
local function frame_stats(out)
  local line = out:match("frame%-time:[^\n]*")
  assert.is_string(line, out)
  local stats = {}
  for k, v in line:gmatch("([%w_]+)=([%d%.]+)") do stats[k] = tonumber(v) end
  return stats, line
end

-- Run the host; when a frame went over the budget in wall time, but
-- neither in the host thread's CPU time nor while the thread blocked in a
-- syscall, the host was preempted by another process (a loaded CI
-- machine), not slowed by the script: run once more, and report both runs.
-- At most three runs: a script that really overruns (CPU or blocking)
-- fails at once, whatever the machine's load.
local function run_host_budgeted(emu, flags, env)
  local out, code = run_host(emu, flags, env)
  for _ = 1, 2 do
    if code ~= 3 then break end
    local stats, line = frame_stats(out)
    if stats.over_budget_cpu ~= 0 or stats.over_budget_blocked ~= 0 then break end
    print("\n  preempted (wall over budget, CPU within): " .. line .. "\n  running again")
    emu:reset()
    out, code = run_host(emu, flags, env)
  end
  return out, code
end

-- The budget is on the script's own time per frame: the host thread's CPU
-- time, and no blocking syscall during an overrun.  A frame that went over
-- in wall time only (another process had the CPU: host exit code 3 with no
-- CPU or blocking overrun) is reported in the printed line, not failed: a
-- loaded CI machine preempts any process now and then.
local function assert_budget(code, stats, out)
  local preempted_only = code == 3 and stats.over_budget_cpu == 0
      and stats.over_budget_blocked == 0
  assert.truthy(code == 0 or preempted_only, out)
  assert.equal(0, stats.over_budget_cpu, out)
  assert.equal(0, stats.over_budget_blocked, out)
  assert.truthy(stats.cpu_max <= BUDGET_MS, out)
end

describe("lua_host frame loop", function()
  if not exists(host) then
    pending("lua_host not built in " .. build)
    return
  end

  local scenario_path

  lazy_setup(function()
    scenario_path = os.tmpname()
    local f = assert(io.open(scenario_path, "w"))
    f:write(json.encode(SCENARIO))
    f:close()
  end)

  local emu = spec.emulator(function()
    return { "--task-seconds", "1.5", "--scenario", scenario_path }
  end)

  lazy_teardown(function()
    if scenario_path then os.remove(scenario_path) end
  end)

  before_each(function()
    emu:reset() -- reinstalls the scenario and its counters
  end)

  -- The host at 60 Hz for a minute with the script budget (extra flags
  -- and env): its frame-time line printed under `what`, the budget
  -- checked; its output.
  local function run_within_budget(what, flags, env)
    local out, code = run_host_budgeted(emu, emulator.quote(host) ..
        " --hz 60 --frames 3600 " .. flags .. "--budget-ms " .. BUDGET_MS, env)
    local stats, line = frame_stats(out)
    print("\n  lua_host, " .. what .. ": " .. line)
    assert_budget(code, stats, out)
    return out
  end

  it("completes every analysis within a " .. BUDGET_MS .. " ms script budget per frame", function()
    local out = run_within_budget("1 state, 6 analyses, latency + faults", "",
                                  { GAME_ANALYSES = "6", GAME_REPORT_EVERY = "60" })
    local ok = 0
    for _ in out:gmatch("analysis %d+: ok") do ok = ok + 1 end
    assert.equal(6, ok, out)
    -- the faults really happened
    local counters = emu:counters()
    assert.truthy((counters.faults_applied or {}).delay, json.encode(counters))
    assert.truthy((counters.faults_applied or {}).http_502_html, json.encode(counters))
  end)

  it("runs two independent Lua states in one process, closing one while the other runs", function()
    local out = run_within_budget("2 states, 3 + 5 analyses", "--states 2 ",
                                  { GAME_ANALYSES = "3", GAME_REPORT_EVERY = "120" })
    -- state 2 runs two more analyses than state 1 (game.lua)
    for s, want in ipairs({ 3, 5 }) do
      local ok = 0
      for _ in out:gmatch("%[state " .. s .. "%] analysis %d+: ok") do ok = ok + 1 end
      assert.equal(want, ok, out)
    end
    local f1 = tonumber(out:match("state 1 finished at frame (%d+) and was closed"))
    local f2 = tonumber(out:match("state 2 finished at frame (%d+) and was closed"))
    assert.is_number(f1, out)
    assert.is_number(f2, out)
    -- one state was closed (lua_close: its clients, its module, its
    -- sa_global_init reference) while the other kept working to its end
    assert.not_equal(f1, f2, out)
  end)

  it("reports a script error with exit code 1", function()
    local bad = os.tmpname()
    local f = assert(io.open(bad, "w"))
    f:write("function update() error('frame bug') end\n")
    f:close()
    local p = assert(io.popen(emulator.quote(host) .. " --frames 10 " .. emulator.quote(bad) ..
                              " 2>&1; echo EXIT:$?"))
    local out = p:read("a")
    p:close()
    os.remove(bad)
    assert.matches("frame bug", out)
    assert.matches("EXIT:1", out)
  end)

  if os.getenv("SA_TEST_QUICK") ~= "1" and not sanitized
      and os.execute("command -v valgrind >/dev/null 2>&1") then
    it("is clean under valgrind with two states (no budget: valgrind is slow)", function()
      local log = build .. "/lua-host-valgrind.log"
      local out, code = run_host(emu,
          "valgrind -q --error-exitcode=99 --leak-check=full " ..
          "--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect " ..
          "--suppressions=" .. emulator.quote(emulator.repo .. "/tests/lua/valgrind.supp") ..
          " --log-file=" .. emulator.quote(log) .. " " ..
          emulator.quote(host) .. " --hz 30 --frames 3000 --states 2",
          { GAME_ANALYSES = "2", GAME_REPORT_EVERY = "300" })
      local f = io.open(log, "r")
      local vg = f and f:read("a") or ""
      if f then f:close() end
      assert.equal(0, code, out .. "\n" .. vg)
      assert.equal("", vg)
    end)
  end
end)
