/*
 * client.c - skinanalysis._core.Client: wraps one sa_client.
 *
 * Owns the client's Python callbacks (log, socket, timer), the exception
 * stash that carries a callback's exception across the core, the saved
 * thread state of a blocking call, and the list of sa_jobs whose free was
 * deferred (see sapy.h).
 */
#include "sapy.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* GIL, threads and core-call bracketing                               */
/* ------------------------------------------------------------------ */

PyThreadState *sapy_enter(sapy_client *c)
{
    PyThreadState *saved = c->tstate;

    if (saved != NULL) {
        c->tstate = NULL;
        PyEval_RestoreThread(saved);
    }
    return saved;
}

void sapy_leave(sapy_client *c, PyThreadState *saved)
{
    if (saved != NULL)
        c->tstate = PyEval_SaveThread();
}

static PyObject *usage_error(sapy_client *c, int status, const char *msg)
{
    return sapy_raise(c->state, status, msg, 0, NULL, NULL);
}

int sapy_client_check(sapy_client *c)
{
    if (c->client == NULL) {
        usage_error(c, SA_ERR_INVALID_ARGUMENT, "the client is closed");
        return -1;
    }
    if (c->depth > 0 && c->owner != PyThread_get_thread_ident()) {
        usage_error(c, SA_ERR_BUSY,
                    "the client is in use by another thread (a client and "
                    "its jobs are used by one thread at a time)");
        return -1;
    }
    return 0;
}

int sapy_client_check_not_nested(sapy_client *c, const char *what)
{
    char msg[128];

    if (c->depth == 0)
        return 0;
    snprintf(msg, sizeof msg, "%s cannot be called from inside a callback",
             what);
    usage_error(c, SA_ERR_BUSY, msg);
    return -1;
}

static void flush_deferred(sapy_client *c)
{
    while (c->deferred != NULL) {
        sapy_jobcell *cell = c->deferred;

        c->deferred = cell->next;
        sa_job_free(cell->job);
        sapy_cell_free(cell);
    }
}

void sapy_core_enter(sapy_client *c)
{
    if (c->depth++ == 0)
        c->owner = PyThread_get_thread_ident();
}

void sapy_core_exit(sapy_client *c)
{
    if (--c->depth == 0) {
        c->owner = 0;
        if (c->deferred != NULL) {
            c->depth = 1;  /* frees may run callbacks: keep others out */
            flush_deferred(c);
            c->depth = 0;
        }
    }
}

void sapy_client_block(sapy_client *c)
{
    sapy_core_enter(c);
    c->wake = 0;  /* a wakeup() before the wait is not for it (as the core) */
    c->tstate = PyEval_SaveThread();
}

void sapy_client_unblock(sapy_client *c)
{
    PyThreadState *saved = c->tstate;

    c->tstate = NULL;
    PyEval_RestoreThread(saved);
    sapy_core_exit(c);
}

void sapy_client_free_job(sapy_client *c, sapy_jobcell *cell)
{
    if (c->depth > 0 && c->owner != PyThread_get_thread_ident()) {
        sapy_jobcell **tail = &c->deferred;

        /* Freed in order: a fetch job before the job it was made from. */
        while (*tail != NULL)
            tail = &(*tail)->next;
        cell->next = NULL;
        *tail = cell;
        return;
    }
    sapy_core_enter(c);
    sa_job_free(cell->job);
    sapy_core_exit(c);
    sapy_cell_free(cell);
    if (c->depth == 0 && c->stash != NULL) {
        /* Raised by a callback while freeing: no call to re-raise it. */
        sapy_unstash(&c->stash);
        PyErr_WriteUnraisable((PyObject *)c);
    }
}

/* ------------------------------------------------------------------ */
/* Core callbacks                                                      */
/* ------------------------------------------------------------------ */

static void client_log(void *user_data, int level, const char *message)
{
    sapy_client *c = user_data;
    PyThreadState *saved = sapy_enter(c);

    if (c->log_cb != NULL) {
        PyObject *msg = sapy_str(message);
        PyObject *r = NULL;

        if (msg != NULL) {
            r = PyObject_CallFunction(c->log_cb, "iO", level, msg);
            Py_DECREF(msg);
        }
        if (r == NULL)
            sapy_stash(&c->stash);
        Py_XDECREF(r);
    }
    sapy_leave(c, saved);
}

/* Called about every 50 ms during a blocking wait, and at once after
 * sa_client_wakeup: a pending signal (or a stashed callback exception)
 * makes the wait return SA_ERR_INTERRUPTED and the caller re-raises the
 * stashed exception; a wakeup() makes it return WaitInterrupted. */
static int client_interrupt(void *user_data)
{
    sapy_client *c = user_data;
    PyThreadState *saved = sapy_enter(c);
    int stop = 0;

    if (c->stash != NULL || c->wake) {
        c->wake = 0;
        stop = 1;
    } else if (PyErr_CheckSignals() < 0) {
        sapy_stash(&c->stash);
        stop = 1;
    }
    sapy_leave(c, saved);
    return stop;
}

static int client_socket(void *user_data, int fd, int what)
{
    sapy_client *c = user_data;
    PyThreadState *saved = sapy_enter(c);

    if (c->socket_cb != NULL) {
        PyObject *r = PyObject_CallFunction(c->socket_cb, "ii", fd, what);

        if (r == NULL)
            sapy_stash(&c->stash);
        Py_XDECREF(r);
    }
    sapy_leave(c, saved);
    return 0;
}

static int client_timer(void *user_data, long timeout_ms)
{
    sapy_client *c = user_data;
    PyThreadState *saved = sapy_enter(c);

    if (c->timer_cb != NULL) {
        PyObject *r = PyObject_CallFunction(c->timer_cb, "l", timeout_ms);

        if (r == NULL)
            sapy_stash(&c->stash);
        Py_XDECREF(r);
    }
    sapy_leave(c, saved);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Construction: options                                               */
/* ------------------------------------------------------------------ */

enum { OPT_STR, OPT_INT, OPT_LONG, OPT_DOUBLE, OPT_SIZE, OPT_BOOL, OPT_U64 };

typedef struct opt_def {
    const char *name;
    int kind;
    size_t offset;
} opt_def;

#define OPT(field, kind) {#field, kind, offsetof(sa_client_options, field)}

/* Every sa_client_options field a caller may set, by its C name.  None
 * keeps the core's default. */
static const opt_def client_opts[] = {
    OPT(base_url, OPT_STR),
    OPT(api_version, OPT_INT),
    OPT(upload_path, OPT_INT),
    OPT(allow_insecure_http, OPT_BOOL),
    OPT(ca_bundle, OPT_STR),
    OPT(proxy, OPT_STR),
    OPT(connect_timeout_ms, OPT_LONG),
    OPT(request_timeout_ms, OPT_LONG),
    OPT(upload_timeout_ms, OPT_LONG),
    OPT(user_agent, OPT_STR),
    OPT(max_connections, OPT_INT),
    OPT(max_uploads, OPT_INT),
    OPT(step_budget_us, OPT_LONG),
    OPT(max_jobs, OPT_INT),
    OPT(poll_interval_ms, OPT_LONG),
    OPT(max_poll_interval_ms, OPT_LONG),
    OPT(job_deadline_ms, OPT_LONG),
    OPT(max_polls, OPT_INT),
    OPT(max_retries, OPT_INT),
    OPT(backoff_initial_ms, OPT_LONG),
    OPT(backoff_max_ms, OPT_LONG),
    OPT(rate_limit, OPT_BOOL),
    OPT(rate_per_second, OPT_DOUBLE),
    OPT(rate_burst, OPT_INT),
    OPT(rate_window_max, OPT_INT),
    OPT(rate_window_ms, OPT_LONG),
    OPT(max_body_bytes, OPT_SIZE),
    OPT(max_files_bytes, OPT_SIZE),
    OPT(low_speed_limit, OPT_LONG),
    OPT(low_speed_time_ms, OPT_LONG),
    OPT(max_json_depth, OPT_INT),
    OPT(log_level, OPT_INT),
    OPT(jitter_seed, OPT_U64),
    OPT(rate_limit_scope, OPT_STR),
    OPT(rate_limit_fleet_size, OPT_INT),
    OPT(poll_strategy, OPT_INT),
    OPT(webhooks, OPT_BOOL),
};

static const char *utf8_no_nul(PyObject *value, const char *name)
{
    if (!PyUnicode_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be str or None", name);
        return NULL;
    }
    return sapy_utf8(value, name);
}

static int set_option(sa_client_options *opts, const opt_def *d,
                      PyObject *value)
{
    char *field = (char *)opts + d->offset;

    switch (d->kind) {
    case OPT_STR: {
        const char *s = utf8_no_nul(value, d->name);

        if (s == NULL)
            return -1;
        memcpy(field, &s, sizeof s);
        return 0;
    }
    case OPT_INT: {
        int v;

        if (sapy_as_int(value, &v) < 0)
            return -1;
        memcpy(field, &v, sizeof v);
        return 0;
    }
    /* The number converters share one error convention: the sentinel
     * value plus a set exception. */
#define STORE_CONVERTED(type, convert, sentinel)                         \
    do {                                                                 \
        type v_ = (type)convert(value);                                  \
                                                                         \
        if (v_ == (type)(sentinel) && PyErr_Occurred())                  \
            return -1;                                                   \
        memcpy(field, &v_, sizeof v_);                                   \
        return 0;                                                        \
    } while (0)
    case OPT_LONG:
        STORE_CONVERTED(long, PyLong_AsLong, -1);
    case OPT_DOUBLE:
        STORE_CONVERTED(double, PyFloat_AsDouble, -1.0);
    case OPT_SIZE:
        STORE_CONVERTED(size_t, PyLong_AsSize_t, -1);
#undef STORE_CONVERTED
    case OPT_BOOL: {
        int v = PyObject_IsTrue(value);

        if (v < 0)
            return -1;
        memcpy(field, &v, sizeof v);
        return 0;
    }
    case OPT_U64: {
        unsigned long long ull = PyLong_AsUnsignedLongLong(value);
        uint64_t v = (uint64_t)ull;

        if (ull == (unsigned long long)-1 && PyErr_Occurred())
            return -1;
        memcpy(field, &v, sizeof v);
        return 0;
    }
    default:
        PyErr_SetString(PyExc_SystemError, "bad option kind");
        return -1;
    }
}

static int apply_option(sapy_client *self, sa_client_options *opts,
                        PyObject *name, PyObject *value, PyObject **key)
{
    const char *n = PyUnicode_AsUTF8AndSize(name, NULL);
    size_t i;

    if (n == NULL)
        return -1;
    if (strcmp(n, "api_key") == 0) {
        *key = value;
        return 0;
    }
    if (strcmp(n, "log") == 0) {
        if (value != Py_None && !PyCallable_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "log must be callable or None");
            return -1;
        }
        SAPY_XSETREF(self->log_cb,
                     value == Py_None ? NULL : Py_NewRef(value));
        return 0;
    }
    for (i = 0; i < sizeof client_opts / sizeof client_opts[0]; i++) {
        if (strcmp(n, client_opts[i].name) == 0)
            return value == Py_None ? 0 : set_option(opts, &client_opts[i],
                                                     value);
    }
    PyErr_Format(PyExc_TypeError, "Client() got an unexpected keyword "
                 "argument '%s'", n);
    return -1;
}

static PyObject *client_new(PyTypeObject *type, PyObject *args,
                            PyObject *kwargs)
{
    sa_client_options opts;
    PyObject *key = Py_None, *name, *value;
    sapy_client *self;
    char errbuf[512] = "";
    Py_ssize_t pos = 0, n_args = PyTuple_Size(args);
    int r;

    if (n_args < 0)
        return NULL;
    if (n_args > 1) {
        PyErr_SetString(PyExc_TypeError,
                        "Client() takes the API key as its only positional "
                        "argument; options are keyword arguments");
        return NULL;
    }
    if (n_args == 1 && (key = PyTuple_GetItem(args, 0)) == NULL)
        return NULL;
    self = (sapy_client *)sapy_type_alloc(type);
    if (self == NULL)
        return NULL;
    self->state = sapy_state_of_type(type);
    sa_client_options_init(&opts);
    while (kwargs != NULL && PyDict_Next(kwargs, &pos, &name, &value)) {
        if (apply_option(self, &opts, name, value, &key) < 0)
            goto fail;
    }
    if (key != Py_None && (opts.api_key = utf8_no_nul(key, "api_key")) == NULL)
        goto fail;
    opts.log = self->log_cb != NULL ? client_log : NULL;
    opts.log_user_data = self;
    opts.interrupt = client_interrupt;
    opts.interrupt_user_data = self;
    sapy_core_enter(self);
    r = sa_client_new(&self->client, &opts, errbuf, sizeof errbuf);
    sapy_core_exit(self);
    if (sapy_unstash(&self->stash) < 0)
        goto fail;
    if (r != SA_OK) {
        sapy_raise(self->state, r, errbuf, 0, NULL, NULL);
        goto fail;
    }
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Methods                                                             */
/* ------------------------------------------------------------------ */

static PyObject *client_raise(sapy_client *self, int status, const char *msg)
{
    if (msg == NULL && self->client != NULL)
        msg = sa_client_errmsg(self->client);
    return sapy_raise(self->state, status, msg, 0, NULL, NULL);
}

/* After a core call that returns a count or a negative status: the count
 * as an int, or NULL with the stashed or the status's exception. */
static PyObject *client_count(sapy_client *self, int r)
{
    if (sapy_unstash(&self->stash) < 0)
        return NULL;
    if (r < 0)
        return client_raise(self, r, NULL);
    return PyLong_FromLong(r);
}

static PyObject *client_submit(sapy_client *self, PyObject *args,
                               PyObject *kwargs)
{
    if (sapy_client_check(self) < 0)
        return NULL;
    return sapy_job_submit(self, args, kwargs);
}

static PyObject *client_resume(sapy_client *self, PyObject *args,
                               PyObject *kwargs)
{
    if (sapy_client_check(self) < 0)
        return NULL;
    return sapy_job_resume(self, args, kwargs);
}

static PyObject *client_account(sapy_client *self, int op, PyObject *args,
                                PyObject *kwargs)
{
    if (sapy_client_check(self) < 0)
        return NULL;
    return sapy_job_account(self, op, args, kwargs);
}

static PyObject *client_credit(sapy_client *self, PyObject *args,
                               PyObject *kwargs)
{
    return client_account(self, 1, args, kwargs);
}

static PyObject *client_price_list(sapy_client *self, PyObject *args,
                                   PyObject *kwargs)
{
    return client_account(self, 2, args, kwargs);
}

static PyObject *client_delete(sapy_client *self, PyObject *args,
                               PyObject *kwargs)
{
    return client_account(self, 3, args, kwargs);
}

static PyObject *client_step(sapy_client *self, PyObject *args)
{
    long timeout_ms = 0;
    int r;

    if (!PyArg_ParseTuple(args, "|l:step", &timeout_ms))
        return NULL;
    if (sapy_client_check(self) < 0)
        return NULL;
    if (timeout_ms != 0) {
        if (sapy_client_check_not_nested(self, "step(timeout_ms)") < 0)
            return NULL;
        sapy_client_block(self);
        r = sa_client_step(self->client, timeout_ms);
        sapy_client_unblock(self);
    } else {
        sapy_core_enter(self);
        r = sa_client_step(self->client, 0);
        sapy_core_exit(self);
    }
    return client_count(self, r);
}

static PyObject *client_run(sapy_client *self, PyObject *args)
{
    long timeout_ms = -1;
    char msg[128];
    int r;

    if (!PyArg_ParseTuple(args, "|l:run", &timeout_ms))
        return NULL;
    if (sapy_client_check(self) < 0
        || sapy_client_check_not_nested(self, "run()") < 0)
        return NULL;
    sapy_client_block(self);
    r = sa_client_run(self->client, timeout_ms);
    sapy_client_unblock(self);
    if (sapy_unstash(&self->stash) < 0)
        return NULL;
    if (r == SA_OK)
        Py_RETURN_NONE;
    if (r == SA_ERR_WAIT_TIMEOUT) {
        snprintf(msg, sizeof msg, "%d job(s) still running after %ld ms",
                 sa_client_active(self->client), timeout_ms);
        return client_raise(self, r, msg);
    }
    return client_raise(self, r, NULL);
}

static PyObject *client_socket_action(sapy_client *self, PyObject *args)
{
    int fd, what, r;

    if (!PyArg_ParseTuple(args, "ii:socket_action", &fd, &what))
        return NULL;
    if (sapy_client_check(self) < 0)
        return NULL;
    sapy_core_enter(self);
    r = sa_client_socket_action(self->client, fd, what);
    sapy_core_exit(self);
    return client_count(self, r);
}

static PyObject *client_set_event_hooks(sapy_client *self, PyObject *args)
{
    PyObject *sock, *timer, *old_sock, *old_timer;
    int r, on;

    if (!PyArg_ParseTuple(args, "OO:set_event_hooks", &sock, &timer))
        return NULL;
    on = sock != Py_None;
    if ((timer != Py_None) != on
        || (on && (!PyCallable_Check(sock) || !PyCallable_Check(timer)))) {
        PyErr_SetString(PyExc_TypeError, "set_event_hooks() takes two "
                        "callables, or None and None");
        return NULL;
    }
    if (sapy_client_check(self) < 0)
        return NULL;
    old_sock = self->socket_cb;
    old_timer = self->timer_cb;
    self->socket_cb = on ? Py_NewRef(sock) : NULL;
    self->timer_cb = on ? Py_NewRef(timer) : NULL;
    sapy_core_enter(self);
    r = sa_client_set_event_hooks(self->client, on ? client_socket : NULL,
                                  on ? client_timer : NULL, self);
    sapy_core_exit(self);
    if (r != SA_OK) {
        SAPY_XSETREF(self->socket_cb, old_sock);
        SAPY_XSETREF(self->timer_cb, old_timer);
    } else {
        Py_XDECREF(old_sock);
        Py_XDECREF(old_timer);
    }
    if (sapy_unstash(&self->stash) < 0)
        return NULL;
    if (r != SA_OK)
        return client_raise(self, r, NULL);
    Py_RETURN_NONE;
}

static PyObject *client_timeout_ms(sapy_client *self, PyObject *unused)
{
    long t;

    if (sapy_client_check(self) < 0)
        return NULL;
    sapy_core_enter(self);
    t = sa_client_timeout_ms(self->client);
    sapy_core_exit(self);
    if (sapy_unstash(&self->stash) < 0)
        return NULL;
    return PyLong_FromLong(t);
}

static PyObject *client_notify(sapy_client *self, PyObject *arg)
{
    const char *task_id = PyUnicode_Check(arg)
                              ? PyUnicode_AsUTF8AndSize(arg, NULL) : NULL;
    int r;

    if (task_id == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "notify() takes a task id (str)");
        return NULL;
    }
    if (sapy_client_check(self) < 0)
        return NULL;
    sapy_core_enter(self);
    r = sa_client_notify(self->client, task_id);
    sapy_core_exit(self);
    return client_count(self, r);
}

static PyObject *client_fetch_masks(sapy_client *self, PyObject *args,
                                    PyObject *kwargs)
{
    static char *kwlist[] = {"done_job", "folder", "callback", "delete_after",
                             NULL};
    PyObject *job_obj, *folder_arg = Py_None, *folder = NULL, *fetched;
    PyObject *callback = Py_None;
    int delete_after = 0;
    const char *folder_path = NULL;
    sapy_job *job;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!|OO$p:fetch_masks",
                                     kwlist, self->state->job_type, &job_obj,
                                     &folder_arg, &callback, &delete_after))
        return NULL;
    job = (sapy_job *)job_obj;
    if (sapy_client_check(self) < 0)
        return NULL;
    if (job->client != self || job->cell == NULL || job->cell->job == NULL)
        return client_raise(self, SA_ERR_INVALID_ARGUMENT,
                            "fetch_masks() takes a job of this client");
    if (folder_arg != Py_None
        && (!PyUnicode_FSConverter(folder_arg, &folder)
            || (folder_path = PyBytes_AsString(folder)) == NULL)) {
        Py_XDECREF(folder);
        return NULL;
    }
    fetched = sapy_job_fetch(self, job_obj, folder_path, callback,
                             delete_after);
    Py_XDECREF(folder);
    return fetched;
}

/* The one call allowed from any thread: no ownership check.  The flag is
 * read by the interrupt hook under the GIL, which orders the two. */
static PyObject *client_wakeup(sapy_client *self, PyObject *unused)
{
    int r;

    if (self->client == NULL)
        Py_RETURN_NONE;
    self->wake = 1;
    r = sa_client_wakeup(self->client);
    if (r != SA_OK)
        return client_raise(self, r, NULL);
    Py_RETURN_NONE;
}

static PyObject *client_close(sapy_client *self, PyObject *unused)
{
    sa_client *c = self->client;

    if (c == NULL)
        Py_RETURN_NONE;
    if (sapy_client_check(self) < 0
        || sapy_client_check_not_nested(self, "close()") < 0)
        return NULL;
    self->client = NULL;  /* reentrant calls from callbacks see "closed" */
    sapy_core_enter(self);
    sa_client_free(c);
    sapy_core_exit(self);
    if (sapy_unstash(&self->stash) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *client_get_active(sapy_client *self, void *closure)
{
    int n;

    if (self->client == NULL)
        return PyLong_FromLong(0);
    if (sapy_client_check(self) < 0)
        return NULL;
    n = sa_client_active(self->client);
    return PyLong_FromLong(n);
}

static PyObject *client_get_closed(sapy_client *self, void *closure)
{
    return PyBool_FromLong(self->client == NULL);
}

static PyObject *client_get_errmsg(sapy_client *self, void *closure)
{
    if (self->client == NULL)
        return PyUnicode_FromString("");
    if (sapy_client_check(self) < 0)
        return NULL;
    return sapy_str(sa_client_errmsg(self->client));
}

static PyObject *client_repr(sapy_client *self)
{
    if (self->client == NULL)
        return PyUnicode_FromString("<skinanalysis._core.Client closed>");
    if (self->depth > 0)
        return PyUnicode_FromString("<skinanalysis._core.Client busy>");
    return PyUnicode_FromFormat("<skinanalysis._core.Client active=%d>",
                                sa_client_active(self->client));
}

/* ------------------------------------------------------------------ */
/* GC and lifetime                                                     */
/* ------------------------------------------------------------------ */

/* The references a Client owns, listed once for traverse and clear. */
#define CLIENT_REFS(self, OP)                                             \
    do {                                                                  \
        OP((self)->log_cb);                                               \
        OP((self)->socket_cb);                                            \
        OP((self)->timer_cb);                                             \
        OP((self)->stash);                                                \
    } while (0)

static int client_traverse(sapy_client *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    CLIENT_REFS(self, Py_VISIT);
    return 0;
}

static int client_clear(sapy_client *self)
{
    CLIENT_REFS(self, Py_CLEAR);
    return 0;
}

/* Jobs hold a strong reference to their client, so no live Job object
 * refers to a client being deallocated; sa_client_free abandons the tasks
 * of jobs already released (it logs their ids). */
static void client_dealloc(sapy_client *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject *exc = sapy_error_save();

    PyObject_GC_UnTrack(self);
    if (self->client != NULL) {
        sa_client *c = self->client;

        self->client = NULL;
        sapy_core_enter(self);
        sa_client_free(c);
        sapy_core_exit(self);
    }
    if (sapy_unstash(&self->stash) < 0)
        PyErr_WriteUnraisable(NULL);
    client_clear(self);
    sapy_type_free(tp, self);
    Py_DECREF(tp);
    sapy_error_restore(exc);
}

static PyMethodDef client_methods[] = {
    {"submit", (PyCFunction)(void (*)(void))client_submit,
     METH_VARARGS | METH_KEYWORDS,
     "submit(*, file_path=None, buffer=None, image_url=None, file_id=None, "
     "file_name=None, actions, format=FORMAT_JSON, api_version=API_DEFAULT, "
     "pf_camera_kit=-1, mask_overlay=-1, miniserver_args=None, "
     "deadline_ms=0, callback=None) -> Job\n\n"
     "Validate and start one analysis; never blocks on the network.  "
     "callback(job, state) runs on every state change and once at the "
     "end."},
    {"resume", (PyCFunction)(void (*)(void))client_resume,
     METH_VARARGS | METH_KEYWORDS,
     "resume(task_id, *, api_version=API_DEFAULT, deadline_ms=0, "
     "callback=None) -> Job\n\n"
     "A job that polls the existing task task_id to its end (nothing is "
     "created or billed anew); the id is checked before anything is sent "
     "(ValidationError).  callback(job, state) as for submit()."},
    {"credit", (PyCFunction)(void (*)(void))client_credit,
     METH_VARARGS | METH_KEYWORDS,
     "credit(*, deadline_ms=0, callback=None) -> Job: read the balance; "
     "its result is {available, grants: [{type, amount, raw}], by_type}"},
    {"price_list", (PyCFunction)(void (*)(void))client_price_list,
     METH_VARARGS | METH_KEYWORDS,
     "price_list(*, deadline_ms=0, callback=None) -> Job: read every page "
     "of the price list; its result is {skus: [...], pages}"},
    {"delete", (PyCFunction)(void (*)(void))client_delete,
     METH_VARARGS | METH_KEYWORDS,
     "delete(task_id, *, deadline_ms=0, callback=None) -> Job: delete a "
     "finished task with its input and outputs (status 0 when done)"},
    {"step", (PyCFunction)client_step, METH_VARARGS,
     "step(timeout_ms=0) -> int: do what is ready, waiting at most "
     "timeout_ms (GIL released); returns the number of running jobs."},
    {"run", (PyCFunction)client_run, METH_VARARGS,
     "run(timeout_ms=-1): run until every job ended (WaitTimeout when "
     "time is up; KeyboardInterrupt on Ctrl-C, jobs keep running)."},
    {"socket_action", (PyCFunction)client_socket_action, METH_VARARGS,
     "socket_action(fd, what) -> int: fd is ready (or SOCKET_TIMEOUT)."},
    {"set_event_hooks", (PyCFunction)client_set_event_hooks, METH_VARARGS,
     "set_event_hooks(socket_cb, timer_cb): socket_cb(fd, what) and "
     "timer_cb(timeout_ms) are called from inside core calls with the GIL "
     "held; (None, None) removes them."},
    {"timeout_ms", (PyCFunction)client_timeout_ms, METH_NOARGS,
     "timeout_ms() -> int: ms until the client needs attention; -1 none."},
    {"notify", (PyCFunction)client_notify, METH_O,
     "notify(task_id) -> int: poll that task now (a webhook said it "
     "ended); returns the number of jobs notified."},
    {"fetch_masks", (PyCFunction)(void (*)(void))client_fetch_masks,
     METH_VARARGS | METH_KEYWORDS,
     "fetch_masks(done_job, folder=None, callback=None, *, delete_after=False)"
     " -> Job: download "
     "the masks and the resized image of a DONE job: streamed into folder "
     "when given, else kept in the new job's result files (at most "
     "max_files_bytes); wait on the returned job.  callback(job, state) is "
     "the new job's own."},
    {"wakeup", (PyCFunction)client_wakeup, METH_NOARGS,
     "wakeup(): make a blocking wait return WaitInterrupted; any thread."},
    {"close", (PyCFunction)client_close, METH_NOARGS,
     "close(): free the client; running jobs are abandoned (their task "
     "ids are logged).  Call run() first to let them end."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef client_getset[] = {
    {"active", (getter)client_get_active, NULL,
     "number of jobs the client drives (background polls included)", NULL},
    {"closed", (getter)client_get_closed, NULL, "True after close()", NULL},
    {"errmsg", (getter)client_get_errmsg, NULL,
     "the last detailed message of the client", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

SAPY_GC_TYPE(client, "Client",
             "Client(api_key, *, base_url=None, log=None, **options)\n\n"
             "One sa_client.  Options are the fields of sa_client_options by "
             "name (None keeps the default); log is called as log(level, "
             "message) with redacted text.",
             client_new);
