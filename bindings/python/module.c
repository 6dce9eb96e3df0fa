/*
 * module.c - skinanalysis._core: module init, module state, the exception
 * hierarchy and the one mapping from sa_status to exception, and the pure
 * functions of the core (catalogue, cost, image probe, result parsing).
 *
 * Multi-phase init (PEP 489) with heap types and per-module state, as in
 * CPython's Modules/xxlimited.c: nothing here is a C global except constant
 * tables.
 */
#include "sapy.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Exception hierarchy                                                 */
/* ------------------------------------------------------------------ */

enum { MIX_NONE = 0, MIX_VALUE, MIX_TIMEOUT };

typedef struct sapy_exc_def {
    const char *name;   /* qualified "skinanalysis.AuthError" */
    int parent;         /* index in exc_defs, -1 = Exception */
    int mixin;          /* MIX_*: an extra builtin base */
    const char *doc;
} sapy_exc_def;

enum {
    E_ERROR, E_USAGE, E_VALIDATION, E_API, E_AUTH, E_CREDIT, E_BAD_REQUEST,
    E_RATE, E_SERVER, E_UPLOAD, E_EXPIRED, E_TASK_TIMEOUT, E_AMBIGUOUS,
    E_ENGINE, E_PROTOCOL, E_LIMIT, E_TRANSPORT, E_REQ_TIMEOUT, E_DEADLINE,
    E_WAIT_TIMEOUT, E_INTERRUPTED, E_CANCELLED, E_ZIP, E_DOWNLOAD,
    E_URL_EXPIRED, E_IMAGE_DECODE, E_WEBHOOK, E__COUNT
};

static const sapy_exc_def exc_defs[E__COUNT] = {
    [E_ERROR] = {"skinanalysis.Error", -1, MIX_NONE,
        "Base class of every error of skinanalysis.  Attributes: status "
        "(HTTP status or None), code (API error_code or engine code), "
        "message, task_id, status_name, sa_status, retryable."},
    [E_USAGE] = {"skinanalysis.UsageError", E_ERROR, MIX_NONE,
        "The library was used in a way it does not allow (closed client, "
        "result of a running job, wait from a callback, ...)."},
    [E_VALIDATION] = {"skinanalysis.ValidationError", E_ERROR, MIX_VALUE,
        "The request is wrong (actions, image, options); nothing was sent."},
    [E_API] = {"skinanalysis.ApiError", E_ERROR, MIX_NONE,
        "The API answered with an error."},
    [E_AUTH] = {"skinanalysis.AuthError", E_API, MIX_NONE,
        "401: the API key is missing, invalid, inactive or expired."},
    [E_CREDIT] = {"skinanalysis.CreditError", E_API, MIX_NONE,
        "400 CreditInsufficiency: not enough units."},
    [E_BAD_REQUEST] = {"skinanalysis.BadRequestError", E_API, MIX_NONE,
        "Another 4xx answer of the API."},
    [E_RATE] = {"skinanalysis.RateLimitError", E_API, MIX_NONE,
        "429, still after the retry budget."},
    [E_SERVER] = {"skinanalysis.ServerError", E_API, MIX_NONE,
        "5xx, still after the retry budget."},
    [E_UPLOAD] = {"skinanalysis.UploadError", E_API, MIX_NONE,
        "The storage host refused the upload."},
    [E_EXPIRED] = {"skinanalysis.TaskExpiredError", E_API, MIX_NONE,
        "400 'Invalid task ID': the task is unknown or expired."},
    [E_TASK_TIMEOUT] = {"skinanalysis.TaskTimeoutError", E_API, MIX_NONE,
        "500 'Task execution timed out': the server gave up on the task."},
    [E_AMBIGUOUS] = {"skinanalysis.AmbiguousTaskError", E_API, MIX_NONE,
        "Task create failed after the request may have reached the server: "
        "a task may exist and may be billed."},
    [E_ENGINE] = {"skinanalysis.EngineError", E_ERROR, MIX_NONE,
        "The task ended with task_status 'error'; code is the engine code "
        "(e.g. 'error_no_face')."},
    [E_PROTOCOL] = {"skinanalysis.ProtocolError", E_ERROR, MIX_NONE,
        "A response the client cannot understand."},
    [E_LIMIT] = {"skinanalysis.LimitError", E_PROTOCOL, MIX_NONE,
        "A response exceeded a configured limit (body size, JSON depth, "
        "poll count)."},
    [E_TRANSPORT] = {"skinanalysis.TransportError", E_ERROR, MIX_NONE,
        "DNS, connect, TLS or connection failure."},
    [E_REQ_TIMEOUT] = {"skinanalysis.RequestTimeoutError", E_TRANSPORT,
        MIX_TIMEOUT, "One HTTP request took too long."},
    [E_DEADLINE] = {"skinanalysis.DeadlineError", E_ERROR, MIX_TIMEOUT,
        "The job's total deadline passed."},
    [E_WAIT_TIMEOUT] = {"skinanalysis.WaitTimeout", E_ERROR, MIX_TIMEOUT,
        "A wait timed out; the job is still running and can be waited on "
        "again."},
    [E_INTERRUPTED] = {"skinanalysis.WaitInterrupted", E_ERROR, MIX_NONE,
        "A wait was interrupted (Client.wakeup()); the job is still "
        "running."},
    [E_CANCELLED] = {"skinanalysis.CancelledError", E_ERROR, MIX_NONE,
        "The job was cancelled or abandoned, or its client was closed."},
    [E_ZIP] = {"skinanalysis.ZipError", E_PROTOCOL, MIX_NONE,
        "A result ZIP is corrupt or has no "
        "skinanalysisResult/score_info.json."},
    [E_DOWNLOAD] = {"skinanalysis.DownloadError", E_ERROR, MIX_NONE,
        "A result or mask download failed."},
    [E_URL_EXPIRED] = {"skinanalysis.UrlExpiredError", E_DOWNLOAD, MIX_NONE,
        "A result or mask URL was refused as expired, even after fetching "
        "fresh URLs."},
    [E_IMAGE_DECODE] = {"skinanalysis.ImageDecodeError", E_ERROR, MIX_VALUE,
        "An image (the source of a composite, or a mask) could not be "
        "decoded."},
    [E_WEBHOOK] = {"skinanalysis.WebhookError", E_ERROR, MIX_NONE,
        "A webhook delivery failed verification; code is "
        "'webhook_signature', 'webhook_stale' or 'invalid_argument'."},
};

/* Which class each status maps to; statuses not listed map to Error. */
static const struct { int status; int cls; } status_classes[] = {
    {SA_ERR_INVALID_ARGUMENT, E_USAGE}, {SA_ERR_BUSY, E_USAGE},
    {SA_ERR_NOT_DONE, E_USAGE}, {SA_ERR_INIT, E_USAGE},
    {SA_ERR_UNKNOWN_ACTION, E_VALIDATION}, {SA_ERR_MIXED_TIERS, E_VALIDATION},
    {SA_ERR_ACTION_COUNT, E_VALIDATION}, {SA_ERR_SOURCE, E_VALIDATION},
    {SA_ERR_FILE, E_VALIDATION}, {SA_ERR_IMAGE_FORMAT, E_VALIDATION},
    {SA_ERR_IMAGE_TOO_LARGE, E_VALIDATION},
    {SA_ERR_IMAGE_TOO_SMALL, E_VALIDATION}, {SA_ERR_BAD_OPTION, E_VALIDATION},
    {SA_ERR_INSECURE, E_VALIDATION},
    {SA_ERR_AUTH, E_AUTH}, {SA_ERR_CREDITS, E_CREDIT},
    {SA_ERR_BAD_REQUEST, E_BAD_REQUEST}, {SA_ERR_RATE_LIMITED, E_RATE},
    {SA_ERR_SERVER, E_SERVER}, {SA_ERR_PROTOCOL, E_PROTOCOL},
    {SA_ERR_UPLOAD, E_UPLOAD}, {SA_ERR_ENGINE, E_ENGINE},
    {SA_ERR_TASK_EXPIRED, E_EXPIRED}, {SA_ERR_TASK_TIMEOUT, E_TASK_TIMEOUT},
    {SA_ERR_AMBIGUOUS, E_AMBIGUOUS},
    {SA_ERR_TRANSPORT, E_TRANSPORT}, {SA_ERR_TIMEOUT, E_REQ_TIMEOUT},
    {SA_ERR_DEADLINE, E_DEADLINE}, {SA_ERR_LIMIT, E_LIMIT},
    {SA_ERR_WAIT_TIMEOUT, E_WAIT_TIMEOUT},
    {SA_ERR_INTERRUPTED, E_INTERRUPTED},
    {SA_ERR_CANCELLED, E_CANCELLED}, {SA_ERR_CALLBACK, E_CANCELLED},
    {SA_ERR_ZIP, E_ZIP}, {SA_ERR_URL_EXPIRED, E_URL_EXPIRED},
    {SA_ERR_DOWNLOAD, E_DOWNLOAD}, {SA_ERR_IMAGE_DECODE, E_IMAGE_DECODE},
    {SA_ERR_WEBHOOK_SIGNATURE, E_WEBHOOK}, {SA_ERR_WEBHOOK_STALE, E_WEBHOOK},
};

/* Defaults of the attributes, on the Error class itself. */
static const char *const error_attrs[] = {
    "status", "code", "message", "task_id", "status_name", "sa_status",
};

static PyObject *make_error_dict(void)
{
    PyObject *d = PyDict_New();
    size_t i;

    if (d == NULL)
        return NULL;
    for (i = 0; i < sizeof error_attrs / sizeof error_attrs[0]; i++) {
        if (PyDict_SetItemString(d, error_attrs[i], Py_None) < 0)
            goto fail;
    }
    if (PyDict_SetItemString(d, "retryable", Py_False) < 0)
        goto fail;
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

static PyObject *make_bases(PyObject *parent, int mixin)
{
    PyObject *extra = mixin == MIX_VALUE ? PyExc_ValueError
                    : mixin == MIX_TIMEOUT ? PyExc_TimeoutError : NULL;

    if (extra == NULL)
        return Py_NewRef(parent);
    return PyTuple_Pack(2, parent, extra);
}

static int create_exceptions(PyObject *module, sapy_state *st)
{
    PyObject *made[E__COUNT] = {NULL};
    int i, ok = -1;
    size_t k;

    st->classes = PyDict_New();
    if (st->classes == NULL)
        return -1;
    for (i = 0; i < E__COUNT; i++) {
        const sapy_exc_def *def = &exc_defs[i];
        PyObject *parent = def->parent < 0 ? PyExc_Exception
                                           : made[def->parent];
        PyObject *bases = make_bases(parent, def->mixin);
        PyObject *dict = NULL;

        if (bases == NULL)
            goto done;
        if (i == E_ERROR && (dict = make_error_dict()) == NULL) {
            Py_DECREF(bases);
            goto done;
        }
        made[i] = PyErr_NewExceptionWithDoc(def->name, def->doc, bases, dict);
        Py_DECREF(bases);
        Py_XDECREF(dict);
        if (made[i] == NULL)
            goto done;
        if (PyDict_SetItemString(st->classes, strchr(def->name, '.') + 1,
                                 made[i]) < 0
            || PyModule_AddObjectRef(module, strchr(def->name, '.') + 1,
                                     made[i]) < 0)
            goto done;
    }
    st->error = Py_NewRef(made[E_ERROR]);
    for (k = 0; k < sizeof status_classes / sizeof status_classes[0]; k++) {
        int idx = -status_classes[k].status;
        SAPY_XSETREF(st->by_status[idx],
                   Py_NewRef(made[status_classes[k].cls]));
    }
    ok = 0;
done:
    for (i = 0; i < E__COUNT; i++)
        Py_XDECREF(made[i]);
    return ok;
}

static PyObject *class_for(sapy_state *st, int status)
{
    if (status < 0 && status > SA_ERR__LAST && st->by_status[-status] != NULL)
        return st->by_status[-status];
    return st->error;
}

PyObject *sapy_str(const char *s)
{
    if (s == NULL)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

int sapy_set_new(int (*set)(PyObject *, const char *, PyObject *),
                 PyObject *obj, const char *name, PyObject *v)
{
    int r;

    if (v == NULL)
        return -1;
    r = set(obj, name, v);
    Py_DECREF(v);
    return r;
}

/* Set obj.name to v, a new reference (NULL: the error of its making). */
static int set_attr_new(PyObject *obj, const char *name, PyObject *v)
{
    return sapy_set_new(PyObject_SetAttrString, obj, name, v);
}

const char *sapy_utf8(PyObject *str, const char *what)
{
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(str, &len);

    if (s != NULL && (size_t)len != strlen(s)) {
        PyErr_Format(PyExc_ValueError, "embedded NUL in %s", what);
        return NULL;
    }
    return s;
}

const char *sapy_text_arg(PyObject *arg, const char *fn, const char *what)
{
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "%s() takes a str", fn);
        return NULL;
    }
    return sapy_utf8(arg, what);
}

static int set_attr_str(PyObject *obj, const char *name, const char *value)
{
    return set_attr_new(obj, name, sapy_str(value));
}

static int set_attr_long(PyObject *obj, const char *name, long value,
                         int none_when_zero)
{
    return set_attr_new(obj, name,
                        (none_when_zero && value == 0)
                            ? Py_NewRef(Py_None) : PyLong_FromLong(value));
}

PyObject *sapy_error_new(sapy_state *st, int status, const char *message,
                         int http_status, const char *code,
                         const char *task_id)
{
    /* Webhook errors carry their kind in code, as verify_webhook's do. */
    if (code == NULL && (status == SA_ERR_WEBHOOK_SIGNATURE
                         || status == SA_ERR_WEBHOOK_STALE))
        code = sa_status_name(status);
    return sapy_error_new_as(st, class_for(st, status), status, message,
                             http_status, code, task_id);
}

PyObject *sapy_error_new_as(sapy_state *st, PyObject *cls, int status,
                            const char *message, int http_status,
                            const char *code, const char *task_id)
{
    const char *text = (message != NULL && *message != '\0')
                           ? message : sa_strerror(status);
    PyObject *msg, *exc;

    if (status == SA_ERR_NOMEM)
        return PyObject_CallFunctionObjArgs(PyExc_MemoryError, Py_None, NULL);
    msg = sapy_str(text);
    if (msg == NULL)
        return NULL;
    exc = PyObject_CallFunctionObjArgs(cls, msg, NULL);
    if (exc == NULL)
        goto fail;
    if (PyObject_SetAttrString(exc, "message", msg) < 0
        || set_attr_long(exc, "status", http_status, 1) < 0
        || set_attr_str(exc, "code", code) < 0
        || set_attr_str(exc, "task_id", task_id) < 0
        || set_attr_str(exc, "status_name", sa_status_name(status)) < 0
        || set_attr_long(exc, "sa_status", status, 0) < 0
        || PyObject_SetAttrString(exc, "retryable",
               sa_status_is_retryable(status) ? Py_True : Py_False) < 0)
        goto fail;
    Py_DECREF(msg);
    return exc;
fail:
    Py_DECREF(msg);
    Py_XDECREF(exc);
    return NULL;
}

PyObject *sapy_raise(sapy_state *st, int status, const char *message,
                     int http_status, const char *code, const char *task_id)
{
    PyObject *exc;

    if (status == SA_ERR_NOMEM)
        return PyErr_NoMemory();
    exc = sapy_error_new(st, status, message, http_status, code, task_id);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Stashed exceptions                                                  */
/* ------------------------------------------------------------------ */

/* PyErr_GetRaisedException / PyErr_SetRaisedException are in the limited
 * API from 3.12 only: an abi3 build for 3.10 uses PyErr_Fetch and
 * PyErr_Restore (limited, and still supported). */
#if PY_VERSION_HEX >= 0x030C0000 \
    && (!defined(Py_LIMITED_API) || Py_LIMITED_API + 0 >= 0x030C0000)
#define SAPY_RAISED_EXCEPTION 1
#else
#define SAPY_RAISED_EXCEPTION 0
#endif

PyObject *sapy_error_save(void)
{
#if SAPY_RAISED_EXCEPTION
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;

    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL)
        return NULL;
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL && tb != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

void sapy_error_restore(PyObject *exc)
{
    if (exc == NULL)
        return;
#if SAPY_RAISED_EXCEPTION
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc,
                  PyException_GetTraceback(exc));
#endif
}

void sapy_stash(PyObject **slot)
{
    PyObject *exc = sapy_error_save();

    if (exc == NULL)
        return;
    if (*slot == NULL) {
        *slot = exc;
        return;
    }
    sapy_error_restore(exc);
    PyErr_WriteUnraisable(NULL);
}

int sapy_unstash(PyObject **slot)
{
    PyObject *exc = *slot;

    if (exc == NULL)
        return 0;
    *slot = NULL;
    sapy_error_restore(exc);
    return -1;
}

/* ------------------------------------------------------------------ */
/* Module functions                                                    */
/* ------------------------------------------------------------------ */

/* ------------------------------------------------------------------ */
/* Limited-API helpers                                                 */
/* ------------------------------------------------------------------ */

/* PyType_GetSlot returns a slot as a void *; tp_alloc and tp_free are
 * function pointers: the conversion POSIX guarantees and ISO C
 * (-Wpedantic) leaves to the implementation, as for PyType_Slot. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
PyObject *sapy_type_alloc(PyTypeObject *type)
{
    allocfunc alloc = (allocfunc)PyType_GetSlot(type, Py_tp_alloc);

    if (alloc == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_SystemError, "type without tp_alloc");
        return NULL;
    }
    return alloc(type, 0);
}

void sapy_type_free(PyTypeObject *type, void *self)
{
    freefunc free_slot = (freefunc)PyType_GetSlot(type, Py_tp_free);

    if (free_slot == NULL) {
        /* Never for our heap GC types (tp_free is PyObject_GC_Del). */
        PyErr_Clear();
        free_slot = PyObject_GC_Del;
    }
    free_slot(self);
}
#pragma GCC diagnostic pop

/* The bytes of obj when it exports a buffer: 1 with *out a new bytes
 * reference (obj itself when it is bytes, else a copy); 0 with no
 * exception when obj exports no buffer; -1 on error.  A memoryview stands
 * for PyObject_GetBuffer, which is not in the limited API of 3.10. */
static int bytes_like_opt(PyObject *obj, PyObject **out)
{
    PyObject *view, *flag;
    int contiguous;

    *out = NULL;
    if (PyBytes_Check(obj)) {
        *out = Py_NewRef(obj);
        return 1;
    }
    view = PyMemoryView_FromObject(obj);
    if (view == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError))
            return -1;
        PyErr_Clear();  /* no buffer protocol */
        return 0;
    }
    /* PyBUF_SIMPLE, as before: a C-contiguous buffer only. */
    flag = PyObject_GetAttrString(view, "c_contiguous");
    contiguous = flag != NULL ? PyObject_IsTrue(flag) : -1;
    Py_XDECREF(flag);
    if (contiguous == 0)
        PyErr_SetString(PyExc_BufferError,
                        "memoryview: underlying buffer is not C-contiguous");
    else if (contiguous > 0)
        *out = PyBytes_FromObject(view);
    Py_DECREF(view);  /* releases the exporter's buffer */
    return *out != NULL ? 1 : -1;
}

PyObject *sapy_bytes_like(PyObject *obj)
{
    PyObject *out, *name;
    int r = bytes_like_opt(obj, &out);

    if (r != 0)
        return out;
    /* PyObject_GetBuffer's message. */
    name = PyObject_GetAttrString((PyObject *)Py_TYPE(obj), "__name__");
    if (name != NULL) {
        PyErr_Format(PyExc_TypeError,
                     "a bytes-like object is required, not '%U'", name);
        Py_DECREF(name);
    }
    return NULL;
}

int sapy_conv_bytes(PyObject *obj, void *out)
{
    PyObject *b = sapy_bytes_like(obj);

    if (b == NULL)
        return 0;
    *(PyObject **)out = b;
    return 1;
}

int sapy_conv_text(PyObject *obj, void *out)
{
    PyObject *b = PyUnicode_Check(obj) ? PyUnicode_AsUTF8String(obj)
                                       : sapy_bytes_like(obj);

    if (b == NULL)
        return 0;
    *(PyObject **)out = b;
    return 1;
}

PyObject *sapy_tuple(PyObject *obj, const char *message)
{
    PyObject *it, *t;

    if (PyTuple_CheckExact(obj))
        return Py_NewRef(obj);
    it = PyObject_GetIter(obj);
    if (it == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError))
            PyErr_SetString(PyExc_TypeError, message);
        return NULL;
    }
    t = PySequence_Tuple(it);
    Py_DECREF(it);
    return t;
}

/* The pointer and length of a bytes object. */
static int bytes_data(PyObject *b, const char **data, size_t *len)
{
    char *p;
    Py_ssize_t n;

    if (PyBytes_AsStringAndSize(b, &p, &n) < 0)
        return -1;
    *data = p;
    *len = (size_t)n;
    return 0;
}

static sapy_state *get_state(PyObject *module)
{
    return (sapy_state *)PyModule_GetState(module);
}

sapy_state *sapy_state_of_type(PyTypeObject *type)
{
    return (sapy_state *)PyType_GetModuleState(type);
}

static PyObject *mod_version(PyObject *module, PyObject *unused)
{
    return PyUnicode_FromString(sa_version());
}

int sapy_as_int(PyObject *obj, int *out)
{
    long v = PyLong_AsLong(obj);

    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < INT_MIN || v > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "value out of range of int");
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* The text a core function gives a status: strerror() and status_name(). */
static PyObject *status_text(PyObject *arg, const char *(*text)(int))
{
    int status;

    if (sapy_as_int(arg, &status) < 0)
        return NULL;
    return PyUnicode_FromString(text(status));
}

static PyObject *mod_strerror(PyObject *module, PyObject *arg)
{
    return status_text(arg, sa_strerror);
}

static PyObject *mod_status_name(PyObject *module, PyObject *arg)
{
    return status_text(arg, sa_status_name);
}

static PyObject *mod_error_for(PyObject *module, PyObject *args,
                               PyObject *kwargs)
{
    static char *kwlist[] = {"status", "message", "http_status", "code",
                             "task_id", NULL};
    int status, http_status = 0;
    const char *message = NULL, *code = NULL, *task_id = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "i|z$izz:error_for",
                                     kwlist, &status, &message, &http_status,
                                     &code, &task_id))
        return NULL;
    return sapy_error_new(get_state(module), status, message, http_status,
                          code, task_id);
}

static PyObject *mod_actions(PyObject *module, PyObject *unused)
{
    size_t n = sa_action_count(), i;
    PyObject *t = PyTuple_New((Py_ssize_t)n);

    if (t == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        PyObject *s = sapy_str(sa_action_name(i));

        if (s == NULL || PyTuple_SetItem(t, (Py_ssize_t)i, s) < 0) {
            Py_DECREF(t);  /* PyTuple_SetItem stole s */
            return NULL;
        }
    }
    return t;
}

static PyObject *mod_action_tier(PyObject *module, PyObject *arg)
{
    const char *name = PyUnicode_AsUTF8AndSize(arg, NULL);
    int tier;

    if (name == NULL)
        return NULL;
    tier = sa_action_tier(name);
    if (tier < 0)
        return sapy_raise(get_state(module), tier, NULL, 0, NULL, NULL);
    return PyLong_FromLong(tier);
}

const char **sapy_names(PyObject *seq, PyObject **keep, size_t *n_out)
{
    PyObject *fast = sapy_tuple(seq, "actions must be a sequence of str");
    const char **names;
    Py_ssize_t n, i;

    if (fast == NULL)
        return NULL;
    n = PyTuple_Size(fast);
    names = PyMem_Calloc((size_t)n + 1, sizeof *names);
    if (names == NULL) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return NULL;
    }
    for (i = 0; i < n; i++) {
        PyObject *item = PyTuple_GetItem(fast, i);

        if (item == NULL)
            goto fail;
        if (!PyUnicode_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "actions must be str");
            goto fail;
        }
        if ((names[i] = sapy_utf8(item, "an action")) == NULL)
            goto fail;
    }
    *keep = fast;
    *n_out = (size_t)n;
    return names;
fail:
    PyMem_Free(names);
    Py_DECREF(fast);
    return NULL;
}

static PyObject *mod_cost(PyObject *module, PyObject *arg)
{
    PyObject *keep = NULL;
    size_t n = 0;
    const char **names = sapy_names(arg, &keep, &n);
    char err[256] = "";
    int units;

    if (names == NULL)
        return NULL;
    units = sa_cost(names, n, err, sizeof err);
    PyMem_Free(names);
    Py_DECREF(keep);
    if (units < 0)
        return sapy_raise(get_state(module), units, err, 0, NULL, NULL);
    return PyLong_FromLong(units);
}

static PyObject *mod_probe_image(PyObject *module, PyObject *arg)
{
    sa_image_info info;
    PyObject *data = NULL;
    const char *p;
    size_t len;
    char msg[64];
    int r;

    sa_image_info_init(&info);
    r = bytes_like_opt(arg, &data);

    if (r < 0)
        return NULL;
    if (r > 0) {  /* bytes-like: the image itself */
        if (bytes_data(data, &p, &len) < 0) {
            Py_DECREF(data);
            return NULL;
        }
        r = sa_image_probe_buffer(p, len, &info);
        Py_DECREF(data);
    } else {      /* else a path */
        PyObject *path = NULL;

        if (!PyUnicode_FSConverter(arg, &path))
            return NULL;
        if ((p = PyBytes_AsString(path)) == NULL) {
            Py_DECREF(path);
            return NULL;
        }
        r = sa_image_probe_file(p, &info);
        Py_DECREF(path);
    }
    if (r != SA_OK) {
        snprintf(msg, sizeof msg, "%s", sa_strerror(r));
        return sapy_raise(get_state(module), r, msg, 0, NULL, NULL);
    }
    return Py_BuildValue("(ikk)", info.format, (unsigned long)info.width,
                         (unsigned long)info.height);
}

static PyObject *mod_parse_result(PyObject *module, PyObject *args)
{
    PyObject *text = NULL, *d;
    int kind = SA_PARSE_STATUS_BODY, r;
    sa_result *res = NULL;
    const char *p;
    size_t len;

    if (!PyArg_ParseTuple(args, "O&|i:parse_result", sapy_conv_text, &text,
                          &kind)
        || bytes_data(text, &p, &len) < 0) {
        Py_XDECREF(text);
        return NULL;
    }
    r = sa_result_parse(p, len, kind, &res);
    Py_DECREF(text);
    if (r != SA_OK)
        return sapy_raise(get_state(module), r, NULL, 0, NULL, NULL);
    d = sapy_result_to_dict(res);
    sa_result_free(res);
    return d;
}

static PyObject *mod_parse_zip(PyObject *module, PyObject *args)
{
    PyObject *zip = NULL, *d;
    Py_ssize_t max_entry = 0;
    sa_result *res = NULL;
    char err[256] = "";
    const char *p;
    size_t len;
    int r;

    if (!PyArg_ParseTuple(args, "O&|n:parse_zip", sapy_conv_bytes, &zip,
                          &max_entry)
        || bytes_data(zip, &p, &len) < 0) {
        Py_XDECREF(zip);
        return NULL;
    }
    if (max_entry < 0) {
        Py_DECREF(zip);
        PyErr_SetString(PyExc_ValueError, "max_entry_bytes must be >= 0");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    r = sa_result_parse_zip(p, len, (size_t)max_entry, &res, err, sizeof err);
    Py_END_ALLOW_THREADS
    Py_DECREF(zip);
    if (r != SA_OK)
        return sapy_raise(get_state(module), r, err, 0, NULL, NULL);
    d = sapy_result_to_dict(res);
    sa_result_free(res);
    return d;
}

/* The bytes of a sequence of bytes-like objects (masks), released by
 * views_free: items holds them (a tuple of bytes), data and lens point
 * into them. */
typedef struct buffer_views {
    PyObject *items;
    const void **data;
    size_t *lens;
    size_t n;
} buffer_views;

static void views_free(buffer_views *v)
{
    Py_CLEAR(v->items);
    PyMem_Free(v->data);
    PyMem_Free(v->lens);
    v->data = NULL;
    v->lens = NULL;
    v->n = 0;
}

static int views_get(PyObject *seq, buffer_views *v)
{
    PyObject *fast = sapy_tuple(seq, "masks must be a sequence of bytes");
    Py_ssize_t n, i;

    if (fast == NULL)
        return -1;
    n = PyTuple_Size(fast);
    v->items = PyTuple_New(n);
    v->data = PyMem_Calloc((size_t)n + 1, sizeof *v->data);
    v->lens = PyMem_Calloc((size_t)n + 1, sizeof *v->lens);
    if (v->items == NULL)
        goto fail;
    if (v->data == NULL || v->lens == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (i = 0; i < n; i++) {
        PyObject *item = PyTuple_GetItem(fast, i);
        PyObject *b = item != NULL ? sapy_bytes_like(item) : NULL;
        const char *p;

        /* PyTuple_SetItem steals b (also when it fails). */
        if (b == NULL || PyTuple_SetItem(v->items, i, b) < 0
            || bytes_data(b, &p, &v->lens[i]) < 0)
            goto fail;
        v->data[i] = p;
        v->n++;
    }
    Py_DECREF(fast);
    return 0;
fail:
    Py_DECREF(fast);
    views_free(v);
    return -1;
}

static PyObject *mod_composite_write(PyObject *module, PyObject *args)
{
    PyObject *src = NULL, *masks, *path_arg, *path = NULL;
    PyObject *concerns_arg = Py_None, *keep = NULL;
    Py_ssize_t max_side = 0;
    const char **concerns = NULL;
    size_t n_concerns = 0;
    buffer_views v = {NULL, NULL, NULL, 0};
    const char *src_data = NULL, *out_path = NULL;
    size_t src_len = 0;
    char err[256] = "";
    int r;

    if (!PyArg_ParseTuple(args, "O&OO|On:composite_write", sapy_conv_bytes,
                          &src, &masks, &path_arg, &concerns_arg, &max_side)
        || bytes_data(src, &src_data, &src_len) < 0) {
        Py_XDECREF(src);
        return NULL;
    }
    if (!PyUnicode_FSConverter(path_arg, &path)
        || (out_path = PyBytes_AsString(path)) == NULL
        || views_get(masks, &v) < 0) {
        Py_XDECREF(path);
        Py_DECREF(src);
        return NULL;
    }
    if (max_side < 0) {
        PyErr_SetString(PyExc_ValueError, "composite_write: max_side must be "
                        ">= 0");
        Py_DECREF(path);
        Py_DECREF(src);
        views_free(&v);
        return NULL;
    }
    if (concerns_arg != Py_None) {
        concerns = sapy_names(concerns_arg, &keep, &n_concerns);
        if (concerns != NULL && n_concerns != v.n) {
            PyErr_SetString(PyExc_ValueError, "composite_write: one concern "
                            "per mask");
            PyMem_Free(concerns);
            concerns = NULL;
        }
        if (concerns == NULL) {
            Py_XDECREF(keep);
            views_free(&v);
            Py_DECREF(path);
            Py_DECREF(src);
            return NULL;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    r = sa_composite_write_concerns(src_data, src_len, v.data, v.lens,
                                    concerns, v.n, (size_t)max_side, out_path,
                                    err, sizeof err);
    Py_END_ALLOW_THREADS
    PyMem_Free(concerns);
    Py_XDECREF(keep);
    views_free(&v);
    Py_DECREF(path);
    Py_DECREF(src);
    if (r != SA_OK)
        return sapy_raise(get_state(module), r, err, 0, NULL, NULL);
    Py_RETURN_NONE;
}

static PyObject *mod_clean_file_name(PyObject *module, PyObject *arg)
{
    char out[SA_FILE_NAME_MAX];
    const char *name;

    (void)module;
    name = sapy_text_arg(arg, "clean_file_name", "a file name");
    if (name == NULL)
        return NULL;
    if (sa_file_name_clean(name, out, sizeof out) != SA_OK)
        return PyErr_NoMemory();
    return PyUnicode_FromString(out);
}

static PyObject *mod_action_counterpart(PyObject *module, PyObject *arg)
{
    const char *name = PyUnicode_AsUTF8AndSize(arg, NULL);

    (void)module;
    if (name == NULL)
        return NULL;
    return sapy_str(sa_action_counterpart(name));
}

static PyObject *mod_default_actions(PyObject *module, PyObject *arg)
{
    const char *names[SA_MAX_ACTIONS];
    long tier = PyLong_AsLong(arg);
    size_t n, i;
    PyObject *t;

    (void)module;
    if (tier == -1 && PyErr_Occurred())
        return NULL;
    n = sa_default_actions((int)tier, names, SA_MAX_ACTIONS);
    if (n > SA_MAX_ACTIONS)
        n = SA_MAX_ACTIONS;
    if ((t = PyTuple_New((Py_ssize_t)n)) == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        PyObject *v = sapy_str(names[i]);

        if (v == NULL || PyTuple_SetItem(t, (Py_ssize_t)i, v) < 0) {
            Py_DECREF(t);
            return NULL;
        }
    }
    return t;
}

static PyObject *mod_job_state_name(PyObject *module, PyObject *arg)
{
    long state = PyLong_AsLong(arg);

    (void)module;
    if (state == -1 && PyErr_Occurred())
        return NULL;
    if (state < INT_MIN || state > INT_MAX)
        state = -1;
    return PyUnicode_FromString(sa_job_state_name((int)state));
}

/* One sa_arg from a (key, value) pair; borrowed strings stay alive in the
 * pair, a type name in `keep`.  -1 with an exception set. */
static int msarg_from(PyObject *pair, PyObject *keep, sa_arg *a)
{
    PyObject *k = PyTuple_GetItem(pair, 0), *v = PyTuple_GetItem(pair, 1);
    Py_ssize_t len;

    if (k == NULL || v == NULL)
        return -1;
    if (PyUnicode_Check(k)) {
        if ((a->key = PyUnicode_AsUTF8AndSize(k, &len)) == NULL)
            return -1;
        a->key_len = (size_t)len;
    }
    if (PyBool_Check(v)) {
        a->type = SA_ARG_BOOL;
        a->boolean = v == Py_True;
    } else if (PyLong_Check(v) || PyFloat_Check(v)) {
        a->type = SA_ARG_NUMBER;
        a->number = PyFloat_AsDouble(v);
        if (a->number == -1.0 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError))
                return -1;
            PyErr_Clear();  /* too large: the core says not finite */
            a->number = HUGE_VAL;
        }
    } else if (PyUnicode_Check(v)) {
        a->type = SA_ARG_STRING;
        if ((a->string = PyUnicode_AsUTF8AndSize(v, &len)) == NULL)
            return -1;
        a->string_len = (size_t)len;
    } else {
        PyObject *name = PyObject_GetAttrString((PyObject *)Py_TYPE(v),
                                                "__name__");
        a->type = SA_ARG_OTHER;
        if (name == NULL)
            return -1;
        if (PyList_Append(keep, name) < 0) {
            Py_DECREF(name);
            return -1;
        }
        Py_DECREF(name);
        a->type_name = PyUnicode_AsUTF8AndSize(name, NULL);
        if (a->type_name == NULL)
            return -1;
    }
    return 0;
}

/* miniserver_args_json(mapping) -> str: the core's encoding
 * (sa_miniserver_args_json), the one path from a mapping to the JSON text
 * a request carries; ValidationError (bad_option) for what it refuses. */
static PyObject *mod_miniserver_args_json(PyObject *module, PyObject *arg)
{
    PyObject *items = NULL, *keep = NULL, *out = NULL;
    sa_arg *args = NULL;
    char err[256] = "", *json = NULL;
    Py_ssize_t n, i;
    int rc;

    if (!PyObject_HasAttrString(arg, "items") || PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError,
                        "miniserver_args must be a mapping or a str");
        return NULL;
    }
    if ((items = PyMapping_Items(arg)) == NULL)
        return NULL;
    if ((keep = PyList_New(0)) == NULL)
        goto done;
    n = PyList_Size(items);
    if (n < 0)
        goto done;
    args = PyMem_Calloc((size_t)n + 1, sizeof *args);
    if (args == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < n; i++) {
        PyObject *pair = PyList_GetItem(items, i);

        if (pair == NULL || msarg_from(pair, keep, &args[i]) < 0)
            goto done;
    }
    rc = sa_miniserver_args_json(args, (size_t)n, &json, err, sizeof err);
    if (rc != SA_OK) {
        sapy_raise(get_state(module), rc, err, 0, NULL, NULL);
        goto done;
    }
    out = PyUnicode_FromString(json);
    sa_free(json);
done:
    PyMem_Free(args);
    Py_XDECREF(keep);
    Py_DECREF(items);
    return out;
}

/* is_mask_file(name, data, resize_image_url) -> bool: sa_file_is_mask,
 * the rule of which result files are masks. */
static PyObject *mod_is_mask_file(PyObject *module, PyObject *args)
{
    const char *name, *url = NULL;
    PyObject *data = NULL;
    const char *p;
    size_t len;
    int r;

    (void)module;
    if (!PyArg_ParseTuple(args, "sO&z:is_mask_file", &name, sapy_conv_bytes,
                          &data, &url))
        return NULL;
    if (bytes_data(data, &p, &len) < 0) {
        Py_DECREF(data);
        return NULL;
    }
    r = sa_file_is_mask(name, p, len, url);
    Py_DECREF(data);
    return PyBool_FromLong(r);
}

/* The UTF-8 of a sequence of str (borrowed from *keep, which the caller
 * releases; the array is freed with PyMem_Free), or NULL. */
static const char **file_names(PyObject *seq, PyObject **keep, size_t *n_out)
{
    PyObject *fast = sapy_tuple(seq, "names must be a sequence of str");
    const char **names;
    Py_ssize_t n, i, len = 0;

    if (fast == NULL)
        return NULL;
    n = PyTuple_Size(fast);
    names = n < 0 ? NULL : PyMem_Calloc((size_t)n + 1, sizeof *names);
    if (names == NULL) {
        Py_DECREF(fast);
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        return NULL;
    }
    for (i = 0; i < n; i++) {
        PyObject *item = PyTuple_GetItem(fast, i);
        names[i] = item != NULL && PyUnicode_Check(item)
                       ? PyUnicode_AsUTF8AndSize(item, &len) : NULL;
        if (names[i] == NULL || (size_t)len != strlen(names[i])) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "file names must be str "
                                "without NUL");
            PyMem_Free(names);
            Py_DECREF(fast);
            return NULL;
        }
    }
    *keep = fast;
    *n_out = (size_t)n;
    return names;
}

/* save_files(folder, names, datas): sa_folder_write for each, the GIL
 * released; the names written, or OSError (MemoryError). */
static PyObject *mod_save_files(PyObject *module, PyObject *args)
{
    PyObject *folder_arg, *names_seq, *datas, *folder = NULL, *keep = NULL;
    PyObject *out = NULL;
    const char **names = NULL, *folder_path = NULL;
    buffer_views v = {NULL, NULL, NULL, 0};
    char (*written)[SA_FILE_NAME_MAX] = NULL;
    char err[512] = "";
    sa_folder *f = NULL;
    size_t n = 0, i;
    int r = SA_OK;

    (void)module;
    if (!PyArg_ParseTuple(args, "OOO:save_files", &folder_arg, &names_seq,
                          &datas))
        return NULL;
    if (!PyUnicode_FSConverter(folder_arg, &folder))
        return NULL;
    folder_path = PyBytes_AsString(folder);
    if (folder_path == NULL)
        goto done;
    names = file_names(names_seq, &keep, &n);
    if (names == NULL || views_get(datas, &v) < 0)
        goto done;
    if (v.n != n) {
        PyErr_SetString(PyExc_ValueError, "as many names as files");
        goto done;
    }
    written = PyMem_Calloc(n + 1, sizeof *written);
    if (written == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    r = sa_folder_open(folder_path, &f, err, sizeof err);
    for (i = 0; r == SA_OK && i < n; i++)
        r = sa_folder_write(f, names[i], v.data[i], v.lens[i], written[i],
                            sizeof written[i], err, sizeof err);
    sa_folder_free(f);
    Py_END_ALLOW_THREADS
    if (r == SA_ERR_NOMEM) {
        PyErr_NoMemory();
        goto done;
    }
    if (r != SA_OK) {
        PyErr_SetString(PyExc_OSError, err);
        goto done;
    }
    out = PyList_New((Py_ssize_t)n);
    for (i = 0; out != NULL && i < n; i++) {
        PyObject *s = PyUnicode_DecodeFSDefault(written[i]);
        /* PyList_SetItem steals s (also when it fails) */
        if (s == NULL || PyList_SetItem(out, (Py_ssize_t)i, s) < 0)
            Py_CLEAR(out);
    }
done:
    PyMem_Free(written);
    views_free(&v);
    PyMem_Free(names);
    Py_XDECREF(keep);
    Py_DECREF(folder);
    return out;
}

/* Raise a WebhookError for a refusal r of the webhook functions. */
static PyObject *raise_webhook(sapy_state *st, int r, const char *err)
{
    PyObject *exc;

    if (r == SA_ERR_NOMEM)
        return PyErr_NoMemory();
    exc = sapy_error_new_as(st, st->by_status[-SA_ERR_WEBHOOK_SIGNATURE], r,
                            err, 0, sa_status_name(r), NULL);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static PyObject *mod_webhook_parse(PyObject *module, PyObject *arg)
{
    char *task_id = NULL, *task_status = NULL, err[256] = "";
    int64_t created_at = INT64_MIN;
    PyObject *body, *out, *items[3];
    char *data;
    Py_ssize_t len;
    int r, i;

    body = sapy_bytes_like(arg);
    if (body == NULL)
        return NULL;
    if (PyBytes_AsStringAndSize(body, &data, &len) < 0) {
        Py_DECREF(body);
        return NULL;
    }
    r = sa_webhook_parse(data, (size_t)len, &task_id, &task_status,
                         &created_at, err, sizeof err);
    Py_DECREF(body);
    if (r != SA_OK)
        return raise_webhook(get_state(module), r, err);
    items[0] = sapy_str(task_id);
    items[1] = sapy_str(task_status);
    items[2] = created_at == INT64_MIN
                   ? Py_NewRef(Py_None)
                   : PyLong_FromLongLong((long long)created_at);
    sa_free(task_id);
    sa_free(task_status);
    out = (items[0] && items[1] && items[2]) ? PyTuple_New(3) : NULL;
    if (out == NULL) {
        for (i = 0; i < 3; i++)
            Py_XDECREF(items[i]);
        return NULL;
    }
    for (i = 0; i < 3; i++) {
        /* PyTuple_SetItem steals items[i], also when it fails. */
        if (PyTuple_SetItem(out, i, items[i]) < 0) {
            for (i = i + 1; i < 3; i++)
                Py_DECREF(items[i]);
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

static PyObject *mod_webhook_verify(PyObject *module, PyObject *args,
                                    PyObject *kwargs)
{
    static char *kwlist[] = {"secret", "msg_id", "timestamp", "signature",
                             "body", "tolerance_s", "now_s", NULL};
    const char *secret, *id, *ts, *sig, *p;
    PyObject *body = NULL;
    size_t len;
    long tolerance = 0;
    long long now = 0;
    char err[256] = "";
    sapy_state *st = get_state(module);
    int r;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "ssssO&|$lL:webhook_verify",
                                     kwlist, &secret, &id, &ts, &sig,
                                     sapy_conv_bytes, &body, &tolerance, &now)
        || bytes_data(body, &p, &len) < 0) {
        Py_XDECREF(body);
        return NULL;
    }
    r = sa_webhook_verify(secret, id, ts, sig, p, len, tolerance,
                          (int64_t)now, err, sizeof err);
    Py_DECREF(body);
    if (r == SA_OK)
        Py_RETURN_NONE;
    /* Every refusal is a WebhookError, malformed input included. */
    return raise_webhook(st, r, err);
}

static PyMethodDef module_methods[] = {
    {"version", mod_version, METH_NOARGS,
     "version() -> str: the version of the linked C core."},
    {"strerror", mod_strerror, METH_O,
     "strerror(status) -> str: a description of an sa_status code."},
    {"status_name", mod_status_name, METH_O,
     "status_name(status) -> str: the stable name of an sa_status code."},
    {"error_for", (PyCFunction)(void (*)(void))mod_error_for,
     METH_VARARGS | METH_KEYWORDS,
     "error_for(status, message=None, *, http_status=0, code=None, "
     "task_id=None) -> Error\n\nThe exception instance (not raised) the "
     "extension uses for this status."},
    {"actions", mod_actions, METH_NOARGS,
     "actions() -> tuple[str, ...]: the 32 documented dst_actions, 16 HD "
     "then 16 SD, in the published order."},
    {"action_tier", mod_action_tier, METH_O,
     "action_tier(name) -> int: TIER_SD or TIER_HD; ValidationError when "
     "unknown."},
    {"cost", mod_cost, METH_O,
     "cost(actions) -> int: units a successful request with these actions "
     "costs; ValidationError when the list is invalid."},
    {"probe_image", mod_probe_image, METH_O,
     "probe_image(path_or_bytes) -> (format, width, height) from the image "
     "headers; ValidationError when not a JPEG/PNG."},
    {"parse_result", mod_parse_result, METH_VARARGS,
     "parse_result(text, kind=PARSE_STATUS_BODY) -> dict: parse a status "
     "body or a score_info.json document without a client."},
    {"parse_zip", mod_parse_zip, METH_VARARGS,
     "parse_zip(data, max_entry_bytes=0) -> dict: parse a result ZIP "
     "(scores and mask files) without a client; ZipError when corrupt."},
    {"clean_file_name", mod_clean_file_name, METH_O,
     "clean_file_name(name) -> str: a name from the network (a URL's last "
     "path segment, a zip entry) made safe for a folder, as the core names "
     "the files it writes (sa_file_name_clean)."},
    {"save_files", mod_save_files, METH_VARARGS,
     "save_files(folder, names, datas) -> list[str]: write each bytes-like "
     "into the existing folder as the core writes masks (names cleaned and "
     "made unique, never over a file it did not write, never through a "
     "link); the names written.  OSError when a file cannot be written."},
    {"composite_write", mod_composite_write, METH_VARARGS,
     "composite_write(source, masks, out_path, concerns=None, max_side=0): "
     "blend the masks (a sequence of encoded images) over the source image, "
     "written as PNG; each mask tinted with its concern's colour "
     "(concern_color) when concerns (one str per mask) are given; scaled "
     "down to max_side pixels at most when > 0."},
    {"action_counterpart", mod_action_counterpart, METH_O,
     "action_counterpart(name) -> str | None: the same concern in the "
     "other tier (sa_action_counterpart)."},
    {"default_actions", mod_default_actions, METH_O,
     "default_actions(tier) -> tuple[str, ...]: what a request without "
     "actions asks for (sa_default_actions)."},
    {"job_state_name", mod_job_state_name, METH_O,
     "job_state_name(state) -> str: \"poll_wait\", \"done\", ... "
     "(sa_job_state_name)."},
    {"miniserver_args_json", mod_miniserver_args_json, METH_O,
     "miniserver_args_json(mapping) -> str: the JSON object text of "
     "miniserver_args, encoded by the core; ValidationError (bad_option) "
     "for a key that is no str or a value that is no bool, number or str."},
    {"is_mask_file", mod_is_mask_file, METH_VARARGS,
     "is_mask_file(name, data, resize_image_url) -> bool: a result file is "
     "a mask image (sa_file_is_mask)."},
    {"webhook_parse", mod_webhook_parse, METH_O,
     "webhook_parse(body) -> (task_id, task_status, created_at): the task "
     "notification of a verified webhook body (task_status and created_at "
     "may be None); WebhookError (code 'protocol' or 'limit') when it is "
     "none."},
    {"webhook_verify", (PyCFunction)(void (*)(void))mod_webhook_verify,
     METH_VARARGS | METH_KEYWORDS,
     "webhook_verify(secret, msg_id, timestamp, signature, body, *, "
     "tolerance_s=0, now_s=0): check a Standard Webhooks signature; "
     "WebhookError when it does not hold."},
    {NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------------------ */
/* Module init                                                         */
/* ------------------------------------------------------------------ */

static const struct { const char *name; long value; } int_constants[] = {
    {"VERSION_NUM", SA_VERSION_NUM},
    {"OK", SA_OK},
    {"ERR_NOMEM", SA_ERR_NOMEM},
    {"ERR_INVALID_ARGUMENT", SA_ERR_INVALID_ARGUMENT},
    {"ERR_BUSY", SA_ERR_BUSY},
    {"ERR_NOT_DONE", SA_ERR_NOT_DONE},
    {"ERR_INIT", SA_ERR_INIT},
    {"ERR_UNKNOWN_ACTION", SA_ERR_UNKNOWN_ACTION},
    {"ERR_MIXED_TIERS", SA_ERR_MIXED_TIERS},
    {"ERR_ACTION_COUNT", SA_ERR_ACTION_COUNT},
    {"ERR_SOURCE", SA_ERR_SOURCE},
    {"ERR_FILE", SA_ERR_FILE},
    {"ERR_IMAGE_FORMAT", SA_ERR_IMAGE_FORMAT},
    {"ERR_IMAGE_TOO_LARGE", SA_ERR_IMAGE_TOO_LARGE},
    {"ERR_IMAGE_TOO_SMALL", SA_ERR_IMAGE_TOO_SMALL},
    {"ERR_BAD_OPTION", SA_ERR_BAD_OPTION},
    {"ERR_INSECURE", SA_ERR_INSECURE},
    {"ERR_AUTH", SA_ERR_AUTH},
    {"ERR_CREDITS", SA_ERR_CREDITS},
    {"ERR_BAD_REQUEST", SA_ERR_BAD_REQUEST},
    {"ERR_RATE_LIMITED", SA_ERR_RATE_LIMITED},
    {"ERR_SERVER", SA_ERR_SERVER},
    {"ERR_PROTOCOL", SA_ERR_PROTOCOL},
    {"ERR_UPLOAD", SA_ERR_UPLOAD},
    {"ERR_ENGINE", SA_ERR_ENGINE},
    {"ERR_TASK_EXPIRED", SA_ERR_TASK_EXPIRED},
    {"ERR_TASK_TIMEOUT", SA_ERR_TASK_TIMEOUT},
    {"ERR_AMBIGUOUS", SA_ERR_AMBIGUOUS},
    {"ERR_TRANSPORT", SA_ERR_TRANSPORT},
    {"ERR_TIMEOUT", SA_ERR_TIMEOUT},
    {"ERR_DEADLINE", SA_ERR_DEADLINE},
    {"ERR_LIMIT", SA_ERR_LIMIT},
    {"ERR_WAIT_TIMEOUT", SA_ERR_WAIT_TIMEOUT},
    {"ERR_INTERRUPTED", SA_ERR_INTERRUPTED},
    {"ERR_CANCELLED", SA_ERR_CANCELLED},
    {"ERR_CALLBACK", SA_ERR_CALLBACK},
    {"ERR_ZIP", SA_ERR_ZIP},
    {"ERR_URL_EXPIRED", SA_ERR_URL_EXPIRED},
    {"ERR_DOWNLOAD", SA_ERR_DOWNLOAD},
    {"ERR_IMAGE_DECODE", SA_ERR_IMAGE_DECODE},
    {"ERR_WEBHOOK_SIGNATURE", SA_ERR_WEBHOOK_SIGNATURE},
    {"ERR_WEBHOOK_STALE", SA_ERR_WEBHOOK_STALE},
    {"TIER_SD", SA_TIER_SD},
    {"TIER_HD", SA_TIER_HD},
    {"MAX_ACTIONS", SA_MAX_ACTIONS},
    {"MAX_FILE_SIZE", SA_MAX_FILE_SIZE},
    {"MIN_SIDE_SD", SA_MIN_SIDE_SD},
    {"MIN_SIDE_HD", SA_MIN_SIDE_HD},
    {"IMAGE_UNKNOWN", SA_IMAGE_UNKNOWN},
    {"IMAGE_JPEG", SA_IMAGE_JPEG},
    {"IMAGE_PNG", SA_IMAGE_PNG},
    {"API_DEFAULT", SA_API_DEFAULT},
    {"API_V2_0", SA_API_V2_0},
    {"API_V2_1", SA_API_V2_1},
    {"UPLOAD_SKIN_ANALYSIS", SA_UPLOAD_SKIN_ANALYSIS},
    {"UPLOAD_GENERIC", SA_UPLOAD_GENERIC},
    {"POLL_LEARNED", SA_POLL_LEARNED},
    {"POLL_FIXED", SA_POLL_FIXED},
    {"LOG_DEBUG", SA_LOG_DEBUG},
    {"LOG_INFO", SA_LOG_INFO},
    {"LOG_WARNING", SA_LOG_WARNING},
    {"LOG_ERROR", SA_LOG_ERROR},
    {"FORMAT_JSON", SA_FORMAT_JSON},
    {"FORMAT_ZIP", SA_FORMAT_ZIP},
    {"JOB_VALIDATE", SA_JOB_VALIDATE},
    {"JOB_QUEUED", SA_JOB_QUEUED},
    {"JOB_FILE_CREATE", SA_JOB_FILE_CREATE},
    {"JOB_UPLOAD", SA_JOB_UPLOAD},
    {"JOB_TASK_CREATE", SA_JOB_TASK_CREATE},
    {"JOB_POLL_WAIT", SA_JOB_POLL_WAIT},
    {"JOB_POLLING", SA_JOB_POLLING},
    {"JOB_BACKOFF", SA_JOB_BACKOFF},
    {"JOB_FETCHING", SA_JOB_FETCHING},
    {"JOB_DONE", SA_JOB_DONE},
    {"JOB_FAILED", SA_JOB_FAILED},
    {"JOB_CANCELLED", SA_JOB_CANCELLED},
    {"POLL_NONE", SA_POLL_NONE},
    {"POLL_IN", SA_POLL_IN},
    {"POLL_OUT", SA_POLL_OUT},
    {"POLL_REMOVE", SA_POLL_REMOVE},
    {"SOCKET_TIMEOUT", SA_SOCKET_TIMEOUT},
    {"PARSE_STATUS_BODY", SA_PARSE_STATUS_BODY},
    {"PARSE_SCORE_INFO", SA_PARSE_SCORE_INFO},
};

static int check_version(void)
{
    int linked = sa_version_num();

    /* The core is compiled into this extension, so the two agree unless
     * the build mixed trees; same major and minor, patch at least ours. */
    if ((linked >> 8) != (SA_VERSION_NUM >> 8) || linked < SA_VERSION_NUM) {
        PyErr_Format(PyExc_ImportError,
                     "skinanalysis._core was compiled against core %s "
                     "(0x%06x) but runs with core %s (0x%06x): rebuild it",
                     SA_VERSION, SA_VERSION_NUM, sa_version(), linked);
        return -1;
    }
    return 0;
}

static int add_types(PyObject *module, sapy_state *st)
{
    st->client_type = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &sapy_client_spec, NULL);
    if (st->client_type == NULL
        || PyModule_AddType(module, st->client_type) < 0)
        return -1;
    st->job_type = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &sapy_job_spec, NULL);
    if (st->job_type == NULL || PyModule_AddType(module, st->job_type) < 0)
        return -1;
    return 0;
}

static int module_exec(PyObject *module)
{
    sapy_state *st = get_state(module);
    size_t i;
    int r;

    if (check_version() < 0)
        return -1;
    r = sa_global_init();
    if (r != SA_OK) {
        PyErr_Format(PyExc_ImportError, "sa_global_init failed: %s",
                     sa_strerror(r));
        return -1;
    }
    st->global_init = 1;
    if (create_exceptions(module, st) < 0 || add_types(module, st) < 0)
        return -1;
    for (i = 0; i < sizeof int_constants / sizeof int_constants[0]; i++) {
        if (PyModule_AddIntConstant(module, int_constants[i].name,
                                    int_constants[i].value) < 0)
            return -1;
    }
    if (PyModule_AddStringConstant(module, "VERSION", SA_VERSION) < 0
        || PyModule_AddObjectRef(module, "exceptions", st->classes) < 0
        || PyModule_AddFunctions(module, sapy_view_methods) < 0)
        return -1;
    return 0;
}

/* The strong references a sapy_state owns, listed once: traverse visits
 * them and clear drops them, so a new field cannot be added to one only. */
#define SAPY_STATE_REFS(st, OP)                                          \
    do {                                                                 \
        int i_;                                                          \
        OP((st)->error);                                                 \
        OP((st)->classes);                                               \
        OP((st)->client_type);                                           \
        OP((st)->job_type);                                              \
        for (i_ = 0; i_ < SAPY_N_STATUS; i_++)                           \
            OP((st)->by_status[i_]);                                     \
    } while (0)

static int module_traverse(PyObject *module, visitproc visit, void *arg)
{
    sapy_state *st = get_state(module);

    if (st != NULL)
        SAPY_STATE_REFS(st, Py_VISIT);
    return 0;
}

static int module_clear(PyObject *module)
{
    sapy_state *st = get_state(module);

    if (st != NULL)
        SAPY_STATE_REFS(st, Py_CLEAR);
    return 0;
}

static void module_free(void *module)
{
    sapy_state *st = get_state((PyObject *)module);

    module_clear((PyObject *)module);
    if (st != NULL && st->global_init) {
        st->global_init = 0;
        sa_global_cleanup();
    }
}

/* PyType_Slot and PyModuleDef_Slot carry function pointers in a void *:
 * a conversion the C API requires and POSIX guarantees, which ISO C
 * (-Wpedantic) leaves to the implementation. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};
#pragma GCC diagnostic pop

static struct PyModuleDef sapy_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "skinanalysis._core",
    .m_doc = "Native part of skinanalysis: the C core's clients and jobs.\n\n"
             "Use the skinanalysis package; this module is its thin layer.",
    .m_size = sizeof(sapy_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__core(void);

PyMODINIT_FUNC PyInit__core(void)
{
    return PyModuleDef_Init(&sapy_module);
}
