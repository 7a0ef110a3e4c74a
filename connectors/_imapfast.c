/*
 * kithkeep.connectors._imapfast: the compiled bulk path of the IMAP connector.
 *
 * A first sync reads every message's header FETCH. The Python fast path
 * (imap_fetch.RawSession.uid_fetch, headers.record_from_headers_fast and the
 * store's row encoding) costs tens of microseconds a message; this module
 * turns the buffered FETCH stream straight into rows in the store's column
 * order (rowcodec.MESSAGE_COLUMNS), in one pass, for the ordinary shapes:
 *
 *   * N FETCH (UID u FLAGS (...) INTERNALDATE "..." BODY[HEADER.FIELDS (...)] {n}
 *   <n bytes of ASCII "Name: value" lines>)
 *
 * (its items in any order, with MODSEQ and Gmail's X-GM-MSGID and X-GM-THRID)
 *
 * It does exactly what the Python code does, and no more: anything it is not
 * sure about goes to Python, at the smallest unit that keeps the result the
 * same (a whole message, one address header, one name, one date, one
 * subject). tests/test_imap_rows.py checks that both give the same rows for
 * every message of the shared corpora, generated odd headers and the
 * benchmark's mail. The Python side (connectors/imap_rows.py) registers the
 * fallbacks with configure() before the first use.
 *
 * Whitespace is what Python's str.split() and the regex \s treat as
 * whitespace in ASCII: \t \n \v \f \r, 0x1c-0x1f and space.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* ------------------------------------------------------------ callbacks */

static PyObject *cb_addresses; /* (values: list[str]) -> str, JSON of the header */
static PyObject *cb_name;      /* (name: str) -> str, a display name with "=?" */
static PyObject *cb_date;      /* (value: str) -> str | None, the Date column */
static PyObject *cb_words;     /* (value: str) -> str, decode_words */
static PyObject *cb_flags;     /* (raw: bytes) -> str, the flags column */
static PyObject *cb_idate;     /* (raw: bytes) -> str | None, the internal_date column */
static PyObject *cb_message;   /* (uid, flags, idate, header, account, folder, sent) -> row */

/* caches: an address header value -> its JSON; one mailbox -> its JSON
 * fragment (None: not a simple shape); raw FLAGS -> the flags column */
static PyObject *addr_header_cache;
static PyObject *mailbox_cache;
static PyObject *flags_cache;
static PyObject *empty_list_json; /* "[]" */
#define CACHE_MAX 20000
#define FLAGS_CACHE_MAX 4096
#define MAX_HEADER_BYTES (256 * 1024)
#define MAX_REFERENCES 50
#define MAX_ADDRESSES 500
#define MAX_VALUES 16 /* occurrences of one field kept; more: Python decides */

static int
is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static int
is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static unsigned char
lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* ------------------------------------------------------- growable bytes */

typedef struct {
    char *p;
    Py_ssize_t len, cap;
    char small[512];
} Buf;

static void
buf_init(Buf *b)
{
    b->p = b->small;
    b->len = 0;
    b->cap = (Py_ssize_t)sizeof(b->small);
}

static void
buf_free(Buf *b)
{
    if (b->p != b->small)
        PyMem_Free(b->p);
}

static int
buf_reserve(Buf *b, Py_ssize_t extra)
{
    if (b->len + extra <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap * 2;
    while (cap < b->len + extra)
        cap *= 2;
    char *np = PyMem_Malloc((size_t)cap);
    if (np == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(np, b->p, (size_t)b->len);
    if (b->p != b->small)
        PyMem_Free(b->p);
    b->p = np;
    b->cap = cap;
    return 0;
}

static int
buf_put(Buf *b, const char *s, Py_ssize_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

static int
buf_putc(Buf *b, char c)
{
    if (buf_reserve(b, 1) < 0)
        return -1;
    b->p[b->len++] = c;
    return 0;
}

/* A JSON string body as Python's json (ensure_ascii=False) writes it. */
static int
buf_json(Buf *b, const char *s, Py_ssize_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            if (buf_putc(b, (char)c) < 0)
                return -1;
            continue;
        }
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        Py_ssize_t k = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            k = 6;
        }
        if (buf_put(b, esc, k) < 0)
            return -1;
    }
    return 0;
}

/* " ".join(s.split()) */
static int
buf_collapse(Buf *b, const char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    int first = 1;
    while (i < n) {
        while (i < n && is_space((unsigned char)s[i]))
            i++;
        if (i >= n)
            break;
        Py_ssize_t j = i;
        while (j < n && !is_space((unsigned char)s[j]))
            j++;
        if (!first && buf_putc(b, ' ') < 0)
            return -1;
        if (buf_put(b, s + i, j - i) < 0)
            return -1;
        first = 0;
        i = j;
    }
    return 0;
}

static PyObject *
ascii_str(const char *s, Py_ssize_t n)
{
    /* the block was checked to be ASCII: no decoding needed */
    PyObject *u = PyUnicode_New(n, 127);
    if (u == NULL)
        return NULL;
    memcpy(PyUnicode_DATA(u), s, (size_t)n);
    return u;
}

static PyObject *
buf_str(Buf *b, Py_ssize_t limit)
{
    /* the text of b as str, cut to ``limit`` characters (ASCII: bytes) */
    return ascii_str(b->p, b->len < limit ? b->len : limit);
}

static PyObject *
call1(PyObject *fn, PyObject *arg)
{
    /* steals arg */
    if (arg == NULL)
        return NULL;
    PyObject *r = PyObject_CallOneArg(fn, arg);
    Py_DECREF(arg);
    return r;
}

/* str s cut to ``limit`` characters */
static PyObject *
cut(PyObject *s, Py_ssize_t limit)
{
    if (s == NULL || PyUnicode_GET_LENGTH(s) <= limit)
        return s;
    PyObject *r = PyUnicode_Substring(s, 0, limit);
    Py_DECREF(s);
    return r;
}

static int
contains(const char *s, Py_ssize_t n, const char *needle)
{
    Py_ssize_t m = (Py_ssize_t)strlen(needle);
    for (Py_ssize_t i = 0; i + m <= n; i++)
        if (memcmp(s + i, needle, (size_t)m) == 0)
            return 1;
    return 0;
}

/* -------------------------------------------------------- header fields */

enum {
    F_FROM, F_TO, F_CC, F_BCC, F_DATE, F_MESSAGE_ID, F_IN_REPLY_TO, F_REFERENCES,
    F_SUBJECT, F_LIST_ID, F_LIST_POST, F_LIST_UNSUBSCRIBE, F_PRECEDENCE,
    F_AUTO_SUBMITTED, F_COUNT
};

static const char *const FIELD_NAMES[F_COUNT] = {
    "from", "to", "cc", "bcc", "date", "message-id", "in-reply-to", "references",
    "subject", "list-id", "list-post", "list-unsubscribe", "precedence", "auto-submitted",
};

typedef struct {
    const char *start[F_COUNT][MAX_VALUES];
    Py_ssize_t len[F_COUNT][MAX_VALUES];
    int count[F_COUNT];
} Fields;

static int
field_key(const char *name, Py_ssize_t n)
{
    static const unsigned char lengths[F_COUNT] = {4, 2, 2, 3, 4, 10, 11, 10, 7, 7, 9, 16, 10, 14};
    unsigned char first = lower((unsigned char)name[0]);
    for (int k = 0; k < F_COUNT; k++) {
        const char *w = FIELD_NAMES[k];
        if (lengths[k] != n || (unsigned char)w[0] != first)
            continue;
        Py_ssize_t i = 1;
        while (i < n && lower((unsigned char)name[i]) == (unsigned char)w[i])
            i++;
        if (i == n)
            return k;
    }
    return -1;
}

static int
is_name_char(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e && c != ':';
}

/* headers.split_header_fields: 1 when the block is plain "Name: value"
 * lines, 0 when it is not (or holds a field more than MAX_VALUES times). */
static int
split_fields(const char *t, Py_ssize_t n, Fields *f)
{
    memset(f->count, 0, sizeof(f->count));
    Py_ssize_t i = 0;
    while (i < n) {
        /* the empty line at the very end */
        if ((t[i] == '\n' && i + 1 == n) || (t[i] == '\r' && i + 2 == n && t[i + 1] == '\n'))
            return 1;
        Py_ssize_t j = i;
        while (j < n && is_name_char((unsigned char)t[j]))
            j++;
        if (j == i || j >= n || t[j] != ':')
            return 0;
        int key = field_key(t + i, j - i);
        Py_ssize_t k = j + 1;
        while (k < n && (t[k] == ' ' || t[k] == '\t'))
            k++;
        Py_ssize_t vstart = k, vend;
        for (;;) {
            while (k < n && t[k] != '\r' && t[k] != '\n')
                k++;
            Py_ssize_t m = k;
            if (m < n && t[m] == '\r')
                m++;
            if (m >= n || t[m] != '\n')
                return 0; /* a bare CR */
            if (m + 1 < n && (t[m + 1] == ' ' || t[m + 1] == '\t')) {
                k = m + 2; /* a folded continuation */
                continue;
            }
            vend = k;
            i = m + 1;
            break;
        }
        if (key >= 0) {
            int c = f->count[key];
            if (c >= MAX_VALUES)
                return 0;
            f->start[key][c] = t + vstart;
            f->len[key][c] = vend - vstart;
            f->count[key] = c + 1;
        }
    }
    return 1;
}

/* ------------------------------------------------------------ message ids */

static int
is_id_char(unsigned char c)
{
    return c != '<' && c != '>' && !is_space(c);
}

/* the position of the ">" of an id "<...>" (headers._MSGID_RE) at s[i], or -1 */
static Py_ssize_t
angle_id(const char *s, Py_ssize_t n, Py_ssize_t i)
{
    if (s[i] != '<')
        return -1;
    Py_ssize_t j = i + 1;
    while (j < n && is_id_char((unsigned char)s[j]))
        j++;
    return (j > i + 1 && j < n && s[j] == '>') ? j : -1;
}

/* headers._msgid_ascii into b (lower-cased); 0 when it gives None */
static int
msgid(const char *s, Py_ssize_t n, Buf *b)
{
    b->len = 0;
    if (n == 0)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t j = angle_id(s, n, i);
        if (j >= 0) {
            for (Py_ssize_t k = i + 1; k < j; k++)
                if (buf_putc(b, (char)lower((unsigned char)s[k])) < 0)
                    return -1;
            return 1;
        }
    }
    /* no <id>: the first word, without angle brackets */
    Py_ssize_t i = 0;
    while (i < n && is_space((unsigned char)s[i]))
        i++;
    Py_ssize_t j = i;
    while (j < n && !is_space((unsigned char)s[j]))
        j++;
    while (i < j && (s[i] == '<' || s[i] == '>'))
        i++;
    while (j > i && (s[j - 1] == '<' || s[j - 1] == '>'))
        j--;
    for (Py_ssize_t k = i; k < j; k++)
        if (buf_putc(b, (char)lower((unsigned char)s[k])) < 0)
            return -1;
    return j > i;
}

/* The References column: ids lower-cased, first occurrence kept, the newest
 * MAX_REFERENCES, as JSON. */
static PyObject *
references_json(const char *s, Py_ssize_t n)
{
    if (n == 0)
        return Py_NewRef(empty_list_json);
    Py_ssize_t cap = 16, count = 0;
    Py_ssize_t *starts = PyMem_Malloc(sizeof(Py_ssize_t) * 2 * (size_t)cap);
    if (starts == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t j = angle_id(s, n, i);
        if (j >= 0) {
            if (count == cap) {
                cap *= 2;
                Py_ssize_t *ns = PyMem_Realloc(starts, sizeof(Py_ssize_t) * 2 * (size_t)cap);
                if (ns == NULL) {
                    PyMem_Free(starts);
                    return PyErr_NoMemory();
                }
                starts = ns;
            }
            starts[2 * count] = i + 1;
            starts[2 * count + 1] = j - i - 1;
            count++;
            i = j; /* findall goes on after the match */
        }
    }
    /* drop repeats (case-insensitive: the ids are lower-cased) */
    char *keep = PyMem_Malloc((size_t)(count ? count : 1));
    if (keep == NULL) {
        PyMem_Free(starts);
        return PyErr_NoMemory();
    }
    Py_ssize_t unique = 0;
    PyObject *seen = NULL;
    for (Py_ssize_t a = 0; a < count; a++) {
        const char *pa = s + starts[2 * a];
        Py_ssize_t la = starts[2 * a + 1];
        int dup = 0;
        if (count <= 64) {
            for (Py_ssize_t c = 0; c < a && !dup; c++) {
                if (!keep[c] || starts[2 * c + 1] != la)
                    continue;
                const char *pc = s + starts[2 * c];
                Py_ssize_t k = 0;
                while (k < la && lower((unsigned char)pa[k]) == lower((unsigned char)pc[k]))
                    k++;
                dup = k == la;
            }
        } else {
            if (seen == NULL && (seen = PySet_New(NULL)) == NULL)
                goto fail;
            char tmp[512];
            char *low = la <= (Py_ssize_t)sizeof(tmp) ? tmp : PyMem_Malloc((size_t)la);
            if (low == NULL) {
                PyErr_NoMemory();
                goto fail;
            }
            for (Py_ssize_t k = 0; k < la; k++)
                low[k] = (char)lower((unsigned char)pa[k]);
            PyObject *key = PyBytes_FromStringAndSize(low, la);
            if (low != tmp)
                PyMem_Free(low);
            if (key == NULL)
                goto fail;
            int has = PySet_Contains(seen, key);
            if (has == 0)
                has = PySet_Add(seen, key) < 0 ? -1 : 0;
            Py_DECREF(key);
            if (has < 0)
                goto fail;
            dup = has;
        }
        keep[a] = (char)!dup;
        unique += !dup;
    }
    Py_XDECREF(seen);
    seen = NULL;
    if (unique == 0) {
        PyMem_Free(keep);
        PyMem_Free(starts);
        return Py_NewRef(empty_list_json);
    }
    Py_ssize_t skip = unique > MAX_REFERENCES ? unique - MAX_REFERENCES : 0;
    Buf b;
    buf_init(&b);
    int first = 1, err = 0;
    err |= buf_putc(&b, '[');
    for (Py_ssize_t a = 0; a < count && !err; a++) {
        if (!keep[a])
            continue;
        if (skip) {
            skip--;
            continue;
        }
        const char *pa = s + starts[2 * a];
        Py_ssize_t la = starts[2 * a + 1];
        char tmp[512];
        char *low = la <= (Py_ssize_t)sizeof(tmp) ? tmp : PyMem_Malloc((size_t)la);
        if (low == NULL) {
            PyErr_NoMemory();
            err = 1;
            break;
        }
        for (Py_ssize_t k = 0; k < la; k++)
            low[k] = (char)lower((unsigned char)pa[k]);
        if (!first)
            err |= buf_putc(&b, ',');
        err |= buf_putc(&b, '"');
        err |= buf_json(&b, low, la);
        err |= buf_putc(&b, '"');
        if (low != tmp)
            PyMem_Free(low);
        first = 0;
    }
    err |= buf_putc(&b, ']');
    PyMem_Free(keep);
    PyMem_Free(starts);
    PyObject *r = err ? NULL : buf_str(&b, PY_SSIZE_T_MAX);
    buf_free(&b);
    return r;
fail:
    Py_XDECREF(seen);
    PyMem_Free(keep);
    PyMem_Free(starts);
    return NULL;
}

/* ------------------------------------------------------------ addresses */

static int
is_atom_char(unsigned char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c))
        return 1;
    return c != 0 && strchr("!#$%&'*+/=?^_`{|}~-", c) != NULL;
}

static int
is_label_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '-';
}

static int
is_special(unsigned char c)
{
    return c != 0 && strchr("\"<>(),;:@[]\\", c) != NULL;
}

/* the end of X+(\.X+)* starting at k (chars of X by ``is_x``), or -1 */
static Py_ssize_t
dotted(const char *p, Py_ssize_t n, Py_ssize_t k, int (*is_x)(unsigned char))
{
    if (k >= n || !is_x((unsigned char)p[k]))
        return -1;
    for (;;) {
        while (k < n && is_x((unsigned char)p[k]))
            k++;
        if (k + 1 < n && p[k] == '.' && is_x((unsigned char)p[k + 1])) {
            k++;
            continue;
        }
        return k;
    }
}

/* the end of an address (headers._ADDR: atoms@labels) starting at i, or -1 */
static Py_ssize_t
scan_addr(const char *p, Py_ssize_t n, Py_ssize_t i)
{
    Py_ssize_t k = dotted(p, n, i, is_atom_char);
    if (k < 0 || k >= n || p[k] != '@')
        return -1;
    return dotted(p, n, k + 1, is_label_char);
}

static int
only_space(const char *p, Py_ssize_t i, Py_ssize_t n)
{
    while (i < n && is_space((unsigned char)p[i]))
        i++;
    return i == n;
}

/* One mailbox (headers._mailbox) as its JSON fragment ["name","email"]:
 * a new reference, Py_None when it is not a simple shape, NULL on error. */
static PyObject *
mailbox_fragment(const char *p, Py_ssize_t n)
{
    Py_ssize_t i = 0, ns = -1, ne = -1, as, ae;
    while (i < n && is_space((unsigned char)p[i]))
        i++;
    if (i < n && p[i] == '<') {
        as = i + 1;
        ae = scan_addr(p, n, as);
        if (ae < 0 || ae >= n || p[ae] != '>' || !only_space(p, ae + 1, n))
            Py_RETURN_NONE;
    } else if (i < n && memchr(p + i, '<', (size_t)(n - i)) != NULL) {
        /* Name <addr>: the name holds no specials and starts with no space */
        if (i >= n || is_special((unsigned char)p[i]) || is_space((unsigned char)p[i]))
            Py_RETURN_NONE;
        Py_ssize_t k = i;
        while (k < n && p[k] != '<') {
            if (is_special((unsigned char)p[k]))
                Py_RETURN_NONE;
            k++;
        }
        ns = i;
        ne = k;
        while (ne > ns && is_space((unsigned char)p[ne - 1]))
            ne--;
        as = k + 1;
        ae = scan_addr(p, n, as);
        if (ae < 0 || ae >= n || p[ae] != '>' || !only_space(p, ae + 1, n))
            Py_RETURN_NONE;
    } else {
        as = i;
        ae = scan_addr(p, n, as);
        if (ae < 0 || !only_space(p, ae, n))
            Py_RETURN_NONE;
    }
    Buf b;
    buf_init(&b);
    int err = buf_put(&b, "[\"", 2);
    if (ns >= 0) {
        if (contains(p + ns, ne - ns, "=?")) {
            /* an encoded word: headers._name_fast decodes it */
            PyObject *name = call1(cb_name, ascii_str(p + ns, ne - ns));
            if (name == NULL) {
                buf_free(&b);
                return NULL;
            }
            Py_ssize_t un;
            const char *u = PyUnicode_AsUTF8AndSize(name, &un);
            if (u == NULL) {
                /* a lone surrogate: the Python path writes the header */
                PyErr_Clear();
                Py_DECREF(name);
                buf_free(&b);
                Py_RETURN_NONE;
            }
            err |= buf_json(&b, u, un);
            Py_DECREF(name);
        } else {
            Buf c;
            buf_init(&c);
            err |= buf_collapse(&c, p + ns, ne - ns);
            err |= buf_json(&b, c.p, c.len);
            buf_free(&c);
        }
    }
    err |= buf_put(&b, "\",\"", 3);
    for (Py_ssize_t k = as; k < ae && !err; k++)
        err |= buf_putc(&b, (char)lower((unsigned char)p[k]));
    err |= buf_put(&b, "\"]", 2);
    PyObject *r = err ? NULL : PyBytes_FromStringAndSize(b.p, b.len);
    buf_free(&b);
    return r;
}

/* 1: appended; 0: not a simple shape; -1: error */
static int
mailbox_into(Buf *out, const char *p, Py_ssize_t n, Py_ssize_t *count, int *first)
{
    PyObject *key = PyBytes_FromStringAndSize(p, n);
    if (key == NULL)
        return -1;
    PyObject *frag = PyDict_GetItemWithError(mailbox_cache, key);
    if (frag != NULL) {
        Py_INCREF(frag);
    } else if (PyErr_Occurred()) {
        Py_DECREF(key);
        return -1;
    } else {
        if (only_space(p, 0, n)) {
            Py_DECREF(key);
            return 1; /* an empty part: skipped */
        }
        frag = mailbox_fragment(p, n);
        if (frag == NULL) {
            Py_DECREF(key);
            return -1;
        }
        if (PyDict_GET_SIZE(mailbox_cache) >= CACHE_MAX)
            PyDict_Clear(mailbox_cache);
        if (PyDict_SetItem(mailbox_cache, key, frag) < 0) {
            Py_DECREF(key);
            Py_DECREF(frag);
            return -1;
        }
    }
    Py_DECREF(key);
    if (frag == Py_None) {
        Py_DECREF(frag);
        return 0;
    }
    int err = 0;
    if (!*first)
        err |= buf_putc(out, ',');
    err |= buf_put(out, PyBytes_AS_STRING(frag), PyBytes_GET_SIZE(frag));
    Py_DECREF(frag);
    *first = 0;
    (*count)++;
    return err ? -1 : 1;
}

/* headers._parse_addresses_simple as JSON: 1 done, 0 not simple, -1 error */
static int
addresses_simple(Fields *f, int key, Buf *out)
{
    Py_ssize_t count = 0;
    int first = 1;
    if (buf_putc(out, '[') < 0)
        return -1;
    for (int v = 0; v < f->count[key]; v++) {
        const char *s = f->start[key][v];
        Py_ssize_t n = f->len[key][v];
        Buf unfolded;
        buf_init(&unfolded);
        if (memchr(s, '\n', (size_t)n) != NULL) {
            /* folded: the line breaks go, the indentation stays */
            for (Py_ssize_t k = 0; k < n; k++)
                if (s[k] != '\r' && s[k] != '\n' && buf_putc(&unfolded, s[k]) < 0) {
                    buf_free(&unfolded);
                    return -1;
                }
            s = unfolded.p;
            n = unfolded.len;
        }
        Py_ssize_t i = 0;
        for (;;) {
            const char *comma = memchr(s + i, ',', (size_t)(n - i));
            Py_ssize_t j = comma ? comma - s : n;
            int r = mailbox_into(out, s + i, j - i, &count, &first);
            if (r <= 0) {
                buf_free(&unfolded);
                return r;
            }
            if (count >= MAX_ADDRESSES) {
                buf_free(&unfolded);
                return buf_putc(out, ']') < 0 ? -1 : 1;
            }
            if (comma == NULL)
                break;
            i = j + 1;
        }
        buf_free(&unfolded);
    }
    return buf_putc(out, ']') < 0 ? -1 : 1;
}

static PyObject *
values_list(Fields *f, int key)
{
    PyObject *list = PyList_New(f->count[key]);
    if (list == NULL)
        return NULL;
    for (int v = 0; v < f->count[key]; v++) {
        PyObject *s = ascii_str(f->start[key][v], f->len[key][v]);
        if (s == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, v, s);
    }
    return list;
}

/* The JSON column of an address header; on a failed field *failed is set
 * and "[]" returned, as the Python path records the field as lost. */
static PyObject *
addresses_json(Fields *f, int key, int *failed)
{
    if (f->count[key] == 0)
        return Py_NewRef(empty_list_json);
    PyObject *cache_key = NULL;
    if (f->count[key] == 1) {
        cache_key = PyBytes_FromStringAndSize(f->start[key][0], f->len[key][0]);
        if (cache_key == NULL)
            return NULL;
        PyObject *hit = PyDict_GetItemWithError(addr_header_cache, cache_key);
        if (hit != NULL) {
            Py_DECREF(cache_key);
            return Py_NewRef(hit);
        }
        if (PyErr_Occurred())
            goto error;
    }
    Buf b;
    buf_init(&b);
    int r = addresses_simple(f, key, &b);
    PyObject *json = NULL;
    if (r > 0) {
        json = b.len == 2 ? Py_NewRef(empty_list_json)
                          : PyUnicode_DecodeUTF8(b.p, b.len, "strict");
    } else if (r == 0) {
        /* not simple: the general parser, as the Python path does */
        json = call1(cb_addresses, values_list(f, key));
    }
    if (json == NULL && !PyErr_ExceptionMatches(PyExc_MemoryError)) {
        /* a name or the general parser raised: the field is lost, as in Python */
        PyErr_Clear();
        buf_free(&b);
        Py_XDECREF(cache_key);
        *failed = 1;
        return Py_NewRef(empty_list_json);
    }
    buf_free(&b);
    if (json == NULL)
        goto error;
    if (cache_key != NULL) {
        if (PyDict_GET_SIZE(addr_header_cache) >= CACHE_MAX)
            PyDict_Clear(addr_header_cache);
        if (PyDict_SetItem(addr_header_cache, cache_key, json) < 0) {
            Py_DECREF(json);
            goto error;
        }
        Py_DECREF(cache_key);
    }
    return json;
error:
    Py_XDECREF(cache_key);
    return NULL;
}

/* ---------------------------------------------------------------- dates */

static const char *const MONTHS[12] = {
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
};

static int
days_in_month(int y, int m)
{
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return d[m - 1];
}

static int
num(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

static int
all_digits(const char *s, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if (!is_digit((unsigned char)s[i]))
            return 0;
    return 1;
}

/* days since 0001-01-01 and back (proleptic Gregorian, as datetime) */
static long long
ordinal(int y, int m, int d)
{
    long long yy = y - 1;
    long long days = yy * 365 + yy / 4 - yy / 100 + yy / 400;
    for (int k = 1; k < m; k++)
        days += days_in_month(y, k);
    return days + d - 1;
}

static void
from_ordinal(long long days, int *y, int *m, int *d)
{
    /* a year estimate, then a correction: few iterations */
    int yy = (int)(days / 366) + 1;
    while (ordinal(yy + 1, 1, 1) <= days)
        yy++;
    days -= ordinal(yy, 1, 1);
    int mm = 1;
    while (days >= days_in_month(yy, mm)) {
        days -= days_in_month(yy, mm);
        mm++;
    }
    *y = yy;
    *m = mm;
    *d = (int)days + 1;
}

static PyObject *
utc_text(int y, int mo, int d, int hh, int mi, int ss, int shift_minutes)
{
    long long t = ((ordinal(y, mo, d) * 24 + hh) * 60 + mi) + shift_minutes;
    long long days = t / 1440, rem = t % 1440;
    if (rem < 0) {
        rem += 1440;
        days -= 1;
    }
    from_ordinal(days, &y, &mo, &d);
    /* "YYYY-MM-DD hh:mm:ss.000000" (snprintf cost more than the rest of a row) */
    char out[26] = "0000-00-00 00:00:00.000000";
    int hh2 = (int)(rem / 60), mi2 = (int)(rem % 60);
    out[0] = (char)('0' + y / 1000);
    out[1] = (char)('0' + y / 100 % 10);
    out[2] = (char)('0' + y / 10 % 10);
    out[3] = (char)('0' + y % 10);
    const int two[5] = {mo, d, hh2, mi2, ss};
    const int at[5] = {5, 8, 11, 14, 17};
    for (int k = 0; k < 5; k++) {
        out[at[k]] = (char)('0' + two[k] / 10);
        out[at[k] + 1] = (char)('0' + two[k] % 10);
    }
    return ascii_str(out, 26);
}

/* str(n) of a non-negative number */
static PyObject *
decimal(long long n)
{
    char out[24];
    int k = 24;
    do {
        out[--k] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    return ascii_str(out + k, 24 - k);
}

/* headers._date_ascii + store datetime text: the common layout
 * "[Ddd, ]D[D] Mon YYYY hh:mm:ss +zzzz"; NULL without an error set when
 * Python must decide (any other text, or a date datetime would refuse). */
static PyObject *
date_fast(const char *v, Py_ssize_t n)
{
    if (n < 25 || n > 31)
        return NULL;
    const char *e = v + n; /* e[-k] is value[-k] */
    if (e[-6] != ' ' || e[-15] != ' ' || e[-20] != ' ' || e[-24] != ' ' || e[-12] != ':' ||
        e[-9] != ':' || (e[-5] != '+' && e[-5] != '-'))
        return NULL;
    const char *day = v;
    Py_ssize_t dn = n - 24;
    if (dn > 2) {
        if (day[3] != ',' || day[4] != ' ')
            return NULL;
        for (int k = 0; k < 3; k++) {
            unsigned char c = (unsigned char)day[k];
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
                return NULL;
        }
        day += 5;
        dn -= 5;
    }
    if (dn < 1 || dn > 2 || !all_digits(day, dn))
        return NULL;
    if (!all_digits(e - 19, 4) || !all_digits(e - 14, 2) || !all_digits(e - 11, 2) ||
        !all_digits(e - 8, 2) || !all_digits(e - 4, 4))
        return NULL;
    int month = 0;
    for (int k = 0; k < 12; k++)
        if (lower((unsigned char)e[-23]) == MONTHS[k][0] &&
            lower((unsigned char)e[-22]) == MONTHS[k][1] &&
            lower((unsigned char)e[-21]) == MONTHS[k][2])
            month = k + 1;
    int y = num(e - 19, 4), d = num(day, (int)dn);
    int hh = num(e - 14, 2), mi = num(e - 11, 2), ss = num(e - 8, 2);
    int zone = num(e - 4, 2) * 60 + num(e - 2, 2);
    if (month == 0 || hh > 23 || mi > 59 || ss > 59)
        return NULL;
    /* datetime's own limits (day of month, year 1..9999 after the shift) */
    if (y < 2 || y > 9998 || d < 1 || d > days_in_month(y, month))
        return NULL;
    return utc_text(y, month, d, hh, mi, ss, e[-5] == '+' ? -zone : zone);
}

/* imap_fetch.parse_internaldate's fixed UTC form + datetime text */
static PyObject *
idate_fast(const char *v, Py_ssize_t n)
{
    static const char *const MON[12] = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    };
    if (n != 26 || memcmp(v + 20, " +0000", 6) != 0 || v[2] != '-' || v[6] != '-' ||
        v[11] != ' ' || v[14] != ':' || v[17] != ':')
        return NULL;
    if (!all_digits(v + 7, 4) || !all_digits(v + 12, 2) || !all_digits(v + 15, 2) ||
        !all_digits(v + 18, 2) || !is_digit((unsigned char)v[1]) ||
        !(is_digit((unsigned char)v[0]) || v[0] == ' '))
        return NULL;
    int month = 0;
    for (int k = 0; k < 12; k++)
        if (memcmp(v + 3, MON[k], 3) == 0)
            month = k + 1;
    int y = num(v + 7, 4), d = (v[0] == ' ' ? 0 : (v[0] - '0') * 10) + (v[1] - '0');
    int hh = num(v + 12, 2), mi = num(v + 15, 2), ss = num(v + 18, 2);
    if (month == 0 || y < 1 || d < 1 || d > days_in_month(y, month) || hh > 23 || mi > 59 ||
        ss > 59)
        return NULL;
    return utc_text(y, month, d, hh, mi, ss, 0);
}

/* --------------------------------------------------------- text columns */

/* s.strip() bounds */
static void
strip(const char **s, Py_ssize_t *n)
{
    while (*n > 0 && is_space((unsigned char)(*s)[0])) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_space((unsigned char)(*s)[*n - 1]))
        (*n)--;
}

/* p.strip().lower()[:40], or for Auto-Submitted its first ";" part stripped */
static PyObject *
keyword(const char *s, Py_ssize_t n, int first_part)
{
    strip(&s, &n);
    if (first_part) {
        const char *semi = memchr(s, ';', (size_t)n);
        if (semi != NULL)
            n = semi - s;
        strip(&s, &n);
    }
    char out[40];
    Py_ssize_t m = n < 40 ? n : 40;
    for (Py_ssize_t k = 0; k < m; k++)
        out[k] = (char)lower((unsigned char)s[k]);
    return ascii_str(out, m);
}

/* decode_words(value)[:limit]: in C without encoded words, else Python */
static PyObject *
words(const char *s, Py_ssize_t n, Py_ssize_t limit, int *failed)
{
    if (contains(s, n, "=?")) {
        PyObject *r = call1(cb_words, ascii_str(s, n));
        if (r == NULL) {
            if (PyErr_ExceptionMatches(PyExc_MemoryError))
                return NULL;
            PyErr_Clear();
            *failed = 1;
            return NULL;
        }
        return cut(r, limit);
    }
    Buf b;
    buf_init(&b);
    PyObject *r = buf_collapse(&b, s, n) < 0 ? NULL : buf_str(&b, limit);
    buf_free(&b);
    return r;
}

/* ------------------------------------------------------------ one block */

#define ROW_LEN 23

static int
is_ascii(const char *s, Py_ssize_t n)
{
    Py_ssize_t k = 0;
    for (; k + 8 <= n; k += 8) {
        unsigned long long w;
        memcpy(&w, s + k, 8);
        if (w & 0x8080808080808080ULL)
            return 0;
    }
    for (; k < n; k++)
        if ((unsigned char)s[k] >= 0x80)
            return 0;
    return 1;
}

/* The row of one header block, or Py_None when Python must write it (the
 * caller then calls cb_message), or NULL on error. ``head`` holds account,
 * folder and uid; the others are the row's last columns. */
static PyObject *
encode_block(const char *raw, Py_ssize_t rawlen, PyObject *account, PyObject *folder,
             PyObject *uid, PyObject *flags, PyObject *idate, PyObject *gm_msgid,
             PyObject *gm_thrid, PyObject *sent)
{
    if (rawlen > MAX_HEADER_BYTES)
        Py_RETURN_NONE;
    if (!is_ascii(raw, rawlen))
        Py_RETURN_NONE; /* raw 8-bit text: the full parser */
    const char *t = raw;
    Py_ssize_t n = rawlen;
    char *copy = NULL;
    if (n == 0 || t[n - 1] != '\n') {
        copy = PyMem_Malloc((size_t)n + 1);
        if (copy == NULL)
            return PyErr_NoMemory();
        memcpy(copy, raw, (size_t)n);
        copy[n] = '\n';
        t = copy;
        n++;
    }
    Fields f;
    PyObject *row = NULL, *cols[ROW_LEN] = {NULL};
    const char *errors[11];
    int nerr = 0;
    Buf b;
    buf_init(&b);
    if (!split_fields(t, n, &f))
        goto python;

    /* message-id: none means a synthetic id, which Python computes */
    if (f.count[F_MESSAGE_ID] == 0)
        goto python;
    int r = msgid(f.start[F_MESSAGE_ID][0], f.len[F_MESSAGE_ID][0], &b);
    if (r < 0)
        goto error;
    if (r == 0)
        goto python;
    cols[3] = buf_str(&b, 500);
    if (cols[3] == NULL)
        goto error;

    /* date */
    if (f.count[F_DATE] == 0) {
        cols[4] = Py_NewRef(Py_None);
    } else {
        const char *v = f.start[F_DATE][0];
        Py_ssize_t vn = f.len[F_DATE][0];
        cols[4] = date_fast(v, vn);
        if (cols[4] == NULL) {
            if (PyErr_Occurred())
                goto error;
            cols[4] = call1(cb_date, ascii_str(v, vn));
            if (cols[4] == NULL) {
                if (PyErr_ExceptionMatches(PyExc_MemoryError))
                    goto error;
                PyErr_Clear();
                errors[nerr++] = "date";
                cols[4] = Py_NewRef(Py_None);
            }
        }
    }
    cols[5] = Py_NewRef(idate);

    /* addresses */
    static const int addr_fields[4] = {F_FROM, F_TO, F_CC, F_BCC};
    for (int a = 0; a < 4; a++) {
        int failed = 0;
        cols[6 + a] = addresses_json(&f, addr_fields[a], &failed);
        if (cols[6 + a] == NULL)
            goto error;
        if (failed)
            errors[nerr++] = FIELD_NAMES[addr_fields[a]];
    }

    /* in-reply-to */
    cols[10] = Py_NewRef(Py_None);
    if (f.count[F_IN_REPLY_TO]) {
        r = msgid(f.start[F_IN_REPLY_TO][0], f.len[F_IN_REPLY_TO][0], &b);
        if (r < 0)
            goto error;
        if (r > 0) {
            Py_SETREF(cols[10], buf_str(&b, 500));
            if (cols[10] == NULL)
                goto error;
        }
    }

    /* references */
    cols[11] = f.count[F_REFERENCES]
                   ? references_json(f.start[F_REFERENCES][0], f.len[F_REFERENCES][0])
                   : Py_NewRef(empty_list_json);
    if (cols[11] == NULL)
        goto error;

    /* subject */
    cols[12] = NULL;
    if (f.count[F_SUBJECT] && f.len[F_SUBJECT][0]) {
        int failed = 0;
        cols[12] = words(f.start[F_SUBJECT][0], f.len[F_SUBJECT][0], 500, &failed);
        if (failed)
            errors[nerr++] = "subject";
        else if (cols[12] == NULL)
            goto error;
    }
    if (cols[12] == NULL)
        cols[12] = PyUnicode_New(0, 127);
    if (cols[12] == NULL)
        goto error;

    /* lists */
    cols[13] = Py_NewRef(Py_None);
    cols[14] = Py_NewRef(Py_None);
    cols[15] = Py_NewRef(Py_False);
    if (f.count[F_LIST_ID] || f.count[F_LIST_POST] || f.count[F_LIST_UNSUBSCRIBE]) {
        int failed = 0;
        PyObject *lid = NULL, *lpost = NULL;
        if (f.count[F_LIST_ID] && f.len[F_LIST_ID][0]) {
            lid = words(f.start[F_LIST_ID][0], f.len[F_LIST_ID][0], 300, &failed);
            if (lid == NULL && !failed)
                goto error;
        }
        if (!failed && f.count[F_LIST_POST] && f.len[F_LIST_POST][0]) {
            const char *s = f.start[F_LIST_POST][0];
            Py_ssize_t sn = f.len[F_LIST_POST][0];
            strip(&s, &sn);
            lpost = ascii_str(s, sn < 300 ? sn : 300);
            if (lpost == NULL) {
                Py_XDECREF(lid);
                goto error;
            }
        }
        if (failed) {
            errors[nerr++] = "list";
        } else {
            if (lid != NULL)
                Py_SETREF(cols[13], lid);
            if (lpost != NULL)
                Py_SETREF(cols[14], lpost);
            Py_SETREF(cols[15], Py_NewRef(f.count[F_LIST_UNSUBSCRIBE] ? Py_True : Py_False));
        }
    }

    /* bulk markers */
    cols[16] = Py_NewRef(Py_None);
    cols[17] = Py_NewRef(Py_None);
    if (f.count[F_PRECEDENCE] && f.len[F_PRECEDENCE][0]) {
        Py_SETREF(cols[16], keyword(f.start[F_PRECEDENCE][0], f.len[F_PRECEDENCE][0], 0));
        if (cols[16] == NULL)
            goto error;
    }
    if (f.count[F_AUTO_SUBMITTED] && f.len[F_AUTO_SUBMITTED][0]) {
        Py_SETREF(cols[17],
                  keyword(f.start[F_AUTO_SUBMITTED][0], f.len[F_AUTO_SUBMITTED][0], 1));
        if (cols[17] == NULL)
            goto error;
    }

    cols[0] = Py_NewRef(account);
    cols[1] = Py_NewRef(folder);
    cols[2] = Py_NewRef(uid);
    cols[18] = Py_NewRef(flags);
    cols[19] = Py_NewRef(gm_msgid);
    cols[20] = Py_NewRef(gm_thrid);
    cols[21] = Py_NewRef(sent);
    b.len = 0;
    for (int k = 0; k < nerr; k++) {
        if ((k && buf_putc(&b, ',') < 0) || buf_put(&b, errors[k], strlen(errors[k])) < 0)
            goto error;
    }
    cols[22] = buf_str(&b, PY_SSIZE_T_MAX);
    if (cols[22] == NULL)
        goto error;

    row = PyTuple_New(ROW_LEN);
    if (row == NULL)
        goto error;
    for (int k = 0; k < ROW_LEN; k++) {
        PyTuple_SET_ITEM(row, k, cols[k]);
        cols[k] = NULL;
    }
    goto done;
python:
    row = Py_NewRef(Py_None);
    goto done;
error:
    row = NULL;
done:
    for (int k = 0; k < ROW_LEN; k++)
        Py_XDECREF(cols[k]);
    buf_free(&b);
    if (copy != NULL)
        PyMem_Free(copy);
    return row;
}

/* ---------------------------------------------------------- FETCH stream */

static int
expect(const char *p, Py_ssize_t *i, Py_ssize_t end, const char *lit)
{
    Py_ssize_t n = (Py_ssize_t)strlen(lit);
    if (*i + n > end || memcmp(p + *i, lit, (size_t)n) != 0)
        return 0;
    *i += n;
    return 1;
}

static int
number(const char *p, Py_ssize_t *i, Py_ssize_t end, long long *out)
{
    Py_ssize_t k = *i;
    long long v = 0;
    while (k < end && is_digit((unsigned char)p[k])) {
        if (k - *i >= 15)
            return 0; /* far beyond any UID or literal: the general path */
        v = v * 10 + (p[k] - '0');
        k++;
    }
    if (k == *i)
        return 0;
    *i = k;
    *out = v;
    return 1;
}

static int
until(const char *p, Py_ssize_t *i, Py_ssize_t end, char stop)
{
    const char *q = memchr(p + *i, stop, (size_t)(end - *i));
    if (q == NULL)
        return 0;
    *i = q - p;
    return 1;
}

static PyObject *
flags_text(const char *s, Py_ssize_t n)
{
    PyObject *key = PyBytes_FromStringAndSize(s, n);
    if (key == NULL)
        return NULL;
    PyObject *hit = PyDict_GetItemWithError(flags_cache, key);
    if (hit != NULL) {
        Py_DECREF(key);
        return Py_NewRef(hit);
    }
    if (PyErr_Occurred()) {
        Py_DECREF(key);
        return NULL;
    }
    PyObject *text = PyObject_CallOneArg(cb_flags, key);
    if (text != NULL && PyDict_GET_SIZE(flags_cache) < FLAGS_CACHE_MAX &&
        PyDict_SetItem(flags_cache, key, text) < 0)
        Py_CLEAR(text);
    Py_DECREF(key);
    return text;
}

static int
names_an_item(const char *s, Py_ssize_t n)
{
    static const char *const items[] = {"UID", "FLAGS", "INTERNALDATE", "MODSEQ", "X-GM-",
                                         "BODY["};
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!strchr("UFIMXB", s[i]) || s[i] == 0)
            continue;
        for (int k = 0; k < 6; k++) {
            Py_ssize_t m = (Py_ssize_t)strlen(items[k]);
            if (i + m <= n && memcmp(s + i, items[k], (size_t)m) == 0)
                return 1;
        }
    }
    return 0;
}

enum { ST_OTHER = 0, ST_NEED_MORE = 1, ST_LIMIT = 2 };

static int
check_configured(void)
{
    if (cb_message == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_imapfast.configure() was not called");
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(scan_rows_doc,
"scan_rows(buf, pos, min_uid, limit, account, folder, sent)\n"
"--\n\n"
"Rows of the header FETCH responses in buf[pos:] that have the usual shape,\n"
"at most ``limit``; messages with a UID below ``min_uid`` are skipped.\n"
"Returns (rows, pos, status, max_uid): status 0 when the next response is\n"
"of another shape (read it the general way), 1 when buf ends inside a\n"
"response (read more), 2 when ``limit`` rows were made.");

static PyObject *
scan_rows(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos, limit;
    long long min_uid;
    PyObject *account, *folder, *sent;
    if (!PyArg_ParseTuple(args, "y*nLnUUO", &view, &pos, &min_uid, &limit, &account, &folder,
                          &sent))
        return NULL;
    if (check_configured() < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const char *p = view.buf;
    Py_ssize_t end = view.len;
    long long max_uid = 0;
    int status = ST_LIMIT;
    PyObject *rows = PyList_New(0);
    if (rows == NULL || pos < 0 || pos > end) {
        if (rows != NULL)
            PyErr_SetString(PyExc_ValueError, "pos outside the buffer");
        goto fail;
    }
    PyObject *sent_obj = PyObject_IsTrue(sent) ? Py_True : Py_False;
    while (PyList_GET_SIZE(rows) < limit) {
        const char *nl = memchr(p + pos, '\n', (size_t)(end - pos));
        if (nl == NULL) {
            status = ST_NEED_MORE;
            break;
        }
        Py_ssize_t eol = nl - p, i = pos;
        long long seq, uid = -1, size = -1, gm_msgid = -1, gm_thrid = -1, modseq;
        /* FLAGS and INTERNALDATE text (empty when the server sent none) */
        Py_ssize_t fs = 0, fe = 0, ds = 0, de = 0;
        int have_flags = 0, have_date = 0;
        if (!expect(p, &i, eol, "* ") || !number(p, &i, eol, &seq) ||
            !expect(p, &i, eol, " FETCH ("))
            goto other;
        /* the items in any order (Gmail puts its own first), the header last */
        for (;;) {
            if (expect(p, &i, eol, "UID ")) {
                if (uid >= 0 || !number(p, &i, eol, &uid))
                    goto other;
            } else if (expect(p, &i, eol, "FLAGS (")) {
                fs = i;
                if (have_flags || !until(p, &i, eol, ')'))
                    goto other;
                fe = i++;
                have_flags = 1;
            } else if (expect(p, &i, eol, "INTERNALDATE \"")) {
                ds = i;
                if (have_date || !until(p, &i, eol, '"'))
                    goto other;
                de = i++;
                have_date = 1;
            } else if (expect(p, &i, eol, "MODSEQ (")) {
                if (!number(p, &i, eol, &modseq) || !expect(p, &i, eol, ")"))
                    goto other;
            } else if (expect(p, &i, eol, "X-GM-MSGID ")) {
                if (gm_msgid >= 0 || !number(p, &i, eol, &gm_msgid))
                    goto other;
            } else if (expect(p, &i, eol, "X-GM-THRID ")) {
                if (gm_thrid >= 0 || !number(p, &i, eol, &gm_thrid))
                    goto other;
            } else if (expect(p, &i, eol, "BODY[HEADER.FIELDS (")) {
                if (!until(p, &i, eol, ')') || !expect(p, &i, eol, ")] {") ||
                    !number(p, &i, eol, &size) || !expect(p, &i, eol, "}"))
                    goto other;
                break;
            } else {
                goto other;
            }
            if (!expect(p, &i, eol, " "))
                goto other;
        }
        if (uid < 0 || !(i == eol || (i + 1 == eol && p[i] == '\r')))
            goto other;
        /* the general reader searches the line for each item: text inside
         * the flags or the date that names an item would read otherwise */
        if (names_an_item(p + fs, fe - fs) || names_an_item(p + ds, de - ds))
            goto other;
        Py_ssize_t lit = eol + 1;
        if (lit + size + 3 > end) {
            status = ST_NEED_MORE;
            break;
        }
        if (memcmp(p + lit + size, ")\r\n", 3) != 0)
            goto other;
        pos = lit + (Py_ssize_t)size + 3;
        if (uid < min_uid)
            continue; /* "N:*" always includes the highest UID */
        if (uid > max_uid)
            max_uid = uid;

        PyObject *flags = flags_text(p + fs, fe - fs);
        if (flags == NULL)
            goto fail;
        PyObject *idate = have_date ? idate_fast(p + ds, de - ds) : Py_NewRef(Py_None);
        if (idate == NULL && !PyErr_Occurred())
            idate = call1(cb_idate, PyBytes_FromStringAndSize(p + ds, de - ds));
        PyObject *msgid = gm_msgid >= 0 ? PyLong_FromLongLong(gm_msgid) : Py_NewRef(Py_None);
        PyObject *thrid = gm_thrid >= 0 ? PyLong_FromLongLong(gm_thrid) : Py_NewRef(Py_None);
        PyObject *uid_text = (idate && msgid && thrid) ? decimal(uid) : NULL;
        PyObject *row = uid_text ? encode_block(p + lit, (Py_ssize_t)size, account, folder,
                                                uid_text, flags, idate, msgid, thrid, sent_obj)
                                 : NULL;
        if (row == Py_None) {
            /* Python writes it, from what the general reader would give */
            Py_DECREF(row);
            PyObject *header = PyBytes_FromStringAndSize(p + lit, (Py_ssize_t)size);
            PyObject *fl = PyBytes_FromStringAndSize(p + fs, fe - fs);
            PyObject *id = have_date ? PyBytes_FromStringAndSize(p + ds, de - ds)
                                     : Py_NewRef(Py_None);
            row = (header && fl && id)
                      ? PyObject_CallFunction(cb_message, "LOOOOOOOO", uid, fl, id, header,
                                              account, folder, sent_obj, msgid, thrid)
                      : NULL;
            Py_XDECREF(header);
            Py_XDECREF(fl);
            Py_XDECREF(id);
        }
        Py_XDECREF(uid_text);
        Py_XDECREF(idate);
        Py_XDECREF(msgid);
        Py_XDECREF(thrid);
        Py_DECREF(flags);
        if (row == NULL)
            goto fail;
        int ok = PyList_Append(rows, row);
        Py_DECREF(row);
        if (ok < 0)
            goto fail;
        continue;
    other:
        status = ST_OTHER;
        break;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("NniL", rows, pos, status, max_uid);
fail:
    Py_XDECREF(rows);
    PyBuffer_Release(&view);
    return NULL;
}

PyDoc_STRVAR(encode_header_doc,
"encode_header(raw, account, folder, uid, flags, internal_date, sent)\n"
"--\n\n"
"The row of one header block (flags and internal_date already as columns),\n"
"or None when the Python path must write it.");

static PyObject *
encode_header(PyObject *self, PyObject *args)
{
    Py_buffer view;
    PyObject *account, *folder, *uid, *flags, *idate, *sent;
    if (!PyArg_ParseTuple(args, "y*UUUUOO", &view, &account, &folder, &uid, &flags, &idate,
                          &sent))
        return NULL;
    PyObject *r = NULL;
    if (check_configured() == 0)
        r = encode_block(view.buf, view.len, account, folder, uid, flags, idate, Py_None,
                         Py_None, PyObject_IsTrue(sent) ? Py_True : Py_False);
    PyBuffer_Release(&view);
    return r;
}

PyDoc_STRVAR(configure_doc,
"configure(addresses, name, date, words, flags, internal_date, message)\n"
"--\n\n"
"Register the Python fallbacks (see connectors/imap_rows.py).");

static PyObject *
configure(PyObject *self, PyObject *args)
{
    PyObject *fns[7];
    if (!PyArg_ParseTuple(args, "OOOOOOO", &fns[0], &fns[1], &fns[2], &fns[3], &fns[4],
                          &fns[5], &fns[6]))
        return NULL;
    for (int k = 0; k < 7; k++)
        if (!PyCallable_Check(fns[k])) {
            PyErr_SetString(PyExc_TypeError, "configure() takes callables");
            return NULL;
        }
    PyObject **slots[7] = {&cb_addresses, &cb_name,  &cb_date,   &cb_words,
                           &cb_flags,     &cb_idate, &cb_message};
    for (int k = 0; k < 7; k++)
        Py_XSETREF(*slots[k], Py_NewRef(fns[k]));
    PyDict_Clear(addr_header_cache);
    PyDict_Clear(mailbox_cache);
    PyDict_Clear(flags_cache);
    Py_RETURN_NONE;
}

static PyObject *
clear_caches(PyObject *self, PyObject *unused)
{
    PyDict_Clear(addr_header_cache);
    PyDict_Clear(mailbox_cache);
    PyDict_Clear(flags_cache);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"scan_rows", scan_rows, METH_VARARGS, scan_rows_doc},
    {"encode_header", encode_header, METH_VARARGS, encode_header_doc},
    {"configure", configure, METH_VARARGS, configure_doc},
    {"clear_caches", clear_caches, METH_NOARGS, "Empty the caches (tests)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "kithkeep.connectors._imapfast",
    "The compiled bulk path of the IMAP connector (see connectors/imap_rows.py).", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__imapfast(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    addr_header_cache = PyDict_New();
    mailbox_cache = PyDict_New();
    flags_cache = PyDict_New();
    empty_list_json = PyUnicode_FromString("[]");
    if (!addr_header_cache || !mailbox_cache || !flags_cache || !empty_list_json ||
        PyModule_AddIntConstant(m, "OTHER", ST_OTHER) < 0 ||
        PyModule_AddIntConstant(m, "NEED_MORE", ST_NEED_MORE) < 0 ||
        PyModule_AddIntConstant(m, "LIMIT", ST_LIMIT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
