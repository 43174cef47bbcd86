/*
 * zq_shell - `zq-ctl shell` (see zq_shell.h): a small Python-flavoured statement parser
 * (pure, unit tested), and the loop that runs statements against the broker.
 *
 * The parser is a lexer (identifiers, numbers, 'strings', punctuation) feeding a
 * recursive-descent reader of Python literals and of the few statement shapes the shell
 * knows; anything else is a clear "invalid syntax at column N" error, never a guess.
 */
#include "config.h"
#include "zq_shell.h"
#include "zq_ctl.h"
#include "zq_log.h"
#include "zq_proto.h"
#include "zq_task_int.h"
#include "zq_time.h"
#include "zq_util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#ifdef HAVE_LIBEDIT
#include <editline/readline.h>
#endif

#define S_DEPTH_MAX 64        /* nesting of literals */
#define S_LINE_MAX 65536      /* longest statement read from a non-terminal */
#define S_HISTORY_MAX 1000    /* lines kept in ~/.zq_history */
#define S_TASKS_REFRESH 2.0   /* seconds between refreshes of the known task names */

/* ---------------------------------------------------------------------------------------
 * Lexer
 */
typedef enum { T_END = 0, T_IDENT, T_NUM, T_STR, T_PUNCT } s_tkind_t;

typedef struct {
    s_tkind_t kind;
    size_t pos;  /* column (0-based) in the source */
    size_t len;  /* T_IDENT: length in the source */
    double num;  /* T_NUM */
    char *str;   /* T_STR: decoded, owned */
    char c;      /* T_PUNCT */
} s_tok_t;

typedef struct {
    const char *src;
    s_tok_t *v;
    size_t n, cap, i;
} s_lex_t;

static void s_lex_free(s_lex_t *lx)
{
    for (size_t k = 0; k < lx->n; k++)
        free(lx->v[k].str);
    free(lx->v);
    memset(lx, 0, sizeof *lx);
}

static s_tok_t *s_push(s_lex_t *lx, s_tkind_t kind, size_t pos)
{
    if (lx->n == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 32;
        s_tok_t *v = realloc(lx->v, cap * sizeof *v);
        if (!v)
            return NULL;
        lx->v = v;
        lx->cap = cap;
    }
    s_tok_t *t = &lx->v[lx->n++];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->pos = pos;
    return t;
}

static int s_is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int s_is_ident(char c)
{
    return s_is_ident_start(c) || (c >= '0' && c <= '9');
}

static int s_hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                        : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                               : -1;
}

static void s_utf8(zq_sb_t *sb, unsigned long cp)
{
    if (cp < 0x80) {
        zq_sb_putc(sb, (char)cp);
    } else if (cp < 0x800) {
        zq_sb_putc(sb, (char)(0xC0 | (cp >> 6)));
        zq_sb_putc(sb, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        zq_sb_putc(sb, (char)(0xE0 | (cp >> 12)));
        zq_sb_putc(sb, (char)(0x80 | ((cp >> 6) & 0x3F)));
        zq_sb_putc(sb, (char)(0x80 | (cp & 0x3F)));
    } else {
        zq_sb_putc(sb, (char)(0xF0 | (cp >> 18)));
        zq_sb_putc(sb, (char)(0x80 | ((cp >> 12) & 0x3F)));
        zq_sb_putc(sb, (char)(0x80 | ((cp >> 6) & 0x3F)));
        zq_sb_putc(sb, (char)(0x80 | (cp & 0x3F)));
    }
}

/* A quoted string at s[*i] (the quote); Python's escapes. */
static int s_lex_string(s_lex_t *lx, size_t *i, char *err, size_t errlen)
{
    const char *s = lx->src;
    size_t start = *i;
    char q = s[(*i)++];
    zq_sb_t sb;
    zq_sb_init(&sb);
    for (;;) {
        char c = s[*i];
        if (!c) {
            zq_sb_free(&sb);
            zq_errf(err, errlen, "invalid syntax at column %zu: unterminated string", start + 1);
            return ZQ_EINVAL;
        }
        (*i)++;
        if (c == q)
            break;
        if (c != '\\') {
            zq_sb_putc(&sb, c);
            continue;
        }
        char e = s[(*i)++];
        int digits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
        if (digits) {
            unsigned long cp = 0;
            for (int k = 0; k < digits; k++) {
                int h = s_hex(s[*i]);
                if (h < 0) {
                    zq_sb_free(&sb);
                    zq_errf(err, errlen, "invalid syntax at column %zu: bad \\%c escape", *i + 1,
                           e);
                    return ZQ_EINVAL;
                }
                cp = cp * 16 + (unsigned long)h;
                (*i)++;
            }
            if (cp > 0x10FFFF || cp == 0) {
                zq_sb_free(&sb);
                zq_errf(err, errlen, "invalid syntax at column %zu: bad \\%c escape", *i + 1,
                       e);
                return ZQ_EINVAL;
            }
            s_utf8(&sb, cp);
            continue;
        }
        switch (e) {
        case 'n': zq_sb_putc(&sb, '\n'); break;
        case 't': zq_sb_putc(&sb, '\t'); break;
        case 'r': zq_sb_putc(&sb, '\r'); break;
        case '\\': zq_sb_putc(&sb, '\\'); break;
        case '\'': zq_sb_putc(&sb, '\''); break;
        case '"': zq_sb_putc(&sb, '"'); break;
        case '\0':
            (*i)--;
            break; /* the "unterminated" error comes next turn */
        default:   /* Python keeps unknown escapes as they are */
            zq_sb_putc(&sb, '\\');
            zq_sb_putc(&sb, e);
        }
    }
    s_tok_t *t = s_push(lx, T_STR, start);
    if (!t || sb.oom) {
        zq_sb_free(&sb);
        zq_errf(err, errlen, "out of memory");
        return ZQ_ENOMEM;
    }
    t->str = zq_sb_steal(&sb, NULL);
    return t->str ? ZQ_OK : ZQ_ENOMEM;
}

static int s_lex(s_lex_t *lx, const char *src, char *err, size_t errlen)
{
    memset(lx, 0, sizeof *lx);
    lx->src = src;
    size_t i = 0;
    for (;;) {
        while (src[i] == ' ' || src[i] == '\t' || src[i] == '\r' || src[i] == '\n')
            i++;
        char c = src[i];
        if (!c || c == '#')
            break;
        if (s_is_ident_start(c)) {
            s_tok_t *t = s_push(lx, T_IDENT, i);
            if (!t)
                goto oom;
            while (s_is_ident(src[i]))
                i++;
            t->len = i - t->pos;
        } else if ((c >= '0' && c <= '9') || (c == '.' && src[i + 1] >= '0' && src[i + 1] <= '9')) {
            char *end;
            double v = strtod(src + i, &end);
            if (end == src + i || s_is_ident(*end) || !isfinite(v)) {
                zq_errf(err, errlen, "invalid syntax at column %zu: bad number", i + 1);
                return ZQ_EINVAL;
            }
            s_tok_t *t = s_push(lx, T_NUM, i);
            if (!t)
                goto oom;
            t->num = v;
            i = (size_t)(end - src);
        } else if (c == '\'' || c == '"') {
            int rc = s_lex_string(lx, &i, err, errlen);
            if (rc != ZQ_OK)
                return rc;
        } else if (strchr("()[]{},:=.-+", c)) {
            s_tok_t *t = s_push(lx, T_PUNCT, i++);
            if (!t)
                goto oom;
            t->c = c;
        } else {
            zq_errf(err, errlen, "invalid syntax at column %zu: unexpected character '%c'", i + 1,
                   c);
            return ZQ_EINVAL;
        }
    }
    if (s_push(lx, T_END, i))
        return ZQ_OK;
oom:
    zq_errf(err, errlen, "out of memory");
    return ZQ_ENOMEM;
}

static const s_tok_t *s_peek(const s_lex_t *lx, size_t ahead)
{
    size_t k = lx->i + ahead;
    return &lx->v[k < lx->n ? k : lx->n - 1];
}

static int s_is_punct(const s_tok_t *t, char c)
{
    return t->kind == T_PUNCT && t->c == c;
}

static int s_is_word(const s_lex_t *lx, const s_tok_t *t, const char *w)
{
    return t->kind == T_IDENT && t->len == strlen(w) && !strncmp(lx->src + t->pos, w, t->len);
}

/* "unexpected ')'" / "unexpected end of line" at the token's column */
static int s_unexpected(const s_lex_t *lx, const s_tok_t *t, const char *want, char *err,
                        size_t errlen)
{
    char what[64];
    switch (t->kind) {
    case T_END: snprintf(what, sizeof what, "end of line"); break;
    case T_PUNCT: snprintf(what, sizeof what, "'%c'", t->c); break;
    case T_IDENT: snprintf(what, sizeof what, "'%.*s'", (int)(t->len < 40 ? t->len : 40),
                           lx->src + t->pos); break;
    case T_NUM: snprintf(what, sizeof what, "number"); break;
    case T_STR: snprintf(what, sizeof what, "string"); break;
    }
    zq_errf(err, errlen, "invalid syntax at column %zu: unexpected %s%s%s", t->pos + 1, what,
           want ? ", expected " : "", want ? want : "");
    return ZQ_EINVAL;
}

/* ---------------------------------------------------------------------------------------
 * Literals
 */
static cJSON *s_value(s_lex_t *lx, int depth, char *err, size_t errlen);

/* Items up to `close`, with an optional trailing comma. dict: key ':' value pairs. */
static cJSON *s_items(s_lex_t *lx, char close, int dict, int depth, int *count, int *comma,
                      char *err, size_t errlen)
{
    cJSON *out = dict ? cJSON_CreateObject() : cJSON_CreateArray();
    *count = 0;
    *comma = 0;
    while (out) {
        const s_tok_t *t = s_peek(lx, 0);
        if (s_is_punct(t, close)) {
            lx->i++;
            return out;
        }
        if (*count && !*comma) {
            char want[16];
            snprintf(want, sizeof want, "',' or '%c'", close);
            s_unexpected(lx, t, want, err, errlen);
            break;
        }
        cJSON *key = NULL;
        if (dict) {
            key = s_value(lx, depth + 1, err, errlen);
            if (!key)
                break;
            if (!cJSON_IsString(key)) {
                zq_errf(err, errlen, "invalid syntax at column %zu: dict keys must be strings "
                       "(JSON objects)", t->pos + 1);
                cJSON_Delete(key);
                break;
            }
            if (!s_is_punct(s_peek(lx, 0), ':')) {
                s_unexpected(lx, s_peek(lx, 0), "':'", err, errlen);
                cJSON_Delete(key);
                break;
            }
            lx->i++;
        }
        cJSON *v = s_value(lx, depth + 1, err, errlen);
        if (!v) {
            cJSON_Delete(key);
            break;
        }
        int ok;
        if (dict) {
            cJSON_DeleteItemFromObjectCaseSensitive(out, key->valuestring); /* last one wins */
            ok = cJSON_AddItemToObject(out, key->valuestring, v);
        } else {
            ok = cJSON_AddItemToArray(out, v);
        }
        cJSON_Delete(key);
        if (!ok) {
            cJSON_Delete(v);
            zq_errf(err, errlen, "out of memory");
            break;
        }
        (*count)++;
        *comma = s_is_punct(s_peek(lx, 0), ',');
        if (*comma)
            lx->i++;
    }
    if (!out)
        zq_errf(err, errlen, "out of memory");
    cJSON_Delete(out);
    return NULL;
}

static cJSON *s_value(s_lex_t *lx, int depth, char *err, size_t errlen)
{
    if (depth > S_DEPTH_MAX) {
        zq_errf(err, errlen, "too deeply nested (more than %d levels)", S_DEPTH_MAX);
        return NULL;
    }
    const s_tok_t *t = s_peek(lx, 0);
    cJSON *v = NULL;
    int count, comma;
    switch (t->kind) {
    case T_STR:
        lx->i++;
        v = cJSON_CreateString(t->str);
        break;
    case T_NUM:
        lx->i++;
        v = cJSON_CreateNumber(t->num);
        break;
    case T_IDENT: {
        static const char *const words[] = {"True", "true", "False", "false", "None", "null"};
        size_t k = 0;
        while (k < 6 && !s_is_word(lx, t, words[k]))
            k++;
        if (k == 6) {
            zq_errf(err, errlen, "invalid syntax at column %zu: '%.*s' is not a value (give "
                   "numbers, 'strings', True, False, None, lists or dicts)", t->pos + 1,
                   (int)(t->len < 40 ? t->len : 40), lx->src + t->pos);
            return NULL;
        }
        lx->i++;
        v = k < 2 ? cJSON_CreateTrue() : k < 4 ? cJSON_CreateFalse() : cJSON_CreateNull();
        break;
    }
    case T_PUNCT:
        if ((t->c == '-' || t->c == '+') && s_peek(lx, 1)->kind == T_NUM) {
            double n = s_peek(lx, 1)->num;
            lx->i += 2;
            v = cJSON_CreateNumber(t->c == '-' ? -n : n);
        } else if (t->c == '[') {
            lx->i++;
            return s_items(lx, ']', 0, depth, &count, &comma, err, errlen);
        } else if (t->c == '{') {
            lx->i++;
            return s_items(lx, '}', 1, depth, &count, &comma, err, errlen);
        } else if (t->c == '(') {
            /* (): empty tuple; (v): just v; (v,) and (v, w): tuples, i.e. JSON arrays */
            lx->i++;
            cJSON *a = s_items(lx, ')', 0, depth, &count, &comma, err, errlen);
            if (a && count == 1 && !comma) {
                cJSON *only = cJSON_DetachItemFromArray(a, 0);
                cJSON_Delete(a);
                return only;
            }
            return a;
        } else {
            s_unexpected(lx, t, "a value", err, errlen);
            return NULL;
        }
        break;
    case T_END:
        s_unexpected(lx, t, "a value", err, errlen);
        return NULL;
    }
    if (!v)
        zq_errf(err, errlen, "out of memory");
    return v;
}

cJSON *zq_shell_literal(const char *text, char *err, size_t errlen)
{
    s_lex_t lx;
    if (!text) {
        zq_errf(err, errlen, "no value");
        return NULL;
    }
    if (s_lex(&lx, text, err, errlen) != ZQ_OK) {
        s_lex_free(&lx);
        return NULL;
    }
    cJSON *v = s_value(&lx, 0, err, errlen);
    if (v && s_peek(&lx, 0)->kind != T_END) {
        s_unexpected(&lx, s_peek(&lx, 0), NULL, err, errlen);
        cJSON_Delete(v);
        v = NULL;
    }
    s_lex_free(&lx);
    return v;
}

/* ---------------------------------------------------------------------------------------
 * Statements
 */
void zq_shell_free_argv(char **argv)
{
    for (size_t i = 0; argv && argv[i]; i++)
        free(argv[i]);
    free(argv);
}

void zq_shell_stmt_clear(zq_shell_stmt_t *st)
{
    if (!st)
        return;
    free(st->task);
    cJSON_Delete(st->args);
    cJSON_Delete(st->kwargs);
    free(st->eta);
    free(st->expires);
    free(st->queue);
    free(st->task_id);
    free(st->id);
    zq_shell_free_argv(st->argv);
    memset(st, 0, sizeof *st);
    st->timeout = -1;
}

int zq_shell_split(const char *line, char ***argv_p, int *argc_p, char *err, size_t errlen)
{
    *argv_p = NULL;
    *argc_p = 0;
    size_t cap = 8, n = 0;
    char **argv = calloc(cap, sizeof *argv);
    if (!argv || !(argv[n++] = strdup("zq-ctl")))
        goto oom;
    const char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (!*p)
            break;
        zq_sb_t sb;
        zq_sb_init(&sb);
        char q = 0;
        size_t col = (size_t)(p - line) + 1;
        while (*p && (q || (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n'))) {
            if (!q && (*p == '\'' || *p == '"')) {
                q = *p++;
            } else if (q && *p == q) {
                q = 0;
                p++;
            } else if (*p == '\\' && q != '\'' && p[1]) {
                zq_sb_putc(&sb, p[1]);
                p += 2;
            } else {
                zq_sb_putc(&sb, *p++);
            }
        }
        if (q) {
            zq_sb_free(&sb);
            zq_shell_free_argv(argv);
            zq_errf(err, errlen, "unterminated %c quote starting near column %zu", q, col);
            return ZQ_EINVAL;
        }
        char *word = zq_sb_steal(&sb, NULL);
        if (!word)
            goto oom;
        if (n + 2 > cap) {
            char **v = realloc(argv, cap * 2 * sizeof *v);
            if (!v) {
                free(word);
                goto oom;
            }
            argv = v;
            cap *= 2;
        }
        argv[n++] = word;
        argv[n] = NULL;
    }
    *argv_p = argv;
    *argc_p = (int)n;
    return ZQ_OK;
oom:
    zq_shell_free_argv(argv);
    zq_errf(err, errlen, "out of memory");
    return ZQ_ENOMEM;
}

/* The call's arguments: positional values and keyword=value pairs. */
typedef struct {
    cJSON *pos; /* array */
    cJSON *kw;  /* object */
} s_call_t;

static void s_call_clear(s_call_t *ca)
{
    cJSON_Delete(ca->pos);
    cJSON_Delete(ca->kw);
    memset(ca, 0, sizeof *ca);
}

/* '(' [arg {',' arg} [',']] ')' */
static int s_call_args(s_lex_t *lx, const char *fn, s_call_t *ca, char *err, size_t errlen)
{
    ca->pos = cJSON_CreateArray();
    ca->kw = cJSON_CreateObject();
    if (!ca->pos || !ca->kw) {
        zq_errf(err, errlen, "out of memory");
        return ZQ_ENOMEM;
    }
    if (!s_is_punct(s_peek(lx, 0), '('))
        return s_unexpected(lx, s_peek(lx, 0), "'('", err, errlen);
    lx->i++;
    int first = 1;
    while (!s_is_punct(s_peek(lx, 0), ')')) {
        if (!first) {
            if (!s_is_punct(s_peek(lx, 0), ','))
                return s_unexpected(lx, s_peek(lx, 0), "',' or ')'", err, errlen);
            lx->i++;
            if (s_is_punct(s_peek(lx, 0), ')'))
                break;
        }
        first = 0;
        const s_tok_t *t = s_peek(lx, 0);
        if (t->kind == T_IDENT && s_is_punct(s_peek(lx, 1), '=')) {
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)(t->len < 63 ? t->len : 63), lx->src + t->pos);
            lx->i += 2;
            if (cJSON_GetObjectItemCaseSensitive(ca->kw, key)) {
                zq_errf(err, errlen, "%s() got multiple values for keyword argument '%s'", fn, key);
                return ZQ_EINVAL;
            }
            cJSON *v = s_value(lx, 0, err, errlen);
            if (!v)
                return ZQ_EINVAL;
            if (!cJSON_AddItemToObject(ca->kw, key, v)) {
                cJSON_Delete(v);
                return ZQ_ENOMEM;
            }
            continue;
        }
        if (cJSON_GetArraySize(ca->kw) > 0) {
            zq_errf(err, errlen, "invalid syntax at column %zu: positional argument follows "
                   "keyword argument", t->pos + 1);
            return ZQ_EINVAL;
        }
        cJSON *v = s_value(lx, 0, err, errlen);
        if (!v)
            return ZQ_EINVAL;
        if (!cJSON_AddItemToArray(ca->pos, v)) {
            cJSON_Delete(v);
            return ZQ_ENOMEM;
        }
    }
    lx->i++; /* ')' */
    return ZQ_OK;
}

/* get([timeout]) / get(timeout=S): None waits forever */
static int s_get_args(const s_call_t *ca, double *timeout, char *err, size_t errlen)
{
    const cJSON *t = cJSON_GetArrayItem(ca->pos, 0);
    const cJSON *k;
    cJSON_ArrayForEach(k, ca->kw)
    {
        if (strcmp(k->string, "timeout") != 0) {
            zq_errf(err, errlen, "get() got an unexpected keyword argument '%s'", k->string);
            return ZQ_EINVAL;
        }
        if (t) {
            zq_errf(err, errlen, "get() got multiple values for argument 'timeout'");
            return ZQ_EINVAL;
        }
        t = k;
    }
    if (cJSON_GetArraySize(ca->pos) > 1) {
        zq_errf(err, errlen, "get() takes at most 1 positional argument (timeout)");
        return ZQ_EINVAL;
    }
    *timeout = -1;
    if (!t || cJSON_IsNull(t))
        return ZQ_OK;
    if (!cJSON_IsNumber(t) || !(t->valuedouble >= 0) || !isfinite(t->valuedouble)) {
        zq_errf(err, errlen, "get(): timeout must be a number of seconds >= 0 or None");
        return ZQ_EINVAL;
    }
    *timeout = t->valuedouble;
    return ZQ_OK;
}

static int s_dup(char **dst, const char *s)
{
    free(*dst);
    *dst = strdup(s);
    return *dst ? ZQ_OK : ZQ_ENOMEM;
}

/* apply_async(args=None, kwargs=None, **options) */
static int s_apply_async_args(zq_shell_stmt_t *st, s_call_t *ca, char *err, size_t errlen)
{
    int npos = cJSON_GetArraySize(ca->pos);
    if (npos > 2) {
        zq_errf(err, errlen, "apply_async() takes at most 2 positional arguments (args, kwargs)");
        return ZQ_EINVAL;
    }
    cJSON *args = npos > 0 ? cJSON_DetachItemFromArray(ca->pos, 0) : NULL;
    cJSON *kwargs = npos > 1 ? cJSON_DetachItemFromArray(ca->pos, 0) : NULL;
    int rc = ZQ_OK;
    cJSON *k;
    while (rc == ZQ_OK && (k = ca->kw->child)) {
        cJSON_DetachItemViaPointer(ca->kw, k);
        const char *key = k->string;
        double d;
        if (!strcmp(key, "args") || !strcmp(key, "kwargs")) {
            cJSON **slot = key[0] == 'a' ? &args : &kwargs;
            if (*slot) {
                zq_errf(err, errlen, "apply_async() got multiple values for argument '%s'", key);
                rc = ZQ_EINVAL;
            } else {
                *slot = k;
                k = NULL;
            }
        } else if (!strcmp(key, "countdown")) {
            if (!cJSON_IsNumber(k) || !(k->valuedouble >= 0)) {
                zq_errf(err, errlen, "apply_async(): countdown must be a number of seconds >= 0");
                rc = ZQ_EINVAL;
            } else {
                st->countdown = k->valuedouble;
            }
        } else if (!strcmp(key, "eta")) {
            if (!cJSON_IsString(k) || zq_time_parse(k->valuestring, &d) != ZQ_OK) {
                zq_errf(err, errlen, "apply_async(): eta must be an ISO 8601 date/time string");
                rc = ZQ_EINVAL;
            } else {
                rc = s_dup(&st->eta, k->valuestring);
            }
        } else if (!strcmp(key, "expires")) {
            if (cJSON_IsNumber(k) && k->valuedouble > 0) {
                st->expires_in = k->valuedouble;
            } else if (cJSON_IsString(k) && zq_time_parse(k->valuestring, &d) == ZQ_OK) {
                rc = s_dup(&st->expires, k->valuestring);
            } else {
                zq_errf(err, errlen, "apply_async(): expires must be seconds > 0 or an ISO 8601 "
                       "date/time string");
                rc = ZQ_EINVAL;
            }
        } else if (!strcmp(key, "queue") || !strcmp(key, "task_id")) {
            if (!cJSON_IsString(k) || !zq_valid_token(k->valuestring)) {
                zq_errf(err, errlen, "apply_async(): %s must be a name (1-255 printable "
                       "characters, no spaces)", key);
                rc = ZQ_EINVAL;
            } else {
                rc = s_dup(key[0] == 'q' ? &st->queue : &st->task_id, k->valuestring);
            }
        } else if (!strcmp(key, "priority")) {
            if (!cJSON_IsNumber(k) || k->valuedouble != floor(k->valuedouble) ||
                k->valuedouble < 0 || k->valuedouble > 9) {
                zq_errf(err, errlen, "apply_async(): priority must be an integer 0-9");
                rc = ZQ_EINVAL;
            } else {
                st->priority = (int)k->valuedouble;
            }
        } else if (!strcmp(key, "ignore_result")) {
            if (!cJSON_IsBool(k)) {
                zq_errf(err, errlen, "apply_async(): ignore_result must be True or False");
                rc = ZQ_EINVAL;
            } else {
                st->ignore_result = cJSON_IsTrue(k);
            }
        } else {
            zq_errf(err, errlen, "apply_async() got an unexpected keyword argument '%s' (args, "
                   "kwargs, countdown, eta, expires, queue, task_id, priority, ignore_result)",
                   key);
            rc = ZQ_EINVAL;
        }
        cJSON_Delete(k);
    }
    if (rc == ZQ_OK && args && cJSON_IsNull(args)) {
        cJSON_Delete(args);
        args = NULL;
    }
    if (rc == ZQ_OK && kwargs && cJSON_IsNull(kwargs)) {
        cJSON_Delete(kwargs);
        kwargs = NULL;
    }
    if (rc == ZQ_OK && args && !cJSON_IsArray(args)) {
        zq_errf(err, errlen, "apply_async(): args must be a list or a tuple");
        rc = ZQ_EINVAL;
    }
    if (rc == ZQ_OK && kwargs && !cJSON_IsObject(kwargs)) {
        zq_errf(err, errlen, "apply_async(): kwargs must be a dict");
        rc = ZQ_EINVAL;
    }
    if (rc != ZQ_OK) {
        cJSON_Delete(args);
        cJSON_Delete(kwargs);
        return rc;
    }
    st->args = args ? args : cJSON_CreateArray();
    st->kwargs = kwargs ? kwargs : cJSON_CreateObject();
    return st->args && st->kwargs ? ZQ_OK : ZQ_ENOMEM;
}

static int s_ident_copy(const s_lex_t *lx, const s_tok_t *t, char *out, size_t outlen,
                        char *err, size_t errlen)
{
    if (t->len >= outlen) {
        zq_errf(err, errlen, "name too long at column %zu (at most %zu characters)", t->pos + 1,
               outlen - 1);
        return ZQ_EINVAL;
    }
    memcpy(out, lx->src + t->pos, t->len);
    out[t->len] = '\0';
    return ZQ_OK;
}

/* A statement in Python form (see zq_shell.h). */
static int s_parse_python(s_lex_t *lx, zq_shell_stmt_t *st, char *err, size_t errlen)
{
    int rc = ZQ_OK;
    const s_tok_t *t = s_peek(lx, 0);
    if (t->kind == T_IDENT && s_is_punct(s_peek(lx, 1), '=')) {
        if ((rc = s_ident_copy(lx, t, st->assign, sizeof st->assign, err, errlen)) != ZQ_OK)
            return rc;
        lx->i += 2;
    }
    /* the dotted name: NAME {. NAME}; a leading '.' means the last result */
    const s_tok_t *parts[64];
    size_t n = 0;
    if (s_is_punct(s_peek(lx, 0), '.')) {
        parts[n++] = NULL; /* "_" */
        lx->i++;
    }
    for (;;) {
        t = s_peek(lx, 0);
        if (t->kind != T_IDENT)
            return s_unexpected(lx, t, "a name", err, errlen);
        if (n == sizeof parts / sizeof parts[0]) {
            zq_errf(err, errlen, "name too long");
            return ZQ_EINVAL;
        }
        parts[n++] = t;
        lx->i++;
        if (!s_is_punct(s_peek(lx, 0), '.'))
            break;
        lx->i++;
    }
    const s_tok_t *last = parts[n - 1];
    int call = s_is_punct(s_peek(lx, 0), '(');
    s_call_t ca = {NULL, NULL};
    /* a variable (or `.` for the last result) and one of its methods or attributes */
    if (n == 2) {
        static const char *const attrs[] = {"state", "status", "id", "result", "task_id"};
        for (size_t k = 0; !call && k < sizeof attrs / sizeof attrs[0]; k++)
            if (s_is_word(lx, last, attrs[k]))
                st->attr = k < 2 ? "state" : k == 3 ? "result" : "id";
        if (call && (s_is_word(lx, last, "get") || s_is_word(lx, last, "ready"))) {
            int get = s_is_word(lx, last, "get");
            if ((rc = s_call_args(lx, get ? "get" : "ready", &ca, err, errlen)) != ZQ_OK) {
                s_call_clear(&ca);
                return rc;
            }
            if (get) {
                st->kind = ZQ_SHELL_GET;
                rc = s_get_args(&ca, &st->timeout, err, errlen);
            } else {
                st->kind = ZQ_SHELL_ATTR;
                st->attr = "ready";
                if (cJSON_GetArraySize(ca.pos) || cJSON_GetArraySize(ca.kw)) {
                    zq_errf(err, errlen, "ready() takes no arguments");
                    rc = ZQ_EINVAL;
                }
            }
            s_call_clear(&ca);
            if (rc != ZQ_OK)
                return rc;
        } else if (st->attr) {
            st->kind = ZQ_SHELL_ATTR;
        }
        if (st->kind) {
            if (parts[0])
                rc = s_ident_copy(lx, parts[0], st->target, sizeof st->target, err, errlen);
            else
                snprintf(st->target, sizeof st->target, "_");
            if (rc == ZQ_OK && st->assign[0]) {
                zq_errf(err, errlen, "only a task call can be assigned (r = tasks.add(2, 2))");
                rc = ZQ_EINVAL;
            }
            if (rc == ZQ_OK && s_peek(lx, 0)->kind != T_END)
                rc = s_unexpected(lx, s_peek(lx, 0), NULL, err, errlen);
            return rc;
        }
    }
    if (!parts[0])
        return s_unexpected(lx, parts[n - 1], "get()", err, errlen);
    /* a bare variable: show it */
    if (n == 1 && !call) {
        st->kind = ZQ_SHELL_ATTR;
        st->attr = "show";
        if (st->assign[0]) {
            zq_errf(err, errlen, "only a task call can be assigned (r = tasks.add(2, 2))");
            return ZQ_EINVAL;
        }
        if ((rc = s_ident_copy(lx, parts[0], st->target, sizeof st->target, err, errlen)) != ZQ_OK)
            return rc;
        return s_peek(lx, 0)->kind == T_END ? ZQ_OK
                                            : s_unexpected(lx, s_peek(lx, 0), NULL, err, errlen);
    }
    if (n == 1) {
        zq_errf(err, errlen, "unknown function '%.*s' (task names are MODULE.NAME, e.g. "
               "tasks.add(2, 2); type help)", (int)(last->len < 40 ? last->len : 40),
               lx->src + last->pos);
        return ZQ_EINVAL;
    }
    /* a task: NAME, NAME(...), NAME.delay(...), NAME.apply_async(...) */
    int apply = call && n > 2 && s_is_word(lx, last, "apply_async");
    int delay = call && n > 2 && s_is_word(lx, last, "delay");
    size_t nname = apply || delay ? n - 1 : n;
    const char *from = lx->src + parts[0]->pos;
    size_t len = (size_t)(lx->src + parts[nname - 1]->pos + parts[nname - 1]->len - from);
    if (!(st->task = strndup(from, len)))
        return ZQ_ENOMEM;
    if (!zq_valid_token(st->task)) {
        zq_errf(err, errlen, "not a valid task name: '%s'", st->task);
        return ZQ_EINVAL;
    }
    if (!call) {
        st->kind = ZQ_SHELL_ATTR;
        st->attr = "task";
        return s_peek(lx, 0)->kind == T_END ? ZQ_OK
                                            : s_unexpected(lx, s_peek(lx, 0), NULL, err, errlen);
    }
    st->kind = ZQ_SHELL_SEND;
    if ((rc = s_call_args(lx, apply ? "apply_async" : st->task, &ca, err, errlen)) != ZQ_OK) {
        s_call_clear(&ca);
        return rc;
    }
    if (apply) {
        rc = s_apply_async_args(st, &ca, err, errlen);
    } else {
        /* NAME(...) and NAME.delay(...): Celery's delay(*args, **kwargs) */
        st->args = ca.pos;
        st->kwargs = ca.kw;
        ca.pos = ca.kw = NULL;
    }
    s_call_clear(&ca);
    if (rc != ZQ_OK)
        return rc;
    /* optional .get(...) */
    if (s_is_punct(s_peek(lx, 0), '.') && s_is_word(lx, s_peek(lx, 1), "get")) {
        lx->i += 2;
        rc = s_call_args(lx, "get", &ca, err, errlen);
        if (rc == ZQ_OK)
            rc = s_get_args(&ca, &st->timeout, err, errlen);
        s_call_clear(&ca);
        if (rc != ZQ_OK)
            return rc;
        st->then_get = 1;
        if (st->assign[0]) {
            zq_errf(err, errlen, "%s = ....get() would keep the value, not the result: write "
                   "%s = %s(...) then %s.get()", st->assign, st->assign, st->task, st->assign);
            return ZQ_EINVAL;
        }
    }
    return s_peek(lx, 0)->kind == T_END ? ZQ_OK
                                        : s_unexpected(lx, s_peek(lx, 0), NULL, err, errlen);
}

static int s_is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int zq_shell_parse(const char *line, zq_shell_stmt_t *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    st->timeout = -1;
    if (err && errlen)
        err[0] = '\0';
    if (!line)
        return ZQ_OK;
    while (s_is_blank(*line))
        line++;
    size_t n = strlen(line);
    while (n && s_is_blank(line[n - 1]))
        n--;
    if (!n || line[0] == '#')
        return ZQ_OK;
    char word[32];
    size_t w = 0;
    while (w < n && !s_is_blank(line[w]) && w < sizeof word - 1) {
        word[w] = line[w];
        w++;
    }
    word[w] = '\0';
    const char *rest = line + w;
    while (s_is_blank(*rest))
        rest++;
    int alone = w == n;
    if (alone && (!strcmp(word, "exit") || !strcmp(word, "quit") || !strcmp(word, "exit()") ||
                  !strcmp(word, "quit()"))) {
        st->kind = ZQ_SHELL_EXIT;
        return ZQ_OK;
    }
    if (alone && (!strcmp(word, "help") || !strcmp(word, "help()"))) {
        st->kind = ZQ_SHELL_HELP;
        return ZQ_OK;
    }
    if (!strcmp(word, "get") && !alone && w < n && s_is_blank(line[w]) && *rest != '(' &&
        *rest != '=' && *rest != '.') {
        /* get ID [TIMEOUT] */
        char **argv = NULL;
        int argc = 0;
        int rc = zq_shell_split(rest, &argv, &argc, err, errlen);
        if (rc == ZQ_OK && (argc < 2 || argc > 3)) {
            zq_errf(err, errlen, "usage: get TASK_ID [TIMEOUT]");
            rc = ZQ_EINVAL;
        }
        if (rc == ZQ_OK && !zq_valid_token(argv[1])) {
            zq_errf(err, errlen, "not a valid task id: '%s'", argv[1]);
            rc = ZQ_EINVAL;
        }
        if (rc == ZQ_OK && argc == 3 && zq_cli_parse_seconds(argv[2], &st->timeout) != ZQ_OK) {
            zq_errf(err, errlen, "get: not a number of seconds >= 0: '%s'", argv[2]);
            rc = ZQ_EINVAL;
        }
        if (rc == ZQ_OK) {
            st->kind = ZQ_SHELL_GET;
            snprintf(st->target, sizeof st->target, "_");
            if (!(st->id = strdup(argv[1])))
                rc = ZQ_ENOMEM;
        }
        zq_shell_free_argv(argv);
        return rc;
    }
    /* a zq-ctl command line: its first word is a command (or an option) */
    if (word[0] == '-' || (zq_cli_find(word) && (alone || (s_is_blank(line[w]) && *rest != '=')))) {
        char *copy = strndup(line, n);
        if (!copy)
            return ZQ_ENOMEM;
        int rc = zq_shell_split(copy, &st->argv, &st->argc, err, errlen);
        free(copy);
        if (rc == ZQ_OK)
            st->kind = ZQ_SHELL_COMMAND;
        return rc;
    }
    char *copy = strndup(line, n);
    if (!copy)
        return ZQ_ENOMEM;
    s_lex_t lx;
    int rc = s_lex(&lx, copy, err, errlen);
    if (rc == ZQ_OK)
        rc = s_parse_python(&lx, st, err, errlen);
    s_lex_free(&lx);
    free(copy);
    if (rc == ZQ_ENOMEM)
        zq_errf(err, errlen, "out of memory");
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Running statements
 */
typedef struct {
    char name[ZQ_SHELL_NAME_MAX];
    zq_async_result_t *r; /* owned */
} s_var_t;

typedef struct {
    const zq_cli_t *cli;
    zq_client_t *c;
    FILE *out, *err;
    s_var_t vars[ZQ_SHELL_VARS_MAX];
    size_t nvars;
    char **tasks;     /* task names the live workers register, sorted, unique */
    size_t ntasks;
    double tasks_at;  /* zq_mono() of the last refresh; 0 = never */
    int interactive;
} s_shell_t;

static double s_broker_timeout(const s_shell_t *sh)
{
    return sh->cli->timeout >= 0 ? sh->cli->timeout : 10.0;
}

static s_var_t *s_var_find(s_shell_t *sh, const char *name)
{
    for (size_t i = 0; i < sh->nvars; i++)
        if (!strcmp(sh->vars[i].name, name))
            return &sh->vars[i];
    return NULL;
}

/* Set name to r (taken over; NULL forgets it). */
static int s_var_set(s_shell_t *sh, const char *name, zq_async_result_t *r)
{
    s_var_t *v = s_var_find(sh, name);
    if (!v) {
        if (!r)
            return ZQ_OK;
        if (sh->nvars == ZQ_SHELL_VARS_MAX) {
            zq_result_destroy(&r);
            fprintf(sh->err, "Error: too many variables (%d)\n", ZQ_SHELL_VARS_MAX);
            return ZQ_EINVAL;
        }
        v = &sh->vars[sh->nvars++];
        snprintf(v->name, sizeof v->name, "%s", name);
    }
    zq_result_destroy(&v->r);
    v->r = r;
    return ZQ_OK;
}

static int s_str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void s_tasks_free(s_shell_t *sh)
{
    for (size_t i = 0; i < sh->ntasks; i++)
        free(sh->tasks[i]);
    free(sh->tasks);
    sh->tasks = NULL;
    sh->ntasks = 0;
}

/* The task names of the live workers (WORKERS), for completion and help. */
static void s_refresh_tasks(s_shell_t *sh)
{
    sh->tasks_at = zq_mono();
    cJSON *reply = NULL;
    double t = s_broker_timeout(sh);
    if (zq_client_request(sh->c, ZQ_CMD_WORKERS, NULL, t < 2 ? t : 2, &reply) != ZQ_OK)
        return;
    size_t n = 0, cap = 0;
    char **v = NULL;
    const cJSON *w, *name;
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(reply, "workers"))
    {
        cJSON_ArrayForEach(name, cJSON_GetObjectItemCaseSensitive(w, "tasks"))
        {
            if (!cJSON_IsString(name))
                continue;
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 32;
                char **nv = realloc(v, nc * sizeof *nv);
                if (!nv)
                    break;
                v = nv;
                cap = nc;
            }
            if ((v[n] = strdup(name->valuestring)))
                n++;
        }
    }
    cJSON_Delete(reply);
    if (n > 1)
        qsort(v, n, sizeof *v, s_str_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && !strcmp(v[k - 1], v[i]))
            free(v[i]);
        else
            v[k++] = v[i];
    }
    s_tasks_free(sh);
    sh->tasks = v;
    sh->ntasks = k;
}

static int s_task_known(const s_shell_t *sh, const char *name)
{
    return sh->ntasks &&
           bsearch(&name, sh->tasks, sh->ntasks, sizeof *sh->tasks, s_str_cmp) != NULL;
}

static void s_print_value(FILE *out, const cJSON *v)
{
    char *txt = v ? cJSON_PrintUnformatted(v) : NULL;
    fprintf(out, "%s\n", txt ? txt : "null");
    cJSON_free(txt);
}

/* The result handle a GET/ATTR statement names; NULL after saying why. */
static zq_async_result_t *s_target(s_shell_t *sh, const char *name)
{
    s_var_t *v = s_var_find(sh, name);
    if (v && v->r)
        return v->r;
    if (!strcmp(name, "_"))
        fprintf(sh->err, "Error: no result yet: send a task first (tasks.add(2, 2)) or use "
                         "get TASK_ID\n");
    else
        fprintf(sh->err, "Error: name '%s' is not defined\n", name);
    return NULL;
}

static int s_wait(s_shell_t *sh, zq_async_result_t *r, double timeout)
{
    cJSON *value = NULL;
    int rc = zq_result_get(r, timeout, &value);
    const cJSON *rec = zq_result_record(r);
    int code = ZQ_EXIT_FAIL;
    if (rc == ZQ_OK) {
        s_print_value(sh->out, value);
        code = ZQ_EXIT_OK;
    } else if (rc == ZQ_EREMOTE && rec) {
        zq_ctl_print_failure(sh->err, rec);
    } else if (rc == ZQ_ETIMEOUT) {
        fprintf(sh->err, "Error: timed out after %gs waiting for task %s (state %s)\n", timeout,
                zq_result_id(r), zq_json_str(rec, "state", "PENDING"));
    } else if (rc == ZQ_ENOTFOUND && rec && cJSON_IsFalse(cJSON_GetObjectItem(rec, "known"))) {
        fprintf(sh->err, "Error: unknown task id %s (the broker never accepted it)\n",
                zq_result_id(r));
    } else {
        fprintf(sh->err, "Error: %s\n", zq_client_errmsg(sh->c));
    }
    cJSON_Delete(value);
    return code;
}

static int s_exec_send(s_shell_t *sh, const zq_shell_stmt_t *st)
{
    zq_send_opts_t o;
    memset(&o, 0, sizeof o);
    o.countdown = st->countdown;
    o.eta = st->eta;
    o.expires = st->expires;
    o.expires_in = st->expires_in;
    o.queue = st->queue;
    o.task_id = st->task_id;
    o.priority = st->priority;
    o.ignore_result = st->ignore_result;
    zq_async_result_t *r = NULL;
    int rc = zq_client_apply_async(sh->c, st->task, st->args, st->kwargs, &o, &r);
    if (rc == ZQ_OK) {
        /* like `call`: the id is shown once the broker has stored the task */
        rc = zq_client_flush(sh->c, s_broker_timeout(sh));
        if (rc == ZQ_ETIMEOUT)
            fprintf(sh->err, "Error: no answer from the broker at %s within %gs\n",
                    zq_client_url(sh->c), s_broker_timeout(sh));
        else if (rc != ZQ_OK)
            fprintf(sh->err, "Error: %s\n", zq_client_errmsg(sh->c));
    } else {
        fprintf(sh->err, "Error: %s\n", zq_client_errmsg(sh->c));
    }
    if (rc != ZQ_OK) {
        zq_result_destroy(&r);
        return rc == ZQ_EINVAL ? ZQ_EXIT_USAGE : ZQ_EXIT_FAIL;
    }
    if (sh->interactive && sh->ntasks && !s_task_known(sh, st->task))
        s_refresh_tasks(sh);
    if (sh->interactive && !s_task_known(sh, st->task))
        fprintf(sh->err, "Warning: no live worker registers %s (yet): it will end FAILURE "
                         "NotRegistered unless one does\n", st->task);
    const char *id = zq_result_id(r);
    if (!st->then_get)
        fprintf(sh->out, "<AsyncResult: %s>\n", id);
    s_var_set(sh, "_", zq_client_result(sh->c, id));
    if (st->assign[0])
        s_var_set(sh, st->assign, r);
    else
        zq_result_destroy(&r);
    if (st->then_get) {
        zq_async_result_t *last = s_target(sh, "_");
        return last ? s_wait(sh, last, st->timeout) : ZQ_EXIT_FAIL;
    }
    return ZQ_EXIT_OK;
}

static int s_exec_get(s_shell_t *sh, const zq_shell_stmt_t *st)
{
    if (st->id) {
        zq_async_result_t *r = zq_client_result(sh->c, st->id);
        if (!r) {
            fprintf(sh->err, "Error: out of memory\n");
            return ZQ_EXIT_FAIL;
        }
        s_var_set(sh, "_", r);
    }
    zq_async_result_t *r = s_target(sh, st->id ? "_" : st->target);
    return r ? s_wait(sh, r, st->timeout) : ZQ_EXIT_FAIL;
}

static int s_exec_attr(s_shell_t *sh, const zq_shell_stmt_t *st)
{
    if (!strcmp(st->attr, "task")) {
        if (!s_task_known(sh, st->task))
            s_refresh_tasks(sh);
        if (!s_task_known(sh, st->task)) {
            fprintf(sh->err, "Error: no live worker registers %s (call it anyway: %s(...))\n",
                    st->task, st->task);
            return ZQ_EXIT_FAIL;
        }
        const char *dot = strchr(st->task, '.');
        fprintf(sh->out, "<@task: %s of %.*s>\n", st->task,
                (int)(dot ? (size_t)(dot - st->task) : strlen(st->task)), st->task);
        return ZQ_EXIT_OK;
    }
    zq_async_result_t *r = s_target(sh, st->target);
    if (!r)
        return ZQ_EXIT_FAIL;
    if (!strcmp(st->attr, "show") || !strcmp(st->attr, "id")) {
        fprintf(sh->out, !strcmp(st->attr, "id") ? "%s\n" : "<AsyncResult: %s>\n",
                zq_result_id(r));
        return ZQ_EXIT_OK;
    }
    const char *state = zq_result_state(r);
    if (!state) {
        fprintf(sh->err, "Error: %s\n", zq_client_errmsg(sh->c));
        return ZQ_EXIT_FAIL;
    }
    int done = !strcmp(state, ZQ_STATE_SUCCESS) || !strcmp(state, ZQ_STATE_FAILURE) ||
               !strcmp(state, ZQ_STATE_REVOKED);
    if (!strcmp(st->attr, "state"))
        fprintf(sh->out, "%s\n", state);
    else if (!strcmp(st->attr, "ready"))
        fprintf(sh->out, "%s\n", done ? "True" : "False");
    else /* result: the value once SUCCESS, else null (the state says why) */
        s_print_value(sh->out, cJSON_GetObjectItemCaseSensitive(zq_result_record(r), "result"));
    return ZQ_EXIT_OK;
}

static int s_exec_command(s_shell_t *sh, const zq_shell_stmt_t *st)
{
    zq_cli_t sub;
    char e[1024];
    int code = ZQ_EXIT_OK;
    if (zq_cli_parse(&sub, st->argc, st->argv, e, sizeof e) != ZQ_OK) {
        zq_cli_print_error(sh->err, sub.command, e);
        code = ZQ_EXIT_USAGE;
    } else if (sub.help) {
        zq_cli_help(sh->out, sub.command);
    } else if (sub.version) {
        fprintf(sh->out, "zq-ctl %s\n", PACKAGE_VERSION);
    } else if (sub.cmd == ZQ_CLI_SHELL) {
        fprintf(sh->err, "Error: this is the shell already\n");
        code = ZQ_EXIT_USAGE;
    } else if (sub.cmd == ZQ_CLI_FLOWER) {
        fprintf(sh->err, "Error: start the web monitor from a terminal: zq-ctl flower\n");
        code = ZQ_EXIT_USAGE;
    } else {
        /* the shell's own --broker, --json and --timeout apply unless the line says */
        if (!sub.broker)
            sub.broker = sh->cli->broker;
        sub.json |= sh->cli->json;
        if (sub.timeout < 0)
            sub.timeout = sh->cli->timeout;
        code = zq_ctl_run(&sub, sh->out, sh->err);
        if (sub.cmd == ZQ_CLI_STATUS || sub.cmd == ZQ_CLI_INSPECT)
            sh->tasks_at = 0; /* workers may have come or gone */
    }
    zq_cli_clear(&sub);
    return code;
}

static void s_help(s_shell_t *sh)
{
    FILE *o = sh->out;
    fprintf(o, "zq shell: Python-like statements against the broker at %s\n\n",
            zq_client_url(sh->c));
    fprintf(o, "  tasks.add(2, 2)                  send a task (also tasks.add.delay(2, 2)); "
               "prints <AsyncResult: ID>\n"
               "  r = tasks.add.apply_async([2, 2], countdown=3)\n"
               "                                   options: kwargs, countdown, eta, expires, "
               "queue,\n"
               "                                   task_id, priority, ignore_result\n"
               "  r.get(timeout=10)   .get()       wait for a result (.get(): the last one)\n"
               "  tasks.add(2, 2).get()            send and wait\n"
               "  get ID [TIMEOUT]                 wait for the result of any task id\n"
               "  r.state  r.id  r.result  r.ready()  r\n"
               "  status, inspect active, purge -f, result ID ...   any zq-ctl command\n"
               "  help, exit (or Ctrl-D)\n\n"
               "Arguments are Python or JSON literals: 1, 2.5, 'text', True, None, [1, 2], "
               "{'k': 1}.\n");
    if (!sh->tasks_at)
        s_refresh_tasks(sh);
    fprintf(o, "\nRegistered tasks (live workers):%s\n", sh->ntasks ? "" : " none");
    for (size_t i = 0; i < sh->ntasks; i++)
        fprintf(o, "  . %s\n", sh->tasks[i]);
    fprintf(o, "\nCommands:");
    for (const char *const *n = (const char *const[]){"call", "events", "inspect", "purge",
                                                     "queues", "result", "revoke", "status",
                                                     NULL};
         *n; n++)
        fprintf(o, " %s", *n);
    fprintf(o, " (COMMAND --help for each)\n");
}

/* One line. Returns the statement's exit code; *quit set on exit. */
static int s_exec_line(s_shell_t *sh, const char *line, int *quit)
{
    zq_shell_stmt_t st;
    char e[1024];
    int code = ZQ_EXIT_OK;
    if (zq_shell_parse(line, &st, e, sizeof e) != ZQ_OK) {
        fprintf(sh->err, "Error: %s\n", e);
        code = ZQ_EXIT_USAGE;
    } else {
        switch (st.kind) {
        case ZQ_SHELL_EMPTY: break;
        case ZQ_SHELL_SEND: code = s_exec_send(sh, &st); break;
        case ZQ_SHELL_GET: code = s_exec_get(sh, &st); break;
        case ZQ_SHELL_ATTR: code = s_exec_attr(sh, &st); break;
        case ZQ_SHELL_COMMAND: code = s_exec_command(sh, &st); break;
        case ZQ_SHELL_HELP: s_help(sh); break;
        case ZQ_SHELL_EXIT: *quit = 1; break;
        }
    }
    zq_shell_stmt_clear(&st);
    fflush(sh->out);
    fflush(sh->err);
    return code;
}

/* ---------------------------------------------------------------------------------------
 * Line editing (libedit) and completion
 */
#ifdef HAVE_LIBEDIT
static s_shell_t *s_active; /* the shell the completion callbacks serve (one per process) */

typedef struct {
    char **v;
    size_t n, cap, next;
} s_cands_t;

static s_cands_t s_cands;

static void s_cands_reset(void)
{
    for (size_t i = 0; i < s_cands.n; i++)
        free(s_cands.v[i]);
    s_cands.n = s_cands.next = 0;
}

static void s_cand(const char *prefix, const char *word, const char *suffix)
{
    size_t pl = strlen(prefix);
    char buf[512];
    snprintf(buf, sizeof buf, "%s%s", word, suffix);
    if (strncmp(buf, prefix, pl) != 0)
        return;
    for (size_t i = 0; i < s_cands.n; i++)
        if (!strcmp(s_cands.v[i], buf))
            return;
    if (s_cands.n == s_cands.cap) {
        size_t cap = s_cands.cap ? s_cands.cap * 2 : 64;
        char **v = realloc(s_cands.v, cap * sizeof *v);
        if (!v)
            return;
        s_cands.v = v;
        s_cands.cap = cap;
    }
    if ((s_cands.v[s_cands.n] = strdup(buf)))
        s_cands.n++;
}

static char *s_generator(const char *text, int state)
{
    if (!state)
        s_cands.next = 0;
    return s_cands.next < s_cands.n ? strdup(s_cands.v[s_cands.next++]) : NULL;
}

static char **s_complete(const char *text, int start, int end)
{
    (void)end;
    s_shell_t *sh = s_active;
    rl_attempted_completion_over = 1; /* no file names */
    rl_completion_append_character = '\0';
    s_cands_reset();
    if (!sh)
        return NULL;
    if (!sh->tasks_at || zq_mono() - sh->tasks_at > S_TASKS_REFRESH)
        s_refresh_tasks(sh);
    const char *line = rl_line_buffer ? rl_line_buffer : "";
    size_t lead = 0;
    while (line[lead] == ' ')
        lead++;
    if (!strncmp(line + lead, "inspect ", 8) && (size_t)start > lead + 7) {
        for (const char *const *m = zq_cli_inspect_methods; *m; m++)
            s_cand(text, *m, " ");
    } else {
        if ((size_t)start <= lead) {
            static const char *const words[] = {"call",   "events", "inspect", "purge",
                                                "queues", "result", "revoke",  "status",
                                                "get",    NULL};
            for (const char *const *w = words; *w; w++)
                s_cand(text, *w, " ");
            s_cand(text, "help", "");
            s_cand(text, "exit", "");
        }
        for (size_t i = 0; i < sh->ntasks; i++) {
            s_cand(text, sh->tasks[i], "(");
            s_cand(text, sh->tasks[i], ".delay(");
            s_cand(text, sh->tasks[i], ".apply_async(");
        }
        for (size_t i = 0; i < sh->nvars; i++) {
            static const char *const m[] = {".get()", ".state", ".id", ".result", ".ready()"};
            s_cand(text, sh->vars[i].name, "");
            for (size_t k = 0; k < sizeof m / sizeof m[0]; k++)
                s_cand(text, sh->vars[i].name, m[k]);
        }
    }
    if (!s_cands.n)
        return NULL;
    return rl_completion_matches(text, s_generator);
}

static void s_history_path(char *buf, size_t len)
{
    const char *home = getenv("HOME");
    if (home && *home)
        snprintf(buf, len, "%s/.zq_history", home);
    else
        buf[0] = '\0';
}

static int s_loop_edit(s_shell_t *sh)
{
    char hist[1024];
    s_history_path(hist, sizeof hist);
    s_active = sh;
    rl_readline_name = "zq";
    rl_attempted_completion_function = s_complete;
    using_history();
    stifle_history(S_HISTORY_MAX);
    if (hist[0])
        read_history(hist);
    int quit = 0;
    while (!quit) {
        char *line = readline(">>> ");
        if (!line) {
            fputc('\n', sh->out);
            break;
        }
        if (*line)
            add_history(line);
        s_exec_line(sh, line, &quit);
        free(line);
    }
    if (hist[0]) {
        write_history(hist);
        history_truncate_file(hist, S_HISTORY_MAX);
    }
    s_active = NULL;
    s_cands_reset();
    free(s_cands.v);
    memset(&s_cands, 0, sizeof s_cands);
    return ZQ_EXIT_OK;
}
#endif

/* Statements from a file or pipe, one per line, no prompt. */
static int s_loop_plain(s_shell_t *sh, FILE *in, const char *prompt)
{
    char *line = NULL;
    size_t cap = 0;
    int quit = 0, last_fail = ZQ_EXIT_OK;
    while (!quit) {
        if (prompt) {
            fputs(prompt, sh->out);
            fflush(sh->out);
        }
        ssize_t n = getline(&line, &cap, in);
        if (n < 0)
            break;
        if (n > S_LINE_MAX) {
            fprintf(sh->err, "Error: line too long (%zd bytes, at most %d)\n", n, S_LINE_MAX);
            last_fail = ZQ_EXIT_USAGE;
            continue;
        }
        int code = s_exec_line(sh, line, &quit);
        if (code != ZQ_EXIT_OK)
            last_fail = code;
    }
    free(line);
    if (prompt)
        fputc('\n', sh->out);
    return last_fail;
}

int zq_shell_run(const zq_cli_t *cli, zq_client_t *c, FILE *in, FILE *out, FILE *err)
{
    s_shell_t sh;
    memset(&sh, 0, sizeof sh);
    sh.cli = cli;
    sh.c = c;
    sh.out = out;
    sh.err = err;
    sh.interactive = isatty(fileno(in)); /* as Python's REPL: stdin decides */
    int code;
    if (sh.interactive) {
        s_refresh_tasks(&sh);
        fprintf(out, "zq %s shell: broker %s, %zu task%s known (tab completes). Type help for "
                     "help, Ctrl-D to leave.\n",
                PACKAGE_VERSION, zq_client_url(c), sh.ntasks, sh.ntasks == 1 ? "" : "s");
#ifdef HAVE_LIBEDIT
        code = in == stdin ? s_loop_edit(&sh) : s_loop_plain(&sh, in, ">>> ");
#else
        code = s_loop_plain(&sh, in, ">>> ");
#endif
        code = ZQ_EXIT_OK; /* a person saw every error already */
    } else {
        code = s_loop_plain(&sh, in, NULL);
    }
    for (size_t i = 0; i < sh.nvars; i++)
        zq_result_destroy(&sh.vars[i].r);
    s_tasks_free(&sh);
    return code;
}
