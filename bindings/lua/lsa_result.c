/*
 * lsa_result.c - results as plain Lua tables with a small metatable
 * (result:get(concern, region)), and core.parse_result.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <string.h>

#include "lsa.h"
/* The catalogue's SD/HD counterpart table, so that result:get finds
 * "hd_wrinkle" when asked for "wrinkle" exactly as sa_result_get does,
 * without a second copy of the catalogue in the binding. */
#include "sa_internal.h"

static void lsa_field_string(lua_State *L, const char *key, const char *v)
{
    if (v != NULL) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, key);
    }
}

/* NaN means absent: the field stays nil. */
static void lsa_field_number(lua_State *L, const char *key, double v)
{
    if (isnan(v))
        return;
    lua_pushnumber(L, (lua_Number)v);
    lua_setfield(L, -2, key);
}

/* ui_score (and skin_age) are integers when present: keep them integers
 * in Lua when they are integral. */
static void lsa_field_integral(lua_State *L, const char *key, double v)
{
    if (isnan(v))
        return;
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, (lua_Number)v);
    lua_setfield(L, -2, key);
}

static void lsa_push_score(lua_State *L, const sa_score *s)
{
    size_t i;

    lua_createtable(L, 0, 8);
    lsa_field_string(L, "concern", s->concern);
    lsa_field_string(L, "region", s->region != NULL ? s->region : "whole");
    lsa_field_number(L, "raw_score", s->raw_score);
    lsa_field_integral(L, "ui_score", s->ui_score);
    lsa_field_string(L, "skin_type", s->skin_type);
    lsa_field_string(L, "mask_name", s->mask_name);
    lua_createtable(L, (int)s->n_mask_urls, 0);
    for (i = 0; i < s->n_mask_urls; i++) {
        if (s->mask_urls[i] == NULL)
            continue;
        lua_pushstring(L, s->mask_urls[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "mask_urls");
}

void lsa_push_result(lua_State *L, const sa_result *r)
{
    size_t i, n = sa_result_count(r);
    lua_Integer k = 0;

    lua_createtable(L, 0, 9);
    luaL_setmetatable(L, LSA_RESULT_MT);
    lsa_field_string(L, "format",
                     sa_result_format(r) == SA_FORMAT_ZIP ? "zip" : "json");
    lsa_field_string(L, "task_id", sa_result_task_id(r));
    lsa_field_number(L, "overall", sa_result_overall(r));
    lsa_field_integral(L, "skin_age", sa_result_skin_age(r));
    lsa_field_string(L, "resize_image_url", sa_result_resize_image_url(r));
    lsa_field_string(L, "zip_url", sa_result_zip_url(r));
    lsa_field_string(L, "json", sa_result_json(r));
    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
        const sa_score *s = sa_result_score(r, i);
        if (s == NULL)
            continue;
        lsa_push_score(L, s);
        lua_rawseti(L, -2, ++k);
    }
    lua_setfield(L, -2, "scores");
}

/* 1 when field `key` of the table on the top is the string `want`. */
static int lsa_field_is(lua_State *L, const char *key, const char *want)
{
    int same;

    if (want == NULL)
        return 0;
    same = lua_getfield(L, -1, key) == LUA_TSTRING &&
           strcmp(lua_tostring(L, -1), want) == 0;
    lua_pop(L, 1);
    return same;
}

/* result:get(concern [, region]): the score table, or nil.  region
 * defaults to "whole"; an SD name finds its HD counterpart and back. */
static int lsa_result_get(lua_State *L)
{
    const char *concern, *region, *alias = NULL;
    lua_Integer i, n;
    int idx;

    luaL_checktype(L, 1, LUA_TTABLE);
    concern = luaL_checkstring(L, 2);
    region = luaL_optstring(L, 3, "whole");
    idx = sa_catalog_find(concern);
    if (idx >= 0) {
        int other = sa_catalog_counterpart(idx);
        if (other >= 0)
            alias = sa_action_name((size_t)other);
    }
    lua_settop(L, 3);
    if (lua_getfield(L, 1, "scores") != LUA_TTABLE)
        return 0;
    n = (lua_Integer)lua_rawlen(L, 4);
    for (i = 1; i <= n; i++) {
        if (lua_rawgeti(L, 4, i) == LUA_TTABLE &&
            (lsa_field_is(L, "concern", concern) ||
             lsa_field_is(L, "concern", alias)) &&
            lsa_field_is(L, "region", region))
            return 1;
        lua_pop(L, 1);
    }
    return 0;
}

static int lsa_result_tostring(lua_State *L)
{
    lua_Integer n = 0;

    luaL_checktype(L, 1, LUA_TTABLE);
    if (lua_getfield(L, 1, "scores") == LUA_TTABLE)
        n = (lua_Integer)lua_rawlen(L, -1);
    lua_getfield(L, 1, "task_id");
    lua_pushfstring(L, "%s (task %s, %I scores): %p", LSA_RESULT_MT,
                    lua_isstring(L, -1) ? lua_tostring(L, -1) : "?", n,
                    lua_topointer(L, 1));
    return 1;
}

/* A parsed result waiting to be converted: the box owns it, so a Lua
 * error (out of memory) during the conversion cannot leak it. */
#define LSA_RESULT_BOX "skinanalysis.result_box"

static int lsa_result_box_gc(lua_State *L)
{
    sa_result **box = luaL_checkudata(L, 1, LSA_RESULT_BOX);

    sa_result_free(*box);
    *box = NULL;
    return 0;
}

int lsa_parse_result(lua_State *L)
{
    static const char *const kinds[] = {"status", "score_info", NULL};
    size_t len;
    const char *json = luaL_checklstring(L, 1, &len);
    int kind = luaL_checkoption(L, 2, "status", kinds);
    sa_result **box;
    int rc;

    lua_settop(L, 2);
    box = lua_newuserdatauv(L, sizeof(*box), 0);
    *box = NULL;
    luaL_setmetatable(L, LSA_RESULT_BOX);
    rc = sa_result_parse(json, len,
                         kind == 0 ? SA_PARSE_STATUS_BODY : SA_PARSE_SCORE_INFO,
                         box);
    if (rc != SA_OK)
        return lsa_push_error(L, rc, NULL);
    lsa_push_result(L, *box);
    sa_result_free(*box);
    *box = NULL;
    return 1;
}

void lsa_result_register(lua_State *L)
{
    static const luaL_Reg meta[] = {{"__tostring", lsa_result_tostring},
                                    {NULL, NULL}};
    static const luaL_Reg methods[] = {{"get", lsa_result_get},
                                      {NULL, NULL}};

    lsa_new_class(L, LSA_RESULT_MT, meta, methods);
    luaL_newmetatable(L, LSA_RESULT_BOX);
    lua_pushcfunction(L, lsa_result_box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
}
