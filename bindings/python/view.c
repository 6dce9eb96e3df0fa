/*
 * view.c - what the views of skinanalysis (results.py, view.py) take from
 * the core: the concern palette (sa_concern_color, sa_palette_color) and
 * the before/after comparison (sa_scores_compare).  Added to the module
 * by module_exec (sapy_view_methods).
 */
#include "sapy.h"

#include <math.h>
#include <string.h>

static PyObject *rgb_tuple(const unsigned char rgb[3])
{
    return Py_BuildValue("(iii)", (int)rgb[0], (int)rgb[1], (int)rgb[2]);
}

static PyObject *view_concern_color(PyObject *module, PyObject *arg)
{
    unsigned char rgb[3];
    const char *name;

    name = sapy_text_arg(arg, "concern_color", "a concern");
    if (name == NULL)
        return NULL;
    sa_concern_color(name, rgb);
    return rgb_tuple(rgb);
}

static PyObject *view_palette_color(PyObject *module, PyObject *arg)
{
    unsigned char rgb[3];
    Py_ssize_t i = PyNumber_AsSsize_t(arg, PyExc_OverflowError);

    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (i < 0) {
        PyErr_SetString(PyExc_ValueError, "palette index must be >= 0");
        return NULL;
    }
    sa_palette_color((size_t)i, rgb);
    return rgb_tuple(rgb);
}

/* A float or None (NaN) from a Python value. */
static int as_number(PyObject *v, double *out)
{
    if (v == Py_None) {
        *out = NAN;
        return 0;
    }
    *out = PyFloat_AsDouble(v);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* A UTF-8 str without NUL (or NULL for None when allowed). */
static int as_text(PyObject *v, const char **out, int none_ok)
{
    if (none_ok && v == Py_None) {
        *out = NULL;
        return 0;
    }
    if (!PyUnicode_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "concern, region and skin type "
                        "must be str");
        return -1;
    }
    *out = sapy_utf8(v, "a score");
    return *out != NULL ? 0 : -1;
}

/* (scores, overall, skin_age), scores a sequence of (concern, region,
 * raw_score, ui_score, skin_type), into s; *keep holds the tuple the
 * strings are borrowed from, *list the score array (PyMem_Free). */
static int scores_get(PyObject *side, sa_scores *s, PyObject **keep,
                      sa_score **list)
{
    PyObject *fast, *seq, *ov, *age;
    Py_ssize_t n, i;

    *keep = NULL;
    *list = NULL;
    if (!PyTuple_Check(side)) {
        PyErr_SetString(PyExc_TypeError, "compare() takes two (scores, overall, "
                        "skin_age) tuples");
        return -1;
    }
    if (!PyArg_ParseTuple(side, "OOO", &seq, &ov, &age))
        return -1;
    if (as_number(ov, &s->overall) < 0 || as_number(age, &s->skin_age) < 0)
        return -1;
    fast = sapy_tuple(seq, "scores must be a sequence");
    if (fast == NULL)
        return -1;
    n = PyTuple_Size(fast);
    *list = PyMem_Calloc((size_t)n + 1, sizeof **list);
    if (*list == NULL) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < n; i++) {
        PyObject *c, *r, *raw, *ui, *st, *item = PyTuple_GetItem(fast, i);
        sa_score *sc = &(*list)[i];
        if (item != NULL && !PyTuple_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "each score must be a tuple "
                            "(concern, region, raw, ui, skin_type)");
            item = NULL;
        }
        if (item == NULL
            || !PyArg_ParseTuple(item, "OOOOO", &c, &r, &raw, &ui, &st)
            || as_text(c, &sc->concern, 0) < 0
            || as_text(r, &sc->region, 0) < 0
            || as_number(raw, &sc->raw_score) < 0
            || as_number(ui, &sc->ui_score) < 0
            || as_text(st, &sc->skin_type, 1) < 0) {
            Py_DECREF(fast);
            PyMem_Free(*list);
            *list = NULL;
            return -1;
        }
    }
    s->scores = *list;
    s->count = (size_t)n;
    *keep = fast;
    return 0;
}

static PyObject *num(double v)
{
    if (isnan(v))
        Py_RETURN_NONE;
    return PyFloat_FromDouble(v);
}

static PyObject *str_or_none(const char *s)
{
    if (s == NULL)
        Py_RETURN_NONE;
    return PyUnicode_FromString(s);
}

/* (concern, region, ui_before, ui_after, ui_change, raw_before,
 *  raw_after, raw_change, skin_type_before, skin_type_after, in_before,
 *  in_after) */
static PyObject *change_tuple(const sa_change *ch)
{
    return Py_BuildValue("(ssNNNNNNNNOO)", ch->concern, ch->region,
                         num(ch->ui_before), num(ch->ui_after),
                         num(ch->ui_change), num(ch->raw_before),
                         num(ch->raw_after), num(ch->raw_change),
                         str_or_none(ch->skin_type_before),
                         str_or_none(ch->skin_type_after),
                         ch->in_before ? Py_True : Py_False,
                         ch->in_after ? Py_True : Py_False);
}

static PyObject *view_compare(PyObject *module, PyObject *args)
{
    PyObject *b_arg, *a_arg, *keep_b = NULL, *keep_a = NULL, *out = NULL;
    PyObject *list = NULL;
    sa_score *lb = NULL, *la = NULL;
    sa_scores sb, sa;
    sa_comparison *c = NULL;
    size_t i;
    int r;

    if (!PyArg_ParseTuple(args, "OO:compare", &b_arg, &a_arg))
        return NULL;
    if (scores_get(b_arg, &sb, &keep_b, &lb) < 0
        || scores_get(a_arg, &sa, &keep_a, &la) < 0)
        goto done;
    r = sa_scores_compare(&sb, &sa, &c);
    if (r != SA_OK) {
        if (r == SA_ERR_NOMEM)
            PyErr_NoMemory();
        else
            PyErr_SetString(PyExc_ValueError, sa_strerror(r));
        goto done;
    }
    list = PyList_New(0);
    if (list == NULL)
        goto done;
    for (i = 0; i < sa_comparison_count(c); i++) {
        PyObject *t = change_tuple(sa_comparison_change(c, i));
        if (t == NULL || PyList_Append(list, t) < 0) {
            Py_XDECREF(t);
            goto done;
        }
        Py_DECREF(t);
    }
    out = Py_BuildValue("(ONN)", list, change_tuple(sa_comparison_overall(c)),
                        change_tuple(sa_comparison_skin_age(c)));
done:
    Py_XDECREF(list);
    sa_comparison_free(c);
    PyMem_Free(lb);
    PyMem_Free(la);
    Py_XDECREF(keep_b);
    Py_XDECREF(keep_a);
    return out;
}

PyMethodDef sapy_view_methods[] = {
    {"concern_color", view_concern_color, METH_O,
     "concern_color(concern) -> (r, g, b): the colour the concern is drawn "
     "in, in composites and legends (sa_concern_color)."},
    {"palette_color", view_palette_color, METH_O,
     "palette_color(i) -> (r, g, b): colour i of the palette "
     "(sa_palette_color)."},
    {"compare", view_compare, METH_VARARGS,
     "compare(before, after) -> (changes, overall, skin_age): each side "
     "(scores, overall, skin_age) with scores (concern, region, raw, ui, "
     "skin_type); each change (concern, region, ui_before, ui_after, "
     "ui_change, raw_before, raw_after, raw_change, skin_type_before, "
     "skin_type_after, in_before, in_after) (sa_scores_compare)."},
    {NULL, NULL, 0, NULL},
};
