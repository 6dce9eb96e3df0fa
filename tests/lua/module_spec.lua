-- skinanalysis without a server: catalogue, costs, image probing, result
-- parsing and result:get, argument checking.
local sa = require "skinanalysis"
local spec = require "helpers.spec"

local examples = spec.fixtures .. "/spec/examples/"

describe("module", function()
  it("loads and reports its version", function()
    assert.is_string(sa.version)
    assert.matches("^%d+%.%d+%.%d+$", sa.version)
    assert.equal(sa.version, sa.core.version)
  end)

  it("lists the 32 actions, 16 per tier", function()
    assert.equal(32, #sa.actions())
    local sd, hd = sa.actions("sd"), sa.actions("hd")
    assert.equal(16, #sd)
    assert.equal(16, #hd)
    for _, name in ipairs(sd) do assert.equal("sd", sa.action_tier(name)) end
    for _, name in ipairs(hd) do assert.equal("hd", sa.action_tier(name)) end
    assert.has_error(function() sa.actions("xd") end)
  end)

  it("pairs each concern with its other tier (the core's rule)", function()
    local sd, hd = sa.actions("sd"), sa.actions("hd")
    for i = 1, 16 do
      assert.equal(hd[i], sa.counterpart(sd[i]))
      assert.equal(sd[i], sa.counterpart(hd[i]))
    end
    assert.equal("hd_dark_circle", sa.counterpart("dark_circle_v2"))
    assert.is_nil(sa.counterpart("wrinkles"))
    assert.has_error(function() sa.counterpart() end)
  end)

  it("gives the default actions of each tier (what analyze asks for)", function()
    assert.same(sa.actions("sd"), sa.default_actions())
    assert.same(sa.actions("sd"), sa.default_actions("sd"))
    assert.same(sa.actions("hd"), sa.default_actions("hd"))
    assert.equal(16, sa.cost(sa.default_actions()))
    assert.has_error(function() sa.default_actions("xd") end)
  end)

  it("names an unknown action", function()
    local tier, msg, code = sa.action_tier("wrinkles")
    assert.is_nil(tier)
    assert.is_string(msg)
    assert.equal("unknown_action", code)
  end)

  describe("cost", function()
    -- API.md §11
    local cases = {
      { { "wrinkle" }, 9 },
      { { "wrinkle", "pore", "texture", "acne" }, 9 },
      { { "wrinkle", "pore", "texture", "acne", "oiliness" }, 12 },
      { { "hd_wrinkle" }, 12 },
      { { "hd_wrinkle", "hd_pore", "hd_texture", "hd_acne", "hd_oiliness" }, 16 },
      { { "wrinkle", "wrinkle" }, 9 },
      { "pore", 9 },
    }
    for i, case in ipairs(cases) do
      it("case " .. i, function()
        assert.equal(case[2], sa.cost(case[1]))
      end)
    end
    it("of all 16 SD and all 16 HD", function()
      assert.equal(16, sa.cost(sa.actions("sd")))
      assert.equal(22, sa.cost(sa.actions("hd")))
    end)

    local failures = {
      { { "wrinkles" }, "unknown_action" },
      { { "wrinkle", "hd_pore" }, "mixed_tiers" },
      { {}, "action_count" },
    }
    for _, case in ipairs(failures) do
      it("refuses with " .. case[2], function()
        local units, msg, code = sa.cost(case[1])
        assert.is_nil(units)
        assert.is_string(msg)
        assert.equal(case[2], code)
      end)
    end
    it("raises on wrong types", function()
      assert.has_error(function() sa.cost(42) end)
      assert.has_error(function() sa.cost({ "wrinkle", 7 }) end)
    end)
  end)

  describe("probe", function()
    it("reads JPEG and PNG sizes", function()
      local info = assert(sa.probe_file(spec.SD_JPG))
      assert.same({ format = "jpeg", width = 600, height = 800 }, info)
      info = assert(sa.probe_buffer(spec.read(spec.PNG)))
      assert.same({ format = "png", width = 600, height = 800 }, info)
    end)
    it("returns codes for bad input", function()
      local _, _, code = sa.probe_file(spec.fixtures .. "/not_an_image.jpg")
      assert.equal("image_format", code)
      _, _, code = sa.probe_file(spec.fixtures .. "/no-such-file.jpg")
      assert.equal("file", code)
      _, _, code = sa.probe_buffer("hello")
      assert.equal("image_format", code)
    end)
  end)

  describe("parse_result", function()
    it("turns an HD json status body into plain tables", function()
      local r = assert(sa.parse_result(spec.read(examples .. "task-status-success-json-hd.json")))
      assert.equal("json", r.format)
      assert.equal(29, r.skin_age)
      assert.equal("integer", math.type(r.skin_age))
      assert.equal(28.5, r.overall)
      assert.is_table(r.scores)
      local first = r.scores[1]
      assert.same({ concern = "hd_wrinkle", region = "whole", raw_score = 25.3, ui_score = 25 },
        { concern = first.concern, region = first.region, raw_score = first.raw_score,
          ui_score = first.ui_score })
      assert.equal(math.type(first.ui_score), "integer")
      assert.equal(1, #first.mask_urls)
      assert.is_string(r.json)
    end)

    it("finds scores with result:get, SD and HD names alike", function()
      local r = assert(sa.parse_result(spec.read(examples .. "task-status-success-json-hd.json")))
      assert.equal(46, r:get("hd_pore", "nose").ui_score)
      assert.equal(46, r:get("pore", "nose").ui_score)
      assert.equal(25, r:get("wrinkle").ui_score)
      assert.equal("Oily", r:get("hd_skin_type", "t_zone").skin_type)
      assert.is_nil(r:get("hd_pore", "chin"))
      assert.is_nil(r:get("hd_redness"))
      assert.has_error(function() r:get() end)
    end)

    it("reads an SD body with skin types and no regions", function()
      local r = assert(sa.parse_result(spec.read(examples .. "task-status-success-json-sd.json")))
      local texture = r:get("texture")
      assert.equal("whole", texture.region)
      assert.equal(68, texture.ui_score)
      assert.equal("Combination", r:get("skin_type").skin_type)
      assert.is_nil(r:get("skin_type").raw_score)
      assert.equal(37, r.skin_age)
    end)

    it("reads a zip result and a score_info.json", function()
      local r = assert(sa.parse_result(spec.read(examples .. "task-status-success-zip.json")))
      assert.equal("zip", r.format)
      assert.equal("https://example.com/sample-result-url", r.zip_url)
      r = assert(sa.parse_result(spec.read(examples .. "score-info-sd.json"), "score_info"))
      assert.equal(60, r:get("wrinkle").ui_score)
      assert.equal("wrinkle_output.png", r:get("wrinkle").mask_name)
    end)

    it("returns codes for engine errors and garbage", function()
      spec.failure("engine",
                   sa.parse_result(spec.read(examples .. "task-status-error-no-face.json")))
      spec.failure("protocol", sa.parse_result("{not json"))
      assert.has_error(function() sa.parse_result("{}", "yaml") end)
    end)

    it("prints a result without its URLs", function()
      local r = assert(sa.parse_result(spec.read(examples .. "task-status-success-json-sd.json")))
      assert.matches("^skinanalysis.result", tostring(r))
    end)
  end)

  describe("status names", function()
    it("maps names to messages and classes", function()
      assert.is_string(sa.strerror("auth"))
      assert.is_true(sa.is_retryable("transport"))
      assert.is_false(sa.is_retryable("auth"))
      assert.is_true(sa.is_validation("unknown_action"))
      assert.is_false(sa.is_validation("engine"))
      assert.has_error(function() sa.strerror("no_such_code") end)
    end)
    it("knows the result, download and webhook codes", function()
      for _, name in ipairs({ "zip", "url_expired", "download", "image_decode",
                              "webhook_signature", "webhook_stale" }) do
        assert.is_string(sa.strerror(name), name)
        assert.is_false(sa.is_validation(name), name)
      end
      assert.is_true(sa.is_retryable("download"))
      assert.is_false(sa.is_retryable("webhook_signature"))
    end)
    it("lists the job states", function()
      local states = sa.job_states()
      -- the core's names (sa_job_state_name), the strings Python shows too
      assert.same({ "validate", "queued", "file_create", "upload", "task_create",
                    "poll_wait", "polling", "backoff", "fetching", "done", "failed",
                    "cancelled" }, states)
      local fetching
      for i, s in ipairs(states) do
        if s == "fetching" then fetching = i end
      end
      assert.equal("done", states[fetching + 1])
    end)
  end)

  describe("client options", function()
    it("raise on unknown names and wrong types", function()
      local base = { api_key = "k", base_url = "http://127.0.0.1:9" }
      local bad = {
        { colour = "red" },
        { request_timeout = "fast" },
        { max_retries = 1.5 },
        { rate_limit = 1 },
        { version = "3.0" },
        { upload_path = "ftp" },
        { poll_strategy = "smart" },
        { poll_strategy = 1 },
        { webhooks = "yes" },
        { log = "stderr" },
        { log_level = "loud" },
        { request_timeout = 0 / 0 },
        { [1] = "positional" },
      }
      for _, extra in ipairs(bad) do
        local o = {}
        for k, v in pairs(base) do o[k] = v end
        for k, v in pairs(extra) do o[k] = v end
        assert.has_error(function() sa.client(o) end)
      end
      assert.has_error(function() sa.client("key") end)
    end)

    it("take poll_strategy (learned, fixed) and webhooks", function()
      for _, o in ipairs({ { poll_strategy = "learned" }, { poll_strategy = "fixed" },
                           { webhooks = true }, { webhooks = false, poll_strategy = "fixed" } }) do
        o.api_key = "k"
        o.base_url = "http://127.0.0.1:9"
        local c = assert(sa.client(o))
        c:close()
      end
    end)

    it("returns codes for bad configurations", function()
      local c, msg, code = sa.client{ api_key = "k", base_url = "http://example.com" }
      assert.is_nil(c)
      assert.is_string(msg)
      assert.equal("insecure", code)
      c, msg, code = sa.client{ api_key = "", base_url = "http://127.0.0.1:9" }
      assert.is_nil(c)
      assert.equal("invalid_argument", code)
    end)

    it("never prints the key", function()
      local c = assert(sa.client{ api_key = "sekrit-key-123", base_url = "http://127.0.0.1:9",
                                  version = "2.0" })
      local s = tostring(c)
      assert.not_matches("sekrit", s)
      assert.matches("skinanalysis.client", s)
      c:close()
      assert.matches("closed", tostring(c))
    end)
  end)
end)
