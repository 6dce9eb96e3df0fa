-- Mask files (issue 12): a fetch whose finished job and result were
-- collected (it used to read the freed job), names cleaned by the core and
-- unique, one bad URL failing alone with a download error, held files
-- written by the core (never over a file, never through a link), the
-- in-memory bound, the timeout and the low-speed cut-off on a trickling
-- host.
local sa = require "skinanalysis"
local spec = require "helpers.spec"

local SD_JPG = spec.SD_JPG

local function names_of(paths)
  local names = {}
  for i, p in ipairs(paths) do names[i] = p:match("([^/]+)$") end
  table.sort(names)
  return names
end

-- Seven URLs: three ending in mask.png, "x y.png" and "x_y.png", one that
-- is not http(s) and one that answers 404.
local RESULTS = { output = {
  { type = "wrinkle", ui_score = 50, raw_score = 50.5,
    mask_urls = { "{base}/_public/a/mask.png?sig=1", "{base}/_public/b/mask.png?sig=2" } },
  { type = "pore", ui_score = 60, raw_score = 60.5,
    mask_urls = { "{base}/_public/c/mask.png", "ftp://elsewhere/bad.png",
                  "{base}/_public/missing.png" } },
  { type = "acne", ui_score = 70, raw_score = 70.5,
    mask_urls = { "{base}/_public/x%20y.png", "{base}/_public/x_y.png" } },
} }

describe("mask files", function()
  local emu = spec.emulator()
  local slow = spec.emulator{ "--task-seconds", "60", "--rate-limit", "off" }

  lazy_setup(function()
    for name, body in pairs{ ["a/mask.png"] = ("A"):rep(3000), ["b/mask.png"] = ("B"):rep(3000),
                             ["c/mask.png"] = ("C"):rep(3000), ["x%20y.png"] = "space",
                             ["x_y.png"] = "underscore" } do
      assert.equal(200, (slow:control("POST", "/_control/public/" .. name, body)))
    end
  end)

  -- A DONE job of c whose data.results is `results`.
  local function done_job(c, results)
    local job = assert(c:submit(SD_JPG, { actions = { "wrinkle" } }))
    local id = spec.task_id(c, job)
    assert.equal(200, (slow:control("POST", "/_control/task/" .. id .. "/results",
                                    { results = results })))
    assert.equal(200, (slow:control("POST", "/_control/task/" .. id .. "/finish", {})))
    c:notify(id)
    assert(job:wait(20))
    return job
  end

  it("a fetch outlives its job and result being collected", function()
    local c <close> = emu:client()
    local job = assert(c:submit(SD_JPG, { actions = { "pore", "wrinkle" } }))
    local result = assert(job:wait(10))
    assert.is_table(result)
    local f = assert(c:fetch_masks(job))
    job = nil      -- luacheck: ignore
    result = nil   -- luacheck: ignore
    spec.full_gc()
    spec.step_until(c, function() return f:done() end, 10, 0.05)
    local r = assert(f:result())
    assert.equal(3, #r.files)
    assert.equal("done", f:state())
  end)

  it("a dropped fetch ends and is collected", function()
    local c <close> = emu:client()
    local job = assert(c:submit(SD_JPG, { actions = { "pore" } }))
    assert(job:wait(10))
    c:fetch_masks(job)
    job = nil   -- luacheck: ignore
    spec.full_gc()
    assert(c:run(10))
    assert.equal(0, c:active())
  end)

  it("names are cleaned by the core", function()
    assert.equal("x_y.png", sa.core.clean_file_name("https://s3/a/x%20y.png?sig=1"))
    assert.equal("passwd", sa.core.clean_file_name("../../etc/passwd"))
    assert.equal("file", sa.core.clean_file_name(""))
  end)

  it("one bad URL fails alone; names are unique", function()
    local dir, _ <close> = spec.tmpdir()
    local c <close> = slow:client()
    local job = done_job(c, RESULTS)
    local r = assert(job:result())
    local ok, err, code, paths = r:save_masks(dir .. "/")
    assert.is_nil(ok)
    assert.equal("download", code)
    assert.is_false(sa.is_validation(code))
    assert.matches("2 of 7 files failed; the first: bad.png", err, 1, true)
    assert.same({ "mask-2.png", "mask-3.png", "mask.png", "x_y-2.png", "x_y.png" },
                names_of(paths))
    assert.equal(("A"):rep(3000), spec.read(dir .. "/mask.png"))
    assert.equal(("B"):rep(3000), spec.read(dir .. "/mask-2.png"))
    assert.equal(("C"):rep(3000), spec.read(dir .. "/mask-3.png"))
    assert.equal("space", spec.read(dir .. "/x_y.png"))
    assert.equal("underscore", spec.read(dir .. "/x_y-2.png"))
    -- client:fetch_masks in memory: the files that arrived come fourth
    local fetch = assert(c:fetch_masks(job))
    local none, _, fcode, partial = fetch:wait(20)
    assert.is_nil(none)
    assert.equal("download", fcode)
    assert.equal(5, #partial.files)
  end)

  it("the files a result holds are written by the core", function()
    local dir, _ <close> = spec.tmpdir()
    local c <close> = emu:client()
    local z = assert(c:analyze(SD_JPG, { actions = { "pore" }, format = "zip" }))
    z.files = { { name = "x y.png", data = "space" }, { name = "x_y.png", data = "underscore" },
                { name = "../up.png", data = "up" } }
    local f = assert(io.open(dir .. "/up.png", "wb"))
    f:write("the user's file")
    f:close()
    os.execute("ln -s /etc/hostname " .. spec.quote(dir .. "/x_y.png"))
    local paths = assert(z:save_masks(dir))
    assert.same({ "up-2.png", "x_y-2.png", "x_y-3.png" }, names_of(paths))
    assert.equal("the user's file", spec.read(dir .. "/up.png"))
    assert.equal("space", spec.read(dir .. "/x_y-2.png"))
    assert.equal("underscore", spec.read(dir .. "/x_y-3.png"))
  end)

  it("max_files_bytes bounds the files held in memory", function()
    local dir, _ <close> = spec.tmpdir()
    local c <close> = slow:client{ max_files_bytes = 7000 }
    local job = done_job(c, { output = { { type = "wrinkle", ui_score = 5, raw_score = 5.5,
      mask_urls = { "{base}/_public/a/mask.png", "{base}/_public/b/mask.png",
                    "{base}/_public/c/mask.png" } } } })
    local fetch = assert(c:fetch_masks(job))
    local none, err, code, partial = fetch:wait(20)
    assert.is_nil(none)
    assert.equal("limit", code)
    assert.matches("max_files_bytes", err, 1, true)
    assert.equal(2, #partial.files)
    -- into a folder nothing is held: no bound
    local r = assert(job:result())
    assert.equal(3, #assert(r:save_masks(dir)))
  end)

  it("save_masks takes a timeout; a trickling host is cut off", function()
    local dir, _ <close> = spec.tmpdir()
    local c <close> = emu:client()
    local r = assert(c:analyze(SD_JPG, { actions = { "pore" } }))
    emu:scenario{ { endpoint = "result", nth = { 1 }, fault = "trickle",
                    size_bytes = 100000, delay_ms = 1000 } }
    local t0 = sa.now()
    local ok, _, code = r:save_masks(dir, 0.5)
    assert.is_nil(ok)
    assert.equal("wait_timeout", code)
    assert.is_true(sa.now() - t0 < 3)
    emu:clear_scenario()
    local cut <close> = emu:client{ max_retries = 0, low_speed_limit = 100, low_speed_time = 1,
                                   upload_timeout = 60 }
    local r2 = assert(cut:analyze(SD_JPG, { actions = { "pore", "wrinkle" } }))
    emu:scenario{ { endpoint = "result", nth = { 1 }, fault = "trickle",
                    size_bytes = 100000, delay_ms = 1000 } }
    t0 = sa.now()
    local ok2, _, code2, paths = r2:save_masks(dir)
    emu:clear_scenario()
    assert.is_nil(ok2)
    assert.equal("timeout", code2)
    assert.is_true(sa.now() - t0 < 10)
    assert.equal(2, #paths)
    for _, p in ipairs(paths) do assert.is_true(#spec.read(p) > 0) end
    local any_png = false
    for _, p in ipairs(paths) do
      if spec.read(p):sub(1, 8) == spec.PNG_SIG then any_png = true end
    end
    assert.is_true(any_png)
  end)
end)
