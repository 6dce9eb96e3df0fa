-- Webhook verification (deliveries signed by the emulator and by a
-- reference signer), and client:notify.
local sa = require "skinanalysis"
local emulator = require "helpers.emulator"
local spec = require "helpers.spec"

local SD_JPG = spec.SD_JPG
local SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
local HELPER = emulator.repo .. "/tests/lua/helpers/receiver.py"
local json = require "dkjson"

-- The reference signature (Python's hmac) of body.
local function sign(secret, id, ts, body)
  local p = assert(io.popen("env -u LD_PRELOAD python3 " .. emulator.quote(HELPER) .. " sign " ..
                            emulator.quote(secret) .. " " .. emulator.quote(id) .. " " ..
                            emulator.quote(ts) .. " " .. emulator.quote(body)))
  local sig = p:read("l")
  p:close()
  return sig
end

-- A loopback receiver: {port=, pid=, pipe=}; receiver:next() is the next
-- delivery {path=, headers=, body=} (blocks; nil when it gave up).
local Receiver = {}
Receiver.__index = Receiver

local function start_receiver()
  local pipe, pid, line = emulator.spawn{ "python3", HELPER, "listen", "30" }
  local port = tonumber((line or ""):match("^listening on (%d+)$"))
  assert(pid and port, "the webhook receiver did not start")
  return setmetatable({ pid = pid, port = port, pipe = pipe }, Receiver)
end

function Receiver:next()
  local line = self.pipe:read("l")
  return line and json.decode(line)
end

function Receiver:stop()
  emulator.stop_process(self)
end

describe("verify_webhook", function()
  local body = '{"created_at": 1761112848, "data": {"task_id": "abc_123", "task_status": "success"}}'
  local ts = "1761112850"
  local headers = { ["webhook-id"] = "msg_abc_123:1761112848", ["webhook-timestamp"] = ts,
                    ["webhook-signature"] = sign(SECRET, "msg_abc_123:1761112848", ts, body) }
  local now = { now = 1761112850 }

  it("returns the delivery of a valid signature", function()
    local d, err, code = sa.verify_webhook(SECRET, headers, body, now)
    assert.is_nil(code, err)
    assert.same({ id = "msg_abc_123:1761112848", timestamp = 1761112850, task_id = "abc_123",
                  task_status = "success", created_at = 1761112848 }, d)
  end)

  it("matches header names without regard to case, and any of several signatures", function()
    local h = { ["Webhook-Id"] = headers["webhook-id"], ["WEBHOOK-TIMESTAMP"] = ts,
                ["webhook-Signature"] = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= " ..
                    headers["webhook-signature"] }
    assert.is_table(sa.verify_webhook(SECRET, h, body, now))
  end)

  it("refuses a forged body, a wrong secret and a stale timestamp", function()
    local ok, err, code = sa.verify_webhook(SECRET, headers, body:gsub("success", "error"), now)
    assert.is_nil(ok)
    assert.is_string(err)
    assert.equal("webhook_signature", code)
    _, _, code = sa.verify_webhook("whsec_" .. ("QUFB"):rep(8), headers, body, now)
    assert.equal("webhook_signature", code)
    _, _, code = sa.verify_webhook(SECRET, headers, body, { now = 1761112850 + 3600 })
    assert.equal("webhook_stale", code)
    _, _, code = sa.verify_webhook(SECRET, headers, body, { now = 1761112850 - 3600 })
    assert.equal("webhook_stale", code)
    -- a wider tolerance accepts it
    assert.is_table(sa.verify_webhook(SECRET, headers, body,
                                      { now = 1761112850 + 3600, tolerance = 7200 }))
  end)

  it("reports missing headers and a malformed secret as invalid_argument", function()
    local _, err, code = sa.verify_webhook(SECRET, { ["webhook-id"] = "x", ["webhook-timestamp"] = ts },
                                           body, now)
    assert.equal("invalid_argument", code)
    assert.matches("webhook%-signature", err)
    _, _, code = sa.verify_webhook("not-a-secret", headers, body, now)
    assert.equal("invalid_argument", code)
  end)

  it("raises for wrong argument types", function()
    assert.has_error(function() sa.verify_webhook(SECRET, "headers", body) end)
    assert.has_error(function() sa.verify_webhook(SECRET, { ["webhook-id"] = 1 }, body) end)
    assert.has_error(function() sa.verify_webhook(SECRET, headers, body, { tolerance = -1 }) end)
  end)

  it("refuses a signed body that is not a task notification", function()
    local other = '{"hello": "world"}'
    local h = { ["webhook-id"] = "m", ["webhook-timestamp"] = ts,
                ["webhook-signature"] = sign(SECRET, "m", ts, other) }
    local ok, _, code = sa.verify_webhook(SECRET, h, other, now)
    assert.is_nil(ok)
    assert.equal("protocol", code)
  end)

  -- The contract Python's verify_webhook shares (the core reads the body):
  -- a task_id a NUL would cut, or that is no id, is no notification.
  for _, other in ipairs{
      '{"data": {"task_id": "abc\\u0000/../../other"}}',
      '{"data": {"task_id": "a b"}}',
      '{"data": {"task_id": 12}}',
      '{"data": {}}',
      '[' .. ('['):rep(40) .. (']'):rep(40) .. ']',
  } do
    it("refuses " .. other:sub(1, 40), function()
      local h = { ["webhook-id"] = "m", ["webhook-timestamp"] = ts,
                  ["webhook-signature"] = sign(SECRET, "m", ts, other) }
      local ok, err, code = sa.verify_webhook(SECRET, h, other, now)
      assert.is_nil(ok, "accepted")
      assert.equal("protocol", code, err)
    end)
  end

  it("refuses a secret or a header holding a NUL", function()
    local h = { ["webhook-id"] = headers["webhook-id"] .. "\0x",
                ["webhook-timestamp"] = ts, ["webhook-signature"] = headers["webhook-signature"] }
    local ok, _, code = sa.verify_webhook(SECRET, h, body, now)
    assert.is_nil(ok)
    assert.equal("invalid_argument", code)
    ok, _, code = sa.verify_webhook(SECRET .. "\0", headers, body, now)
    assert.is_nil(ok)
    assert.equal("invalid_argument", code)
  end)
end)

describe("webhooks from the emulator", function()
  local receiver

  lazy_setup(function()
    receiver = start_receiver()
  end)

  local emu = spec.emulator(function()
    return { "--task-seconds", "0.3", "--rate-limit", "off",
             "--webhook-url", "http://127.0.0.1:" .. receiver.port .. "/hook",
             "--webhook-secret", SECRET }
  end)

  lazy_teardown(function()
    if receiver then receiver:stop() end
  end)

  -- A job of c (an SD pore analysis) in poll_wait, and the webhook
  -- delivery the emulator sent when its task ended.
  local function waiting_job(c)
    local job = assert(c:submit(SD_JPG, { actions = { "pore" } }))
    spec.step_until(c, function() return job:state() == "poll_wait" or job:done() end)
    assert.equal("poll_wait", job:state())
    return job, (assert(receiver:next(), "no webhook delivery"))
  end

  it("a signed delivery is verified and notify polls the task at once", function()
    -- polls far apart: only the notification makes the job finish soon
    local c <close> = emu:client{ poll_interval = 5, max_poll_interval = 10 }
    local job, delivery = waiting_job(c)
    local d, err, code = sa.verify_webhook(SECRET, delivery.headers, delivery.body)
    assert.is_nil(code, err)
    assert.equal(job:task_id(), d.task_id)
    assert.equal("success", d.task_status)
    assert.is_string(d.id)
    assert.equal("integer", math.type(d.timestamp))

    local forged = delivery.body:gsub("success", "error")
    local ok, _, fcode = sa.verify_webhook(SECRET, delivery.headers, forged)
    assert.is_nil(ok)
    assert.equal("webhook_signature", fcode)
    _, _, fcode = sa.verify_webhook(SECRET, delivery.headers, delivery.body,
                                    { now = d.timestamp + 3600 })
    assert.equal("webhook_stale", fcode)

    local t0 = sa.now()
    assert.equal(1, c:notify(d.task_id))
    assert(job:wait(3))
    assert.is_true(sa.now() - t0 < 3, "the job waited for its next poll")
    assert.equal(0, c:notify(d.task_id))
  end)

  it("webhooks = true: no poll until the delivery's notify", function()
    -- poll_interval alone would poll every 0.2 s; with webhooks the task
    -- waits for the notification (or the 10 s insurance poll)
    local c <close> = emu:client{ poll_interval = 0.2, max_poll_interval = 10,
                                  webhooks = true, poll_strategy = "fixed" }
    local job, delivery = waiting_job(c)
    local d = assert(sa.verify_webhook(SECRET, delivery.headers, delivery.body))
    assert.equal(job:task_id(), d.task_id)
    local quiet = sa.now() + 0.6
    while sa.now() < quiet do c:step(0.05) end
    assert.equal("poll_wait", job:state())
    assert.equal(0, job:info().polls)
    assert.equal(1, c:notify(d.task_id))
    assert(job:wait(3))
    assert.equal(1, job:info().polls)
  end)

  it("notify of an unknown task notifies nobody", function()
    local c <close> = emu:client()
    assert.equal(0, c:notify("no-such-task"))
    assert.has_error(function() c:notify() end)
  end)
end)
