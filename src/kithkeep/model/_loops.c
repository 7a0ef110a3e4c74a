/* The analysis' hot loops in C: reading the store's rows into messages
 * (kithkeep/model/messages.py) and walking one person's time line
 * (kithkeep/model/person.py).
 *
 * Those modules hold the Python twins of these functions
 * (_messages_from_rows_python, _walk_python, _strength_python,
 * _monthly_python) and use them when this module is missing;
 * tests/test_loops_parity.py holds both to identical results.
 * Everything here works on the same Python objects as the twins (the
 * analysis' message tuples, its thread index, the same sets and lists) and
 * returns them in the same shapes, so the code after the walk is shared.
 *
 * Why C: a full analysis walks every person's time line (100k contacts for
 * 100k messages) and the walk was the largest part of its time (see
 * bench/analyze.py); the loop body is a dozen tuple, dict and set operations
 * per contact, which cost little in C and a lot as bytecode.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <math.h>

/* The fields of a message tuple used here (kithkeep/model/messages.py, which checks
 * LAYOUT against its own constants before using this module). */
#define F_TS 0
#define F_IN_REPLY_TO 7
#define F_REFERENCES 8
#define F_SUBJECT 9
#define F_LINKED 11
#define F_THRID 13
#define MSG_LEN 15 /* every field, through the location */

#define K_IN 0
#define K_OUT 1
#define K_MEETING 2

/* threads.MAX_DEPTH */
#define MAX_DEPTH 12
#define EXCHANGE_GAP 86400.0
#define SKEW 3600.0
#define DAY 86400.0

typedef struct {
    double ts;
    int kind;
    PyObject *ref;    /* borrowed from the item */
    Py_ssize_t index; /* ref as an index */
    int direct;
} Item;

static int
read_item(PyObject *obj, Item *it)
{
    if (!PyTuple_Check(obj) || PyTuple_GET_SIZE(obj) != 4) {
        PyErr_SetString(PyExc_TypeError, "a time line item is a 4-tuple");
        return -1;
    }
    it->ts = PyFloat_AsDouble(PyTuple_GET_ITEM(obj, 0));
    if (it->ts == -1.0 && PyErr_Occurred())
        return -1;
    long kind = PyLong_AsLong(PyTuple_GET_ITEM(obj, 1));
    if (kind == -1 && PyErr_Occurred())
        return -1;
    if (kind < K_IN || kind > K_MEETING) {
        PyErr_Format(PyExc_ValueError, "unknown time line kind %ld", kind);
        return -1;
    }
    it->kind = (int)kind;
    it->ref = PyTuple_GET_ITEM(obj, 2);
    it->index = PyLong_AsSsize_t(it->ref);
    if (it->index == -1 && PyErr_Occurred())
        return -1;
    it->direct = PyObject_IsTrue(PyTuple_GET_ITEM(obj, 3));
    return it->direct < 0 ? -1 : 0;
}

/* msgs[i] as a tuple with the fields used here (borrowed). */
static PyObject *
message_at(PyObject *msgs, Py_ssize_t i)
{
    if (i < 0 || i >= PyList_GET_SIZE(msgs)) {
        PyErr_Format(PyExc_IndexError, "message index %zd out of range", i);
        return NULL;
    }
    PyObject *m = PyList_GET_ITEM(msgs, i);
    if (!PyTuple_Check(m) || PyTuple_GET_SIZE(m) < MSG_LEN) {
        PyErr_SetString(PyExc_TypeError, "a message is a tuple of the Msg layout");
        return NULL;
    }
    return m;
}

static int
message_ts(PyObject *msgs, PyObject *index_obj, double *out)
{
    Py_ssize_t i = PyLong_AsSsize_t(index_obj);
    if (i == -1 && PyErr_Occurred())
        return -1;
    PyObject *m = message_at(msgs, i);
    if (m == NULL)
        return -1;
    *out = PyFloat_AsDouble(PyTuple_GET_ITEM(m, F_TS));
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* person.ancestors_of: known[i], else worked out from message i and stored in known
 * (a new reference). */
static PyObject *
ancestors_of(PyObject *msgs, PyObject *by_id, PyObject *known, PyObject *refs_from_json,
             PyObject *index_obj)
{
    PyObject *got = PyDict_GetItemWithError(known, index_obj);
    if (got != NULL) {
        Py_INCREF(got);
        return got;
    }
    if (PyErr_Occurred())
        return NULL;
    Py_ssize_t i = PyLong_AsSsize_t(index_obj);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    PyObject *m = message_at(msgs, i);
    if (m == NULL)
        return NULL;
    PyObject *found = PyList_New(0);
    if (found == NULL)
        return NULL;
    PyObject *irt = PyTuple_GET_ITEM(m, F_IN_REPLY_TO);
    int has_irt = PyObject_IsTrue(irt);
    if (has_irt < 0)
        goto fail;
    if (has_irt) {
        PyObject *j = PyDict_GetItemWithError(by_id, irt);
        if ((j == NULL && PyErr_Occurred()) || (j != NULL && PyList_Append(found, j) < 0))
            goto fail;
    }
    PyObject *refs = PyTuple_GET_ITEM(m, F_REFERENCES);
    PyObject *parsed = PyUnicode_CheckExact(refs) ? PyObject_CallOneArg(refs_from_json, refs)
                                                  : (Py_INCREF(refs), refs);
    if (parsed == NULL)
        goto fail;
    PyObject *seq = PySequence_Fast(parsed, "References are a sequence");
    Py_DECREF(parsed);
    if (seq == NULL)
        goto fail;
    for (Py_ssize_t k = PySequence_Fast_GET_SIZE(seq) - 1; k >= 0; k--) {
        PyObject *j = PyDict_GetItemWithError(by_id, PySequence_Fast_GET_ITEM(seq, k));
        if ((j == NULL && PyErr_Occurred()) || (j != NULL && PyList_Append(found, j) < 0)) {
            Py_DECREF(seq);
            goto fail;
        }
    }
    Py_DECREF(seq);
    got = PyList_AsTuple(found);
    Py_DECREF(found);
    if (got == NULL || PyDict_SetItem(known, index_obj, got) < 0) {
        Py_XDECREF(got);
        return NULL;
    }
    return got;
fail:
    Py_DECREF(found);
    return NULL;
}

/* threads.find_parent: the nearest ancestor of start in accept, or None (new references). */
static PyObject *
find_parent(PyObject *start, PyObject *msgs, PyObject *by_id, PyObject *known,
            PyObject *refs_from_json, PyObject *accept)
{
    PyObject *seen = PySet_New(NULL);
    if (seen == NULL || PySet_Add(seen, start) < 0)
        goto fail;
    PyObject *current = start; /* borrowed: from seen */
    for (int depth = 0; depth < MAX_DEPTH; depth++) {
        PyObject *found = ancestors_of(msgs, by_id, known, refs_from_json, current);
        if (found == NULL)
            goto fail;
        PyObject *seq = PySequence_Fast(found, "ancestors are a sequence");
        Py_DECREF(found);
        if (seq == NULL)
            goto fail;
        PyObject *nearest = NULL;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        for (Py_ssize_t k = 0; k < n; k++) {
            PyObject *j = PySequence_Fast_GET_ITEM(seq, k);
            int r = PySet_Contains(seen, j);
            if (r < 0) {
                Py_DECREF(seq);
                goto fail;
            }
            if (r)
                continue;
            r = PySet_Contains(accept, j);
            if (r < 0) {
                Py_DECREF(seq);
                goto fail;
            }
            if (r) {
                Py_INCREF(j);
                Py_DECREF(seq);
                Py_DECREF(seen);
                return j;
            }
            if (nearest == NULL)
                nearest = j;
            if (PySet_Add(seen, j) < 0) {
                Py_DECREF(seq);
                goto fail;
            }
        }
        Py_DECREF(seq);
        if (nearest == NULL)
            break;
        current = nearest; /* alive: seen holds it */
    }
    Py_DECREF(seen);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(seen);
    return NULL;
}

/* subjects[subject], else reply_subject(subject) (which fills subjects): 1, 0 or -1. */
static int
is_reply_subject(PyObject *subjects, PyObject *reply_subject, PyObject *subject)
{
    PyObject *got = PyDict_GetItemWithError(subjects, subject);
    if (got != NULL)
        return PyObject_IsTrue(got);
    if (PyErr_Occurred())
        return -1;
    got = PyObject_CallOneArg(reply_subject, subject);
    if (got == NULL)
        return -1;
    int r = PyObject_IsTrue(got);
    Py_DECREF(got);
    return r;
}

static int
append_float(PyObject *list, double v)
{
    PyObject *f = PyFloat_FromDouble(v);
    if (f == NULL)
        return -1;
    int r = PyList_Append(list, f);
    Py_DECREF(f);
    return r;
}

/* walk(items, msgs, by_id, known, refs_from_json, subjects, reply_subject, silence)
 * -> see person._walk_python, whose result this returns. */
static PyObject *
walk(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "walk() takes 8 arguments");
        return NULL;
    }
    PyObject *items = args[0], *msgs = args[1], *by_id = args[2], *known = args[3];
    PyObject *refs_from_json = args[4], *subjects = args[5], *reply_subject = args[6];
    double silence = PyFloat_AsDouble(args[7]);
    if (silence == -1.0 && PyErr_Occurred())
        return NULL;
    if (!PyList_Check(items) || !PyList_Check(msgs) || !PyDict_Check(by_id) ||
        !PyDict_Check(known) || !PyDict_Check(subjects)) {
        PyErr_SetString(PyExc_TypeError, "walk(): list, list, dict, dict, _, dict, _, float");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(items);

    PyObject *refs_of[2] = {NULL, NULL}, *thread_last[2] = {NULL, NULL};
    PyObject *replied = NULL, *latencies[2] = {NULL, NULL}, *starts = NULL, *inits = NULL;
    PyObject *has_parent = NULL, *meeting_refs = NULL, *result = NULL;
    PyObject *open_init[2] = {NULL, NULL}; /* borrowed: inits holds them */
    PyObject *last_ref[3] = {Py_None, Py_None, Py_None}; /* borrowed: items hold them */
    Item *its = NULL;

    its = PyMem_Malloc(sizeof(Item) * (size_t)(n > 0 ? n : 1));
    if (its == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (int s = 0; s < 2; s++) {
        refs_of[s] = PySet_New(NULL);
        thread_last[s] = PyDict_New();
        latencies[s] = PyList_New(0);
        if (refs_of[s] == NULL || thread_last[s] == NULL || latencies[s] == NULL)
            goto done;
    }
    replied = PySet_New(NULL);
    starts = PyList_New(0);
    inits = PyList_New(0);
    has_parent = PySet_New(NULL);
    meeting_refs = PyList_New(0);
    if (!replied || !starts || !inits || !has_parent || !meeting_refs)
        goto done;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (read_item(PyList_GET_ITEM(items, k), &its[k]) < 0)
            goto done;
        if (its[k].kind != K_MEETING && PySet_Add(refs_of[its[k].kind], its[k].ref) < 0)
            goto done;
    }

    double last_ts[3] = {-INFINITY, -INFINITY, -INFINITY};
    double last_any = -INFINITY;
    long counts[3] = {0, 0, 0}, direct_counts[3] = {0, 0, 0}, replies[2] = {0, 0};

    for (Py_ssize_t k = 0; k < n; k++) {
        Item *it = &its[k];
        double ts = it->ts, parent_ts = 0.0;
        int kind = it->kind;
        counts[kind] += 1;
        direct_counts[kind] += it->direct;
        PyObject *parent = NULL; /* a new reference, or NULL for None */
        if (kind == K_MEETING) {
            if (PyList_Append(meeting_refs, it->ref) < 0)
                goto done;
            for (int side = 0; side < 2; side++) {
                if (open_init[side] != NULL) {
                    Py_INCREF(Py_True);
                    PyList_SetItem(open_init[side], 3, Py_True);
                    open_init[side] = NULL;
                }
            }
        }
        else {
            PyObject *m = message_at(msgs, it->index);
            if (m == NULL)
                goto done;
            int other = kind ^ 1;
            PyObject *thrid = PyTuple_GET_ITEM(m, F_THRID);
            int linked = PyObject_IsTrue(PyTuple_GET_ITEM(m, F_LINKED));
            if (linked < 0)
                goto done;
            if (linked) {
                PyObject *irt = PyTuple_GET_ITEM(m, F_IN_REPLY_TO);
                int has_irt = PyObject_IsTrue(irt);
                if (has_irt < 0)
                    goto done;
                if (has_irt) {
                    parent = PyDict_GetItemWithError(by_id, irt);
                    if (parent == NULL && PyErr_Occurred())
                        goto done;
                    Py_XINCREF(parent);
                }
                int accepted = 0;
                if (parent != NULL) {
                    accepted = PySet_Contains(refs_of[other], parent);
                    if (accepted < 0) {
                        Py_DECREF(parent);
                        goto done;
                    }
                }
                if (!accepted) {
                    Py_XDECREF(parent);
                    parent = find_parent(it->ref, msgs, by_id, known, refs_from_json, refs_of[other]);
                    if (parent == NULL)
                        goto done;
                    if (parent == Py_None) {
                        Py_DECREF(parent);
                        parent = NULL;
                    }
                }
            }
            else if (thrid != Py_None) {
                parent = PyDict_GetItemWithError(thread_last[other], thrid);
                if (parent == NULL && PyErr_Occurred())
                    goto done;
                Py_XINCREF(parent);
            }
            else if (ts - last_ts[other] <= silence) {
                int r = is_reply_subject(subjects, reply_subject, PyTuple_GET_ITEM(m, F_SUBJECT));
                if (r < 0)
                    goto done;
                if (r && last_ref[other] != Py_None) {
                    parent = last_ref[other];
                    Py_INCREF(parent);
                }
            }
            if (parent != NULL) {
                if (message_ts(msgs, parent, &parent_ts) < 0) {
                    Py_DECREF(parent);
                    goto done;
                }
                if (parent_ts > ts + SKEW) {
                    Py_DECREF(parent); /* dated after its reply: a broken link */
                    parent = NULL;
                }
                else {
                    if (PySet_Add(has_parent, it->ref) < 0) {
                        Py_DECREF(parent);
                        goto done;
                    }
                    replies[kind] += 1;
                    int r = PySet_Contains(replied, parent);
                    if (r == 0) {
                        double lat = ts - parent_ts;
                        if (PySet_Add(replied, parent) < 0 ||
                            append_float(latencies[kind], lat < 0.0 ? 0.0 : lat) < 0)
                            r = -1;
                    }
                    if (r < 0) {
                        Py_DECREF(parent);
                        goto done;
                    }
                }
            }
            if (thrid != Py_None && PyDict_SetItem(thread_last[kind], thrid, it->ref) < 0) {
                Py_XDECREF(parent);
                goto done;
            }
            double since = ts - silence;
            int opens = parent == NULL && last_ts[other] < since && last_ts[K_MEETING] < since;
            PyObject *o = open_init[other];
            if (o != NULL) {
                int was = PyObject_IsTrue(PyList_GET_ITEM(o, 3));
                if (was < 0) {
                    Py_XDECREF(parent);
                    goto done;
                }
                PyObject *now_answered = (was || !opens) ? Py_True : Py_False;
                Py_INCREF(now_answered);
                PyList_SetItem(o, 3, now_answered);
                open_init[other] = NULL;
            }
            if (opens) {
                PyObject *gap = last_any > -INFINITY ? PyFloat_FromDouble(ts - last_any)
                                                     : (Py_INCREF(Py_None), Py_None);
                PyObject *init = gap ? PyList_New(4) : NULL;
                if (init == NULL) {
                    Py_XDECREF(gap);
                    goto done;
                }
                PyObject *kind_obj = PyTuple_GET_ITEM(PyList_GET_ITEM(items, k), 1);
                Py_INCREF(kind_obj);
                Py_INCREF(it->ref);
                Py_INCREF(Py_False);
                PyList_SET_ITEM(init, 0, kind_obj);
                PyList_SET_ITEM(init, 1, it->ref);
                PyList_SET_ITEM(init, 2, gap);
                PyList_SET_ITEM(init, 3, Py_False);
                int r = PyList_Append(inits, init);
                Py_DECREF(init);
                if (r < 0)
                    goto done;
                open_init[kind] = init; /* alive: inits holds it */
            }
        }
        if (ts - last_any >= EXCHANGE_GAP && (parent == NULL || ts - parent_ts > silence)) {
            if (append_float(starts, ts) < 0) {
                Py_XDECREF(parent);
                goto done;
            }
        }
        Py_XDECREF(parent);
        last_ts[kind] = ts;
        last_ref[kind] = it->ref;
        last_any = ts;
    }

    result = Py_BuildValue(
        "[lll][lll][ddd][OOO]O(OO)[ll]OOOO", counts[0], counts[1], counts[2], direct_counts[0],
        direct_counts[1], direct_counts[2], last_ts[0], last_ts[1], last_ts[2], last_ref[0],
        last_ref[1], last_ref[2], replied, latencies[0], latencies[1], replies[0], replies[1],
        starts, inits, has_parent, meeting_refs);
done:
    PyMem_Free(its);
    for (int s = 0; s < 2; s++) {
        Py_XDECREF(refs_of[s]);
        Py_XDECREF(thread_last[s]);
        Py_XDECREF(latencies[s]);
    }
    Py_XDECREF(replied);
    Py_XDECREF(starts);
    Py_XDECREF(inits);
    Py_XDECREF(has_parent);
    Py_XDECREF(meeting_refs);
    return result;
}

/* Python's float floor division (Objects/floatobject.c float_floor_div), for the same
 * day numbers as person._strength_python's ts // DAY. */
static double
py_floordiv(double vx, double wx)
{
    double mod = fmod(vx, wx);
    double div = (vx - mod) / wx;
    if (mod) {
        if ((wx < 0) != (mod < 0))
            div -= 1.0;
    }
    double floordiv;
    if (div) {
        floordiv = floor(div);
        if (div - floordiv > 0.5)
            floordiv += 1.0;
    }
    else {
        floordiv = copysign(0.0, vx / wx);
    }
    return floordiv;
}

/* strength(items, half_life_days, now_ts, weights) -> (strength, peak): person._strength_python */
static PyObject *
strength(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyList_Check(args[0]) || !PyTuple_Check(args[3]) ||
        PyTuple_GET_SIZE(args[3]) != 3) {
        PyErr_SetString(PyExc_TypeError, "strength(items: list, half_life, now_ts, weights: 3-tuple)");
        return NULL;
    }
    PyObject *items = args[0];
    double half_life = PyFloat_AsDouble(args[1]);
    double now_ts = PyFloat_AsDouble(args[2]);
    double weights[3];
    for (int k = 0; k < 3; k++)
        weights[k] = PyFloat_AsDouble(PyTuple_GET_ITEM(args[3], k));
    if (PyErr_Occurred())
        return NULL;
    double s = 0.0, peak = 0.0, prev = 0.0;
    int have_prev = 0, today = 0;
    Py_ssize_t n = PyList_GET_SIZE(items);
    for (Py_ssize_t k = 0; k < n; k++) {
        Item it;
        if (read_item(PyList_GET_ITEM(items, k), &it) < 0)
            return NULL;
        double day = py_floordiv(it.ts, DAY);
        if (!have_prev || day != prev) {
            if (have_prev)
                s *= pow(0.5, (day - prev) / half_life);
            today = 0;
            prev = day;
            have_prev = 1;
        }
        int bit = 1 << it.kind;
        if (!(today & bit)) {
            today |= bit;
            s += weights[it.kind];
            if (s > peak)
                peak = s;
        }
    }
    if (have_prev) {
        double left = now_ts / DAY - (prev + 1);
        s *= pow(0.5, (left > 0.0 ? left : 0.0) / half_life);
    }
    return Py_BuildValue("(dd)", s, peak);
}

/* monthly(items, bounds) -> tuple of len(bounds) - 1 counts: person._monthly_python */
static PyObject *
monthly(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0]) || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "monthly(items: list, bounds: list)");
        return NULL;
    }
    PyObject *items = args[0], *bounds_obj = args[1];
    Py_ssize_t nb = PyList_GET_SIZE(bounds_obj);
    if (nb < 1 || nb > 1000) {
        PyErr_SetString(PyExc_ValueError, "monthly(): 1 to 1000 bounds");
        return NULL;
    }
    double bounds[1000];
    long counts[1000];
    for (Py_ssize_t b = 0; b < nb; b++) {
        bounds[b] = PyFloat_AsDouble(PyList_GET_ITEM(bounds_obj, b));
        counts[b] = 0;
    }
    if (PyErr_Occurred())
        return NULL;
    Py_ssize_t months = nb - 1;
    Py_ssize_t n = PyList_GET_SIZE(items);
    for (Py_ssize_t k = 0; k < n; k++) {
        Item it;
        if (read_item(PyList_GET_ITEM(items, k), &it) < 0)
            return NULL;
        if (it.ts < bounds[0])
            continue;
        /* bisect_right(bounds, ts) - 1: the last bound <= ts */
        Py_ssize_t lo = 0, hi = nb;
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) / 2;
            if (it.ts < bounds[mid])
                hi = mid;
            else
                lo = mid + 1;
        }
        Py_ssize_t idx = lo - 1;
        if (idx >= 0 && idx < months)
            counts[idx] += 1;
    }
    PyObject *out = PyTuple_New(months);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t b = 0; b < months; b++) {
        PyObject *v = PyLong_FromLong(counts[b]);
        if (v == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, b, v);
    }
    return out;
}


/* ------------------------------------------------------------------ reading */

/* The columns of read_msgs' personal SELECT, in order (messages.py). */
enum {
    R_TS, R_GM_MSGID, R_DATE, R_MESSAGE_ID, R_FROM, R_RCPT, R_IRT, R_REFS, R_SUBJECT,
    R_ANSWERED, R_LINKED, R_IN_SENT, R_GM_THRID, R_ROW_ID, R_LIST_POST, ROW_COLUMNS
};

/* cache[key], else make(key) (which fills cache): a new reference */
static PyObject *
cached(PyObject *cache, PyObject *make, PyObject *key)
{
    PyObject *got = PyDict_GetItemWithError(cache, key);
    if (got != NULL) {
        Py_INCREF(got);
        return got;
    }
    if (PyErr_Occurred())
        return NULL;
    return PyObject_CallOneArg(make, key);
}

/* messages_from_rows(rows, out, sender_cache, sender_text, rc_cache, recipients,
 * sent_from, list_posts) -> undated: messages._messages_from_rows_python */
static PyObject *
messages_from_rows(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "messages_from_rows() takes 8 arguments");
        return NULL;
    }
    PyObject *rows = args[0], *out = args[1], *sender_cache = args[2], *sender_text = args[3];
    PyObject *rc_cache = args[4], *recipients = args[5], *sent_from = args[6];
    PyObject *list_posts = args[7];
    if (!PyList_Check(rows) || !PyList_Check(out) || !PyDict_Check(sender_cache) ||
        !PyDict_Check(rc_cache) || !PySet_Check(sent_from) || !PyList_Check(list_posts)) {
        PyErr_SetString(PyExc_TypeError,
                        "messages_from_rows(): list, list, dict, _, dict, _, set, list");
        return NULL;
    }
    long undated = 0;
    Py_ssize_t n = PyList_GET_SIZE(rows);
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *row = PyList_GET_ITEM(rows, k);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != ROW_COLUMNS) {
            PyErr_SetString(PyExc_TypeError, "a row of the personal SELECT is a 15-tuple");
            return NULL;
        }
        PyObject *sender = cached(sender_cache, sender_text, PyTuple_GET_ITEM(row, R_FROM));
        if (sender == NULL)
            return NULL;
        if (!PyTuple_Check(sender) || PyTuple_GET_SIZE(sender) != 2) {
            Py_DECREF(sender);
            PyErr_SetString(PyExc_TypeError, "a sender is an (address, name) tuple");
            return NULL;
        }
        PyObject *address = PyTuple_GET_ITEM(sender, 0);
        int in_sent = PyObject_IsTrue(PyTuple_GET_ITEM(row, R_IN_SENT));
        if (in_sent < 0 || (in_sent && address != Py_None && PySet_Add(sent_from, address) < 0)) {
            Py_DECREF(sender);
            return NULL;
        }
        PyObject *list_post = PyTuple_GET_ITEM(row, R_LIST_POST);
        int has_list = PyObject_IsTrue(list_post);
        if (has_list < 0 || (has_list && PyList_Append(list_posts, list_post) < 0)) {
            Py_DECREF(sender);
            return NULL;
        }
        if (PyTuple_GET_ITEM(row, R_DATE) == Py_None) {
            undated++;
            Py_DECREF(sender);
            continue;
        }
        PyObject *rc = cached(rc_cache, recipients, PyTuple_GET_ITEM(row, R_RCPT));
        if (rc == NULL) {
            Py_DECREF(sender);
            return NULL;
        }
        PyObject *gm_msgid = PyTuple_GET_ITEM(row, R_GM_MSGID);
        int has_gm = PyObject_IsTrue(gm_msgid);
        PyObject *key;
        if (has_gm < 0)
            key = NULL;
        else if (has_gm)
            key = PyUnicode_FromFormat("gm:%S", gm_msgid);
        else {
            key = PyTuple_GET_ITEM(row, R_MESSAGE_ID);
            Py_INCREF(key);
        }
        PyObject *m = key ? PyTuple_New(MSG_LEN) : NULL;
        if (m == NULL) {
            Py_XDECREF(key);
            Py_DECREF(sender);
            Py_DECREF(rc);
            return NULL;
        }
        /* the Msg fields (messages.Msg), the sender and recipients as shared objects */
        PyObject *fields[MSG_LEN] = {
            PyTuple_GET_ITEM(row, R_TS),        key,
            PyTuple_GET_ITEM(row, R_DATE),      PyTuple_GET_ITEM(row, R_MESSAGE_ID),
            address,                            PyTuple_GET_ITEM(sender, 1),
            rc,                                 PyTuple_GET_ITEM(row, R_IRT),
            PyTuple_GET_ITEM(row, R_REFS),      PyTuple_GET_ITEM(row, R_SUBJECT),
            PyTuple_GET_ITEM(row, R_ANSWERED),  PyTuple_GET_ITEM(row, R_LINKED),
            PyTuple_GET_ITEM(row, R_IN_SENT),   PyTuple_GET_ITEM(row, R_GM_THRID),
            PyTuple_GET_ITEM(row, R_ROW_ID),
        };
        for (int f = 0; f < MSG_LEN; f++) {
            Py_INCREF(fields[f]);
            PyTuple_SET_ITEM(m, f, fields[f]);
        }
        Py_DECREF(key);
        Py_DECREF(sender);
        Py_DECREF(rc);
        int r = PyList_Append(out, m);
        Py_DECREF(m);
        if (r < 0)
            return NULL;
    }
    return PyLong_FromLong(undated);
}


/* ------------------------------------------------------------ time lines */

#define F_SENDER 4
#define F_SENDER_NAME 5
#define F_RECIPIENTS 6
#define F_SENT 12
/* the fields of messages.Recipients */
#define RC_ALL 0
#define RC_TO 1
#define RC_EVERY 2

/* Does any member of the iterable `members` belong to the set `set`? 1, 0 or -1. */
static int
meets(PyObject *set, PyObject *members)
{
    PyObject *iter = PyObject_GetIter(members);
    if (iter == NULL)
        return -1;
    PyObject *x;
    int found = 0;
    while (!found && (x = PyIter_Next(iter)) != NULL) {
        found = PySet_Contains(set, x);
        Py_DECREF(x);
    }
    Py_DECREF(iter);
    if (found < 0 || PyErr_Occurred())
        return -1;
    return found;
}

/* items_by[root].append(item), the list made when missing; item consumed */
static int
add_item(PyObject *items_by, PyObject *root, PyObject *item)
{
    if (item == NULL)
        return -1;
    PyObject *list = PyDict_GetItemWithError(items_by, root);
    if (list == NULL) {
        if (PyErr_Occurred() || (list = PyList_New(0)) == NULL) {
            Py_DECREF(item);
            return -1;
        }
        int r = PyDict_SetItem(items_by, root, list);
        Py_DECREF(list); /* the dict holds it */
        if (r < 0) {
            Py_DECREF(item);
            return -1;
        }
    }
    int r = PyList_Append(list, item);
    Py_DECREF(item);
    return r;
}

/* The people a sent message goes to, as ((root, in To), ...): a new reference. */
static PyObject *
targets_for(PyObject *rc, PyObject *person_of, PyObject *who)
{
    PyObject *direct_of = PyDict_New(); /* insertion order: the order of rc.all */
    if (direct_of == NULL)
        return NULL;
    PyObject *all = PySequence_Fast(PyTuple_GET_ITEM(rc, RC_ALL), "Recipients.all is a tuple");
    if (all == NULL)
        goto fail;
    PyObject *to = PyTuple_GET_ITEM(rc, RC_TO);
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(all); k++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(all, k);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "Recipients.all holds (address, name) pairs");
            goto fail_all;
        }
        PyObject *addr = PyTuple_GET_ITEM(pair, 0);
        PyObject *root = cached(person_of, who, addr);
        if (root == NULL)
            goto fail_all;
        int is_person = PyObject_IsTrue(root);
        if (is_person > 0) {
            PyObject *was = PyDict_GetItemWithError(direct_of, root);
            int direct = was != NULL ? PyObject_IsTrue(was) : (PyErr_Occurred() ? -1 : 0);
            if (direct == 0)
                direct = PySet_Contains(to, addr);
            if (direct < 0 ||
                PyDict_SetItem(direct_of, root, direct ? Py_True : Py_False) < 0)
                is_person = -1;
        }
        Py_DECREF(root);
        if (is_person < 0)
            goto fail_all;
    }
    Py_DECREF(all);
    PyObject *items = PyDict_Items(direct_of);
    Py_DECREF(direct_of);
    if (items == NULL)
        return NULL;
    PyObject *out = PyList_AsTuple(items);
    Py_DECREF(items);
    return out;
fail_all:
    Py_DECREF(all);
fail:
    Py_DECREF(direct_of);
    return NULL;
}

/* timelines(msgs, max_recipients, lists, me, person_of, who, targets_of, rc_uses, pairs,
 *           items_by) -> (mass, listed): analyze._timelines_python */
static PyObject *
timelines(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "timelines() takes 10 arguments");
        return NULL;
    }
    PyObject *msgs = args[0], *lists = args[2], *me = args[3], *person_of = args[4];
    PyObject *who = args[5], *targets_of = args[6], *rc_uses = args[7], *pairs = args[8];
    PyObject *items_by = args[9];
    Py_ssize_t max_recipients = PyLong_AsSsize_t(args[1]);
    if (max_recipients == -1 && PyErr_Occurred())
        return NULL;
    if (!PyList_Check(msgs) || !PyAnySet_Check(lists) || !PyAnySet_Check(me) ||
        !PyDict_Check(person_of) || !PyDict_Check(targets_of) || !PyDict_Check(rc_uses) ||
        !PyDict_Check(pairs) || !PyDict_Check(items_by)) {
        PyErr_SetString(PyExc_TypeError,
                        "timelines(): list, int, set, set, dict, _, dict, dict, dict, dict");
        return NULL;
    }
    int have_lists = PySet_GET_SIZE(lists) > 0;
    long mass = 0, listed = 0;
    PyObject *kind_in = PyLong_FromLong(K_IN), *kind_out = PyLong_FromLong(K_OUT);
    PyObject *result = NULL;
    if (kind_in == NULL || kind_out == NULL)
        goto done;
    for (Py_ssize_t idx = 0; idx < PyList_GET_SIZE(msgs); idx++) {
        PyObject *m = message_at(msgs, idx);
        if (m == NULL)
            goto done;
        PyObject *rc = PyTuple_GET_ITEM(m, F_RECIPIENTS);
        if (!PyTuple_Check(rc) || PyTuple_GET_SIZE(rc) != 3 ||
            !PyAnySet_Check(PyTuple_GET_ITEM(rc, RC_TO)) ||
            !PyAnySet_Check(PyTuple_GET_ITEM(rc, RC_EVERY))) {
            PyErr_SetString(PyExc_TypeError, "a message's recipients are a Recipients tuple");
            goto done;
        }
        PyObject *every = PyTuple_GET_ITEM(rc, RC_EVERY);
        if (PySet_GET_SIZE(every) > max_recipients) {
            mass++;
            continue;
        }
        PyObject *sender = PyTuple_GET_ITEM(m, F_SENDER);
        if (have_lists) {
            int r = sender == Py_None ? 0 : PySet_Contains(lists, sender);
            if (r == 0)
                r = meets(lists, every);
            if (r < 0)
                goto done;
            if (r) {
                listed++;
                continue;
            }
        }
        int mine = sender == Py_None ? 0 : PySet_Contains(me, sender);
        if (mine < 0)
            goto done;
        if (!mine && sender == Py_None) {
            mine = PyObject_IsTrue(PyTuple_GET_ITEM(m, F_SENT));
            if (mine < 0)
                goto done;
        }
        PyObject *ts = PyTuple_GET_ITEM(m, F_TS);
        if (mine) {
            PyObject *key = PyLong_FromVoidPtr(rc);
            if (key == NULL)
                goto done;
            PyObject *targets = PyDict_GetItemWithError(targets_of, key); /* borrowed */
            PyObject *uses = NULL;
            if (targets == NULL) {
                if (PyErr_Occurred() || (targets = targets_for(rc, person_of, who)) == NULL) {
                    Py_DECREF(key);
                    goto done;
                }
                int r = PyDict_SetItem(targets_of, key, targets);
                Py_DECREF(targets); /* the dict holds it */
                uses = r < 0 ? NULL : Py_BuildValue("[Oi]", rc, 0);
                if (uses == NULL || PyDict_SetItem(rc_uses, key, uses) < 0) {
                    Py_XDECREF(uses);
                    Py_DECREF(key);
                    goto done;
                }
                Py_DECREF(uses); /* the dict holds it */
            }
            uses = PyDict_GetItemWithError(rc_uses, key);
            Py_DECREF(key);
            if (uses == NULL || !PyList_Check(uses) || PyList_GET_SIZE(uses) != 2) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "rc_uses holds [recipients, count] lists");
                goto done;
            }
            long n = PyLong_AsLong(PyList_GET_ITEM(uses, 1));
            PyObject *count = n == -1 && PyErr_Occurred() ? NULL : PyLong_FromLong(n + 1);
            if (count == NULL)
                goto done;
            PyList_SetItem(uses, 1, count);
            if (!PyTuple_Check(targets)) {
                PyErr_SetString(PyExc_TypeError, "targets_of holds tuples");
                goto done;
            }
            Py_ssize_t nt = PyTuple_GET_SIZE(targets);
            if (nt == 0)
                continue;
            PyObject *index = PyLong_FromSsize_t(idx);
            if (index == NULL)
                goto done;
            for (Py_ssize_t t = 0; t < nt; t++) {
                PyObject *target = PyTuple_GET_ITEM(targets, t);
                if (!PyTuple_Check(target) || PyTuple_GET_SIZE(target) != 2) {
                    PyErr_SetString(PyExc_TypeError, "a target is a (root, direct) pair");
                    Py_DECREF(index);
                    goto done;
                }
                if (add_item(items_by, PyTuple_GET_ITEM(target, 0),
                             PyTuple_Pack(4, ts, kind_out, index, PyTuple_GET_ITEM(target, 1))) <
                    0) {
                    Py_DECREF(index);
                    goto done;
                }
            }
            Py_DECREF(index);
        }
        else if (sender != Py_None) {
            PyObject *root = cached(person_of, who, sender);
            if (root == NULL)
                goto done;
            int is_person = PyObject_IsTrue(root);
            if (is_person > 0) {
                PyObject *pair = PyTuple_Pack(2, sender, PyTuple_GET_ITEM(m, F_SENDER_NAME));
                PyObject *was = pair ? PyDict_GetItemWithError(pairs, pair) : NULL;
                long n = 0;
                if (was != NULL)
                    n = PyLong_AsLong(was);
                PyObject *count = (pair == NULL || PyErr_Occurred()) ? NULL : PyLong_FromLong(n + 1);
                int direct = count == NULL ? -1 : meets(me, PyTuple_GET_ITEM(rc, RC_TO));
                PyObject *index = direct < 0 ? NULL : PyLong_FromSsize_t(idx);
                if (index == NULL || PyDict_SetItem(pairs, pair, count) < 0 ||
                    add_item(items_by, root,
                             PyTuple_Pack(4, ts, kind_in, index, direct ? Py_True : Py_False)) < 0)
                    is_person = -1;
                Py_XDECREF(pair);
                Py_XDECREF(count);
                Py_XDECREF(index);
            }
            Py_DECREF(root);
            if (is_person < 0)
                goto done;
        }
    }
    result = Py_BuildValue("(ll)", mass, listed);
done:
    Py_XDECREF(kind_in);
    Py_XDECREF(kind_out);
    return result;
}


/* ------------------------------------------------------------- saving */

/* initiations_json(inits, utc, iso, encode_string, json_value) -> str:
 * stats._initiations_json_python. A date in UTC to the second is written here, as
 * iso() writes it; other dates, and values other than bools, None and finite
 * floats, go to the Python functions. */
static PyObject *
initiations_json(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyTuple_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        "initiations_json(inits: tuple, utc, iso, encode_string, json_value)");
        return NULL;
    }
    PyObject *inits = args[0], *utc = args[1], *iso = args[2], *encode = args[3];
    PyObject *value = args[4];
    static PyObject *names[5];
    static const char *const keys[5] = {"date", "side", "subject", "answered", "gap_days"};
    for (int f = 0; f < 5; f++) {
        if (names[f] == NULL && (names[f] = PyUnicode_InternFromString(keys[f])) == NULL)
            return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(inits);
    PyObject *parts = PyList_New(0);
    if (parts == NULL)
        return NULL;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *init = PyTuple_GET_ITEM(inits, k);
        PyObject *v[5] = {NULL, NULL, NULL, NULL, NULL};   /* the fields */
        PyObject *txt[5] = {NULL, NULL, NULL, NULL, NULL}; /* their JSON */
        PyObject *part = NULL;
        int ok = 1;
        for (int f = 0; f < 5 && ok; f++)
            ok = (v[f] = PyObject_GetAttr(init, names[f])) != NULL;
        if (ok) {
            PyObject *d = v[0];
            if (PyDateTime_Check(d) && PyDateTime_DATE_GET_TZINFO(d) == utc &&
                PyDateTime_DATE_GET_MICROSECOND(d) == 0 && PyDateTime_GET_YEAR(d) >= 1000)
                txt[0] = PyUnicode_FromFormat(
                    "%d-%02d-%02dT%02d:%02d:%02d+00:00", PyDateTime_GET_YEAR(d),
                    PyDateTime_GET_MONTH(d), PyDateTime_GET_DAY(d), PyDateTime_DATE_GET_HOUR(d),
                    PyDateTime_DATE_GET_MINUTE(d), PyDateTime_DATE_GET_SECOND(d));
            else
                txt[0] = PyObject_CallOneArg(iso, d);
            txt[1] = txt[0] ? PyObject_CallOneArg(encode, v[1]) : NULL;
            txt[2] = txt[1] ? PyObject_CallOneArg(encode, v[2]) : NULL;
            for (int f = 3; f < 5 && txt[f - 1] != NULL; f++) {
                PyObject *x = v[f];
                if (x == Py_True)
                    txt[f] = PyUnicode_FromString("true");
                else if (x == Py_False)
                    txt[f] = PyUnicode_FromString("false");
                else if (x == Py_None)
                    txt[f] = PyUnicode_FromString("null");
                else if (PyFloat_CheckExact(x) && isfinite(PyFloat_AS_DOUBLE(x)))
                    txt[f] = PyObject_Repr(x); /* json's float text: float.__repr__ */
                else
                    txt[f] = PyObject_CallOneArg(value, x);
            }
            for (int f = 0; f < 5 && txt[4] != NULL; f++) {
                if (!PyUnicode_Check(txt[f])) {
                    PyErr_SetString(PyExc_TypeError, "initiations_json(): a text that is not str");
                    Py_CLEAR(txt[4]);
                }
            }
            if (txt[4] != NULL)
                part = PyUnicode_FromFormat(
                    "{\"date\":\"%U\",\"side\":%U,\"subject\":%U,\"answered\":%U,\"gap_days\":%U}",
                    txt[0], txt[1], txt[2], txt[3], txt[4]);
        }
        for (int f = 0; f < 5; f++) {
            Py_XDECREF(v[f]);
            Py_XDECREF(txt[f]);
        }
        if (part == NULL || PyList_Append(parts, part) < 0) {
            Py_XDECREF(part);
            Py_DECREF(parts);
            return NULL;
        }
        Py_DECREF(part);
    }
    PyObject *sep = PyUnicode_FromString(",");
    PyObject *joined = sep ? PyUnicode_Join(sep, parts) : NULL;
    Py_XDECREF(sep);
    Py_DECREF(parts);
    if (joined == NULL)
        return NULL;
    PyObject *out = PyUnicode_FromFormat("[%U]", joined);
    Py_DECREF(joined);
    return out;
}

static PyMethodDef methods[] = {
    {"walk", (PyCFunction)(void (*)(void))walk, METH_FASTCALL, "One person's time line walked."},
    {"strength", (PyCFunction)(void (*)(void))strength, METH_FASTCALL, "(strength, peak)."},
    {"monthly", (PyCFunction)(void (*)(void))monthly, METH_FASTCALL, "Contacts per month."},
    {"initiations_json", (PyCFunction)(void (*)(void))initiations_json, METH_FASTCALL,
     "The JSON text of a person's initiations."},
    {"timelines", (PyCFunction)(void (*)(void))timelines, METH_FASTCALL,
     "Every person's time line from the messages."},
    {"messages_from_rows", (PyCFunction)(void (*)(void))messages_from_rows, METH_FASTCALL,
     "Msg tuples from rows of the personal SELECT."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "kithkeep.model._loops",
    "The analysis' hot loops in C (see messages.py and person.py for the Python twins).", -1, methods,
};

/* module.name = value, value a new reference (consumed either way) */
static int
add_value(PyObject *m, const char *name, PyObject *value)
{
    if (value == NULL)
        return -1;
    if (PyModule_AddObject(m, name, value) < 0) {
        Py_DECREF(value);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC
PyInit__loops(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    /* the message fields and constants compiled in, for messages.py and person.py to check */
    if (add_value(m, "LAYOUT",
                  Py_BuildValue("(iiiiiiiiiii)", F_TS, F_IN_REPLY_TO, F_REFERENCES, F_SUBJECT,
                                F_LINKED, F_THRID, MSG_LEN, F_SENDER, F_SENDER_NAME,
                                F_RECIPIENTS, F_SENT)) < 0 ||
        add_value(m, "CONSTANTS", Py_BuildValue("(iddd)", MAX_DEPTH, EXCHANGE_GAP, SKEW, DAY)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
