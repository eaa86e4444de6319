// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the A2A proxy's parsers (src/a2a). Input: one selector
// byte, eight bytes seeding split points, then the data. Selector & 3:
//   0  a2a_rpc_parse on the data as a client's body: 0 or one of the three
//      codes, never both a method and an error;
//   1  a2a_card_rewrite: a result is a JSON object with no interface left
//      pointing anywhere but the gateway;
//   2  the SSE splitter: the events of a stream cut at random points are the
//      events of the whole stream, and together they are the stream;
//   3  a2a_reply_scan (flag and sanitize) and the task id finders on the data as
//      a reply or request, and the SSE event data reader.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "a2a/internal.h"
#include "guard/guard.h"

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

struct events {
    buf_t all;
    size_t n;
};

static int on_event(void *ud, const char *ev, size_t len)
{
    struct events *e = ud;
    if (len == 0)
        abort(); /* an event is never empty */
    if (buf_append(&e->all, ev, len) != 0)
        abort();
    e->n++;
    return 0;
}

static void sse_run(const uint8_t *in, size_t n, uint64_t seed, struct events *out, int *rc)
{
    struct a2a_sse s;
    a2a_sse_init(&s, 512);
    buf_init(&out->all, n + 16);
    out->n = 0;
    size_t pos = 0;
    *rc = 0;
    while (*rc == 0 && pos < n) {
        size_t k = seed ? 1 + next(&seed) % 64 : n - pos;
        if (k > n - pos)
            k = n - pos;
        *rc = a2a_sse_feed(&s, (const char *)in + pos, k, on_event, out);
        pos += k;
    }
    if (*rc == 0)
        *rc = a2a_sse_finish(&s, on_event, out);
    a2a_sse_free(&s);
}

static struct guard *guard_once(void)
{
    static struct guard *g;
    if (g == NULL) {
        char err[256];
        g = guard_new_builtin(err, sizeof err);
        if (g == NULL)
            abort();
    }
    return g;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9)
        return 0;
    uint8_t sel = data[0];
    uint64_t seed;
    memcpy(&seed, data + 1, 8);
    const char *in = (const char *)data + 9;
    size_t n = size - 9;
    switch (sel & 3) {
    case 0: {
        struct a2a_rpc r;
        char msg[256];
        int code = a2a_rpc_parse(in, n, &r, msg, sizeof msg);
        if (code == 0 && r.method == NULL)
            abort();
        if (code != 0 && code != A2A_PARSE_ERROR && code != A2A_INVALID_REQUEST &&
            code != A2A_INVALID_PARAMS)
            abort();
        char *e = a2a_rpc_error(r.id, code ? code : A2A_INTERNAL_ERROR, msg, NULL);
        json_t *j = e ? json_loads(e, 0, NULL) : NULL;
        if (e != NULL && j == NULL)
            abort();
        json_decref(j);
        free(e);
        a2a_rpc_clear(&r);
        break;
    }
    case 1: {
        char msg[200];
        char *out = a2a_card_rewrite(in, n, "http://gw.test/a2a/x", msg, sizeof msg);
        if (out != NULL) {
            json_t *j = json_loads(out, 0, NULL);
            if (!json_is_object(j))
                abort();
            json_t *ifs = json_object_get(j, "supportedInterfaces");
            size_t i;
            json_t *it;
            json_array_foreach(ifs, i, it)
            {
                json_t *u = json_object_get(it, "url");
                if (u == NULL || strcmp(json_string_value(u), "http://gw.test/a2a/x") != 0)
                    abort();
            }
            json_decref(j);
            free(out);
        }
        break;
    }
    case 2: {
        struct events whole, cut;
        int rc1, rc2;
        sse_run(data + 9, n, 0, &whole, &rc1);
        sse_run(data + 9, n, seed | 1, &cut, &rc2);
        if (rc1 == 0 && rc2 == 0) {
            if (whole.all.len != n || cut.all.len != n || whole.n != cut.n ||
                memcmp(whole.all.data, in, n) != 0 || memcmp(cut.all.data, in, n) != 0)
                abort();
        }
        buf_free(&whole.all);
        buf_free(&cut.all);
        break;
    }
    case 3: {
        json_t *v = json_loadb(in, n, 0, NULL);
        if (v != NULL) {
            struct a2a_scan s;
            a2a_scan_init(&s);
            const char *ids[8];
            size_t nids = a2a_reply_task_ids(v, ids, 8);
            for (size_t i = 0; i < nids; i++)
                if (ids[i] == NULL || ids[i][0] == '\0')
                    abort();
            const char *ref = a2a_rpc_task_ref(v);
            if (ref != NULL && ref[0] == '\0')
                abort();
            (void)a2a_reply_scan(v, guard_once(), (sel >> 2) & 1, "a2a:fuzz", "flag", &s);
            a2a_scan_free(&s);
            json_decref(v);
        }
        buf_t d;
        buf_init(&d, n + 16);
        char name[32];
        if (a2a_sse_event_data(in, n, &d, name, sizeof name) < 0 || d.len > n)
            abort();
        buf_free(&d);
        break;
    }
    }
    return 0;
}
