-- ZIP results, mask downloads (blocking and stepped), expired URLs,
-- composites, and parse_zip, against the emulator.
local sa = require "skinanalysis"
local spec = require "helpers.spec"

local SD_JPG = spec.SD_JPG

-- Width and height from a PNG's IHDR.
local function png_size(data)
  assert.equal(spec.PNG_SIG, data:sub(1, 8))
  assert.equal("IHDR", data:sub(13, 16))
  return string.unpack(">I4I4", data, 17)
end

-- Seconds of step budget per frame (as the frame-loop host spec).
local function budget()
  local cache = io.open((os.getenv("SA_BUILD_DIR") or ".") .. "/CMakeCache.txt")
  local sanitized = false
  if cache then
    sanitized = cache:read("a"):find("SA_SANITIZE:BOOL=ON", 1, true) ~= nil
    cache:close()
  end
  return sanitized and 0.012 or 0.004
end

describe("zip results and masks", function()
  local emu = spec.emulator()

  it("a corrupt zip ends with the code zip, naming the billed task", function()
    emu:scenario{ { endpoint = "result", fault = "malformed_json" } }
    local c <close> = emu:client()
    local r, msg, code = c:analyze(SD_JPG, { actions = { "pore" }, format = "zip" })
    emu:clear_scenario()
    assert.matches("billed", spec.failure("zip", r, msg, code))
  end)

  it("a zip result carries scores and its PNG masks", function()
    local c <close> = emu:client()
    local r = assert(c:analyze(SD_JPG, { actions = { "pore", "wrinkle" }, format = "zip" }))
    assert.equal("zip", r.format)
    assert.matches("/_results/", r.zip_url)
    assert.is_number(r:get("pore").ui_score)
    assert.is_number(r:get("wrinkle").ui_score)
    assert.is_string(r:get("pore").mask_name)
    assert.is_true(#r.files >= 2)
    for _, f in ipairs(r.files) do
      assert.is_string(f.name)
      assert.equal("png", f.format, f.name)
      assert.equal(spec.PNG_SIG, f.data:sub(1, 8), f.name)
    end
    local mask = r:file(r:get("pore").mask_name)
    assert.is_table(mask)
    assert.equal(spec.PNG_SIG, mask.data:sub(1, 8))
    assert.is_nil(r:file("no-such-file.png"))
  end)

  it("save_masks writes a zip result's files", function()
    local dir, _ <close> = spec.tmpdir()
    local c <close> = emu:client()
    local r = assert(c:analyze(SD_JPG, { actions = { "pore", "acne" }, format = "zip" }))
    local paths, err, code = r:save_masks(dir)
    assert.is_nil(code, err)
    assert.equal(#r.files, #paths)
    for _, p in ipairs(paths) do
      assert.equal(dir, p:match("^(.*)/[^/]+$"))
      assert.equal(spec.PNG_SIG, spec.read(p):sub(1, 8), p)
    end
  end)

  it("save_masks downloads a json result's masks through its job", function()
    local dir, _ <close> = spec.tmpdir()
    local c <close> = emu:client()
    local r = assert(c:analyze(SD_JPG, { actions = { "pore", "acne" } }))
    assert.equal(0, #r.files)
    -- the job is kept by the result alone, and never as a field
    collectgarbage() collectgarbage()
    for k, v in pairs(r) do assert.are_not.equal("userdata", type(v), k) end
    assert.is_nil(getmetatable(r).__index.job)
    local before = emu:log()
    local paths, err, code = r:save_masks(dir)
    assert.is_nil(code, err)
    -- two masks and the resized image
    assert.equal(3, #paths)
    local pngs = 0
    for _, p in ipairs(paths) do
      if spec.read(p):sub(1, 8) == spec.PNG_SIG then pngs = pngs + 1 end
    end
    assert.equal(2, pngs)
    -- the downloads never carried the key
    local log = emu:log()
    for i = #before + 1, #log do
      local e = log[i]
      if type(e.path) == "string" and e.path:find("^/_results/") then
        assert.is_falsy(e.authorization, e.path)
      end
    end
    -- straight to disk, never held in memory; a second save finds the
    -- same files (the same bytes) and gives the same paths, replacing none
    assert.equal(0, #r.files)
    local again = assert(r:save_masks(dir))
    table.sort(paths)
    table.sort(again)
    assert.same(paths, again)
  end)

  it("save_masks of a result without files or job is an invalid_argument", function()
    local r = assert(sa.parse_result(spec.read(spec.fixtures ..
                                                   "/spec/examples/task-status-success-json-hd.json")))
    spec.failure("invalid_argument", r:save_masks("/tmp"))
  end)

  it("a closed job cannot download any more", function()
    local c <close> = emu:client()
    local job = assert(c:submit(SD_JPG, { actions = { "pore" } }))
    local r = assert(job:wait(10))
    job:close()
    assert.matches("closed", spec.failure("invalid_argument", r:save_masks("/tmp")))
  end)

  it("save_masks into a folder that does not exist fails with 'file'", function()
    local c <close> = emu:client()
    local r = assert(c:analyze(SD_JPG, { actions = { "pore" }, format = "zip" }))
    assert.matches("/nonexistent%-dir/masks",
                   spec.failure("file", r:save_masks("/nonexistent-dir/masks")))
    assert.has_error(function() r:save_masks("") end)
  end)

  it("composite writes a PNG of the source's size", function()
    local dir, _ <close> = spec.tmpdir()
    local src = assert(sa.probe_file(SD_JPG))
    local c <close> = emu:client()
    for _, format in ipairs({ "zip", "json" }) do
      local r = assert(c:analyze(SD_JPG, { actions = { "pore", "wrinkle" }, format = format }))
      local out = dir .. "/overview-" .. format .. ".png"
      local path, err, code = r:composite(SD_JPG, out)
      assert.is_nil(code, err)
      assert.equal(out, path)
      local w, h = png_size(spec.read(out))
      assert.equal(src.width, w, format)
      assert.equal(src.height, h, format)
    end
  end)

  it("composite reports an unreadable source and an undecodable one", function()
    local dir, _ <close> = spec.tmpdir()
    local c <close> = emu:client()
    local r = assert(c:analyze(SD_JPG, { actions = { "pore" }, format = "zip" }))
    spec.failure("file", r:composite(dir .. "/missing.jpg", dir .. "/o.png"))
    spec.failure("image_decode", r:composite(spec.fixtures .. "/not_an_image.jpg", dir .. "/o.png"))
  end)

  it("client:fetch_masks in a frame loop never stalls a frame", function()
    local dir, _ <close> = spec.tmpdir()
    local c <close> = emu:client()
    local job = assert(c:submit(SD_JPG, { actions = { "pore", "wrinkle", "acne", "oiliness" } }))
    assert(job:wait(10))
    -- One frame loop of downloads: the slowest step and the fetch job.
    local function frame_loop()
      local fetch = assert(c:fetch_masks(job, dir))
      assert.equal("fetching", fetch:state())
      local worst, frames, deadline = 0, 0, sa.now() + 20
      while not fetch:done() and sa.now() < deadline do
        local t0 = sa.now()
        assert(c:step())
        worst = math.max(worst, sa.now() - t0)
        frames = frames + 1
        os.execute("sleep 0.005")
      end
      assert.is_true(fetch:done())
      assert.is_true(frames > 1)
      return worst, fetch
    end
    local worst, fetch = frame_loop()
    for _ = 1, 2 do
      if worst <= budget() then break end
      -- a shared machine may preempt one step; a real stall shows up in
      -- every run (at most three)
      print(("\n  slowest step %.2f ms over the budget: running again"):format(worst * 1000))
      worst, fetch = frame_loop()
    end
    assert.is_true(worst <= budget(), "slowest step " .. worst .. " s")
    local r = assert(fetch:result())
    assert.equal(5, #r.files) -- four masks and the resized image
    for _, f in ipairs(r.files) do
      assert.is_nil(f.data)   -- streamed to disk, not held
      assert.equal(dir .. "/" .. f.name, f.path)
      assert.is_true(#spec.read(f.path) > 0)
    end
    assert.is_number(r:get("pore").ui_score)
  end)

  it("a download never reports to the callbacks of the job it downloads for", function()
    local c <close> = emu:client()
    local states, dones = {}, 0
    local job = assert(c:submit(SD_JPG, {
      actions = { "pore" },
      on_progress = function(_, state) states[#states + 1] = state end,
      on_done = function() dones = dones + 1 end,
    }))
    assert(job:wait(10))
    local n = #states
    assert.equal("done", states[n])
    local fetch = assert(c:fetch_masks(job))
    spec.step_until(c, function() return fetch:done() end)
    assert(fetch:wait(1))
    c:step()
    assert.equal(n, #states)
    assert.equal(1, dones)
    assert.equal("done", job:state())
  end)

  it("fetch_masks of a job still running is not_done; a job of another client raises", function()
    local c <close> = emu:client()
    local other <close> = emu:client()
    local job = assert(c:submit(SD_JPG, { actions = { "pore" } }))
    local ok, _, code = c:fetch_masks(job)
    assert.is_nil(ok)
    assert.equal("not_done", code)
    assert.has_error(function() other:fetch_masks(job) end)
    job:cancel()
  end)
end)

describe("expired mask URLs", function()
  local emu = spec.emulator{ "--task-seconds", "0.1", "--rate-limit", "off", "--url-ttl", "1" }

  it("are refreshed by polling the task again", function()
    local dir, _ <close> = spec.tmpdir()
    finally(function()
      emu:control("POST", "/_control/clock", { mode = "real" })  -- for the other tests
    end)
    local c <close> = emu:client()
    local job = assert(c:submit(SD_JPG, { actions = { "pore" } }))
    local r = assert(job:wait(10))
    local polls = #emu:log()
    -- the URLs expire: the emulator's clock stops 1.5 s later (no sleep)
    assert.equal(200, (emu:control("POST", "/_control/clock", { mode = "test", advance_ms = 1500 })))
    local paths, err, code = r:save_masks(dir)
    assert.is_nil(code, err)
    assert.equal(2, #paths)
    local expired, repolled = 0, 0
    local log = emu:log()
    for i = polls + 1, #log do
      local e = log[i]
      if type(e.path) == "string" and e.path:find("^/_results/") and e.status == 403 then
        expired = expired + 1
      elseif type(e.path) == "string" and e.path:find("/task/skin%-analysis/") then
        repolled = repolled + 1
      end
    end
    assert.is_true(expired >= 1)
    assert.is_true(repolled >= 1)
  end)
end)

describe("parse_zip", function()
  it("parses a result ZIP from memory", function()
    local r = assert(sa.parse_zip(spec.read(spec.fixtures .. "/zips/result_hd.zip")))
    assert.equal("zip", r.format)
    assert.is_true(#r.scores > 0)
    assert.is_true(#r.files > 0)
    for _, f in ipairs(r.files) do
      assert.equal(spec.PNG_SIG, f.data:sub(1, 8))
    end
  end)

  it("refuses a ZIP without score_info.json and bytes that are no ZIP", function()
    spec.failure("zip", sa.parse_zip(spec.read(spec.fixtures .. "/zips/no_score_info.zip")))
    spec.failure("zip", sa.parse_zip("not a zip"))
  end)
end)
