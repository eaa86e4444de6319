// SPDX-License-Identifier: Apache-2.0
// guard taint: what one session has read (private data, untrusted content) and the
// lethal-trifecta check made before it calls a tool that can send data out.
#include <stdio.h>
#include <string.h>

#include "guard/guard.h"

void guard_taint_init(struct guard_taint *t)
{
    memset(t, 0, sizeof(*t));
}

static void set_source(char *dst, size_t cap, const char *src)
{
    if (dst[0] || !src)
        return; /* the first source that set a flag is the one named */
    snprintf(dst, cap, "%s", src);
}

void guard_taint_note(struct guard_taint *t, const char *tool, unsigned labels, bool untrusted,
                      const struct guard_result *scan)
{
    if (labels & GUARD_LABEL_PRIVATE_DATA) {
        t->flags |= GUARD_TAINT_PRIVATE_DATA;
        set_source(t->private_source, sizeof(t->private_source), tool);
    }
    if (untrusted || (scan && scan->injection)) {
        t->flags |= GUARD_TAINT_UNTRUSTED;
        if (!t->untrusted_source[0] && tool) {
            if (scan && scan->injection && scan->nfindings)
                snprintf(t->untrusted_source, sizeof(t->untrusted_source), "%s (guard: %s)", tool,
                         scan->findings[0].rule);
            else
                set_source(t->untrusted_source, sizeof(t->untrusted_source), tool);
        }
    }
}

void guard_taint_merge(struct guard_taint *t, const struct guard_taint *from)
{
    t->flags |= from->flags;
    set_source(t->private_source, sizeof(t->private_source), from->private_source);
    set_source(t->untrusted_source, sizeof(t->untrusted_source), from->untrusted_source);
}

bool guard_trifecta(const struct guard_taint *t, const char *tool, unsigned labels, char *reason,
                    size_t cap)
{
    unsigned both = GUARD_TAINT_PRIVATE_DATA | GUARD_TAINT_UNTRUSTED;
    if (!(labels & GUARD_LABEL_EXFILTRATION) || (t->flags & both) != both) {
        if (reason && cap)
            reason[0] = '\0';
        return false;
    }
    if (reason && cap)
        snprintf(reason, cap,
                 "lethal trifecta: this session read private data (%s), read untrusted content "
                 "(%s), and %s can send data out (exfiltration)",
                 t->private_source[0] ? t->private_source : "a private_data tool",
                 t->untrusted_source[0] ? t->untrusted_source : "an untrusted source",
                 tool && *tool ? tool : "this tool");
    return true;
}
