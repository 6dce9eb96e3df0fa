/*
 * sapy.h - shared declarations of the skinanalysis._core extension.
 *
 * The extension is thin: it wraps sa_client and sa_job, converts results to
 * plain Python data once, maps sa_status codes to exception classes (in one
 * place, sapy_error_new), releases the GIL around blocking core calls and
 * carries exceptions raised in Python callbacks across the C core (stash,
 * return non-zero, re-raise after the call).  Everything else lives in the
 * pure Python package (python/skinanalysis/).
 *
 * Threads and the GIL.  A blocking core call (sa_job_wait, sa_client_run,
 * sa_client_step with a timeout) runs with the GIL released; the thread
 * state is kept in sapy_client.tstate for that time.  Core callbacks (log,
 * interrupt, job, socket, timer) run on the thread that made the core call:
 * sapy_enter() re-acquires the GIL from that saved thread state when it was
 * released (and clears tstate, so a nested callback sees the GIL held), and
 * sapy_leave() releases it again.  This is pycurl's pattern; unlike
 * PyGILState_Ensure it also holds in sub-interpreters, and it makes "is
 * the GIL held here" a field, not a guess.
 *
 * A client is used by one thread at a time.  Every core call that may run
 * callbacks is bracketed by sapy_core_enter/sapy_core_exit, which record
 * the depth and the thread; while depth > 0 other threads get UsageError
 * from every method of the client and of its jobs (sapy_client_check) --
 * a Python callback may let them run in the middle of a core call.  A Job
 * deallocated on another thread in that time (e.g. by the cyclic GC) does
 * not free its sa_job at once: the handle goes to the client's deferred
 * list, freed when the depth returns to 0.
 */
#ifndef SAPY_H
#define SAPY_H

/* The extension uses only the limited API of Python 3.10: setup.py
 * defines Py_LIMITED_API=0x030A0000, so one abi3 build serves every
 * CPython >= 3.10 (it also compiles without it, against the full API). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>

#include "skinanalysis.h"

/* Py_XSETREF, which the limited API does not have: set dst to src (a new
 * reference) and release the old value after the store. */
#define SAPY_XSETREF(dst, src)                                             \
    do {                                                                   \
        PyObject **sapy_xsetref_slot_ = (PyObject **)&(dst);               \
        PyObject *sapy_xsetref_old_ = *sapy_xsetref_slot_;                 \
        *sapy_xsetref_slot_ = (PyObject *)(src);                           \
        Py_XDECREF(sapy_xsetref_old_);                                     \
    } while (0)

/* Exception classes are indexed by -status (0 .. -SA_ERR__LAST - 1). */
#define SAPY_N_STATUS (-SA_ERR__LAST)

/* Module state (one per module object, see xxlimited.c). */
typedef struct sapy_state {
    PyObject *error;                    /* skinanalysis.Error */
    PyObject *by_status[SAPY_N_STATUS]; /* strong refs; NULL -> error */
    PyObject *classes;                  /* dict name -> class, for the module */
    PyTypeObject *client_type;
    PyTypeObject *job_type;
    int global_init;                    /* sa_global_init succeeded */
} sapy_state;

/* What an sa_job's callback user_data points to.  It lives as long as the
 * sa_job (not the Job object), so a Job can die before its sa_job is freed
 * (deferred free), and it owns the caller's buffer the core borrows until
 * the job ends. */
typedef struct sapy_jobcell {
    struct sapy_job *obj;       /* NULL once the Job object is gone */
    struct sapy_client *client; /* borrowed: alive whenever the core runs */
    sa_job *job;                /* the handle, for a deferred free */
    struct sapy_jobcell *next;  /* the client's deferred-free list */
    PyObject *data;             /* bytes: the image when the source is a
                                   buffer (the caller's bytes object, or a
                                   copy of another bytes-like object), or
                                   NULL */
} sapy_jobcell;

typedef struct sapy_client {
    PyObject_HEAD
    sa_client *client;        /* NULL once closed */
    sapy_state *state;        /* borrowed from the type's module */
    PyObject *log_cb;         /* callable(level, message) or NULL */
    PyObject *socket_cb;      /* callable(fd, what) or NULL */
    PyObject *timer_cb;       /* callable(timeout_ms) or NULL */
    PyObject *stash;          /* exception raised in a callback */
    PyThreadState *tstate;    /* saved while a blocking call runs */
    unsigned long owner;      /* thread inside the core, when depth > 0 */
    int depth;                /* nesting of core calls (callbacks reenter) */
    int wake;                 /* wakeup() asked the running wait to return */
    sapy_jobcell *deferred;   /* sa_jobs to free after the blocking call */
} sapy_client;

typedef struct sapy_job {
    PyObject_HEAD
    sapy_jobcell *cell;       /* owns the sa_job; the callback's user_data */
    sapy_client *client;      /* strong, for the Job's whole life */
    PyObject *callback;       /* callable(job, state) or NULL */
    PyObject *task_id;        /* str, kept as soon as the core knows it */
    /* Filled once, when the job ends (terminal callback). */
    int ended;
    int final_state;
    int final_status;
    PyObject *final;          /* dict of details + "result" when DONE (or
                                 the files a failed fetch kept) */
} sapy_job;

/* module.c */
sapy_state *sapy_state_of_type(PyTypeObject *type);
/* The one mapping from a status to an exception: builds an instance of the
 * status's class with the attributes status (HTTP), code, message, task_id,
 * status_name, sa_status and retryable.  NULL strings / http_status 0 mean
 * unknown (attribute None).  Returns a new reference or NULL. */
PyObject *sapy_error_new(sapy_state *st, int status, const char *message,
                         int http_status, const char *code,
                         const char *task_id);
/* The same with an explicit class (the webhook check raises WebhookError
 * for its SA_ERR_INVALID_ARGUMENT too). */
PyObject *sapy_error_new_as(sapy_state *st, PyObject *cls, int status,
                            const char *message, int http_status,
                            const char *code, const char *task_id);
/* Set the error for status (MemoryError for SA_ERR_NOMEM).  Returns NULL so
 * callers can `return sapy_raise(...)`. */
PyObject *sapy_raise(sapy_state *st, int status, const char *message,
                     int http_status, const char *code, const char *task_id);

/* A Python str of a C string (UTF-8, invalid bytes replaced); None for
 * NULL. */
PyObject *sapy_str(const char *s);
/* set(obj, name, v) -- PyDict_SetItemString or PyObject_SetAttrString --
 * then drop v, a new reference; NULL v (the error of its making): -1. */
int sapy_set_new(int (*set)(PyObject *, const char *, PyObject *),
                 PyObject *obj, const char *name, PyObject *v);
/* The UTF-8 of str (a str) holding no NUL, borrowed from it; NULL with
 * ValueError "embedded NUL in <what>" (or the encoding's error). */
const char *sapy_utf8(PyObject *str, const char *what);
/* The UTF-8 of a str argument of fn() holding no NUL (what names it in
 * the ValueError), borrowed from arg; NULL with TypeError/ValueError. */
const char *sapy_text_arg(PyObject *arg, const char *fn, const char *what);
/* An int argument, with OverflowError outside the C int range. */
int sapy_as_int(PyObject *obj, int *out);
/* tp_alloc / tp_free of a type, read with PyType_GetSlot. */
PyObject *sapy_type_alloc(PyTypeObject *type);
void sapy_type_free(PyTypeObject *type, void *self);
/* The contents of a bytes-like object (one that exports a C-contiguous
 * buffer) as bytes: a new reference to obj itself when it is bytes, else a
 * copy.  TypeError / BufferError as PyObject_GetBuffer(PyBUF_SIMPLE)
 * raises them; NULL on error. */
PyObject *sapy_bytes_like(PyObject *obj);
/* PyArg "O&" converters storing a new bytes reference in *(PyObject **)out
 * (the caller releases it, also when a later argument fails: initialise
 * it to NULL): sapy_conv_bytes as "y*" (a bytes-like object), sapy_conv_text
 * as "s*" (str, encoded as UTF-8, or a bytes-like object). */
int sapy_conv_bytes(PyObject *obj, void *out);
int sapy_conv_text(PyObject *obj, void *out);
/* A tuple of the items of an iterable (obj itself when it is a tuple);
 * TypeError with `message` when obj is not iterable, as PySequence_Fast. */
PyObject *sapy_tuple(PyObject *obj, const char *message);

/* The UTF-8 names of a sequence of str as a C array (borrowed from the
 * items; *keep holds them): free the array with PyMem_Free, then release
 * *keep.  NULL with an exception set on error. */
const char **sapy_names(PyObject *seq, PyObject **keep, size_t *n_out);

/* Save and clear the current exception (NULL when none) / set it back. */
PyObject *sapy_error_save(void);
void sapy_error_restore(PyObject *exc);

/* Stash the current exception in *slot (the first one wins, later ones are
 * reported as unraisable) and clear it. */
void sapy_stash(PyObject **slot);
/* When *slot holds an exception: set it as the current one, clear the
 * slot and return -1.  Else 0. */
int sapy_unstash(PyObject **slot);

/* client.c */
/* The slots and the spec (sapy_<pfx>_spec) of a GC type of the module,
 * "skinanalysis._core.<tname>", an object sapy_<pfx>: its functions are
 * <pfx>_dealloc, _traverse, _clear, _repr, its tables <pfx>_methods and
 * <pfx>_getset.  PyType_Slot carries function pointers in a void *: a
 * conversion the C API requires and POSIX guarantees, which ISO C
 * (-Wpedantic) leaves to the implementation. */
#define SAPY_GC_TYPE(pfx, tname, doc, new_fn)                              \
    _Pragma("GCC diagnostic push")                                         \
    _Pragma("GCC diagnostic ignored \"-Wpedantic\"")                       \
    static PyType_Slot pfx##_slots[] = {                                   \
        {Py_tp_doc, doc}, {Py_tp_new, new_fn},                             \
        {Py_tp_dealloc, pfx##_dealloc}, {Py_tp_traverse, pfx##_traverse},  \
        {Py_tp_clear, pfx##_clear}, {Py_tp_repr, pfx##_repr},              \
        {Py_tp_methods, pfx##_methods}, {Py_tp_getset, pfx##_getset},      \
        {0, NULL}};                                                        \
    _Pragma("GCC diagnostic pop")                                          \
    PyType_Spec sapy_##pfx##_spec = {                                      \
        .name = "skinanalysis._core." tname,                               \
        .basicsize = sizeof(sapy_##pfx), .itemsize = 0,                    \
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC                   \
                 | Py_TPFLAGS_IMMUTABLETYPE,                               \
        .slots = pfx##_slots}

extern PyType_Spec sapy_client_spec;
/* Re-acquire the GIL in a core callback; pass the result to sapy_leave. */
PyThreadState *sapy_enter(sapy_client *c);
void sapy_leave(sapy_client *c, PyThreadState *saved);
/* 0 when this thread may call into the client now; else -1 with
 * UsageError set (closed, or inside the core on another thread). */
int sapy_client_check(sapy_client *c);
/* UsageError when called from inside a callback (a nested blocking call);
 * returns -1, or 0 when not nested. */
int sapy_client_check_not_nested(sapy_client *c, const char *what);
/* Bracket a core call made with the GIL held. */
void sapy_core_enter(sapy_client *c);
void sapy_core_exit(sapy_client *c);
/* Bracket a blocking core call: enter + release the GIL / re-acquire +
 * exit. */
void sapy_client_block(sapy_client *c);
void sapy_client_unblock(sapy_client *c);
/* Free an sa_job and its cell now, or, when another thread runs a
 * blocking call on the client, after that call returns. */
void sapy_client_free_job(sapy_client *c, sapy_jobcell *cell);

/* job.c */
/* Release the cell's buffer / the cell itself (GIL held). */
void sapy_cell_release_view(sapy_jobcell *cell);
void sapy_cell_free(sapy_jobcell *cell);
extern PyType_Spec sapy_job_spec;
/* Create a Job for client c from submit()'s keyword arguments. */
PyObject *sapy_job_submit(sapy_client *c, PyObject *args, PyObject *kwargs);
/* Client.resume(task_id, *, api_version, deadline_ms, callback) -> Job:
 * sa_client_resume. */
PyObject *sapy_job_resume(sapy_client *c, PyObject *args, PyObject *kwargs);
/* Client.credit() / price_list() / delete(task_id): an account job
 * (op: 1 credit, 2 price list, 3 delete, as sa_client_credit...). */
PyObject *sapy_job_account(sapy_client *c, int op, PyObject *args,
                           PyObject *kwargs);
/* Start a fetch of the masks of the DONE Job `origin` (sa_client_fetch,
 * into folder when not NULL): a new Job with its own cell as the core's
 * user data and `callback` (callable(job, state) or None).  NULL with an
 * exception. */
PyObject *sapy_job_fetch(sapy_client *c, PyObject *origin, const char *folder,
                         PyObject *callback, int delete_after);
/* The core's job callback (user_data is a sapy_jobcell). */
int sapy_job_callback(sa_job *job, int state, void *user_data);
/* A dict of a result's data (see job.c), with its files as a tuple of
 * (name, bytes or None, format, path or None); new reference or NULL. */
PyObject *sapy_result_to_dict(const sa_result *r);

/* view.c: concern_color, palette_color, compare (added by module_exec). */
extern PyMethodDef sapy_view_methods[];

#endif /* SAPY_H */
