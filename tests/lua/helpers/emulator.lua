-- Start and stop the local API emulator for a spec, and talk to its
-- control endpoint.
--
--   local emulator = require "helpers.emulator"
--   local emu = emulator.start{ "--task-seconds", "0.3" }
--   ... emu.url, emu.key ...
--   emu:control("POST", "/_control/scenario", '{"faults": []}')
--   emu:stop()
--
-- The emulator is started with `sh -c 'echo $$; exec scripts/emulator
-- --port 0 ...'`: the first line read back is its pid, the second its
-- "listening on http://127.0.0.1:PORT" line.
local json = require "dkjson"

local M = {}

local function dirname(path)
  return (path:gsub("/[^/]*$", ""))
end

local function this_dir()
  local src = debug.getinfo(1, "S").source
  src = src:sub(1, 1) == "@" and src:sub(2) or src
  if src:sub(1, 1) ~= "/" then
    local pwd = os.getenv("PWD") or "."
    src = pwd .. "/" .. src
  end
  return dirname(src)
end

M.repo = os.getenv("SA_REPO") or dirname(dirname(dirname(this_dir())))
M.fixtures = M.repo .. "/tests/fixtures"
M.key = "emulator-key"

function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local Emu = {}
Emu.__index = Emu

--- Start an emulator with extra flags (array of strings).  Raises when it
-- does not come up.
--- Run a helper process: argv (strings, quoted here) under sh, which
-- prints its pid first.  env -u LD_PRELOAD: when the suite runs a
-- sanitized module with LD_PRELOAD=libasan.so, the helpers (python) must
-- not inherit it.  Returns the pipe of its output, its pid and its first
-- line after the pid.
function M.spawn(argv)
  local args = {}
  for i, a in ipairs(argv) do args[i] = M.quote(a) end
  local cmd = "env -u LD_PRELOAD sh -c 'echo $$; exec \"$0\" \"$@\"' " ..
      table.concat(args, " ") .. " 2>/dev/null"
  local pipe = assert(io.popen(cmd, "r"))
  local pid = tonumber(pipe:read("l"))
  return pipe, pid, pipe:read("l")
end

--- Stop a process M.spawn started, kept as p.pid and p.pipe (idempotent).
function M.stop_process(p)
  if p.pipe then
    os.execute("kill " .. p.pid .. " 2>/dev/null")
    p.pipe:close()
    p.pipe = nil
  end
end

function M.start(flags)
  local argv = { M.repo .. "/scripts/emulator", "--port", "0" }
  for _, f in ipairs(flags or {}) do argv[#argv + 1] = f end
  local pipe, pid, line = M.spawn(argv)
  local url = line and line:match("^listening on (http://[%d%.]+:%d+)")
  if not (pid and url) then
    pipe:close()
    error("emulator did not start (flags: " .. table.concat(flags or {}, " ") .. ")")
  end
  return setmetatable({ pid = pid, pipe = pipe, url = url,
                        port = tonumber(url:match(":(%d+)$")), key = M.key }, Emu)
end

function Emu:stop()
  M.stop_process(self)
end

--- A control or plain request to the emulator through helpers/emuctl.py.
-- body: a Lua table (sent as JSON), a string (sent as is), or
-- {file = path, type = content_type}.  Returns status, decoded JSON body
-- (or the raw text when it is not JSON).
function Emu:control(method, path, body)
  local cmd = "env -u LD_PRELOAD python3 " .. M.quote(M.repo .. "/tests/lua/helpers/emuctl.py") .. " " ..
      M.quote(method) .. " " .. M.quote(self.url .. path)
  if type(body) == "table" and body.file then
    cmd = cmd .. " " .. M.quote("@" .. body.file) .. " " .. M.quote(body.type or "application/octet-stream")
  elseif type(body) == "table" then
    cmd = cmd .. " " .. M.quote(json.encode(body))
  elseif body ~= nil then
    cmd = cmd .. " " .. M.quote(body)
  end
  local p = assert(io.popen(cmd, "r"))
  local status = tonumber(p:read("l"))
  local text = p:read("a")
  p:close()
  local obj = json.decode(text)
  return status, obj ~= nil and obj or text
end

function Emu:scenario(faults)
  local status = self:control("POST", "/_control/scenario", { faults = faults })
  assert(status == 200, "scenario refused")
end

function Emu:clear_scenario()
  self:control("DELETE", "/_control/scenario")
end

function Emu:log()
  local _, body = self:control("GET", "/_control/log")
  return body.log
end

function Emu:counters()
  local _, body = self:control("GET", "/_control/counters")
  return body
end

function Emu:reset()
  self:control("POST", "/_control/reset")
end

--- Host bytes of a file at /_public/name; returns the URL.
function Emu:host_public(name, path, ctype)
  local status, body = self:control("POST", "/_control/public/" .. name,
                                    { file = path, type = ctype })
  assert(status == 200, "could not host " .. name)
  return body.url
end

--- Options of a test client of this emulator: fast polls and backoff, no
-- client-side rate limit (the emulator's own limit is usually off too);
-- `extra` overrides.
function Emu:client_options(extra)
  local o = { api_key = self.key, base_url = self.url, poll_interval = 0.05,
              rate_limit = false, backoff_initial = 0.02, backoff_max = 0.1 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

--- A client of this emulator (raises when it cannot be created).
function Emu:client(extra)
  local sa = require "skinanalysis"
  local c, err = sa.client(self:client_options(extra))
  return assert(c, err)
end

--- Number of requests the emulator has logged so far.
function Emu:request_count()
  return #self:log()
end

--- A loopback port where nothing listens (for transport errors): a port
-- the emulator used and released.
function M.closed_port()
  local emu = M.start({})
  local port = emu.port
  emu:stop()
  return port
end

--- Read a whole file.
function M.read(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("a")
  f:close()
  return data
end

return M
