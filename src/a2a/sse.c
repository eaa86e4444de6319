// SPDX-License-Identifier: Apache-2.0
// Server-Sent Events from an A2A agent (message/stream, tasks/resubscribe):
// the stream is cut into whole events, byte for byte, so each can be scanned
// and forwarded as soon as its blank line arrives, however the upstream's
// bytes were chunked.
#include <errno.h>
#include <string.h>

#include "a2a/internal.h"

void a2a_sse_init(struct a2a_sse *s, size_t max_event)
{
    memset(s, 0, sizeof *s);
    buf_init(&s->held, max_event);
}

void a2a_sse_free(struct a2a_sse *s)
{
    buf_free(&s->held);
}

/* Hands over held[0..end) and keeps the rest. */
static int emit(struct a2a_sse *s, size_t end, a2a_sse_event_fn fn, void *ud)
{
    int rc = fn(ud, s->held.data, end);
    buf_consume(&s->held, end);
    s->pos -= end;
    s->line_start -= end;
    return rc < 0 ? rc : 0;
}

/* Finds the complete events in held. With at_end, a lone '\r' as the last
 * byte is a line end (no '\n' can follow it any more). */
static int scan(struct a2a_sse *s, int at_end, a2a_sse_event_fn fn, void *ud)
{
    while (s->pos < s->held.len) {
        char c = s->held.data[s->pos];
        if (c != '\n' && c != '\r') {
            s->pos++;
            continue;
        }
        size_t eol = 1;
        if (c == '\r') {
            if (s->pos + 1 == s->held.len && !at_end)
                return 0; /* "\r" or "\r\n": the next byte tells */
            if (s->pos + 1 < s->held.len && s->held.data[s->pos + 1] == '\n')
                eol = 2;
        }
        int blank = s->pos == s->line_start;
        s->pos += eol;
        s->line_start = s->pos;
        if (blank) {
            int rc = emit(s, s->pos, fn, ud);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int a2a_sse_feed(struct a2a_sse *s, const char *in, size_t len, a2a_sse_event_fn fn, void *ud)
{
    /* in pieces that fit beside what is held, so that many small events in
     * one large read never count as one large event */
    do {
        size_t room = s->held.max > s->held.len ? s->held.max - s->held.len : 0;
        size_t k = len < room ? len : room;
        if (k == 0 && len > 0)
            return -E2BIG;
        if (k > 0) {
            int rc = buf_append(&s->held, in, k);
            if (rc < 0)
                return rc == -ENOMEM ? -ENOMEM : -E2BIG;
            in += k;
            len -= k;
        }
        int rc = scan(s, 0, fn, ud);
        if (rc < 0)
            return rc;
    } while (len > 0);
    /* what is held now is one incomplete event: it must leave room to end */
    return s->held.len >= s->held.max ? -E2BIG : 0;
}

int a2a_sse_finish(struct a2a_sse *s, a2a_sse_event_fn fn, void *ud)
{
    int rc = scan(s, 1, fn, ud);
    if (rc < 0 || s->held.len == 0)
        return rc;
    return emit(s, s->held.len, fn, ud);
}

int a2a_sse_event_data(const char *ev, size_t len, buf_t *data, char *name, size_t namelen)
{
    int lines = 0;
    size_t i = 0;
    if (name != NULL && namelen > 0)
        name[0] = '\0';
    while (i < len) {
        size_t start = i;
        while (i < len && ev[i] != '\n' && ev[i] != '\r')
            i++;
        size_t end = i;
        if (i < len && ev[i] == '\r' && i + 1 < len && ev[i + 1] == '\n')
            i += 2;
        else if (i < len)
            i++;
        const char *l = ev + start;
        size_t n = end - start;
        const char *colon = memchr(l, ':', n);
        size_t fl = colon ? (size_t)(colon - l) : n;
        const char *v = colon ? colon + 1 : l + n;
        size_t vl = colon ? n - fl - 1 : 0;
        if (vl > 0 && *v == ' ')
            v++, vl--;
        if (fl == 4 && memcmp(l, "data", 4) == 0) {
            if ((lines > 0 && buf_append_lit(data, "\n") != 0) || buf_append(data, v, vl) != 0)
                return -1;
            lines++;
        } else if (fl == 5 && memcmp(l, "event", 5) == 0 && name != NULL && namelen > 0) {
            size_t k = vl < namelen - 1 ? vl : namelen - 1;
            memcpy(name, v, k);
            name[k] = '\0';
        }
    }
    return lines;
}
