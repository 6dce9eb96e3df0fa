-- tests/hostile/drive.lua - one analysis through the Lua module, for the
-- hostile-server suite (tests/hostile/test_hostile.py).
--
--   YOUCAM_API_KEY=... lua5.4 drive.lua BASE_URL [name=value ...]
--
-- (LUA_CPATH_5_4 at the build's lua/, LUA_PATH_5_4 at the checkout's lua/.)
-- Options (seconds for times): image, actions (comma list), format
-- (json|zip), version (2.0|2.1), timeout (per API request),
-- connect_timeout, upload_timeout, poll_interval, max_poll_interval,
-- deadline, backoff_initial, backoff_max, max_retries, wait (how long to
-- wait for the job), masks (an existing folder: result:save_masks).
--
-- Every log line of the library goes to stderr (level debug); one JSON line
-- goes to stdout: the outcome ("ok" or the returned code), the returned
-- message, job:info(), the scores and the mask files written.
local sa = require "skinanalysis"

local here = arg[0]:match("^(.*)/[^/]*$") or "."
local url = assert(arg[1], "usage: drive.lua BASE_URL [name=value ...]")
local o = {}
for i = 2, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  if k then o[k] = v end
end

-- JSON: control characters and bytes >= 0x80 as \u00XX, so the line is
-- ASCII whatever the library hands out.
local function jstr(s)
  return '"' .. s:gsub('[%c"\\\128-\255]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function enc(v)
  local t = type(v)
  if v == nil then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if v ~= v then return "null" end
    return math.type(v) == "integer" and tostring(v) or string.format("%.17g", v)
  end
  if t == "string" then return jstr(v) end
  if t == "table" then
    if #v > 0 or next(v) == nil then
      local parts = {}
      for i = 1, #v do parts[i] = enc(v[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = jstr(k) .. ":" .. enc(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return jstr("<" .. t .. ">")
end

local function num(name)
  return o[name] and tonumber(o[name]) or nil
end

local out = { lang = "lua", ok = false, stage = "client" }
local t0 = sa.now()

local copts = {
  base_url = url,
  version = o.version,
  request_timeout = num("timeout"),
  connect_timeout = num("connect_timeout"),
  upload_timeout = num("upload_timeout"),
  poll_interval = num("poll_interval"),
  max_poll_interval = num("max_poll_interval"),
  job_deadline = num("deadline"),
  backoff_initial = num("backoff_initial"),
  backoff_max = num("backoff_max"),
  max_retries = o.max_retries and math.tointeger(tonumber(o.max_retries)) or nil,
  log_level = "debug",
  log = function(level, message)
    io.stderr:write(string.upper(level), " skinanalysis: ", message, "\n")
  end,
}

local function run()
  local client, err, code = sa.client(copts)
  if not client then
    out.outcome, out.message, out.code = code, err, code
    return
  end
  out.client_tostring = tostring(client)
  out.stage = "submit"
  local actions = {}
  for a in (o.actions or "wrinkle,pore"):gmatch("[^,]+") do actions[#actions + 1] = a end
  local image = o.image or (here .. "/../fixtures/portrait_sd.jpg")
  local job
  job, err, code = client:submit(image, { actions = actions, format = o.format or "json" })
  if not job then
    out.outcome, out.message, out.code = code, err, code
    client:close()
    return
  end
  out.stage = "analyze"
  local result
  result, err, code = job:wait(num("wait"))
  out.job_tostring = tostring(job)
  local ok_info, info = pcall(job.info, job)
  out.info = ok_info and info or ("<" .. tostring(info) .. ">")
  if result then
    out.ok, out.outcome = true, "ok"
    out.scores = {}
    for i, s in ipairs(result.scores) do
      out.scores[i] = { concern = s.concern, region = s.region, skin_type = s.skin_type,
                        ui_score = s.ui_score, mask_urls = s.mask_urls or {} }
    end
    out.result_task_id = result.task_id
    out.result_json = result.json
    out.resize_image_url = result.resize_image_url
    if o.masks then
      out.stage = "masks"
      local paths, merr, mcode = result:save_masks(o.masks, num("wait"))
      if paths then
        out.masks_outcome, out.files = "ok", paths
      else
        out.masks_outcome, out.masks_message = mcode, merr
      end
    end
  else
    out.outcome, out.message, out.code = code, err, code
  end
  job:close()
  client:close()
end

local ok, e = pcall(run)
if not ok then
  out.outcome = "lua_error"
  out.message = tostring(e)
end
out.elapsed = sa.now() - t0
io.stdout:write(enc(out), "\n")
io.stdout:flush()
