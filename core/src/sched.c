/* sched.c - which waiting request of a client goes out next (pure). */

/*
 * A client's jobs ask for requests one at a time; this module decides when
 * each may go.  It holds two queues and the limiter, and never sends,
 * sleeps or reads a clock: the caller passes `now` and sends what it is
 * handed (drive.c).  Tested with fake time in tests/c/test_sched.c.
 *
 * The limiter queue (only when the limiter is on; API.md section 10 and
 * the polling obligation of DESIGN.md: a running task left unpolled
 * expires and may still be billed, so polls must never starve).  Every
 * API-host request waits in limq and sa__sched_next_api hands each free
 * slot to the best eligible request:
 *   priority   status polls first, the most urgent first (urgency: the
 *              time by which the task must be polled, i.e. when its last
 *              poll -- or its task create -- was sent, plus
 *              max_poll_interval_ms); then task creates; then account
 *              requests (a delete_after's delete, a balance, a price list
 *              page: a biometric image's task is deleted as soon as its
 *              result is read, not behind new uploads); then file
 *              creates; first come first served within a class.
 *   admission  a job's first request (its file create, or the task create
 *              of an image_url / file_id source) waits while `admit_cap`
 *              jobs are admitted (first request sent, engine side not
 *              ended, background polling included).  admit_cap =
 *              max(1, floor(0.8 * rate_window_max * max_poll_interval_ms /
 *              rate_window_ms)): that many tasks polled once per
 *              max_poll_interval_ms use at most 80% of the long window
 *              (6 with the defaults).  No cap without a long window or
 *              with the limiter off (max_jobs still applies).  An
 *              account request never admits a job nor waits for the cap:
 *              it leaves no task to poll.
 *   reserve    the last slots of the long window are kept for urgent
 *              polls: a request that is not an urgent poll takes a slot
 *              only when the long window keeps one free slot per admitted
 *              job after it (counting the job a first request admits; at
 *              most 80% of rate_window_max).  A poll is urgent from half of
 *              max_poll_interval_ms before its deadline on.  So when
 *              creates and eager polls (every poll_interval_ms) have used
 *              the window up, each running task still gets its next poll.
 *              This does not make the window last for ever: a window spent
 *              in a burst frees its slots only rate_window_ms later, and
 *              tasks that run longer than the reserve covers can then wait;
 *              the admission cap keeps the steady need of polls at 80% of
 *              the window.
 * A job counts against the cap from its first request on, not only once
 * its task exists: a job between file create and task create is about to
 * need polls too (counting tasks only would let every queued job upload
 * and then create its task at once).  A poll never admits a job (the poll
 * of a task whose result is downloaded asks for a fresh URL), except the
 * first poll of a resumed task (poll_admits, set by the client): such a
 * job needs polls like any other from then on.  Being a poll, it never
 * waits for the cap itself.
 *
 * The upload queue.  Image uploads (the PUT to the storage URL) are capped
 * at max_uploads in flight (0: no cap); the rest wait in upq, first come
 * first served, and a new upload waits behind those already waiting even
 * when there is room.  Uploads are not API-host requests: the limiter
 * never sees them.
 */
#include "budget.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#define PENALTY_MS 1000     /* least pause after a 429 */

#define ITEM_OF(l) SA__CONTAINER_OF(l, sa__sched_item, link)

int sa__sched_init(sa__sched *s, const sa_mem *mem, const sa_client_options *o)
{
    double wm = (double)o->rate_window_max, wms = (double)o->rate_window_ms;
    double mpi = (double)o->max_poll_interval_ms, cap;

    memset(s, 0, sizeof *s);
    sa_link_init(&s->limq);
    sa_link_init(&s->upq);
    s->lim_ready = -1;
    s->max_poll_interval_ms = o->max_poll_interval_ms;
    s->max_uploads = o->max_uploads > 0 ? o->max_uploads : 0;
    s->penalty_ms = o->backoff_initial_ms > PENALTY_MS
                  ? o->backoff_initial_ms : PENALTY_MS;
    /* the options are the limiter's parameters as they are: its model is
     * the API's (limiter.c), with its own small jitter guard */
    if (o->rate_limit && o->rate_window_max > 0 && o->rate_window_ms > 0) {
        cap = floor(0.8 * wm * mpi / wms);
        s->admit_cap = cap < 1.0 ? 1
                     : cap > (double)INT_MAX ? INT_MAX : (int)cap;
        s->reserve_max = (int64_t)o->rate_window_max * 4 / 5;
    }
    return sa__limiter_init(&s->lim, mem, o->rate_limit, o->rate_per_second,
                           o->rate_burst, o->rate_window_max,
                           (int64_t)o->rate_window_ms);
}

void sa__sched_free(sa__sched *s)
{
    if (s) sa__limiter_free(&s->lim);
}

void sa__sched_item_init(sa__sched_item *it)
{
    memset(it, 0, sizeof *it);
    sa_link_init(&it->link);
}

int sa__sched_limited(const sa__sched *s)
{
    return s->lim.enabled;
}

/* ------------------------------------------------------------------ */
/* The limiter queue                                                   */
/* ------------------------------------------------------------------ */

void sa__sched_park_api(sa__sched *s, sa__sched_item *it, int step, int64_t now)
{
    it->step = step;
    it->seq = ++s->seq;
    sa_link_append(&s->limq, &it->link);
    s->lim_ready = now;
}

/* Class of a waiting request: polls (0) before task creates (1) before
 * account requests (2) before file creates (3). */
static int lim_class(const sa__sched_item *it)
{
    switch (it->step) {
    case SA__STEP_POLL: return 0;
    case SA__STEP_TASK_CREATE: return 1;
    case SA__STEP_ACCOUNT: return 2;
    default: return 3;
    }
}

/* Does sending this item admit its job (and so wait for the cap)?  A
 * first request does, except an account request (no task to poll after
 * it) and a poll (that of a resumed task only: poll_admits). */
static int admits(const sa__sched_item *it)
{
    if (it->admitted || it->step == SA__STEP_ACCOUNT) return 0;
    return it->step != SA__STEP_POLL || it->poll_admits;
}

/* The time by which the item's task must be polled. */
static int64_t poll_deadline(const sa__sched *s, const sa__sched_item *it)
{
    return it->poll_anchor + s->max_poll_interval_ms;
}

/* 1 when a ranks before b (b may be NULL). */
static int lim_before(const sa__sched *s, const sa__sched_item *a,
                      const sa__sched_item *b)
{
    int ca, cb;
    if (!b) return 1;
    ca = lim_class(a);
    cb = lim_class(b);
    if (ca != cb) return ca < cb;
    if (ca == 0 && poll_deadline(s, a) != poll_deadline(s, b))
        return poll_deadline(s, a) < poll_deadline(s, b);
    return a->seq < b->seq;
}

/* Long-window slots kept back for polls when `extra` more jobs are
 * admitted. */
static int64_t lim_reserve(const sa__sched *s, int extra)
{
    int64_t r = (int64_t)s->n_admitted_all + extra;
    return r < s->reserve_max ? r : s->reserve_max;
}

/* May the item take a slot now, with `room` free slots in the long
 * window?  When not, *retry_at gets a time it may (none for the admission
 * cap: a job that ends looks at the queue again). */
static int lim_eligible(const sa__sched *s, const sa__sched_item *it,
                        int64_t now, int room, int64_t *retry_at)
{
    int first = admits(it);

    if (lim_class(it) == 0) {
        int64_t urgent_at = poll_deadline(s, it)
                          - s->max_poll_interval_ms / 2;
        if (now >= urgent_at || (int64_t)room - 1 >= lim_reserve(s, 0))
            return 1;
        sa__min_at(retry_at, urgent_at);
        return 0;
    }
    if (first && s->admit_cap > 0 && s->n_admitted_all >= s->admit_cap) {
        /* jobs that end in another process do not wake this one */
        if (sa__budget_shared(s->budget))
            sa__min_at(retry_at, now + SA__BUDGET_RECHECK_MS);
        return 0;
    }
    return (int64_t)room - 1 >= lim_reserve(s, first);
}

sa__sched_item *sa__sched_next_api(sa__sched *s, int64_t now)
{
    int64_t ready = now, retry = -1, next_free;
    sa__sched_item *best = NULL;
    sa__link *l;
    int room;

    s->lim_ready = -1;
    if (sa_link_empty(&s->limq)) return NULL;
    room = sa__limiter_room(&s->lim, now, &next_free);
    s->n_admitted_all = s->n_admitted;
    if (sa__budget_shared(s->budget)) {
        int64_t shared_free;
        int shared_room = sa__budget_room(s->budget, now, &shared_free);
        if (shared_room < room) {
            room = shared_room;
            next_free = shared_free;
        }
        s->n_admitted_all = sa__budget_admitted(s->budget, now, s->n_admitted);
    }
    for (l = s->limq.next; l != &s->limq; l = l->next) {
        sa__sched_item *it = ITEM_OF(l);
        if (lim_eligible(s, it, now, room, &retry) && lim_before(s, it, best))
            best = it;
    }
    if (!best) {
        sa__min_at(&retry, next_free);
        s->lim_ready = retry;
        return NULL;
    }
    /* the client's own limiter (its burst spacing) and the shared budget
     * (every client of the scope): the slot is taken from both or none */
    if (!sa__limiter_check(&s->lim, now, &ready)
        || !sa__budget_acquire(s->budget, now, &ready)) {
        s->lim_ready = ready;
        return NULL;
    }
    (void)sa__limiter_acquire(&s->lim, now, &ready);
    sa_link_remove(&best->link);
    if (admits(best)) {
        /* a first request admits; a poll does only for a resumed task
         * (the poll of a task whose result is downloaded asks for a fresh
         * URL) */
        best->admitted = 1;
        best->poll_admits = 0;
        s->n_admitted++;
        if (sa__budget_shared(s->budget))   /* the others see it at once */
            s->n_admitted_all = sa__budget_admitted(s->budget, now,
                                                   s->n_admitted);
    }
    if (best->step == SA__STEP_POLL || best->step == SA__STEP_TASK_CREATE)
        best->poll_anchor = now;
    return best;
}

void sa__sched_recheck(sa__sched *s, int64_t at)
{
    s->lim_ready = at;
}

void sa__sched_unadmit(sa__sched *s, sa__sched_item *it, int64_t now)
{
    if (!it->admitted) return;
    it->admitted = 0;
    s->n_admitted--;
    if (sa__budget_shared(s->budget))
        s->n_admitted_all = sa__budget_admitted(s->budget, now, s->n_admitted);
    if (!sa_link_empty(&s->limq)) s->lim_ready = now;
}

void sa__sched_penalize(sa__sched *s, int64_t now)
{
    sa__limiter_penalize(&s->lim, now, s->penalty_ms);
    sa__budget_penalize(s->budget, now, s->penalty_ms);
}

/* ------------------------------------------------------------------ */
/* The upload queue                                                    */
/* ------------------------------------------------------------------ */

/* 1 when an upload may start now under max_uploads. */
static int upload_room(const sa__sched *s)
{
    return s->max_uploads <= 0 || s->n_uploads < s->max_uploads;
}

int sa__sched_upload_must_wait(const sa__sched *s)
{
    return !upload_room(s) || !sa_link_empty(&s->upq);
}

void sa__sched_park_upload(sa__sched *s, sa__sched_item *it)
{
    it->step = SA__STEP_UPLOAD;
    sa_link_append(&s->upq, &it->link);
}

sa__sched_item *sa__sched_next_upload(sa__sched *s)
{
    sa__sched_item *it;

    if (sa_link_empty(&s->upq) || !upload_room(s)) return NULL;
    it = ITEM_OF(s->upq.next);
    sa_link_remove(&it->link);
    return it;
}

void sa__sched_upload_started(sa__sched *s)
{
    if (++s->n_uploads > s->peak_uploads) s->peak_uploads = s->n_uploads;
}

void sa__sched_upload_ended(sa__sched *s)
{
    s->n_uploads--;
}

/* ------------------------------------------------------------------ */
/* Both queues                                                         */
/* ------------------------------------------------------------------ */

int sa__sched_waiting(const sa__sched_item *it)
{
    return sa_link_linked(&it->link);
}

void sa__sched_withdraw(sa__sched_item *it)
{
    if (sa_link_linked(&it->link)) sa_link_remove(&it->link);
}

int64_t sa__sched_ready_at(const sa__sched *s, int64_t now)
{
    int64_t at = -1;

    if (!sa_link_empty(&s->limq)) sa__min_at(&at, s->lim_ready);
    if (!sa_link_empty(&s->upq) && upload_room(s)) sa__min_at(&at, now);
    return at;
}

/* ------------------------------------------------------------------ */
/* The load signal (pollplan.c prices its polls by it)                 */
/* ------------------------------------------------------------------ */

/* 0 while the long window has room, rising from half used (0) to 80% used
 * (1, where the reserve starts to hold requests back); 1 as well when a
 * file or task create waits in the limiter queue while the window is at
 * least half used (new work waits for the budget).  The window is the
 * shared one under rate_limit_scope "host" (every client of the key);
 * under "redis://" the client's own sends (no room is read back).  0 with
 * the limiter off or without a long window.  Changes nothing. */
double sa__sched_load(const sa__sched *s, int64_t now)
{
    const sa__limiter_window *w;
    const sa__link *l;
    double frac, load;
    int room;

    if (!s || !s->lim.enabled || s->lim.long_win < 0) return 0.0;
    w = &s->lim.win[s->lim.long_win];
    if (w->max <= 0) return 0.0;
    room = sa__limiter_room(&s->lim, now, NULL);
    if (sa__budget_shared(s->budget)) {  /* host scope: the key's window */
        int shared = sa__budget_room(s->budget, now, NULL);
        if (shared < room) room = shared;
    }
    if (room > w->max) room = w->max;
    frac = (double)(w->max - room) / (double)w->max;
    load = (frac - 0.5) / 0.3;
    if (frac >= 0.5)
        for (l = s->limq.next; l != &s->limq; l = l->next)
            if (lim_class(ITEM_OF(l)) != 0) {
                load = 1.0;
                break;
            }
    return load < 0 ? 0.0 : load > 1 ? 1.0 : load;
}
