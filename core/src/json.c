/* json.c - the one caller of cJSON's parser, accessors and a JSON writer.
 *
 * The one place that runs cJSON's parser, plus tolerant accessors,
 * a raw-text locator (for ids that must not go through a double) and a
 * small JSON writer for request bodies.
 *
 * Reentrancy decision.  cJSON (1.7.x) assigns its process-wide
 * `global_error` on every cJSON_ParseWithLengthOpts call.  Two threads
 * parsing at once race on that write even when nobody reads it.  So every
 * parse of the library goes through sa__json_parse, which holds
 * `json_parse_lock` around the cJSON call.  That mutex is the only mutable
 * process-wide state owned by this library outside sa_global_init; it is
 * statically initialised (no init call needed, nothing to clean up) and is
 * held only for the duration of one parse of an already size-bounded text.
 * Building and printing JSON (cJSON_Create*, cJSON_Print*) do not touch
 * global_error and run unlocked.  Caveat: a process that fork()s while
 * another thread is inside a parse must not parse in the child (as with any
 * mutex); exec() is fine.
 *
 * Before cJSON sees the text, scan_json() validates it completely with an
 * iterative, string-aware scanner: RFC 8259 grammar (plus an optional UTF-8
 * BOM, which cJSON also skips), nesting depth bounded by max_depth, no
 * trailing garbage, and no NUL in any string, raw or escaped as \u0000
 * (valid JSON, but cJSON would cut the string at it, and an id, a URL or a
 * concern name cut short is a different one: such an answer is unreadable,
 * SA_ERR_PROTOCOL, and each step's usual rules for an unreadable answer
 * apply).  Everything the scanner accepts is accepted by cJSON,
 * whose recursion is therefore bounded by max_depth, and a NULL from cJSON
 * after a successful scan can only mean that it ran out of memory.
 */
#include "sa_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t json_parse_lock = PTHREAD_MUTEX_INITIALIZER;

#define JSON_DEFAULT_DEPTH 64
/* cJSON refuses deeper nesting itself (CJSON_NESTING_LIMIT). */
#define JSON_MAX_DEPTH 1000
/* cJSON copies a number into a 64-byte buffer before strtod: longer
 * numbers fail there, so the scanner refuses them first. */
#define JSON_MAX_NUMBER_LEN 63
/* Integers up to 2^53 are exact in a double. */
#define JSON_EXACT_INT 9007199254740992.0

/* ------------------------------------------------------------------ */
/* Validation scanner                                                  */
/* ------------------------------------------------------------------ */

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const unsigned char *skip_ws(const unsigned char *p,
                                    const unsigned char *end)
{
    while (p < end && is_ws(*p)) p++;
    return p;
}

static const unsigned char *skip_bom(const unsigned char *p,
                                     const unsigned char *end)
{
    if (end - p >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF)
        return p + 3;
    return p;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Four hex digits at p (bounds checked by the caller); -1 if invalid. */
static long hex4(const unsigned char *p)
{
    long v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        int h = hex_value(p[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* A \u escape (four hex digits) at p (pointing at the 'u'); returns the
 * position after it (and after a low surrogate that must follow a high
 * one), or NULL.  \u0000 is refused: cJSON's strings are C strings, so a
 * NUL would silently end the string there ("TASK\u0000/../x" read as
 * "TASK").  With `nul` (sa__json_nul_only), a NUL is recorded in *nul and
 * scanning goes on. */
static const unsigned char *scan_unicode_escape(const unsigned char *p,
                                                const unsigned char *end,
                                                int *nul)
{
    long code;
    if (end - p < 5) return NULL;
    code = hex4(p + 1);
    if (code < 0 || (code >= 0xDC00 && code <= 0xDFFF)) return NULL;
    if (code == 0) {
        if (!nul) return NULL;
        *nul = 1;
    }
    p += 5;
    if (code >= 0xD800 && code <= 0xDBFF) {
        if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return NULL;
        code = hex4(p + 2);
        if (code < 0xDC00 || code > 0xDFFF) return NULL;
        p += 6;
    }
    return p;
}

/* A string starting at its opening quote; returns the position after the
 * closing quote or NULL.  Raw control bytes are tolerated (cJSON copies
 * them), a raw NUL is not (cJSON would silently cut the string there);
 * with `nul`, it is recorded in *nul instead. */
static const unsigned char *scan_string(const unsigned char *p,
                                        const unsigned char *end, int *nul)
{
    p++;
    while (p < end) {
        unsigned char c = *p;
        if (c == '"') return p + 1;
        if (c == '\0') {
            if (!nul) return NULL;
            *nul = 1;
        }
        if (c != '\\') {
            p++;
            continue;
        }
        if (end - p < 2) return NULL;
        switch (p[1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n':
        case 'r': case 't':
            p += 2;
            break;
        case 'u':
            p = scan_unicode_escape(p + 1, end, nul);
            if (!p) return NULL;
            break;
        default:
            return NULL;
        }
    }
    return NULL;
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? of at most 63 chars. */
static const unsigned char *scan_number(const unsigned char *p,
                                        const unsigned char *end)
{
    const unsigned char *start = p;
    if (p < end && *p == '-') p++;
    if (p >= end || !is_digit(*p)) return NULL;
    if (*p == '0') {
        p++;
    } else {
        while (p < end && is_digit(*p)) p++;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p)) return NULL;
        while (p < end && is_digit(*p)) p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || !is_digit(*p)) return NULL;
        while (p < end && is_digit(*p)) p++;
    }
    if (p - start > JSON_MAX_NUMBER_LEN) return NULL;
    return p;
}

static const unsigned char *scan_literal(const unsigned char *p,
                                         const unsigned char *end)
{
    static const char *const words[] = {"true", "false", "null"};
    size_t i;
    for (i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(end - p) >= n && memcmp(p, words[i], n) == 0)
            return p + n;
    }
    return NULL;
}

enum scan_state {
    SCAN_VALUE,          /* a value must come */
    SCAN_VALUE_OR_CLOSE, /* just after '[' */
    SCAN_KEY,            /* after ',' in an object */
    SCAN_KEY_OR_CLOSE,   /* just after '{' */
    SCAN_AFTER           /* a value ended */
};

/* One scalar value or the opening of a container at p.  Updates *depth and
 * the container stack (bit set = object). */
static int scan_value(const unsigned char **pp, const unsigned char *end,
                      unsigned char *stack, int *depth, int max_depth,
                      int *state, int *nul)
{
    const unsigned char *p = *pp;
    unsigned char c = *p;
    if (c == '{' || c == '[') {
        if (*depth >= max_depth) return SA_ERR_LIMIT;
        if (c == '{')
            stack[*depth / 8] |= (unsigned char)(1u << (*depth % 8));
        else
            stack[*depth / 8] &= (unsigned char)~(1u << (*depth % 8));
        (*depth)++;
        *pp = p + 1;
        *state = c == '{' ? SCAN_KEY_OR_CLOSE : SCAN_VALUE_OR_CLOSE;
        return SA_OK;
    }
    if (c == '"')
        p = scan_string(p, end, nul);
    else if (c == '-' || is_digit(c))
        p = scan_number(p, end);
    else
        p = scan_literal(p, end);
    if (!p) return SA_ERR_PROTOCOL;
    *pp = p;
    *state = SCAN_AFTER;
    return SA_OK;
}

/* Validate a whole JSON text; SA_OK, SA_ERR_PROTOCOL or SA_ERR_LIMIT.
 * With `nul`, a NUL in a string is not an error but sets *nul. */
static int scan_json(const unsigned char *p, const unsigned char *end,
                     int max_depth, int *nul)
{
    unsigned char stack[(JSON_MAX_DEPTH + 7) / 8];
    int depth = 0, state = SCAN_VALUE, rc, top_is_object;

    p = skip_bom(p, end);
    for (;;) {
        p = skip_ws(p, end);
        if (p >= end)
            return (state == SCAN_AFTER && depth == 0) ? SA_OK
                                                       : SA_ERR_PROTOCOL;
        top_is_object =
            depth > 0 && (stack[(depth - 1) / 8] >> ((depth - 1) % 8)) & 1;
        if ((state == SCAN_KEY_OR_CLOSE || state == SCAN_VALUE_OR_CLOSE
             || (state == SCAN_AFTER && depth > 0))
            && *p == (top_is_object ? '}' : ']')) {
            /* the end of the innermost object or array (maybe empty) */
            depth--;
            p++;
            state = SCAN_AFTER;
            continue;
        }
        switch (state) {
        case SCAN_KEY_OR_CLOSE:
        case SCAN_KEY:
            if (*p != '"') return SA_ERR_PROTOCOL;
            p = scan_string(p, end, nul);
            if (!p) return SA_ERR_PROTOCOL;
            p = skip_ws(p, end);
            if (p >= end || *p != ':') return SA_ERR_PROTOCOL;
            p++;
            state = SCAN_VALUE;
            break;
        case SCAN_VALUE_OR_CLOSE:
        case SCAN_VALUE:
            rc = scan_value(&p, end, stack, &depth, max_depth, &state, nul);
            if (rc != SA_OK) return rc;
            break;
        default: /* SCAN_AFTER */
            /* trailing garbage, or neither a comma nor the close */
            if (depth == 0 || *p != ',') return SA_ERR_PROTOCOL;
            state = top_is_object ? SCAN_KEY : SCAN_VALUE;
            p++;
            break;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */
/* ------------------------------------------------------------------ */

/* Parse len bytes of JSON (no NUL terminator needed).  max_depth <= 0
 * means 64; values above cJSON's own limit (1000) are lowered to it. */
int sa__json_parse(const char *text, size_t len, int max_depth, cJSON **out)
{
    const unsigned char *p = (const unsigned char *)text;
    cJSON *root;
    int rc;

    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!text) return SA_ERR_PROTOCOL;
    if (max_depth <= 0) max_depth = JSON_DEFAULT_DEPTH;
    if (max_depth > JSON_MAX_DEPTH) max_depth = JSON_MAX_DEPTH;
    rc = scan_json(p, p + len, max_depth, NULL);
    if (rc != SA_OK) return rc;

    /* A default mutex cannot fail to lock; if it ever did, refuse to parse
     * rather than race on cJSON's global. */
    if (pthread_mutex_lock(&json_parse_lock) != 0) return SA_ERR_INIT;
    root = cJSON_ParseWithLengthOpts(text, len, NULL, 0);
    pthread_mutex_unlock(&json_parse_lock);
    if (!root) return SA_ERR_NOMEM; /* the text is valid: see the top */
    *out = root;
    return SA_OK;
}

int sa__json_nul_only(const char *text, size_t len, int max_depth)
{
    const unsigned char *p = (const unsigned char *)text;
    int nul = 0;

    if (!text) return 0;
    if (max_depth <= 0) max_depth = JSON_DEFAULT_DEPTH;
    if (max_depth > JSON_MAX_DEPTH) max_depth = JSON_MAX_DEPTH;
    return scan_json(p, p + len, max_depth, &nul) == SA_OK && nul;
}

/* ------------------------------------------------------------------ */
/* Accessors                                                           */
/* ------------------------------------------------------------------ */

/* The member `key` of an object; NULL when obj is not an object, the key
 * is absent or its value is JSON null. */
const cJSON *sa__json_get(const cJSON *obj, const char *key)
{
    const cJSON *item;
    if (!obj || !key || !cJSON_IsObject(obj)) return NULL;
    item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item || cJSON_IsNull(item)) return NULL;
    return item;
}

/* The string value of `key`, or NULL (absent, null or not a string: use
 * sa__json_dup_scalar to accept numbers too). */
const char *sa__json_string(const cJSON *obj, const char *key)
{
    const cJSON *item = sa__json_get(obj, key);
    if (!item || !cJSON_IsString(item)) return NULL;
    return item->valuestring;
}

static const double pow10_exact[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* mant * 10^exp10.  Exact (correctly rounded) when mant <= 2^53 and
 * |exp10| <= 22, which covers every score-like value; otherwise within a
 * few ulp. */
static double scale10(uint64_t mant, long exp10)
{
    double v = (double)mant;
    if (mant == 0) return 0.0;
    while (exp10 > 22) {
        v *= 1e22;
        exp10 -= 22;
        if (isinf(v)) return v;
    }
    while (exp10 < -22) {
        v /= 1e22;
        exp10 += 22;
        if (v == 0.0) return v;
    }
    return exp10 >= 0 ? v * pow10_exact[exp10] : v / pow10_exact[-exp10];
}

/* Digits of a decimal mantissa: up to 19 significant digits are kept, the
 * rest only move the exponent.  Returns the number of digits read. */
static size_t read_digits(const char **pp, uint64_t *mant, int *kept,
                          long *exp10, int after_point)
{
    const char *p = *pp;
    size_t n = 0;
    while (is_digit((unsigned char)*p)) {
        if (*kept < 19) {
            *mant = *mant * 10 + (uint64_t)(*p - '0');
            if (*mant) (*kept)++;
            if (after_point) (*exp10)--;
        } else if (!after_point) {
            (*exp10)++;
        }
        p++;
        n++;
    }
    *pp = p;
    return n;
}

/* A decimal number in a string ("57.33", " 25 ", "-1e3"), independent of
 * the C locale.  No hex, inf or nan.  1 and *out on success. */
static int parse_number_text(const char *s, double *out)
{
    uint64_t mant = 0;
    long exp10 = 0, e = 0;
    int neg = 0, kept = 0, eneg = 0;
    size_t digits;
    double v;

    while (is_ws((unsigned char)*s)) s++;
    if (*s == '-' || *s == '+') neg = *s++ == '-';
    digits = read_digits(&s, &mant, &kept, &exp10, 0);
    if (*s == '.') {
        s++;
        digits += read_digits(&s, &mant, &kept, &exp10, 1);
    }
    if (digits == 0) return 0;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+') eneg = *s++ == '-';
        if (!is_digit((unsigned char)*s)) return 0;
        while (is_digit((unsigned char)*s)) {
            if (e < 100000) e = e * 10 + (*s - '0');
            s++;
        }
    }
    while (is_ws((unsigned char)*s)) s++;
    if (*s) return 0;
    v = scale10(mant, exp10 + (eneg ? -e : e));
    if (!isfinite(v)) return 0;
    *out = neg ? -v : v;
    return 1;
}

/* A finite number, or a string holding one. */
int sa__json_as_number(const cJSON *item, double *out)
{
    double v;
    if (!item) return 0;
    if (cJSON_IsNumber(item)) {
        if (!isfinite(item->valuedouble)) return 0;
        *out = item->valuedouble;
        return 1;
    }
    if (cJSON_IsString(item) && item->valuestring &&
        parse_number_text(item->valuestring, &v)) {
        *out = v;
        return 1;
    }
    return 0;
}

int sa__json_number(const cJSON *obj, const char *key, double *out)
{
    return sa__json_as_number(sa__json_get(obj, key), out);
}

/* Strings are copied as they are; numbers only when they are integers of
 * at most 2^53 in magnitude (beyond that a double no longer holds the exact
 * value: ids use sa__json_raw_at instead); anything else gives NULL. */
char *sa__json_dup_scalar(const sa_mem *mem, const cJSON *item, int *nomem)
{
    char tmp[32], *s;
    const char *src = NULL;
    double v;

    if (nomem) *nomem = 0;
    if (!item) return NULL;
    if (cJSON_IsString(item)) {
        src = item->valuestring;
    } else if (cJSON_IsNumber(item)) {
        v = item->valuedouble;
        if (!isfinite(v) || v != floor(v) || fabs(v) > JSON_EXACT_INT)
            return NULL;
        snprintf(tmp, sizeof tmp, "%lld", (long long)v);
        src = tmp;
    }
    if (!src) return NULL;
    s = sa__strdup(mem, src);
    if (!s && nomem) *nomem = 1;
    return s;
}

/* ------------------------------------------------------------------ */
/* Raw text of a value                                                 */
/* ------------------------------------------------------------------ */

/* Skip one value of a text that scan_json accepted (bounds still checked:
 * NULL when the text ends early). */
static const unsigned char *skip_value(const unsigned char *p,
                                       const unsigned char *end)
{
    size_t depth = 0;
    if (p >= end) return NULL;
    if (*p == '"') return scan_string(p, end, NULL);
    if (*p != '{' && *p != '[') {
        while (p < end && !is_ws(*p) && *p != ',' && *p != ']' && *p != '}')
            p++;
        return p;
    }
    while (p < end) {
        if (*p == '"') {
            p = scan_string(p, end, NULL);
            if (!p) return NULL;
            continue;
        }
        if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            if (--depth == 0) return p + 1;
        }
        p++;
    }
    return NULL;
}

/* In the object at p, find the member whose raw key equals key; returns
 * the start of its value or NULL. */
static const unsigned char *raw_member(const unsigned char *p,
                                       const unsigned char *end,
                                       const char *key)
{
    size_t klen = strlen(key);
    if (p >= end || *p != '{') return NULL;
    p++;
    for (;;) {
        const unsigned char *kstart, *kend;
        p = skip_ws(p, end);
        if (p >= end || *p != '"') return NULL;
        kstart = p + 1;
        kend = scan_string(p, end, NULL);
        if (!kend) return NULL;
        p = skip_ws(kend, end);
        if (p >= end || *p != ':') return NULL;
        p = skip_ws(p + 1, end);
        if ((size_t)(kend - 1 - kstart) == klen &&
            memcmp(kstart, key, klen) == 0)
            return p;
        p = skip_value(p, end);
        if (!p) return NULL;
        p = skip_ws(p, end);
        if (p >= end || *p != ',') return NULL;
        p++;
    }
}

int sa__json_raw_at(const char *text, size_t len, const char *const *path,
                   size_t npath, const char **start, size_t *n)
{
    const unsigned char *p = (const unsigned char *)text, *end, *vend;
    size_t i;

    if (!text || !start || !n) return 0;
    end = p + len;
    p = skip_ws(skip_bom(p, end), end);
    for (i = 0; i < npath && p; i++) {
        if (strcmp(path[i], "[0]") == 0) {
            if (p >= end || *p != '[') return 0;
            p = skip_ws(p + 1, end);
            if (p >= end || *p == ']') return 0;
        } else {
            p = raw_member(p, end, path[i]);
        }
    }
    if (!p) return 0;
    vend = skip_value(p, end);
    if (!vend || vend == p) return 0;
    *start = (const char *)p;
    *n = (size_t)(vend - p);
    return 1;
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

int sa__json_put_string(sa__buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run;
    int rc;

    if (!s) return sa__buf_append(b, "null", 4);
    rc = sa__buf_append(b, "\"", 1);
    while (rc == SA_OK && *s) {
        char esc[7];
        unsigned char c;
        size_t elen = 2;
        run = s;
        while (*s && *s != '"' && *s != '\\' && (unsigned char)*s >= 0x20)
            s++;
        if (s > run) rc = sa__buf_append(b, run, (size_t)(s - run));
        if (rc != SA_OK || !*s) break;
        c = (unsigned char)*s++;
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
            break;
        }
        rc = sa__buf_append(b, esc, elen);
    }
    if (rc == SA_OK) rc = sa__buf_append(b, "\"", 1);
    return rc;
}

int sa__json_put_item(sa__buf *b, const cJSON *item)
{
    char *text;
    int rc;
    if (!item) return sa__buf_append(b, "null", 4);
    text = cJSON_PrintUnformatted(item);
    if (!text) return SA_ERR_NOMEM;
    rc = sa__buf_append(b, text, strlen(text));
    cJSON_free(text);
    return rc;
}

/* ------------------------------------------------------------------ */
/* miniserver_args from typed members (sa_miniserver_args_json)       */
/* ------------------------------------------------------------------ */

/* Bound on the encoded object: the documented keys fit in a few KB. */
#define MSARGS_MAX ((size_t)1 << 20)

/* A finite double as JSON: whole numbers (below 2^53) as integers, others
 * with the fewest of 15..17 significant digits that read back the same
 * (0.4, not 0.40000000000000002); a locale's decimal comma made a point
 * (after the read-back, which uses the same locale). */
static int put_number(sa__buf *b, double v)
{
    char num[40], *p;
    int prec;
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        snprintf(num, sizeof num, "%.0f", v);
    } else {
        for (prec = 15; prec < 17; prec++) {
            snprintf(num, sizeof num, "%.*g", prec, v);
            if (strtod(num, NULL) == v) break;
        }
        if (prec == 17) snprintf(num, sizeof num, "%.17g", v);
    }
    for (p = num; *p; p++)
        if (*p == ',') *p = '.';
    return sa__buf_append(b, num, strlen(num));
}

/* A key in a message: at most 64 bytes of it. */
#define KEY_ARGS(a) (int)((a)->key_len < 64 ? (a)->key_len : 64), (a)->key

/* s[0..len) (no NUL within) as a JSON string: a bounded copy first, as
 * sa__json_put_string wants a terminated string. */
static int put_counted(sa__buf *b, const char *s, size_t len)
{
    char *copy = sa__strndup(NULL, s, len);
    int rc;

    if (!copy) return SA_ERR_NOMEM;
    rc = sa__json_put_string(b, copy);
    sa__free(NULL, copy);
    return rc;
}

static int put_member(sa__buf *b, const sa_arg *a, char *err, size_t errlen)
{
    int rc;

    if (!a->key) {
        sa__errf(err, errlen, "miniserver_args: keys must be strings");
        return SA_ERR_BAD_OPTION;
    }
    if (memchr(a->key, '\0', a->key_len)) {
        sa__errf(err, errlen, "miniserver_args: a key holds a NUL");
        return SA_ERR_BAD_OPTION;
    }
    switch (a->type) {
    case SA_ARG_BOOL:
    case SA_ARG_NUMBER:
    case SA_ARG_STRING:
        break;
    default:
        sa__errf(err, errlen, "miniserver_args.%.*s: boolean, number or "
                 "string expected, got %.32s", KEY_ARGS(a),
                 a->type_name ? a->type_name : "another type");
        return SA_ERR_BAD_OPTION;
    }
    if (a->type == SA_ARG_NUMBER && !isfinite(a->number)) {
        sa__errf(err, errlen, "miniserver_args.%.*s: not a finite number",
                 KEY_ARGS(a));
        return SA_ERR_BAD_OPTION;
    }
    if (a->type == SA_ARG_STRING &&
        ((!a->string && a->string_len > 0) ||
         (a->string && memchr(a->string, '\0', a->string_len)))) {
        sa__errf(err, errlen, "miniserver_args.%.*s: the string holds a "
                 "NUL", KEY_ARGS(a));
        return SA_ERR_BAD_OPTION;
    }
    rc = put_counted(b, a->key, a->key_len);
    if (rc == SA_OK) rc = sa__buf_append(b, ":", 1);
    if (rc != SA_OK) return rc;
    if (a->type == SA_ARG_BOOL)
        return a->boolean ? sa__buf_append(b, "true", 4)
                          : sa__buf_append(b, "false", 5);
    if (a->type == SA_ARG_NUMBER) return put_number(b, a->number);
    return put_counted(b, a->string ? a->string : "",
                       a->string ? a->string_len : 0);
}

int sa_miniserver_args_json(const sa_arg *args, size_t n, char **json,
                            char *errbuf, size_t errbuf_len)
{
    sa__buf b;
    size_t i;
    int rc;

    if (errbuf && errbuf_len) errbuf[0] = '\0';
    if (json) *json = NULL;
    if (!json || (!args && n > 0)) {
        sa__errf(errbuf, errbuf_len, "sa_miniserver_args_json: NULL "
                 "argument");
        return SA_ERR_INVALID_ARGUMENT;
    }
    sa__buf_init(&b, NULL, MSARGS_MAX);
    rc = sa__buf_append(&b, "{", 1);
    for (i = 0; i < n && rc == SA_OK; i++) {
        if (i > 0) rc = sa__buf_append(&b, ",", 1);
        if (rc == SA_OK) rc = put_member(&b, &args[i], errbuf, errbuf_len);
    }
    if (rc == SA_OK) rc = sa__buf_append(&b, "}", 1);
    if (rc == SA_ERR_LIMIT) {
        sa__errf(errbuf, errbuf_len, "miniserver_args: more than %zu bytes "
                 "of JSON", MSARGS_MAX);
        rc = SA_ERR_BAD_OPTION;
    }
    if (rc == SA_ERR_NOMEM) sa__errf(errbuf, errbuf_len, "out of memory");
    if (rc != SA_OK) {
        sa__buf_free(&b);
        return rc;
    }
    *json = sa__buf_steal(&b);
    return *json ? SA_OK : SA_ERR_NOMEM;
}
