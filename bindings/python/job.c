/*
 * job.c - skinanalysis._core.Job: wraps one sa_job, and the conversion of
 * results to Python data.
 *
 * A Job holds a strong reference to its Client for its whole life (so its
 * sa_job can always be freed safely, see sapy.h) and, through its cell,
 * the image bytes of a buffer source until the job ends.  When the job
 * ends (the terminal callback), everything the caller may ask -- status,
 * messages, ids and the result -- is copied once into a dict, so a Job
 * stays readable after its client is closed.
 */
#include "sapy.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Results                                                             */
/* ------------------------------------------------------------------ */

static PyObject *number_or_none(double v)
{
    if (isnan(v))
        Py_RETURN_NONE;
    return PyFloat_FromDouble(v);
}

static PyObject *string_tuple(const char *const *items, size_t n)
{
    PyObject *t = PyTuple_New((Py_ssize_t)n);
    size_t i;

    if (t == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        PyObject *s = sapy_str(items[i]);

        if (s == NULL || PyTuple_SetItem(t, (Py_ssize_t)i, s) < 0) {
            Py_DECREF(t);  /* PyTuple_SetItem stole s */
            return NULL;
        }
    }
    return t;
}

/* (concern, region, raw_score, ui_score, skin_type, mask_urls, mask_name) */
static PyObject *score_to_tuple(const sa_score *s)
{
    PyObject *t = PyTuple_New(7);
    PyObject *items[7];
    int i;

    if (t == NULL)
        return NULL;
    items[0] = sapy_str(s->concern);
    items[1] = sapy_str(s->region);
    items[2] = number_or_none(s->raw_score);
    items[3] = number_or_none(s->ui_score);
    items[4] = sapy_str(s->skin_type);
    items[5] = string_tuple(s->mask_urls, s->n_mask_urls);
    items[6] = sapy_str(s->mask_name);
    for (i = 0; i < 7; i++) {
        if (items[i] == NULL) {
            for (i = 0; i < 7; i++)
                Py_XDECREF(items[i]);
            Py_DECREF(t);
            return NULL;
        }
    }
    for (i = 0; i < 7; i++) {
        /* PyTuple_SetItem steals items[i], also when it fails. */
        if (PyTuple_SetItem(t, i, items[i]) < 0) {
            while (++i < 7)
                Py_DECREF(items[i]);
            Py_DECREF(t);
            return NULL;
        }
    }
    return t;
}

/* d[key] = value, a new reference (NULL: the error of its making). */
static int put(PyObject *d, const char *key, PyObject *value)
{
    return sapy_set_new(PyDict_SetItemString, d, key, value);
}

/* ((name, bytes, format, path), ...) of the result's files: bytes for a
 * file held in memory (path None), the path of a file written into a
 * folder (bytes None). */
static PyObject *files_tuple(const sa_result *r)
{
    size_t n = sa_result_file_count(r), i;
    PyObject *t = PyTuple_New((Py_ssize_t)n);

    if (t == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        size_t len = 0;
        const void *data = sa_result_file_data(r, i, &len);
        const char *path = sa_result_file_path(r, i);
        PyObject *bytes = path != NULL
            ? Py_NewRef(Py_None)
            : PyBytes_FromStringAndSize(data != NULL ? (const char *)data
                                                     : "", (Py_ssize_t)len);
        PyObject *item = bytes == NULL ? NULL : Py_BuildValue(
            "(NNiN)", sapy_str(sa_result_file_name(r, i)), bytes,
            sa_result_file_format(r, i), sapy_str(path));

        if (item == NULL || PyTuple_SetItem(t, (Py_ssize_t)i, item) < 0) {
            Py_DECREF(t);  /* PyTuple_SetItem stole item */
            return NULL;
        }
    }
    return t;
}

PyObject *sapy_result_to_dict(const sa_result *r)
{
    size_t n = sa_result_count(r), i;
    PyObject *d = PyDict_New(), *scores;

    if (d == NULL)
        return NULL;
    scores = PyTuple_New((Py_ssize_t)n);
    if (scores == NULL)
        goto fail;
    for (i = 0; i < n; i++) {
        const sa_score *s = sa_result_score(r, i);
        PyObject *t = s != NULL ? score_to_tuple(s) : Py_NewRef(Py_None);

        if (t == NULL || PyTuple_SetItem(scores, (Py_ssize_t)i, t) < 0) {
            Py_DECREF(scores);  /* PyTuple_SetItem stole t */
            goto fail;
        }
    }
    if (put(d, "scores", scores) < 0
        || put(d, "task_id", sapy_str(sa_result_task_id(r))) < 0
        || put(d, "format", PyLong_FromLong(sa_result_format(r))) < 0
        || put(d, "overall", number_or_none(sa_result_overall(r))) < 0
        || put(d, "skin_age", number_or_none(sa_result_skin_age(r))) < 0
        || put(d, "resize_image_url",
               sapy_str(sa_result_resize_image_url(r))) < 0
        || put(d, "zip_url", sapy_str(sa_result_zip_url(r))) < 0
        || put(d, "json", sapy_str(sa_result_json(r))) < 0
        || put(d, "files", files_tuple(r)) < 0)
        goto fail;
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Job details: live from the core, or the copy taken at the end       */
/* ------------------------------------------------------------------ */

typedef struct job_field {
    const char *name;
    const char *(*str)(const sa_job *);
    int (*num)(const sa_job *);
} job_field;

static const job_field job_fields[] = {
    {"task_id", sa_job_task_id, NULL},
    {"file_id", sa_job_file_id, NULL},
    {"request_id", sa_job_request_id, NULL},
    {"errmsg", sa_job_errmsg, NULL},
    {"api_error_code", sa_job_api_error_code, NULL},
    {"engine_error", sa_job_engine_error, NULL},
    {"http_status", NULL, sa_job_http_status},
    {"units", NULL, sa_job_units},
    {"polls", NULL, sa_job_polls},
};
#define N_JOB_FIELDS (sizeof job_fields / sizeof job_fields[0])

static PyObject *field_live(const job_field *f, const sa_job *job)
{
    if (f->str != NULL)
        return sapy_str(f->str(job));
    return PyLong_FromLong(f->num(job));
}

static int is_terminal(int state)
{
    return state == SA_JOB_DONE || state == SA_JOB_FAILED
           || state == SA_JOB_CANCELLED;
}

/* An amount: an int when whole, else a float. */
static PyObject *amount_obj(double v)
{
    if (v == (double)(long long)v && v > -9.0e15 && v < 9.0e15)
        return PyLong_FromLongLong((long long)v);
    return PyFloat_FromDouble(v);
}

/* {"available", "grants": [{"type", "amount", "raw"}], "by_type": {}} */
static PyObject *credit_to_dict(const sa_credit *cr)
{
    PyObject *d = PyDict_New(), *grants = NULL, *types = NULL;
    size_t i;

    if (d == NULL)
        return NULL;
    grants = PyList_New(0);
    types = PyDict_New();
    if (grants == NULL || types == NULL)
        goto fail;
    for (i = 0; i < cr->n_grants; i++) {
        PyObject *g = PyDict_New();
        int r;
        if (g == NULL)
            goto fail;
        r = put(g, "type", sapy_str(cr->grants[i].type)) < 0
            || put(g, "amount", amount_obj(cr->grants[i].amount)) < 0
            || put(g, "raw", sapy_str(cr->grants[i].raw)) < 0
            || PyList_Append(grants, g) < 0;
        Py_DECREF(g);
        if (r)
            goto fail;
    }
    for (i = 0; i < cr->n_types; i++) {
        PyObject *v = amount_obj(cr->by_type[i].amount);
        int r = v == NULL || PyDict_SetItemString(types, cr->by_type[i].type,
                                                  v) < 0;
        Py_XDECREF(v);
        if (r)
            goto fail;
    }
    if (put(d, "available", amount_obj(cr->available)) < 0)
        goto fail;
    if (put(d, "grants", grants) < 0) {
        grants = NULL;
        goto fail;
    }
    grants = NULL;
    if (put(d, "by_type", types) < 0) {
        types = NULL;
        goto fail;
    }
    return d;
fail:
    Py_XDECREF(grants);
    Py_XDECREF(types);
    Py_DECREF(d);
    return NULL;
}

/* {"skus": [{"description", "amount", "unit", "proc_unit",
 * "run_task_url", "feature", "raw"}], "pages": n} */
static PyObject *prices_to_dict(const sa_price_list *pl)
{
    PyObject *d = PyDict_New(), *skus = NULL;
    size_t i;

    if (d == NULL)
        return NULL;
    skus = PyList_New(0);
    if (skus == NULL)
        goto fail;
    for (i = 0; i < pl->n_skus; i++) {
        const sa_sku *k = &pl->skus[i];
        PyObject *g = PyDict_New();
        int r;
        if (g == NULL)
            goto fail;
        r = put(g, "description", sapy_str(k->description)) < 0
            || put(g, "amount", amount_obj(k->amount)) < 0
            || put(g, "unit", sapy_str(k->unit)) < 0
            || put(g, "proc_unit", sapy_str(k->proc_unit)) < 0
            || put(g, "run_task_url", sapy_str(k->run_task_url)) < 0
            || put(g, "feature", sapy_str(k->feature)) < 0
            || put(g, "raw", sapy_str(k->raw)) < 0
            || PyList_Append(skus, g) < 0;
        Py_DECREF(g);
        if (r)
            goto fail;
    }
    if (put(d, "skus", skus) < 0) {
        skus = NULL;
        goto fail;
    }
    skus = NULL;
    if (put(d, "pages", PyLong_FromLong(pl->pages)) < 0)
        goto fail;
    return d;
fail:
    Py_XDECREF(skus);
    Py_DECREF(d);
    return NULL;
}

/* Copy everything out of the ended job, once. */
static int job_capture(sapy_job *self, sa_job *job, int state)
{
    PyObject *d = PyDict_New();
    size_t i;

    self->ended = 1;
    self->final_state = state;
    self->final_status = sa_job_status(job);
    if (d == NULL)
        return -1;
    for (i = 0; i < N_JOB_FIELDS; i++) {
        if (put(d, job_fields[i].name, field_live(&job_fields[i], job)) < 0)
            goto fail;
    }
    /* DONE: the result; a fetch that failed: the files it kept; an
     * account job: its balance or price list */
    if (sa_job_credit(job) != NULL) {
        if (put(d, "result", credit_to_dict(sa_job_credit(job))) < 0)
            goto fail;
    } else if (sa_job_price_list(job) != NULL) {
        if (put(d, "result", prices_to_dict(sa_job_price_list(job))) < 0)
            goto fail;
    } else if (sa_job_result(job) != NULL) {
        PyObject *res = sapy_result_to_dict(sa_job_result(job));
        /* delete_after: how the delete went, on the result */
        if (res != NULL && sa_job_delete_status(job) != SA_ERR_NOT_DONE
            && (put(res, "delete_status",
                    PyLong_FromLong(sa_job_delete_status(job))) < 0
                || put(res, "delete_errmsg",
                       sapy_str(sa_job_delete_errmsg(job))) < 0
                || put(res, "delete_code",
                       sapy_str(sa_job_delete_api_error_code(job))) < 0)) {
            Py_DECREF(res);
            goto fail;
        }
        if (put(d, "result", res) < 0)
            goto fail;
    } else if (PyDict_SetItemString(d, "result", Py_None) < 0) {
        goto fail;
    }
    SAPY_XSETREF(self->final, d);
    return 0;
fail:
    Py_DECREF(d);
    return -1;
}

static void job_note_task_id(sapy_job *self, const sa_job *job)
{
    const char *id;

    if (self->task_id != NULL)
        return;
    id = sa_job_task_id(job);
    if (id != NULL && *id != '\0') {
        self->task_id = sapy_str(id);
        if (self->task_id == NULL)
            PyErr_Clear();  /* only a convenience copy; retried next time */
    }
}

/* The job ended without our callback seeing it (defensive): copy now. */
static void job_sync_end(sapy_job *self)
{
    sa_job *job = self->cell != NULL ? self->cell->job : NULL;

    if (self->ended || job == NULL || self->client->client == NULL)
        return;
    if (sa_job_done(job)) {
        job_note_task_id(self, job);
        if (job_capture(self, job, sa_job_state(job)) < 0)
            sapy_stash(&self->client->stash);
        sapy_cell_release_view(self->cell);
    }
}

/* ------------------------------------------------------------------ */
/* The core's job callback                                             */
/* ------------------------------------------------------------------ */

static int job_on_state(sapy_job *self, sa_job *job, int state)
{
    sapy_client *c = self->client;
    int terminal = is_terminal(state), rc = 0;

    Py_INCREF(self);
    job_note_task_id(self, job);
    if (terminal && !self->ended) {
        if (job_capture(self, job, state) < 0)
            sapy_stash(&c->stash);
        sapy_cell_release_view(self->cell);
    }
    if (self->callback != NULL) {
        PyObject *r = PyObject_CallFunction(self->callback, "Oi",
                                            (PyObject *)self, state);

        if (r == NULL) {
            sapy_stash(&c->stash);
            rc = !terminal;  /* abort the job (SA_ERR_CALLBACK) */
        }
        Py_XDECREF(r);
    }
    Py_DECREF(self);
    return rc;
}

int sapy_job_callback(sa_job *job, int state, void *user_data)
{
    sapy_jobcell *cell = user_data;
    sapy_client *c = cell->client;
    PyThreadState *saved;
    int rc = 0;

    /* every job has its own cell (a fetch job too: sa_client_fetch) */
    if (cell->job != NULL && job != cell->job)
        return 0;
    saved = sapy_enter(c);
    if (cell->obj != NULL)
        rc = job_on_state(cell->obj, job, state);  /* may free cell */
    else if (is_terminal(state))
        sapy_cell_release_view(cell);
    sapy_leave(c, saved);
    return rc;
}

void sapy_cell_release_view(sapy_jobcell *cell)
{
    if (cell != NULL)
        Py_CLEAR(cell->data);
}

void sapy_cell_free(sapy_jobcell *cell)
{
    if (cell == NULL)
        return;
    sapy_cell_release_view(cell);
    PyMem_Free(cell);
}

/* ------------------------------------------------------------------ */
/* submit                                                              */
/* ------------------------------------------------------------------ */

typedef struct submit_args {
    PyObject *path;       /* FSConverter bytes, or NULL */
    PyObject *actions_keep;
    const char **actions; /* PyMem, borrowed from actions_keep */
} submit_args;

static void submit_args_free(submit_args *a)
{
    Py_XDECREF(a->path);
    PyMem_Free(a->actions);
    Py_XDECREF(a->actions_keep);
}

static sapy_job *job_alloc(sapy_client *c, PyObject *callback)
{
    sapy_job *self = (sapy_job *)sapy_type_alloc(c->state->job_type);

    if (self == NULL)
        return NULL;
    self->client = (sapy_client *)Py_NewRef((PyObject *)c);
    self->callback = callback != Py_None ? Py_NewRef(callback) : NULL;
    self->cell = PyMem_Calloc(1, sizeof *self->cell);
    if (self->cell == NULL) {
        Py_DECREF(self);
        PyErr_NoMemory();
        return NULL;
    }
    self->cell->obj = self;
    self->cell->client = c;
    return self;
}

/* A new Job for callback, wired into a core options struct (its callback
 * and user_data fields), and the core entered for the call that starts
 * it: that call's status goes to job_started. */
static sapy_job *job_alloc_for(sapy_client *c, PyObject *callback,
                               sa_job_cb *cb_field, void **user_data_field)
{
    sapy_job *self = job_alloc(c, callback);

    if (self == NULL)
        return NULL;
    *cb_field = sapy_job_callback;
    *user_data_field = self->cell;
    sapy_core_enter(c);
    return self;
}

/* 1, or 0 with a TypeError: a job's callback is callable or None. */
static int callback_ok(PyObject *callback)
{
    if (callback != Py_None && !PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "callback must be callable or None");
        return 0;
    }
    return 1;
}

/* 1, or 0 with a SourceError: a task id of len bytes holds no NUL (the
 * core would see a shorter id). */
static int task_id_ok(sapy_client *c, const char *task_id, Py_ssize_t len)
{
    if ((size_t)len != strlen(task_id)) {
        sapy_raise(c->state, SA_ERR_SOURCE, "task_id holds a NUL character",
                   0, NULL, NULL);
        return 0;
    }
    return 1;
}

/* After a core call that started a job into self->cell->job (r its
 * status): self, or NULL with an exception (self released). */
static PyObject *job_started(sapy_client *c, sapy_job *self, int r)
{
    if (sapy_unstash(&c->stash) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    if (r != SA_OK) {
        sapy_raise(c->state, r, c->client != NULL ? sa_client_errmsg(c->client)
                                                  : NULL, 0, NULL, NULL);
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

PyObject *sapy_job_submit(sapy_client *c, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {
        "file_path", "buffer", "image_url", "file_id", "file_name",
        "actions", "format", "api_version", "pf_camera_kit", "mask_overlay",
        "miniserver_args", "deadline_ms", "callback", "delete_after", NULL};
    PyObject *path = Py_None, *buffer = Py_None, *actions = Py_None;
    PyObject *callback = Py_None;
    submit_args a = {NULL, NULL, NULL};
    sa_request req;
    sapy_job *self = NULL;
    int r;

    sa_request_init(&req);
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "|$OOzzzOiiiizlOp:submit", kwlist, &path, &buffer,
            &req.image_url, &req.file_id, &req.file_name, &actions,
            &req.format, &req.api_version, &req.pf_camera_kit,
            &req.mask_overlay, &req.miniserver_args_json, &req.deadline_ms,
            &callback, &req.delete_after))
        return NULL;
    if (!callback_ok(callback))
        return NULL;
    if (path != Py_None) {
        if (!PyUnicode_FSConverter(path, &a.path)
            || (req.file_path = PyBytes_AsString(a.path)) == NULL)
            goto fail;
    }
    if (actions != Py_None) {
        a.actions = sapy_names(actions, &a.actions_keep, &req.n_actions);
        if (a.actions == NULL)
            goto fail;
        req.actions = a.actions;
    }
    self = job_alloc(c, callback);
    if (self == NULL)
        goto fail;
    if (buffer != Py_None) {
        char *data;
        Py_ssize_t len;

        /* The core borrows the bytes until the job ends: the cell keeps
         * the bytes object (a copy when the caller's object is not bytes:
         * the limited API has no Py_buffer to hold instead). */
        self->cell->data = sapy_bytes_like(buffer);
        if (self->cell->data == NULL
            || PyBytes_AsStringAndSize(self->cell->data, &data, &len) < 0)
            goto fail;
        req.buffer = data;
        req.buffer_len = (size_t)len;
    }
    req.callback = sapy_job_callback;
    req.user_data = self->cell;
    sapy_core_enter(c);
    r = sa_client_submit(c->client, &req, &self->cell->job);
    sapy_core_exit(c);
    submit_args_free(&a);
    return job_started(c, self, r);
fail:
    submit_args_free(&a);
    Py_XDECREF(self);
    return NULL;
}

PyObject *sapy_job_resume(sapy_client *c, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"task_id", "api_version", "deadline_ms",
                             "callback", NULL};
    PyObject *callback = Py_None;
    const char *task_id;
    Py_ssize_t len;
    sa_resume_options opts;
    sapy_job *self;
    int r;

    sa_resume_options_init(&opts);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s#|$ilO:resume", kwlist,
                                     &task_id, &len, &opts.api_version,
                                     &opts.deadline_ms, &callback))
        return NULL;
    if (!callback_ok(callback))
        return NULL;
    if (!task_id_ok(c, task_id, len))
        return NULL;
    self = job_alloc_for(c, callback, &opts.callback, &opts.user_data);
    if (self == NULL)
        return NULL;
    r = sa_client_resume(c->client, task_id, &opts, &self->cell->job);
    sapy_core_exit(c);
    return job_started(c, self, r);
}

PyObject *sapy_job_account(sapy_client *c, int op, PyObject *args,
                           PyObject *kwargs)
{
    static char *kwlist_id[] = {"task_id", "deadline_ms", "callback", NULL};
    static char *kwlist[] = {"deadline_ms", "callback", NULL};
    PyObject *callback = Py_None;
    const char *task_id = NULL;
    Py_ssize_t len = 0;
    sa_account_options opts;
    sapy_job *self;
    int r;

    sa_account_options_init(&opts);
    if (op == 3) {
        if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s#|$lO:delete",
                                         kwlist_id, &task_id, &len,
                                         &opts.deadline_ms, &callback))
            return NULL;
        if (!task_id_ok(c, task_id, len))
            return NULL;
    } else if (!PyArg_ParseTupleAndKeywords(args, kwargs,
                                            op == 1 ? "|$lO:credit"
                                                    : "|$lO:price_list",
                                            kwlist, &opts.deadline_ms,
                                            &callback)) {
        return NULL;
    }
    if (!callback_ok(callback))
        return NULL;
    self = job_alloc_for(c, callback, &opts.callback, &opts.user_data);
    if (self == NULL)
        return NULL;
    if (op == 1)
        r = sa_client_credit(c->client, &opts, &self->cell->job);
    else if (op == 2)
        r = sa_client_price_list(c->client, &opts, &self->cell->job);
    else
        r = sa_client_delete(c->client, task_id, &opts, &self->cell->job);
    sapy_core_exit(c);
    return job_started(c, self, r);
}

PyObject *sapy_job_fetch(sapy_client *c, PyObject *origin, const char *folder,
                         PyObject *callback, int delete_after)
{
    sapy_job *src = (sapy_job *)origin;
    sapy_job *self;
    sa_fetch_options o;
    int r;

    if (!callback_ok(callback))
        return NULL;
    /* the fetch's own cell, never the origin's: the origin may go first */
    sa_fetch_options_init(&o);
    o.folder = folder;
    o.delete_after = delete_after;
    self = job_alloc_for(c, callback, &o.callback, &o.user_data);
    if (self == NULL)
        return NULL;
    r = sa_client_fetch(c->client, src->cell->job, &o, &self->cell->job);
    sapy_core_exit(c);
    return job_started(c, self, r);
}

/* ------------------------------------------------------------------ */
/* Methods                                                             */
/* ------------------------------------------------------------------ */

/* 1 when the job can be asked live (not ended, client open); 0 when the
 * answer comes from the copy or the job was detached by close(); -1 with
 * an exception when another thread is inside the client. */
static int job_live(sapy_job *self)
{
    if (self->ended || self->client->client == NULL || self->cell->job == NULL)
        return 0;
    if (sapy_client_check(self->client) < 0)
        return -1;
    job_sync_end(self);
    return self->ended ? 0 : 1;
}

static int job_detached(sapy_job *self)
{
    return !self->ended && self->client->client == NULL;
}

static PyObject *raise_detached(sapy_job *self)
{
    const char *id = self->task_id != NULL
                         ? PyUnicode_AsUTF8AndSize(self->task_id, NULL) : NULL;

    if (self->task_id != NULL && id == NULL)
        return NULL;
    return sapy_raise(self->client->state, SA_ERR_CANCELLED,
                      "the client was closed before the job ended", 0, NULL,
                      id);
}

static const char *final_str(sapy_job *self, const char *key)
{
    PyObject *v = self->final != NULL
                      ? PyDict_GetItemString(self->final, key) : NULL;

    return (v != NULL && PyUnicode_Check(v)) ? PyUnicode_AsUTF8AndSize(v, NULL)
                                              : NULL;
}

static long final_long(sapy_job *self, const char *key)
{
    PyObject *v = self->final != NULL
                      ? PyDict_GetItemString(self->final, key) : NULL;

    return (v != NULL && PyLong_Check(v)) ? PyLong_AsLong(v) : 0;
}

/* Raise the exception of an ended, failed job; a fetch's carries the
 * files that did arrive as its attribute `result` (a result dict). */
static PyObject *raise_final(sapy_job *self)
{
    int status = self->final_status;
    const char *code = status == SA_ERR_ENGINE
                           ? final_str(self, "engine_error")
                           : final_str(self, "api_error_code");
    PyObject *partial = PyDict_GetItemString(self->final, "result"), *exc;

    if (partial == NULL || partial == Py_None || status == SA_ERR_NOMEM)
        return sapy_raise(self->client->state, status,
                          final_str(self, "errmsg"),
                          (int)final_long(self, "http_status"), code,
                          final_str(self, "task_id"));
    exc = sapy_error_new(self->client->state, status,
                         final_str(self, "errmsg"),
                         (int)final_long(self, "http_status"), code,
                         final_str(self, "task_id"));
    if (exc == NULL)
        return NULL;
    if (PyObject_SetAttrString(exc, "result", partial) == 0)
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

static PyObject *job_wait(sapy_job *self, PyObject *args)
{
    sapy_client *c = self->client;
    long timeout_ms = -1;
    char msg[160];
    int r, live;

    if (!PyArg_ParseTuple(args, "|l:wait", &timeout_ms))
        return NULL;
    if ((live = job_live(self)) < 0)
        return NULL;
    if (live == 0)
        return job_detached(self) ? raise_detached(self) : Py_NewRef(Py_None);
    if (sapy_client_check_not_nested(c, "wait()") < 0)
        return NULL;
    sapy_client_block(c);
    r = sa_job_wait(self->cell->job, timeout_ms);
    sapy_client_unblock(c);
    job_sync_end(self);
    if (sapy_unstash(&c->stash) < 0)
        return NULL;
    if (r == SA_OK)
        Py_RETURN_NONE;
    if (r == SA_ERR_WAIT_TIMEOUT) {
        snprintf(msg, sizeof msg, "no result after %ld ms; the job is still "
                 "running and can be waited on again", timeout_ms);
        return sapy_raise(c->state, r, msg, 0, NULL,
                          sa_job_task_id(self->cell->job));
    }
    return sapy_raise(c->state, r, sa_client_errmsg(c->client), 0, NULL,
                      sa_job_task_id(self->cell->job));
}

static PyObject *job_result(sapy_job *self, PyObject *unused)
{
    PyObject *res;
    char msg[96];
    int live = job_live(self);

    if (live < 0)
        return NULL;
    if (job_detached(self))
        return raise_detached(self);
    if (!self->ended) {
        snprintf(msg, sizeof msg, "the job has not ended yet (state %s)",
                 sa_job_state_name(sa_job_state(self->cell->job)));
        return sapy_raise(self->client->state, SA_ERR_NOT_DONE, msg, 0, NULL,
                          NULL);
    }
    if (self->final == NULL)
        return PyErr_NoMemory();  /* the copy at the end failed */
    if (self->final_status != SA_OK)
        return raise_final(self);
    res = PyDict_GetItemString(self->final, "result");
    if (res == NULL || res == Py_None)
        return sapy_raise(self->client->state, SA_ERR_PROTOCOL,
                          "the job ended without a result", 0, NULL,
                          final_str(self, "task_id"));
    return Py_NewRef(res);
}

static PyObject *job_stop(sapy_job *self, int abandon)
{
    sapy_client *c = self->client;
    int r, live = job_live(self);

    if (live <= 0)
        return live < 0 ? NULL : Py_NewRef(Py_None);
    sapy_core_enter(c);
    r = abandon ? sa_job_abandon(self->cell->job)
                : sa_job_cancel(self->cell->job);
    sapy_core_exit(c);
    job_sync_end(self);
    if (sapy_unstash(&c->stash) < 0)
        return NULL;
    if (r != SA_OK)
        return sapy_raise(c->state, r, NULL, 0, NULL, NULL);
    Py_RETURN_NONE;
}

static PyObject *job_cancel(sapy_job *self, PyObject *unused)
{
    return job_stop(self, 0);
}

static PyObject *job_abandon(sapy_job *self, PyObject *unused)
{
    return job_stop(self, 1);
}

/* ------------------------------------------------------------------ */
/* Attributes                                                          */
/* ------------------------------------------------------------------ */

static int job_state_now(sapy_job *self, int *state)
{
    int live = job_live(self);

    if (live < 0)
        return -1;
    if (self->ended)
        *state = self->final_state;
    else if (live == 0)
        *state = SA_JOB_CANCELLED;  /* detached by close() */
    else
        *state = sa_job_state(self->cell->job);
    return 0;
}

/* The closure of "state_name": job_get_state gives the state's name. */
static const char state_as_name[] = "name";

static PyObject *job_get_state(sapy_job *self, void *as_name)
{
    int state;

    if (job_state_now(self, &state) < 0)
        return NULL;
    if (as_name != NULL)
        return PyUnicode_FromString(sa_job_state_name(state));
    return PyLong_FromLong(state);
}

static PyObject *job_get_done(sapy_job *self, void *closure)
{
    int live = job_live(self);

    if (live < 0)
        return NULL;
    return PyBool_FromLong(live == 0);
}

static PyObject *job_get_status(sapy_job *self, void *closure)
{
    int live = job_live(self);

    if (live < 0)
        return NULL;
    if (self->ended)
        return PyLong_FromLong(self->final_status);
    if (live == 0)
        return PyLong_FromLong(SA_ERR_CANCELLED);
    return PyLong_FromLong(sa_job_status(self->cell->job));
}

static PyObject *job_get_field(sapy_job *self, void *closure)
{
    const job_field *f = closure;
    PyObject *v;
    int live = job_live(self);

    if (live < 0)
        return NULL;
    if (live == 1)
        return field_live(f, self->cell->job);
    if (self->ended && self->final != NULL) {
        v = PyDict_GetItemString(self->final, f->name);
        if (v != NULL)
            return Py_NewRef(v);
    }
    if (strcmp(f->name, "task_id") == 0 && self->task_id != NULL)
        return Py_NewRef(self->task_id);
    if (f->num != NULL)
        return PyLong_FromLong(0);
    Py_RETURN_NONE;
}

static PyObject *job_get_client(sapy_job *self, void *closure)
{
    return Py_NewRef((PyObject *)self->client);
}

static PyObject *job_repr(sapy_job *self)
{
    PyObject *name = job_get_state(self, (void *)state_as_name);
    PyObject *id = name != NULL ? job_get_field(self, (void *)&job_fields[0])
                                : NULL;
    PyObject *r = NULL;

    if (name != NULL && id != NULL)
        r = PyUnicode_FromFormat("<skinanalysis._core.Job %U task_id=%R>",
                                 name, id);
    else if (PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();
        r = PyUnicode_FromString("<skinanalysis._core.Job (busy)>");
    }
    Py_XDECREF(name);
    Py_XDECREF(id);
    return r;
}

/* ------------------------------------------------------------------ */
/* GC and lifetime                                                     */
/* ------------------------------------------------------------------ */

static int job_traverse(sapy_job *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->client);
    Py_VISIT(self->callback);
    Py_VISIT(self->final);
    Py_VISIT(self->task_id);
    if (self->cell != NULL)
        Py_VISIT(self->cell->data);
    return 0;
}

/* Only the callback can close a cycle back to the Job; the client, the
 * buffer and the copied details must stay until the sa_job is freed. */
static int job_clear(sapy_job *self)
{
    Py_CLEAR(self->callback);
    return 0;
}

static void job_dealloc(sapy_job *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject *exc = sapy_error_save();
    sapy_jobcell *cell = self->cell;

    PyObject_GC_UnTrack(self);
    self->cell = NULL;
    if (cell != NULL) {
        cell->obj = NULL;
        if (cell->job != NULL)
            sapy_client_free_job(self->client, cell);
        else
            sapy_cell_free(cell);
    }
    job_clear(self);
    Py_CLEAR(self->final);
    Py_CLEAR(self->task_id);
    Py_CLEAR(self->client);
    sapy_type_free(tp, self);
    Py_DECREF(tp);
    sapy_error_restore(exc);
}

static PyMethodDef job_methods[] = {
    {"wait", (PyCFunction)job_wait, METH_VARARGS,
     "wait(timeout_ms=-1): run the client until this job ends (GIL "
     "released).  WaitTimeout when time is up and KeyboardInterrupt on "
     "Ctrl-C; in both cases the job keeps running and can be waited on "
     "again."},
    {"result", (PyCFunction)job_result, METH_NOARGS,
     "result() -> dict: the result of a DONE job; raises the job's error "
     "when it failed, UsageError while it runs."},
    {"cancel", (PyCFunction)job_cancel, METH_NOARGS,
     "cancel(): end the job now as CANCELLED; a created task keeps being "
     "polled in the background to its end."},
    {"abandon", (PyCFunction)job_abandon, METH_NOARGS,
     "abandon(): cancel and stop polling the task (it may expire and still "
     "be billed)."},
    {NULL, NULL, 0, NULL},
};

#define FIELD(i, doc) (getter)job_get_field, NULL, doc, (void *)&job_fields[i]

/* The names repeat job_fields[] in its order. */
static PyGetSetDef job_getset[] = {
    {"state", (getter)job_get_state, NULL, "sa_job_state (JOB_*)", NULL},
    {"state_name", (getter)job_get_state, NULL,
     "\"POLLING\", \"DONE\", ...", (void *)state_as_name},
    {"done", (getter)job_get_done, NULL, "True once the job ended", NULL},
    {"status", (getter)job_get_status, NULL,
     "OK when DONE, the failure code, or ERR_NOT_DONE", NULL},
    {"client", (getter)job_get_client, NULL, "the Client", NULL},
    {"task_id", FIELD(0, "the task id, once created")},
    {"file_id", FIELD(1, "the uploaded file's id")},
    {"request_id", FIELD(2, "x-request-id of the last request's answer (None: "
                            "no answer, or none in it)")},
    {"errmsg", FIELD(3, "what happened (\"\" when no error)")},
    {"api_error_code", FIELD(4, "the API error_code of a failure")},
    {"engine_error", FIELD(5, "the engine error code of a failure")},
    {"http_status", FIELD(6, "HTTP status of the last request's answer (0: "
                             "none arrived)")},
    {"units", FIELD(7, "units the request costs on success")},
    {"polls", FIELD(8, "status polls sent so far")},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *job_new_refused(PyTypeObject *type, PyObject *args,
                                 PyObject *kwargs)
{
    PyErr_SetString(PyExc_TypeError,
                    "Job objects are created by Client.submit()");
    return NULL;
}

SAPY_GC_TYPE(job, "Job", "One analysis; created by Client.submit().",
             job_new_refused);
