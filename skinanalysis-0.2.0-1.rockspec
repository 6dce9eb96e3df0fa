-- LuaRocks package of the Lua 5.4 module `skinanalysis`.
--
--   luarocks make skinanalysis-0.2.0-1.rockspec          (from a checkout)
--
-- The builtin backend compiles the C core (core/src) straight into
-- skinanalysis/core.so together with the binding (bindings/lua), as the
-- CMake build does; the module is not linked to liblua.  libcurl and cJSON
-- are external dependencies (Debian: libcurl4-openssl-dev libcjson-dev).
rockspec_format = "3.0"
package = "skinanalysis"
version = "0.2.0-1"

-- The project has no public repository yet: build from a checkout with
-- `luarocks make`.  Set source.url to the release archive when there is one.
source = {
  url = "git+file:///work/main",
  tag = "v0.2.0",
}

description = {
  summary = "Client for Perfect Corp's AI Skin Analysis API (v2.0/v2.1)",
  detailed = [[
    Upload a selfie, run a skin analysis task, poll it and read the scores:
    blocking (client:analyze), or stepped from a game's frame loop
    (client:submit + client:step, coroutine helpers).  A small reentrant C
    core over libcurl and cJSON does the protocol, retries and rate
    limiting.
  ]],
  labels = { "api", "http", "image", "gamedev" },
}

dependencies = {
  "lua >= 5.4",
}

-- CURL is checked by its library only: Debian keeps curl/curl.h in the
-- multiarch include directory, which the compiler searches but LuaRocks'
-- header check does not.
external_dependencies = {
  CURL = { library = "curl" },
  CJSON = { header = "cjson/cJSON.h", library = "cjson" },
  CRYPTO = { header = "openssl/evp.h", library = "crypto" },
  LIBZIP = { header = "zip.h", library = "zip" },
  PNG = { header = "png.h", library = "png" },
  JPEG = { header = "jpeglib.h", library = "jpeg" },
}

build = {
  type = "builtin",
  modules = {
    skinanalysis = "lua/skinanalysis.lua",
    ["skinanalysis.core"] = {
      sources = {
        "bindings/lua/lsa_client.c",
        "bindings/lua/lsa_job.c",
        "bindings/lua/lsa_module.c",
        "bindings/lua/lsa_result.c",
        "core/src/account.c",
        "core/src/budget.c",
        "core/src/budget_host.c",
        "core/src/budget_redis.c",
        "core/src/catalog.c",
        "core/src/client.c",
        "core/src/compare.c",
        "core/src/composite.c",
        "core/src/drive.c",
        "core/src/engine.c",
        "core/src/engine_loop.c",
        "core/src/engine_send.c",
        "core/src/fetch.c",
        "core/src/files.c",
        "core/src/image.c",
        "core/src/job.c",
        "core/src/job_account.c",
        "core/src/job_answers.c",
        "core/src/job_fetch.c",
        "core/src/job_read.c",
        "core/src/json.c",
        "core/src/limiter.c",
        "core/src/options.c",
        "core/src/palette.c",
        "core/src/pollplan.c",
        "core/src/proto.c",
        "core/src/publish.c",
        "core/src/request.c",
        "core/src/result.c",
        "core/src/result_files.c",
        "core/src/sched.c",
        "core/src/status.c",
        "core/src/structs.c",
        "core/src/util.c",
        "core/src/webhook.c",
        "core/src/zipresult.c",
      },
      defines = { "SA_BUILDING_LIBRARY", "_GNU_SOURCE" },
      -- core/src is not on the path: the core's files find their internal
      -- headers beside them, the binding sees only core/include (cJSON is
      -- here for the core's json.c; the binding never includes it)
      incdirs = { "core/include", "$(CURL_INCDIR)", "$(CJSON_INCDIR)",
                  "$(CRYPTO_INCDIR)", "$(LIBZIP_INCDIR)", "$(PNG_INCDIR)", "$(JPEG_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(CJSON_LIBDIR)", "$(CRYPTO_LIBDIR)", "$(LIBZIP_LIBDIR)",
                  "$(PNG_LIBDIR)", "$(JPEG_LIBDIR)" },
      libraries = { "curl", "cjson", "crypto", "zip", "png", "jpeg", "pthread", "m" },
    },
  },
  copy_directories = { "docs" },
}
