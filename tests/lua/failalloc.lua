-- The script tests/lua/failalloc.c runs again and again, failing one Lua
-- allocation after another.  It touches every binding path that allocates:
-- module loading, options, submit (file and buffer sources, miniserver
-- JSON), queued events and log lines delivered by step(), results,
-- info/status/tostring, cancel, close and __gc, result ZIPs and their
-- files, webhook verification, the account calls.  No server: the base URL is
-- a loopback port where (normally) nothing listens, so transfers fail fast
-- and produce retries, log lines and terminal events.
local repo = os.getenv("SA_REPO") or "."
package.path = repo .. "/lua/?.lua;" .. package.path
local sa = require "skinanalysis"

local fixture = repo .. "/tests/fixtures/portrait_sd.jpg"
local f = assert(io.open(repo .. "/tests/fixtures/portrait.png", "rb"))
local png = f:read("a")
f:close()
f = assert(io.open(repo .. "/tests/fixtures/spec/examples/task-status-success-json-hd.json", "rb"))
local body = f:read("a")
f:close()

local lines, events = 0, 0
local c = assert(sa.client{
  api_key = "k", base_url = "http://127.0.0.1:9", max_retries = 1,
  backoff_initial = 0.001, backoff_max = 0.002, connect_timeout = 0.2,
  log_level = "debug", log = function() lines = lines + 1 end,
})
local j1 = assert(c:submit(fixture, {
  actions = { "pore", "wrinkle" },
  on_progress = function() events = events + 1 end,
  on_done = function(job) events = events + 1; job:info() end,
}))
local j2 = assert(c:submit(nil, { buffer = png, actions = "acne",
                                  miniserver_args = { enable_mask_overlay = true } }))
assert(c:submit(fixture, { actions = { "wrinkles" } }) == nil)
-- the account calls (issue 14): their jobs fail to connect, with retries
local a1 = assert(c:credit_job{ on_done = function(job) job:info() end })
local a2 = assert(c:price_list_job())
local a3 = assert(c:delete_job("task+id/1=="))
assert(c:delete_job("not an id") == nil)
local j4 = assert(c:submit(fixture, { actions = "pore", delete_after = true }))
for _ = 1, 20 do
  if c:step(0.005) == 0 then break end
end
local r = assert(sa.parse_result(body))
assert(r:get("pore", "nose"))
f = assert(io.open(repo .. "/tests/fixtures/zips/result_hd.zip", "rb"))
local z = assert(sa.parse_zip(f:read("a")))
f:close()
assert(z:file(z.files[1].name) and sa.parse_zip("no zip") == nil)
local hook = '{"created_at": 1, "data": {"task_id": "t", "task_status": "success"}}'
local d = sa.verify_webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  { ["Webhook-Id"] = "m", ["webhook-timestamp"] = "100",
    ["webhook-signature"] = "v1,fn3qEGb8/sRi+5VQqKqyTPNsLHc/oDX1bs9pXz7h7AY=" }, hook, { now = 100 })
assert(d and d.task_id == "t" and d.created_at == 1)
tostring(r); tostring(c); tostring(j1)
j1:status(); j1:info(); j1:result()
j2:cancel(); j2:status()
a1:result(); a2:info(); a3:cancel(); a3:status(); j4:info()
sa.cost(sa.actions("sd"))
local j3 = c:submit(fixture)
c:close()
j3:status()
j1:close()
collectgarbage()
