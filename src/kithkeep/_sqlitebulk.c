/* Bulk writes to a SQLite store with the GIL released (kithkeep/sqlite_bulk.py).
 *
 * Why: a first IMAP sync stores 100k rows of 23 values in a writer thread
 * while the connector reads and parses the next chunk (kithkeep/sync.py).
 * The stdlib's sqlite3 binds every value with the GIL held and releases and
 * re-takes the GIL around each row's sqlite3_step, so the writer thread and
 * the parsing thread hand the GIL back and forth 100k times and the writer
 * spent about as long waiting for it as working (bench/imap_sync.py). Here a
 * whole transaction (a few statements, each with its rows) is converted to C
 * values first, under the GIL, and then runs with the GIL released: SQLite's
 * work happens on the second core while Python parses.
 *
 * This module opens its own connection to the store's file. It uses the
 * SQLite library that the stdlib's _sqlite3 already loaded (dlopen with
 * RTLD_NOLOAD), never a second copy: two copies of SQLite in one process do
 * not see each other's POSIX locks and can corrupt a database. When _sqlite3
 * has SQLite linked in statically, or the library cannot be found, the import
 * fails and the store keeps writing through the stdlib module.
 *
 * Values: None, int (bool included: 1 or 0, as sqlite3 binds them), float
 * and str, bound as the stdlib module binds them. Anything else raises
 * TypeError before any SQL runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

/* --- the part of the SQLite C API used here (sqlite3.h is not needed to build) */
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
typedef int64_t sqlite3_int64;
#define SQLITE_OK 0
#define SQLITE_CONSTRAINT 19
#define SQLITE_CORRUPT 11
#define SQLITE_NOTADB 26
#define SQLITE_ROW 100
#define SQLITE_DONE 101
#define SQLITE_OPEN_READWRITE 0x00000002
#define SQLITE_OPEN_NOMUTEX 0x00008000
#define SQLITE_STATIC ((void (*)(void *))0)

static struct {
    int (*open_v2)(const char *, sqlite3 **, int, const char *);
    int (*close_v2)(sqlite3 *);
    int (*prepare_v2)(sqlite3 *, const char *, int, sqlite3_stmt **, const char **);
    int (*bind_text)(sqlite3_stmt *, int, const char *, int, void (*)(void *));
    int (*bind_int64)(sqlite3_stmt *, int, sqlite3_int64);
    int (*bind_double)(sqlite3_stmt *, int, double);
    int (*bind_null)(sqlite3_stmt *, int);
    int (*bind_parameter_count)(sqlite3_stmt *);
    int (*step)(sqlite3_stmt *);
    int (*reset)(sqlite3_stmt *);
    int (*finalize)(sqlite3_stmt *);
    int (*exec)(sqlite3 *, const char *, void *, void *, char **);
    const char *(*errmsg)(sqlite3 *);
    int (*extended_errcode)(sqlite3 *);
    int (*busy_timeout)(sqlite3 *, int);
    int (*get_autocommit)(sqlite3 *);
    int (*libversion_number)(void);
} api;

/* --- values converted under the GIL */
enum { V_NULL, V_INT, V_FLOAT, V_TEXT };

typedef struct {
    int kind;
    int len; /* text bytes */
    union {
        sqlite3_int64 i;
        double d;
        const char *s; /* UTF-8 owned by a str kept alive by the caller's rows */
    } u;
} Value;

typedef struct {
    PyObject *sql_bytes; /* UTF-8 of the statement */
    PyObject *rows;      /* a tuple snapshot of the rows (keeps every value alive) */
    Py_ssize_t nrows;
    int ncols;
    Value *values; /* nrows * ncols */
} Step;

typedef struct {
    PyObject_HEAD sqlite3 *db;
    int in_use; /* transaction() running (it releases the GIL) */
} Connection;

static PyObject *sqlite3_module; /* for its exception classes */

/* --- errors */

/* The stdlib sqlite3 exception for an extended result code, with the same
 * attributes (sqlite_errorcode) as the ones it raises itself. */
static void
raise_sqlite(int code, const char *message)
{
    const char *name = "OperationalError";
    int primary = code & 0xff;
    if (primary == SQLITE_CONSTRAINT)
        name = "IntegrityError";
    else if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB)
        name = "DatabaseError";
    PyObject *cls = PyObject_GetAttrString(sqlite3_module, name);
    if (cls == NULL)
        return;
    /* SQLite's messages are UTF-8, but may quote a file name that is not */
    PyObject *text = PyUnicode_DecodeUTF8(message, (Py_ssize_t)strlen(message), "replace");
    PyObject *exc = text ? PyObject_CallOneArg(cls, text) : NULL;
    Py_XDECREF(text);
    Py_DECREF(cls);
    if (exc == NULL)
        return;
    PyObject *code_obj = PyLong_FromLong(code);
    if (code_obj == NULL || PyObject_SetAttrString(exc, "sqlite_errorcode", code_obj) < 0) {
        Py_XDECREF(code_obj);
        Py_DECREF(exc);
        return;
    }
    Py_DECREF(code_obj);
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
}

/* --- Connection */

static int
Connection_init(Connection *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"path", "busy_timeout_ms", NULL};
    PyObject *path_obj;
    int timeout = 10000;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&|i", kwlist, PyUnicode_FSConverter, &path_obj,
                                     &timeout))
        return -1;
    if (self->db != NULL) {
        Py_DECREF(path_obj);
        PyErr_SetString(PyExc_RuntimeError, "connection already open");
        return -1;
    }
    sqlite3 *db = NULL;
    int rc;
    /* READWRITE without CREATE: the store's file exists (migrated) */
    Py_BEGIN_ALLOW_THREADS
    rc = api.open_v2(PyBytes_AS_STRING(path_obj), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                     NULL);
    Py_END_ALLOW_THREADS
    Py_DECREF(path_obj);
    if (rc != SQLITE_OK) {
        raise_sqlite(db ? api.extended_errcode(db) : rc, db ? api.errmsg(db) : "cannot open");
        api.close_v2(db); /* a NULL handle is a no-op */
        return -1;
    }
    api.busy_timeout(db, timeout);
    /* the store's own pragmas (store._sqlite_pragmas); WAL is a property of the file */
    rc = api.exec(db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        raise_sqlite(api.extended_errcode(db), api.errmsg(db));
        api.close_v2(db);
        return -1;
    }
    self->db = db;
    return 0;
}

static void
close_db(Connection *self)
{
    if (self->db != NULL) {
        api.close_v2(self->db);
        self->db = NULL;
    }
}

static void
Connection_dealloc(Connection *self)
{
    close_db(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Connection_close(Connection *self, PyObject *Py_UNUSED(ignored))
{
    if (self->in_use) {
        PyErr_SetString(PyExc_RuntimeError, "connection in use by another thread");
        return NULL;
    }
    close_db(self);
    Py_RETURN_NONE;
}

static void
free_steps(Step *steps, Py_ssize_t n)
{
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_XDECREF(steps[k].sql_bytes);
        Py_XDECREF(steps[k].rows);
        PyMem_Free(steps[k].values);
    }
    PyMem_Free(steps);
}

/* One value of a row into v; -1 with TypeError/OverflowError set. */
static int
convert(PyObject *obj, Value *v, Py_ssize_t row, int col)
{
    if (obj == Py_None) {
        v->kind = V_NULL;
    }
    else if (PyUnicode_Check(obj)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(obj, &n);
        if (s == NULL)
            return -1;
        if (n > INT32_MAX) {
            PyErr_SetString(PyExc_OverflowError, "string longer than 2 GB");
            return -1;
        }
        v->kind = V_TEXT;
        v->u.s = s;
        v->len = (int)n;
    }
    else if (PyLong_Check(obj)) { /* bool too: 1 or 0 */
        long long i = PyLong_AsLongLong(obj);
        if (i == -1 && PyErr_Occurred())
            return -1;
        v->kind = V_INT;
        v->u.i = (sqlite3_int64)i;
    }
    else if (PyFloat_Check(obj)) {
        v->kind = V_FLOAT;
        v->u.d = PyFloat_AS_DOUBLE(obj);
    }
    else {
        PyErr_Format(PyExc_TypeError, "row %zd, column %d: cannot store a %.100s", row, col,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    return 0;
}

/* steps[k] from one (sql, rows) pair; -1 with an exception set */
static int
prepare_step(PyObject *pair, Step *st)
{
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        PyErr_SetString(PyExc_TypeError, "each step is a (sql, rows) tuple");
        return -1;
    }
    PyObject *sql = PyTuple_GET_ITEM(pair, 0);
    if (!PyUnicode_Check(sql)) {
        PyErr_SetString(PyExc_TypeError, "sql must be a str");
        return -1;
    }
    st->sql_bytes = PyUnicode_AsUTF8String(sql);
    if (st->sql_bytes == NULL)
        return -1;
    st->rows = PySequence_Tuple(PyTuple_GET_ITEM(pair, 1));
    if (st->rows == NULL)
        return -1;
    st->nrows = PyTuple_GET_SIZE(st->rows);
    if (st->nrows == 0)
        return 0;
    PyObject *first = PyTuple_GET_ITEM(st->rows, 0);
    if (!PyTuple_Check(first)) {
        PyErr_SetString(PyExc_TypeError, "rows must be tuples");
        return -1;
    }
    st->ncols = (int)PyTuple_GET_SIZE(first);
    /* ncols may be 0: a statement without parameters, run once per empty row */
    size_t nvalues = (size_t)st->nrows * (size_t)st->ncols;
    if (st->ncols && (size_t)st->nrows > SIZE_MAX / sizeof(Value) / (size_t)st->ncols) {
        PyErr_NoMemory();
        return -1;
    }
    st->values = PyMem_Malloc(sizeof(Value) * (nvalues ? nvalues : 1));
    if (st->values == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Value *v = st->values;
    for (Py_ssize_t r = 0; r < st->nrows; r++) {
        PyObject *row = PyTuple_GET_ITEM(st->rows, r);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != st->ncols) {
            PyErr_Format(PyExc_ValueError, "row %zd: expected a tuple of %d values", r, st->ncols);
            return -1;
        }
        for (int c = 0; c < st->ncols; c++, v++)
            if (convert(PyTuple_GET_ITEM(row, c), v, r, c) < 0)
                return -1;
    }
    return 0;
}

/* run_steps' result when a statement's parameters and its rows' values differ */
#define MISMATCH (-1)

/* The error of the last call on db into errbuf, rolled back if a transaction
 * is open; returns its extended code (never 0). */
static int
failed(sqlite3 *db, char *errbuf, size_t errlen)
{
    int rc = api.extended_errcode(db);
    snprintf(errbuf, errlen, "%s", api.errmsg(db));
    if (!api.get_autocommit(db))
        api.exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc ? rc : 1; /* SQLITE_ERROR */
}

/* BEGIN and every step, without the GIL; the transaction stays open. Returns
 * 0, or an extended error code (or MISMATCH) with the message in errbuf and
 * the transaction rolled back. */
static int
run_steps(sqlite3 *db, Step *steps, Py_ssize_t nsteps, char *errbuf, size_t errlen)
{
    if (api.exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return failed(db, errbuf, errlen);
    for (Py_ssize_t k = 0; k < nsteps; k++) {
        Step *st = &steps[k];
        if (st->nrows == 0)
            continue;
        sqlite3_stmt *stmt = NULL;
        if (api.prepare_v2(db, PyBytes_AS_STRING(st->sql_bytes),
                           (int)PyBytes_GET_SIZE(st->sql_bytes), &stmt, NULL) != SQLITE_OK)
            return failed(db, errbuf, errlen);
        int wanted = api.bind_parameter_count(stmt);
        if (wanted != st->ncols) {
            api.finalize(stmt);
            snprintf(errbuf, errlen, "statement %zd takes %d values, its rows have %d", k, wanted,
                     st->ncols);
            api.exec(db, "ROLLBACK", NULL, NULL, NULL);
            return MISMATCH;
        }
        const Value *v = st->values;
        for (Py_ssize_t r = 0; r < st->nrows; r++) {
            int rc = SQLITE_OK;
            for (int c = 1; c <= st->ncols && rc == SQLITE_OK; c++, v++) {
                switch (v->kind) {
                case V_NULL:
                    rc = api.bind_null(stmt, c);
                    break;
                case V_INT:
                    rc = api.bind_int64(stmt, c, v->u.i);
                    break;
                case V_FLOAT:
                    rc = api.bind_double(stmt, c, v->u.d);
                    break;
                default: /* the text outlives the statement: no copy */
                    rc = api.bind_text(stmt, c, v->u.s, v->len, SQLITE_STATIC);
                }
            }
            if (rc == SQLITE_OK) {
                while ((rc = api.step(stmt)) == SQLITE_ROW) {
                }
            }
            if (rc != SQLITE_DONE) {
                /* the error of the statement, before finalize forgets it */
                int code = failed(db, errbuf, errlen);
                api.finalize(stmt);
                return code;
            }
            api.reset(stmt);
        }
        api.finalize(stmt);
    }
    return 0;
}

/* COMMIT (or, with rollback, ROLLBACK) the open transaction, without the GIL */
static int
end_transaction(sqlite3 *db, int rollback, char *errbuf, size_t errlen)
{
    if (api.exec(db, rollback ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return failed(db, errbuf, errlen);
    return 0;
}

static PyObject *
Connection_transaction(Connection *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"steps", "before_commit", NULL};
    PyObject *arg, *hook = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O", kwlist, &arg, &hook))
        return NULL;
    if (hook != Py_None && !PyCallable_Check(hook)) {
        PyErr_SetString(PyExc_TypeError, "before_commit must be callable or None");
        return NULL;
    }
    if (self->db == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "connection closed");
        return NULL;
    }
    if (self->in_use) {
        PyErr_SetString(PyExc_RuntimeError, "connection in use by another thread");
        return NULL;
    }
    PyObject *seq = PySequence_Tuple(arg);
    if (seq == NULL)
        return NULL;
    Py_ssize_t nsteps = PyTuple_GET_SIZE(seq);
    Step *steps = PyMem_Calloc(nsteps ? (size_t)nsteps : 1, sizeof(Step));
    if (steps == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t k = 0; k < nsteps; k++) {
        if (prepare_step(PyTuple_GET_ITEM(seq, k), &steps[k]) < 0) {
            free_steps(steps, nsteps);
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    char errbuf[512] = "";
    int rc;
    sqlite3 *db = self->db;
    self->in_use = 1;
    Py_BEGIN_ALLOW_THREADS
    rc = run_steps(db, steps, nsteps, errbuf, sizeof errbuf);
    Py_END_ALLOW_THREADS
    free_steps(steps, nsteps);
    int hook_failed = 0;
    if (rc == 0 && hook != Py_None) {
        /* inside the transaction, after its statements: a failure rolls it back */
        PyObject *res = PyObject_CallNoArgs(hook);
        hook_failed = res == NULL;
        Py_XDECREF(res);
    }
    if (rc == 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = end_transaction(db, hook_failed, errbuf, sizeof errbuf);
        Py_END_ALLOW_THREADS
    }
    self->in_use = 0;
    if (hook_failed)
        return NULL; /* the hook's exception; the transaction was rolled back */
    if (rc == MISMATCH) {
        PyErr_SetString(PyExc_ValueError, errbuf);
        return NULL;
    }
    if (rc != 0) {
        raise_sqlite(rc, errbuf);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef Connection_methods[] = {
    {"transaction", (PyCFunction)(void (*)(void))Connection_transaction,
     METH_VARARGS | METH_KEYWORDS,
     "transaction(steps, before_commit=None): run [(sql, rows), ...] in one transaction with "
     "the GIL released, all or nothing; before_commit() is called inside it, after the "
     "statements (an exception rolls it back)."},
    {"close", (PyCFunction)Connection_close, METH_NOARGS, "Close the connection."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ConnectionType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "kithkeep._sqlitebulk.Connection",
    .tp_basicsize = sizeof(Connection),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Connection(path, busy_timeout_ms=10000): a connection to an existing SQLite file.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Connection_init,
    .tp_dealloc = (destructor)Connection_dealloc,
    .tp_methods = Connection_methods,
};

/* --- the library _sqlite3 loaded */

static int
load_api(void)
{
    /* the stdlib module first: its library is the one to share */
    sqlite3_module = PyImport_ImportModule("sqlite3");
    if (sqlite3_module == NULL)
        return -1;
    void *lib = NULL;
    const char *names[] = {"libsqlite3.so.0", "libsqlite3.0.dylib", "libsqlite3.dylib", NULL};
    for (int k = 0; names[k] != NULL && lib == NULL; k++)
        lib = dlopen(names[k], RTLD_NOW | RTLD_NOLOAD);
    if (lib == NULL) {
        PyErr_SetString(PyExc_ImportError,
                        "the sqlite3 module's SQLite is not a shared library loaded in this process");
        return -1;
    }
#define SYM(field, name)                                                                           \
    if ((*(void **)&api.field = dlsym(lib, name)) == NULL) {                                       \
        PyErr_Format(PyExc_ImportError, "SQLite library without %s", name);                        \
        return -1;                                                                                 \
    }
    SYM(open_v2, "sqlite3_open_v2")
    SYM(close_v2, "sqlite3_close_v2")
    SYM(prepare_v2, "sqlite3_prepare_v2")
    SYM(bind_text, "sqlite3_bind_text")
    SYM(bind_int64, "sqlite3_bind_int64")
    SYM(bind_double, "sqlite3_bind_double")
    SYM(bind_null, "sqlite3_bind_null")
    SYM(bind_parameter_count, "sqlite3_bind_parameter_count")
    SYM(step, "sqlite3_step")
    SYM(reset, "sqlite3_reset")
    SYM(finalize, "sqlite3_finalize")
    SYM(exec, "sqlite3_exec")
    SYM(errmsg, "sqlite3_errmsg")
    SYM(extended_errcode, "sqlite3_extended_errcode")
    SYM(busy_timeout, "sqlite3_busy_timeout")
    SYM(get_autocommit, "sqlite3_get_autocommit")
    SYM(libversion_number, "sqlite3_libversion_number")
#undef SYM
    /* the same library as the module's, not one that happens to share the name */
    PyObject *ver = PyObject_GetAttrString(sqlite3_module, "sqlite_version_info");
    if (ver == NULL)
        return -1;
    long major = -1, minor = -1, patch = -1;
    if (PyTuple_Check(ver) && PyTuple_GET_SIZE(ver) == 3) {
        major = PyLong_AsLong(PyTuple_GET_ITEM(ver, 0));
        minor = PyLong_AsLong(PyTuple_GET_ITEM(ver, 1));
        patch = PyLong_AsLong(PyTuple_GET_ITEM(ver, 2));
    }
    Py_DECREF(ver);
    if (PyErr_Occurred())
        return -1;
    if (api.libversion_number() != major * 1000000 + minor * 1000 + patch) {
        PyErr_SetString(PyExc_ImportError, "the loaded SQLite is not the sqlite3 module's");
        return -1;
    }
    return 0;
}

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "kithkeep._sqlitebulk",
    "Bulk writes to a SQLite store with the GIL released (see kithkeep/sqlite_bulk.py).", -1, NULL,
};

PyMODINIT_FUNC
PyInit__sqlitebulk(void)
{
    if (load_api() < 0)
        return NULL;
    if (PyType_Ready(&ConnectionType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ConnectionType);
    if (PyModule_AddObject(m, "Connection", (PyObject *)&ConnectionType) < 0) {
        Py_DECREF(&ConnectionType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
