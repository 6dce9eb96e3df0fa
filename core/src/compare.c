/* compare.c - before/after: two results of one face compared.
 *
 * Before/after: two results of one face compared per concern
 * and region (sa_result_compare, sa_scores_compare), with the overall
 * score and the skin age.  The one reading of "what changed" that Python
 * (Result.compare) and Lua (result:compare) share.
 *
 * Matching: each entry of `after`, in order, takes the first unused entry
 * of `before` with the same concern and region, else the same region of
 * the concern's SD/HD counterpart (catalog.c); entries of `before` left
 * unmatched follow.  The comparison copies every string it shows, so
 * either result may be freed first.  Memory: libc (no client).
 */
#include "sa_internal.h"

#include <math.h>
#include <string.h>

struct sa_comparison {
    sa_change *changes;
    size_t count;
    sa_change overall;
    sa_change skin_age;
    char **strings; /* every string the changes point at */
    size_t n_strings;
};

static const char *keep(sa_comparison *c, const char *s)
{
    char *copy;
    if (!s) return NULL;
    copy = sa__strdup(NULL, s);
    if (!copy) return NULL;
    c->strings[c->n_strings++] = copy;
    return copy;
}

static double sub(double after, double before)
{
    return isnan(after) || isnan(before) ? NAN : after - before;
}

static void blank(sa_change *ch)
{
    memset(ch, 0, sizeof *ch);
    ch->ui_before = ch->ui_after = ch->ui_change = NAN;
    ch->raw_before = ch->raw_after = ch->raw_change = NAN;
}

static int same_concern(const char *a, const char *b)
{
    int k;
    if (strcmp(a, b) == 0) return 1;
    k = sa__catalog_counterpart(sa__catalog_find(a));
    return k >= 0 && strcmp(sa_action_name((size_t)k), b) == 0;
}

/* The first unused entry of `before` for (concern, region): exact name
 * first, then the counterpart. */
static long match(const sa_scores *before, const unsigned char *used,
                  const sa_score *s)
{
    size_t i;
    int pass;
    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < before->count; i++) {
            const sa_score *b = &before->scores[i];
            if (used[i] || !b->concern || strcmp(b->region, s->region) != 0)
                continue;
            if (pass == 0 ? strcmp(b->concern, s->concern) == 0
                          : same_concern(s->concern, b->concern))
                return (long)i;
        }
    }
    return -1;
}

/* One side of a change from its entry s (NULL: the side stays blank);
 * 0 on NOMEM. */
static int fill_side(sa_comparison *c, const sa_score *s, int *in,
                     double *ui, double *raw, const char **skin_type)
{
    if (!s) return 1;
    *in = 1;
    *ui = s->ui_score;
    *raw = s->raw_score;
    return !s->skin_type || (*skin_type = keep(c, s->skin_type)) != NULL;
}

/* Fill ch from the entries on each side (either may be NULL). */
static int fill(sa_comparison *c, sa_change *ch, const sa_score *b,
                const sa_score *a)
{
    const sa_score *named = a ? a : b;
    blank(ch);
    ch->concern = keep(c, named->concern);
    ch->region = keep(c, named->region ? named->region : "whole");
    if (!ch->concern || !ch->region
        || !fill_side(c, b, &ch->in_before, &ch->ui_before, &ch->raw_before,
                      &ch->skin_type_before)
        || !fill_side(c, a, &ch->in_after, &ch->ui_after, &ch->raw_after,
                      &ch->skin_type_after))
        return SA_ERR_NOMEM;
    ch->ui_change = sub(ch->ui_after, ch->ui_before);
    ch->raw_change = sub(ch->raw_after, ch->raw_before);
    return SA_OK;
}

static void single(sa_change *ch, const char *name, double before,
                   double after)
{
    blank(ch);
    ch->concern = name;
    ch->region = "whole";
    ch->in_before = !isnan(before);
    ch->in_after = !isnan(after);
    ch->ui_before = before;
    ch->ui_after = after;
    ch->ui_change = sub(after, before);
}

static int scores_ok(const sa_scores *s)
{
    size_t i;
    if (!s || (s->count && !s->scores)) return 0;
    for (i = 0; i < s->count; i++) {
        if (!s->scores[i].concern || !s->scores[i].region) return 0;
    }
    return 1;
}

int sa_scores_compare(const sa_scores *before, const sa_scores *after,
                      sa_comparison **out)
{
    sa_comparison *c;
    unsigned char *used = NULL;
    size_t i, n;
    int rc = SA_OK;

    if (!out) return SA_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!scores_ok(before) || !scores_ok(after))
        return SA_ERR_INVALID_ARGUMENT;
    if (before->count > SIZE_MAX / 4 - after->count) return SA_ERR_NOMEM;
    c = sa__calloc(NULL, 1, sizeof *c);
    if (!c) return SA_ERR_NOMEM;
    n = before->count + after->count;
    c->changes = sa__calloc(NULL, n ? n : 1, sizeof *c->changes);
    c->strings = sa__calloc(NULL, n ? n * 4 : 1, sizeof *c->strings);
    used = sa__calloc(NULL, before->count ? before->count : 1, 1);
    if (!c->changes || !c->strings || !used) rc = SA_ERR_NOMEM;
    for (i = 0; rc == SA_OK && i < after->count; i++) {
        const sa_score *a = &after->scores[i];
        long j = match(before, used, a);
        if (j >= 0) used[j] = 1;
        rc = fill(c, &c->changes[c->count++], j >= 0 ? &before->scores[j] : NULL,
                  a);
    }
    for (i = 0; rc == SA_OK && i < before->count; i++) {
        if (!used[i])
            rc = fill(c, &c->changes[c->count++], &before->scores[i], NULL);
    }
    sa__free(NULL, used);
    if (rc != SA_OK) {
        sa_comparison_free(c);
        return rc;
    }
    single(&c->overall, "all", before->overall, after->overall);
    single(&c->skin_age, "skin_age", before->skin_age, after->skin_age);
    *out = c;
    return SA_OK;
}

static int view(const sa_result *r, sa_scores *s, const sa_score **list)
{
    size_t i, n = sa_result_count(r);
    sa_score *copy = NULL;
    *list = NULL;
    if (n) {
        copy = sa__calloc(NULL, n, sizeof *copy);
        if (!copy) return SA_ERR_NOMEM;
        for (i = 0; i < n; i++) copy[i] = *sa_result_score(r, i);
    }
    *list = copy;
    s->scores = copy;
    s->count = n;
    s->overall = sa_result_overall(r);
    s->skin_age = sa_result_skin_age(r);
    return SA_OK;
}

int sa_result_compare(const sa_result *before, const sa_result *after,
                      sa_comparison **out)
{
    sa_scores b, a;
    const sa_score *lb = NULL, *la = NULL;
    int rc;

    if (out) *out = NULL;
    if (!before || !after || !out) return SA_ERR_INVALID_ARGUMENT;
    rc = view(before, &b, &lb);
    if (rc == SA_OK) rc = view(after, &a, &la);
    if (rc == SA_OK) rc = sa_scores_compare(&b, &a, out);
    sa__free(NULL, (void *)lb);
    sa__free(NULL, (void *)la);
    return rc;
}

size_t sa_comparison_count(const sa_comparison *c)
{
    return c ? c->count : 0;
}

const sa_change *sa_comparison_change(const sa_comparison *c, size_t i)
{
    return c && i < c->count ? &c->changes[i] : NULL;
}

const sa_change *sa_comparison_overall(const sa_comparison *c)
{
    return c ? &c->overall : NULL;
}

const sa_change *sa_comparison_skin_age(const sa_comparison *c)
{
    return c ? &c->skin_age : NULL;
}

void sa_comparison_free(sa_comparison *c)
{
    size_t i;
    if (!c) return;
    for (i = 0; i < c->n_strings; i++) sa__free(NULL, c->strings[i]);
    sa__free(NULL, c->strings);
    sa__free(NULL, c->changes);
    sa__free(NULL, c);
}
