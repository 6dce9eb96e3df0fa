--- skinanalysis: Lua 5.4 client for Perfect Corp's AI Skin Analysis API.
--
--   local sa = require "skinanalysis"
--   local client = assert(sa.client{})          -- key from YOUCAM_API_KEY
--   local result, err, code = client:analyze("face.jpg")
--
-- The native part, skinanalysis.core, wraps the C library; this file adds
-- the sugar: configuration from the environment, client:analyze, and the
-- coroutine helpers (sa.await, sa.spawn, sa.scheduler) for scripts that run
-- inside a frame loop.  See docs/lua.md.
--
-- Conventions: programmer errors (wrong types, unknown option names,
-- closed handles) raise; runtime failures return nil, message, code where
-- code is a stable name ("auth", "engine", "wait_timeout", ...).
local core = require "skinanalysis.core"

local M = {
  _VERSION = core.version,
  version = core.version,
  core = core,
  Client = core.Client,
  Job = core.Job,
  Result = core.Result,
  cost = core.cost,
  actions = core.actions,
  action_tier = core.action_tier,
  counterpart = core.counterpart,
  default_actions = core.default_actions,
  probe_file = core.probe_file,
  probe_buffer = core.probe_buffer,
  parse_result = core.parse_result,
  parse_zip = core.parse_zip,
  -- sa.concern_color(concern) -> r, g, b: the colour result:composite
  -- tints the concern's masks with (one palette in the core, as Python's
  -- legends); result:compare(other) gives the before/after changes.
  concern_color = core.concern_color,
  verify_webhook = core.verify_webhook,
  strerror = core.strerror,
  is_retryable = core.is_retryable,
  is_validation = core.is_validation,
  job_states = core.job_states,
  now = core.now,
}

local Client, Job = core.Client, core.Job

--- Create a client.  Options are those of sa_client_options (see
-- docs/lua.md); times are in seconds.  api_key defaults to the environment
-- variable YOUCAM_API_KEY, base_url to SKINANALYSIS_BASE_URL,
-- rate_limit_scope to SKINANALYSIS_RATE_LIMIT_SCOPE ("host" by default).
-- Returns the client, or nil, message, code.
function M.client(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #1 to 'client' (table expected, got " .. type(opts) .. ")", 2)
  end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.api_key == nil then
    local key = os.getenv("YOUCAM_API_KEY")
    if key == nil or key == "" then
      return nil, "no API key: pass api_key or set YOUCAM_API_KEY", "invalid_argument"
    end
    o.api_key = key
  end
  if o.base_url == nil then
    local url = os.getenv("SKINANALYSIS_BASE_URL")
    if url ~= nil and url ~= "" then o.base_url = url end
  end
  if o.rate_limit_scope == nil then
    local scope = os.getenv("SKINANALYSIS_RATE_LIMIT_SCOPE")
    if scope ~= nil and scope ~= "" then o.rate_limit_scope = scope end
  end
  return core.client(o)
end

--- client:analyze(image, opts): submit and wait.  opts are those of
-- client:submit plus `timeout` (seconds to wait; default: until the job
-- ends, bounded by the job deadline).  Returns the result table, or nil,
-- message, code.  When the wait times out ("wait_timeout") or is
-- interrupted ("interrupted"), the job keeps running and is returned as a
-- fourth value: wait on it again, or cancel it.
-- The end of analyze and resume_wait: wait for the job; a wait that timed
-- out or was interrupted returns the job as a fourth value.  A JSON result
-- keeps its job (through the binding, not a field) so that
-- result:save_masks and result:composite can download its masks; the job
-- goes with the result.  Anything else releases the job now.
local function wait_job(job, timeout)
  local result, werr, wcode = job:wait(timeout)
  if result == nil and (wcode == "wait_timeout" or wcode == "interrupted") then
    return nil, werr, wcode, job
  end
  if result == nil or #result.files > 0 then job:close() end
  return result, werr, wcode
end

function Client:analyze(image, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'analyze' (table expected, got " .. type(opts) .. ")", 2)
  end
  local sub, timeout = {}, nil
  for k, v in pairs(opts or {}) do
    if k == "timeout" then timeout = v else sub[k] = v end
  end
  -- delete_after (a submit option) is carried out by the core: the task is
  -- deleted before the job ends; result.deleted / result.delete_error
  local job, err, code = self:submit(image, sub)
  if not job then return nil, err, code end
  return wait_job(job, timeout)
end

--- client:delete_result(result): delete the result's task from the vendor
-- now (after result:save_masks, say), and say how on the result:
-- result.deleted (true/false) and, when the delete failed,
-- result.delete_error (message) and result.delete_error_code.  Never
-- raises: a failed delete does not turn the analysis into a failure.
-- client:resume_wait(id, {delete_after = true}) uses it.  Returns the
-- result.
function Client:delete_result(result)
  local ok, err, code = self:delete(result.task_id)
  result.deleted = ok == true
  if not ok then
    result.delete_error, result.delete_error_code = err, code
  end
  return result
end

-- Wait for an account job; its result, or nil, message, code.
local function account_wait(job, err, code, timeout)
  if not job then return nil, err, code end
  local result, werr, wcode = job:wait(timeout)
  job:close()
  return result, werr, wcode
end

local function account_opts(opts, what)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument to '" .. what .. "' (table expected, got " .. type(opts) .. ")", 3)
  end
  local sub, timeout = {}, nil
  for k, v in pairs(opts or {}) do
    if k == "timeout" then timeout = v else sub[k] = v end
  end
  return sub, timeout
end

--- client:credit([opts]): the key's balance, blocking: a table with
-- `available` (units the API can spend: the grants whose type starts with
-- "Api"), `by_type` (type -> units) and `grants` (array of {type, amount,
-- raw}: raw is the entry's JSON text), or nil, message, code.  opts:
-- deadline, timeout (seconds).  client:credit_job(opts) is the
-- non-blocking form (a job; sa.await works on it).
function Client:credit(opts)
  local sub, timeout = account_opts(opts, "credit")
  local job, err, code = self:credit_job(sub)
  return account_wait(job, err, code, timeout)
end

--- client:price_list([opts]): every SKU (all pages), an array of
-- {description, amount, unit, proc_unit, run_task_url, feature, raw}, or
-- nil, message, code.  Non-blocking: client:price_list_job(opts).
function Client:price_list(opts)
  local sub, timeout = account_opts(opts, "price_list")
  local job, err, code = self:price_list_job(sub)
  return account_wait(job, err, code, timeout)
end

--- client:delete(task_id[, opts]): delete a finished task with its input
-- and outputs; true, or nil, message, code ("bad_request" with
-- api_error_code OperationInvalid while it runs, "task_expired" for an
-- unknown or deleted id, "source" for a string that is no task id).
-- Non-blocking: client:delete_job(task_id, opts).
function Client:delete(task_id, opts)
  local sub, timeout = account_opts(opts, "delete")
  local job, err, code = self:delete_job(task_id, sub)
  return account_wait(job, err, code, timeout)
end

--- client:resume_wait(task_id, opts): resume an existing task from its id
-- (client:resume, which returns the job) and wait for its result, as
-- client:analyze does for a new image: nothing is created or billed anew.
-- opts: version, deadline, on_progress, on_done (as client:resume) plus
-- `timeout` (seconds to wait).  Returns the result table, or nil, message,
-- code (an id the API does not know: "task_expired"; a refused id:
-- "source"), with the job as a fourth value when the wait timed out or
-- was interrupted (it keeps running).
function Client:resume_wait(task_id, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'resume_wait' (table expected, got " .. type(opts) .. ")", 2)
  end
  local sub, timeout, delete_after = {}, nil, false
  for k, v in pairs(opts or {}) do
    if k == "timeout" then timeout = v
    elseif k == "delete_after" then delete_after = v and true or false
    else sub[k] = v end
  end
  local job, err, code = self:resume(task_id, sub)
  if not job then return nil, err, code end
  local result, werr, wcode, pending = wait_job(job, timeout)
  if result ~= nil and delete_after then self:delete_result(result) end
  return result, werr, wcode, pending
end

--- job:ok(): true when the job ended with a result (DONE).  Does not build
--- the result table (job:result() does, on first use).
function Job:ok()
  return self:done() and self:state() == "done"
end

-- ------------------------------------------------------------------------
-- Coroutine helpers
-- ------------------------------------------------------------------------

--- sa.await(job): the job's outcome (result, or nil, message, code).
-- Inside a coroutine it yields (passing the job to the resumer) until the
-- job has ended, so straight-line code runs while the host's loop keeps
-- calling client:step().  Outside a coroutine it blocks in job:wait().
-- sa.await(client:submit(...)) passes a failed submit through: with a nil
-- job it returns nil, message, code at once.
function M.await(job, err, code)
  if job == nil then return nil, err, code end
  if not coroutine.isyieldable() then
    return job:wait()
  end
  while not job:done() do
    coroutine.yield(job)
  end
  return job:result()
end

--- sa.await_all(jobs): await every job of the array; returns an array of
-- {result=..., err=..., code=...} in the same order.
function M.await_all(jobs)
  local out = {}
  for i, job in ipairs(jobs) do
    local r, err, code = M.await(job)
    out[i] = { result = r, err = err, code = code }
  end
  return out
end

--- sa.sleep(seconds): inside a coroutine run by a scheduler, yield until
-- the time has passed (clock: core.now, monotonic).
function M.sleep(seconds)
  local wake = core.now() + seconds
  if not coroutine.isyieldable() then
    error("sa.sleep needs a coroutine (use sa.spawn)", 2)
  end
  repeat coroutine.yield(wake) until core.now() >= wake
end

local Scheduler = {}
Scheduler.__index = Scheduler
M.Scheduler = Scheduler

--- sa.scheduler(): a tiny scheduler of coroutines for scripts without one.
-- sched:spawn(fn, ...) starts a coroutine; sched:update() resumes every
-- coroutine whose awaited job has ended (or that yielded nothing); a host
-- calls client:step() and sched:update() once per frame.
-- sched:run(client[, timeout]) does both in a loop until every coroutine
-- has finished.
function M.scheduler()
  return setmetatable({ tasks = {} }, Scheduler)
end

function Scheduler:spawn(fn, ...)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'spawn' (function expected, got " .. type(fn) .. ")", 2)
  end
  local task = { co = coroutine.create(fn), args = table.pack(...), started = false }
  self.tasks[#self.tasks + 1] = task
  return task.co
end

local function ready(task)
  local w = task.waiting
  if not task.started or w == nil then return true end
  if type(w) == "number" then return core.now() >= w end
  if type(w) == "userdata" then return w:done() end -- a job
  return true
end

--- Resume what is ready; returns the number of coroutines still alive.
-- An error in a coroutine removes it and is raised (with its traceback)
-- after the other ready coroutines have run.
function Scheduler:update()
  local alive, failure = {}, nil
  local tasks = self.tasks
  self.tasks = alive
  for _, task in ipairs(tasks) do
    if ready(task) then
      local ok, yielded
      if task.started then
        ok, yielded = coroutine.resume(task.co)
      else
        task.started = true
        ok, yielded = coroutine.resume(task.co, table.unpack(task.args, 1, task.args.n))
      end
      if not ok then
        failure = failure or debug.traceback(task.co, tostring(yielded))
      elseif coroutine.status(task.co) ~= "dead" then
        task.waiting = yielded
        alive[#alive + 1] = task
      end
    else
      alive[#alive + 1] = task
    end
  end
  -- coroutines spawned while this update ran were added to `alive`
  if failure then error(failure, 0) end
  return #self.tasks
end

function Scheduler:count()
  return #self.tasks
end

--- sched:run(client[, timeout]): step the client (or each client of an
-- array) and resume coroutines until all have finished.  Returns true, or
-- nil, message, code ("wait_timeout" when timeout seconds passed, or the
-- failure of client:step()).
-- Seconds until the earliest sa.sleep wake-up, at most `cap`.
local function idle_time(tasks, cap)
  local now, t = core.now(), cap
  for _, task in ipairs(tasks) do
    if type(task.waiting) == "number" and task.waiting - now < t then
      t = math.max(0, task.waiting - now)
    end
  end
  return t
end

function Scheduler:run(clients, timeout)
  if type(clients) ~= "table" then clients = { clients } end
  local deadline = timeout and (core.now() + timeout) or nil
  while self:update() > 0 do
    local busy = false
    for i, c in ipairs(clients) do
      -- wait for network activity only on the first client: the others are
      -- stepped without waiting
      local n, err, code = c:step(i == 1 and 0.02 or 0)
      if n == nil then return nil, err, code end
      busy = busy or n > 0
    end
    if not busy then
      -- no client has work (the coroutines sleep): do not spin
      core.sleep(idle_time(self.tasks, 0.02))
    end
    if deadline and core.now() >= deadline then
      return nil, "the coroutines did not finish in time", "wait_timeout"
    end
  end
  return true
end

local default_scheduler = M.scheduler()
M.default_scheduler = default_scheduler

--- sa.spawn(fn, ...): start fn as a coroutine on the default scheduler.
function M.spawn(fn, ...)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'spawn' (function expected, got " .. type(fn) .. ")", 2)
  end
  return default_scheduler:spawn(fn, ...)
end

--- sa.update(): resume the default scheduler's ready coroutines (call once
-- per frame after client:step()); returns how many are still alive.
function M.update()
  return default_scheduler:update()
end

--- sa.run(client[, timeout]): drive client(s) and the default scheduler
-- until every spawned coroutine has finished.
function M.run(clients, timeout)
  return default_scheduler:run(clients, timeout)
end

return M
