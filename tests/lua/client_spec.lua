-- The blocking and the stepping paths against the emulator, every image
-- source, both versions and formats, validation before anything is sent.
local sa = require "skinanalysis"
local spec = require "helpers.spec"

local SD_JPG = spec.SD_JPG

describe("client against the emulator", function()
  local emu = spec.emulator()

  local function check_sd_result(r)
    assert.is_table(r)
    assert.equal("json", r.format)
    assert.is_string(r.task_id)
    assert.is_number(r.overall)
    assert.is_number(r.skin_age)
    assert.is_string(r.resize_image_url)
    for _, action in ipairs(sa.actions("sd")) do
      local s = r:get(action)
      assert.is_table(s, action)
      if action == "skin_type" then
        assert.is_string(s.skin_type)
      else
        assert.is_number(s.raw_score, action)
        assert.equal("integer", math.type(s.ui_score), action)
        assert.is_string(s.mask_urls[1], action)
      end
    end
  end

  describe("blocking", function()
    it("analyzes a file with the 16 SD actions by default", function()
      local c <close> = emu:client()
      local r, err, code = c:analyze(SD_JPG)
      assert.is_nil(code, err)
      check_sd_result(r)
    end)

    it("takes max_uploads (uploads at once) and refuses a negative one", function()
      local c <close> = emu:client{ max_uploads = 1 }
      local jobs = {}
      for i = 1, 3 do jobs[i] = assert(c:submit(SD_JPG, { actions = { "pore" } })) end
      for i = 1, 3 do
        local r, err, code = jobs[i]:wait(20)
        assert.is_nil(code, err)
        assert.is_table(r:get("pore"))
      end
      local ok, c2, msg, code = pcall(sa.client, emu:client_options{ max_uploads = -1 })
      assert.is_true(ok)          -- a bad value is a runtime failure, not a raise
      assert.is_nil(c2)
      assert.matches("max_uploads", msg)
      assert.equal("invalid_argument", code)
    end)

    it("takes step_budget (seconds) and refuses one out of range", function()
      local c <close> = emu:client{ step_budget = 0.0002 }
      local job = assert(c:submit(SD_JPG, { actions = { "pore" } }))
      while not job:done() do c:step() sa.core.sleep(0.002) end
      assert.is_true(job:ok())
      local c0 <close> = emu:client{ step_budget = 0 }  -- no time budget
      assert.is_truthy(c0)
      assert.matches("step_budget", spec.failure("invalid_argument",
                                                 sa.client(emu:client_options{ step_budget = -1 })))
    end)

    it("analyzes a buffer", function()
      local c <close> = emu:client()
      local r = assert(c:analyze(nil, { buffer = spec.read(spec.PNG), actions = { "pore" } }))
      assert.is_number(r:get("pore").ui_score)
      assert.is_nil(r:get("wrinkle"))
    end)

    it("analyzes a public URL, then an uploaded file id", function()
      local c <close> = emu:client()
      local url = emu:host_public("face.jpg", SD_JPG, "image/jpeg")
      local r = assert(c:analyze(nil, { url = url, actions = { "wrinkle" } }))
      assert.is_number(r:get("wrinkle").ui_score)

      local job = assert(c:submit(SD_JPG, { actions = { "acne" } }))
      assert(job:wait())
      local file_id = job:info().file_id
      assert.is_string(file_id)
      r = assert(c:analyze(nil, { file_id = file_id, actions = { "acne" } }))
      assert.is_number(r:get("acne").ui_score)
    end)

    it("speaks v2.0 and v2.1 and asks for zip results", function()
      local before = emu:request_count()
      local c20 <close> = emu:client{ version = "2.0" }
      assert(c20:analyze(SD_JPG, { actions = { "pore" } }))
      local c21 <close> = emu:client()
      local r = assert(c21:analyze(SD_JPG, { actions = { "pore" }, format = "zip", version = 2.0 }))
      assert.equal("zip", r.format)
      -- the core downloaded and parsed the ZIP: scores and the PNG mask
      assert.is_number(r:get("pore").ui_score)
      assert.equal(1, #r.files)
      assert.equal("png", r.files[1].format)
      local log = emu:log()
      local paths = {}
      for i = before + 1, #log do paths[#paths + 1] = log[i].path end
      local joined = table.concat(paths, "\n")
      assert.matches("/s2s/v2%.0/task/skin%-analysis", joined)
      assert.matches("/_results/", joined)
      assert.not_matches("/s2s/v2%.1/", joined)
    end)

    it("analyzes an HD image with HD actions", function()
      local c <close> = emu:client()
      local r = assert(c:analyze(spec.HD_JPG, { actions = { "hd_wrinkle", "hd_pore" } }))
      assert.is_number(r:get("hd_wrinkle", "forehead").ui_score)
      assert.is_number(r:get("pore", "nose").ui_score)
    end)

    it("returns wait_timeout and the running job, which can be waited on again", function()
      local c <close> = emu:client()
      local r, err, code, job = c:analyze(SD_JPG, { actions = { "pore" }, timeout = 0.01 })
      assert.is_nil(r)
      assert.is_string(err)
      assert.equal("wait_timeout", code)
      assert.is_false(job:done())
      assert.is_truthy(job:wait(10))
      assert.is_true(job:done())
      assert.equal("done", job:status())
    end)
  end)

  describe("stepping", function()
    it("drives several jobs from a loop and reports every state", function()
      local c <close> = emu:client()
      local progress, done = {}, {}
      local jobs = {}
      for i = 1, 3 do
        jobs[i] = assert(c:submit(SD_JPG, {
          actions = { "wrinkle", "pore" },
          on_progress = function(job, state)
            progress[i] = progress[i] or {}
            table.insert(progress[i], state)
            assert.equal(jobs[i], job)
          end,
          on_done = function(job)
            done[i] = (done[i] or 0) + 1
            assert.is_true(job:done())
          end,
        }))
      end
      local steps, running = 0, 3
      local deadline = sa.now() + 20
      while (running > 0 or #done < 3) and sa.now() < deadline do
        running = assert(c:step())
        steps = steps + 1
        os.execute("sleep 0.01")
      end
      assert.equal(0, running)
      for i = 1, 3 do
        assert.equal(1, done[i])
        local states = table.concat(progress[i], " ")
        assert.matches("upload", states)
        assert.matches("task_create", states)
        assert.matches("done$", states)
        assert.is_truthy(jobs[i]:result())
        assert.equal("done", jobs[i]:status())
        local info = jobs[i]:info()
        assert.equal(9, info.units)
        assert.truthy(info.polls >= 1)
        assert.is_string(info.task_id)
        assert.equal(info.task_id, jobs[i]:task_id())
      end
      assert.truthy(steps > 3)
    end)

    it("step() returns at once", function()
      local c <close> = emu:client()
      local job = assert(c:submit(SD_JPG, { actions = { "pore" } }))
      local t0 = sa.now()
      for _ = 1, 20 do c:step() end
      assert.truthy(sa.now() - t0 < 0.5)
      assert.is_truthy(job:wait(10))
    end)

    it("step(wait) waits for network activity, and run() drains the client", function()
      local c <close> = emu:client()
      local job = assert(c:submit(SD_JPG, { actions = { "pore" } }))
      assert.is_number(c:step(0.01))
      assert.is_true(c:active() >= 1)
      assert.is_true(c:run(10))
      assert.equal(0, c:active())
      assert.is_nil(c:timeout())
      assert.is_true(job:done())
    end)

    it("reports state, status and result of a running job", function()
      local c <close> = emu:client()
      local job = assert(c:submit(SD_JPG, { actions = { "pore" } }))
      assert.is_false(job:done())
      assert.is_string(job:state())
      local r, msg, code = job:result()
      assert.is_nil(r)
      assert.is_string(msg)
      assert.equal("not_done", code)
      assert.matches("^skinanalysis.job %(", tostring(job))
      assert.is_truthy(job:wait(10))
      assert.matches("done", tostring(job))
    end)
  end)

  describe("cancel and abandon", function()
    it("cancel ends the job as cancelled", function()
      local c <close> = emu:client()
      local ended = 0
      local job = assert(c:submit(SD_JPG, { actions = { "pore" }, on_done = function() ended = ended + 1 end }))
      c:step()
      assert.is_true(job:cancel())
      assert.is_true(job:done())
      local state, code, msg = job:status()
      assert.equal("cancelled", state)
      assert.equal("cancelled", code)
      assert.is_string(msg)
      local r, _, rcode = job:wait(1)
      assert.is_nil(r)
      assert.equal("cancelled", rcode)
      assert.equal(1, ended)
      assert.is_true(job:cancel()) -- no effect on an ended job
      assert.is_true(c:run(10))    -- background polls of a created task end
    end)

    it("abandon ends the job at once", function()
      local c <close> = emu:client()
      local job = assert(c:submit(SD_JPG, { actions = { "pore" } }))
      spec.task_id(c, job)
      assert.is_true(job:abandon())
      assert.equal("cancelled", job:status())
      assert.is_true(c:run(5))
    end)
  end)

  describe("validation before anything is sent", function()
    -- a real PNG header, padded to 10,000,000 bytes and more
    local big = spec.read(spec.PNG) .. string.rep("\0", 10000000)
    local cases = {
      { "unknown_action", SD_JPG, { actions = { "wrinkles" } } },
      { "mixed_tiers", SD_JPG, { actions = { "wrinkle", "hd_pore" } } },
      { "action_count", SD_JPG, { actions = {} } },
      { "source", SD_JPG, { buffer = "xx" } },
      { "source", nil, {} },
      { "file", spec.fixtures .. "/no-such-file.jpg", {} },
      { "image_format", spec.fixtures .. "/not_an_image.jpg", {} },
      { "image_too_small", spec.fixtures .. "/small.jpg", {} },
      { "image_too_small", SD_JPG, { actions = { "hd_pore" } } },
      { "image_too_large", nil, { buffer = big } },
      { "bad_option", SD_JPG, { miniserver_args = { bogus_key = true } } },
      { "bad_option", SD_JPG, { miniserver_args = "[1, 2]" } },
      -- what JSON scalars cannot say: the core's refusal, as in Python
      { "bad_option", SD_JPG, { miniserver_args = { enable_mask_overlay = {} } } },
      { "bad_option", SD_JPG, { miniserver_args = { opacity_dark_background_hd_pore = 0 / 0 } } },
      { "bad_option", SD_JPG, { miniserver_args = { [1] = true } } },
      { "bad_option", SD_JPG, { version = "2.0", pf_camera_kit = true } },
    }
    for _, case in ipairs(cases) do
      it(case[1] .. " " .. (case[2] and case[2]:match("[^/]*$") or "-"), function()
        local c <close> = emu:client()
        local before = emu:request_count()
        local job, msg, code = c:submit(case[2], case[3])
        assert.is_nil(job)
        assert.is_string(msg)
        assert.not_equal("", msg)
        assert.equal(case[1], code)
        assert.is_true(sa.is_validation(code))
        local r, _, acode = c:analyze(case[2], case[3])
        assert.is_nil(r)
        assert.equal(case[1], acode)
        assert.equal(before, emu:request_count())
      end)
    end

    it("miniserver_args refusals carry the core's message", function()
      local c <close> = emu:client()
      local _, msg = c:submit(SD_JPG, { miniserver_args = { enable_mask_overlay = {} } })
      assert.equal("miniserver_args.enable_mask_overlay: boolean, number or string expected, got table", msg)
      _, msg = c:submit(SD_JPG, { miniserver_args = { [1] = true } })
      assert.equal("miniserver_args: keys must be strings", msg)
      _, msg = c:submit(SD_JPG, { miniserver_args = { enable_mask_overlay = "x\0y" } })
      assert.equal("miniserver_args.enable_mask_overlay: the string holds a NUL", msg)
    end)

    it("accepts documented miniserver_args", function()
      local c <close> = emu:client()
      local r = assert(c:analyze(spec.HD_JPG, { actions = { "hd_pore" }, mask_overlay = true,
        miniserver_args = { enable_dark_background_hd_pore = true,
                            color_dark_background_hd_pore = "3D3D3D",
                            opacity_dark_background_hd_pore = 0.4 } }))
      assert.matches("%.jpg", r:get("hd_pore").mask_urls[1])
    end)
  end)

  describe("programmer errors raise", function()
    it("on unknown analysis options and wrong types", function()
      local c <close> = emu:client()
      local bad = {
        { actions = { "pore" }, colour = "red" },
        { actions = "pore", format = "xml" },
        { actions = { 1 } },
        { actions = 42 },
        { buffer = 42 },
        { on_done = "print" },
        { deadline = "soon" },
        { pf_camera_kit = "yes" },
        { version = 3 },
      }
      for _, opts in ipairs(bad) do
        assert.has_error(function() c:submit(SD_JPG, opts) end)
      end
      assert.has_error(function() c:submit({}) end)
      assert.has_error(function() c:submit(SD_JPG, "json") end)
      assert.has_error(function() c:analyze(SD_JPG, 7) end)
      assert.has_error(function() c.step(42) end)
      assert.has_error(function() c:step("later") end)
    end)
  end)
end)
