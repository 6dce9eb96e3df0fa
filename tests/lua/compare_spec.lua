-- result:compare (the core's sa_scores_compare, as Python's Result.compare)
-- and composites tinted per concern, against the emulator.
local sa = require "skinanalysis"
local spec = require "helpers.spec"

local SD_JPG = spec.SD_JPG

describe("before/after", function()
  local emu = spec.emulator{ "--task-seconds", "0", "--rate-limit", "off" }

  it("compares two results per concern and region", function()
    local c <close> = emu:client()
    local before = assert(c:analyze(SD_JPG, { actions = { "wrinkle", "pore", "skin_type" } }))
    local after = assert(c:analyze(spec.PNG, { actions = { "wrinkle", "pore", "acne", "skin_type" } }))
    local cmp = assert(before:compare(after))
    local by = {}
    for _, ch in ipairs(cmp.changes) do by[ch.concern .. "/" .. ch.region] = ch end
    for _, name in ipairs({ "wrinkle", "pore" }) do
      local ch = by[name .. "/whole"]
      local b, a = before:get(name), after:get(name)
      assert.equal(b.ui_score, ch.before)
      assert.equal(a.ui_score, ch.after)
      assert.equal(a.ui_score - b.ui_score, ch.ui_change)
      assert.near(a.raw_score - b.raw_score, ch.raw_change, 1e-9)
      assert.is_true(ch.in_before and ch.in_after)
    end
    -- only after: no change
    local acne = by["acne/whole"]
    assert.is_false(acne.in_before)
    assert.is_nil(acne.before)
    assert.is_nil(acne.ui_change)
    -- skin types in words on each side
    local st = by["skin_type/t_zone"]
    assert.equal(before:get("skin_type", "t_zone").skin_type, st.skin_type_before)
    assert.equal(after:get("skin_type", "t_zone").skin_type, st.skin_type_after)
    assert.near(after.overall - before.overall, cmp.overall.ui_change, 1e-9)
    assert.equal(after.skin_age - before.skin_age, cmp.skin_age.ui_change)
    -- a result against itself: all zero
    for _, ch in ipairs(before:compare(before).changes) do
      if ch.before then assert.equal(0, ch.ui_change) end
    end
  end)

  it("compares parsed score_info documents, SD against HD", function()
    local b = assert(sa.parse_result('{"wrinkle":{"raw_score":40,"ui_score":60},"all":{"score":50}}',
                                     "score_info"))
    local a = assert(sa.parse_result('{"hd_wrinkle":{"whole":{"raw_score":45,"ui_score":66}}}',
                                     "score_info"))
    local cmp = assert(b:compare(a))
    assert.equal(1, #cmp.changes)
    assert.equal("hd_wrinkle", cmp.changes[1].concern)
    assert.equal(6, cmp.changes[1].ui_change)
    assert.equal(5, cmp.changes[1].raw_change)
    assert.equal(50, cmp.overall.before)
    assert.is_nil(cmp.overall.after)
    assert.has_error(function() b:compare(nil) end)
  end)

  it("concern colours are the core's, SD and HD alike", function()
    local r, g, b = sa.concern_color("wrinkle")
    assert.same({ r, g, b }, { sa.concern_color("hd_wrinkle") })
    assert.are_not.same({ r, g, b }, { sa.concern_color("pore") })
    assert.is_true(r >= 0 and r <= 255 and g >= 0 and b <= 255)
  end)

  it("composite tints each mask by its concern's name, not its position", function()
    local dir, _ <close> = spec.tmpdir()
    local c <close> = emu:client()
    local r = assert(c:analyze(SD_JPG, { actions = { "pore" }, format = "zip" }))
    local mask
    for _, f in ipairs(r.files) do
      if f.format == "png" then mask = f end
    end
    assert.is_not_nil(mask)
    local function composite(name, extra)
      local files = { { name = name, data = mask.data, format = "png" } }
      if extra then table.insert(files, 1, extra) end
      local fake = setmetatable({ scores = {}, files = files }, getmetatable(r))
      local out = dir .. "/" .. name .. (extra and "-2" or "") .. ".png"
      assert(fake:composite(SD_JPG, out))
      return spec.read(out)
    end
    local as_pore, as_wrinkle = composite("pore_output.png"), composite("wrinkle_output.png")
    assert.are_not.equal(as_pore, as_wrinkle)
    -- another mask before it does not change its colour where it alone covers
    assert.equal(as_pore, composite("pore_output.png", { name = "notes.txt", data = "x" }))
    -- the real result names its mask: the same as the by-name tint
    local out = dir .. "/real.png"
    assert(r:composite(SD_JPG, out))
    assert.equal(as_pore, spec.read(out))
  end)
end)
