-- The account (issue 14 part 1): client:credit, client:price_list,
-- client:delete and their non-blocking *_job forms, delete_after on
-- client:analyze, against the emulator.
local sa = require "skinanalysis"
local spec = require "helpers.spec"

local SD_JPG = spec.SD_JPG
local SD4 = { "wrinkle", "pore", "texture", "acne" }

describe("account", function()
  local emu = spec.emulator{ "--task-seconds", "0", "--rate-limit", "off", "--units", "100",
                             "--grants", "ApiPayAsYouGo:20,Console:7" }

  before_each(function()
    emu:clear_scenario()
    emu:reset()
  end)

  it("reads the balance: Api grants only, per type, raw entries", function()
    local c <close> = emu:client()
    local credit, err, code = c:credit()
    assert.is_nil(code, err)
    assert.equal(120, credit.available)
    assert.equal(100, credit.by_type.ApiSubscription)
    assert.equal(20, credit.by_type.ApiPayAsYouGo)
    assert.equal(7, credit.by_type.Console)
    assert.equal(3, #credit.grants)
    assert.equal("ApiSubscription", credit.grants[1].type)
    assert.truthy(credit.grants[1].raw:find('"expired_date"', 1, true))
    assert.is_table(c:analyze(SD_JPG, { actions = SD4 }))
    assert.equal(111, c:credit().available)
  end)

  it("reads every page of the price list", function()
    local c <close> = emu:client()
    local skus, err, code = c:price_list()
    assert.is_nil(code, err)
    assert.equal(22, #skus)
    local nine = 0
    for _, s in ipairs(skus) do
      if s.feature == "skin-analysis" and s.amount == 9 then nine = nine + 1 end
    end
    assert.equal(2, nine)
    assert.equal("image", skus[1].proc_unit)
    assert.equal(2, emu:counters().requests.feature_cost)
  end)

  it("has non-blocking forms that sa.await and a scheduler can drive", function()
    local c <close> = emu:client()
    local got
    local sched = sa.scheduler()
    sched:spawn(function()
      local credit = sa.await(c:credit_job())
      local skus = sa.await(c:price_list_job())
      got = { credit = credit, skus = skus }
    end)
    assert.is_true(sched:run(c, 20))
    assert.equal(120, got.credit.available)
    assert.equal(22, #got.skus)
  end)

  it("deletes a finished task; errors are typed", function()
    local c <close> = emu:client()
    local r = assert(c:analyze(SD_JPG, { actions = SD4 }))
    assert.is_true(c:delete(r.task_id))
    assert.equal(1, emu:counters().tasks_deleted)
    local _, err, code = c:resume_wait(r.task_id)
    assert.equal("task_expired", code, err)
    _, err, code = c:delete(r.task_id)
    assert.equal("task_expired", code, err)
    _, err, code = c:delete("not an id!")
    assert.equal("source", code, err)
    assert.has_error(function() c:credit_job({ version = "2.0" }) end)
  end)

  describe("with a slow task", function()
    local slow = spec.emulator{ "--task-seconds", "30", "--rate-limit", "off" }

    it("refuses to delete a running task (OperationInvalid)", function()
      local c <close> = slow:client()
      local job = assert(c:submit(SD_JPG, { actions = SD4 }))
      local d = assert(c:delete_job(spec.task_id(c, job)))
      local ok, err, code = d:wait(10)
      assert.is_nil(ok)
      assert.equal("bad_request", code, err)
      assert.equal("OperationInvalid", d:info().api_error_code)
      job:abandon()
    end)
  end)

  it("delete_after deletes once the result is in hand", function()
    local c <close> = emu:client()
    local r = assert(c:analyze(SD_JPG, { actions = SD4, delete_after = true }))
    assert.is_true(r.deleted)
    assert.is_nil(r.delete_error)
    local z = assert(c:analyze(SD_JPG, { actions = SD4, format = "zip",
                                         delete_after = true }))
    assert.is_true(z.deleted)
    assert.is_true(#z.files > 0)               -- the masks came first
    assert.equal(2, emu:counters().tasks_deleted)
  end)

  it("submit{delete_after} deletes before the job ends; resume_wait too", function()
    local c <close> = emu:client()
    local job = assert(c:submit(SD_JPG, { actions = SD4, delete_after = true }))
    assert(c:run(10))
    assert.is_true(job:done())
    assert.equal(1, emu:counters().tasks_deleted)   -- before anyone read it
    assert.is_true(job:result().deleted)
    local id = spec.abandoned_task_id(c, SD_JPG, SD4)
    local r = assert(c:resume_wait(id, { delete_after = true }))
    assert.is_true(r.deleted)
    assert.equal(2, emu:counters().tasks_deleted)
    assert.has_error(function() c:submit(SD_JPG, { delete_after = 1 }) end)
  end)

  it("a failed delete is reported on the result, not as a failure", function()
    emu:scenario{ { endpoint = "task_delete", fault = "respond", status = 400,
                    body = { status = 400, error = "no", error_code = "OperationNotSupport" } } }
    local c <close> = emu:client()
    local r, err, code = c:analyze(SD_JPG, { actions = SD4, delete_after = true })
    assert.is_nil(code, err)
    assert.is_table(r:get("wrinkle"))
    assert.is_false(r.deleted)
    assert.equal("bad_request", r.delete_error_code)
    assert.equal("OperationNotSupport", r.delete_api_error_code)
    assert.truthy(r.delete_error:find("OperationNotSupport", 1, true))
  end)

  it("a bad key is an auth error that does not show the key", function()
    local c <close> = emu:client{ api_key = "sk-wrong-Lua-secret-1234" }
    local credit, err, code = c:credit()
    assert.is_nil(credit)
    assert.equal("auth", code)
    assert.falsy(err:find("sk-wrong-Lua-secret-1234", 1, true))
  end)
end)
