// SPDX-License-Identifier: Apache-2.0
// Containment across agents: what each tainted MCP session has read (private data,
// untrusted content; published by the MCP hub), so that POST /oauth/token naming the
// session (Mcp-Session-Id) mints a delegation token carrying the flags (pcl.taint),
// and a session opened with that token starts with them; an A2A reply the guard found
// an injection in (or from an untrusted agent) adds the untrusted flag to the caller's
// session named by Mcp-Session-Id, and the hub reads it back before its trifecta
// check. Flags only ever merge (OR) until the hub forgets the session. One table per process,
// under a mutex: the hub thread writes, workers read.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard/guard.h"
#include "identity/identity.h"
#include "identity/internal.h"

#define BUCKETS 256
/* Most sessions the table holds (the hub's MAX_SESSIONS); past it new ones are not
 * recorded and a delegation naming them is refused as unknown. */
#define MAX_ENTRIES 100000

struct taint_entry {
    struct taint_entry *next;
    char session[80];
    char *owner;
    unsigned flags;
    char private_src[96];
    char untrusted_src[160];
};

struct identity_taints {
    pthread_mutex_t mu;
    struct taint_entry *b[BUCKETS];
    size_t n;
};

static unsigned bucket(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % BUCKETS;
}

struct identity_taints *identity_taints_new(void)
{
    struct identity_taints *t = calloc(1, sizeof *t);
    if (t != NULL && pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

void identity_taints_free(struct identity_taints *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < BUCKETS; i++)
        while (t->b[i]) {
            struct taint_entry *e = t->b[i];
            t->b[i] = e->next;
            free(e->owner);
            free(e);
        }
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* ORs flags into e; a flag e had already keeps the source that set it first. */
static void merge(struct taint_entry *e, unsigned flags, const char *private_src,
                  const char *untrusted_src)
{
    if ((flags & GUARD_TAINT_PRIVATE_DATA) && !(e->flags & GUARD_TAINT_PRIVATE_DATA))
        snprintf(e->private_src, sizeof e->private_src, "%s", private_src ? private_src : "");
    if ((flags & GUARD_TAINT_UNTRUSTED) && !(e->flags & GUARD_TAINT_UNTRUSTED))
        snprintf(e->untrusted_src, sizeof e->untrusted_src, "%s",
                 untrusted_src ? untrusted_src : "");
    e->flags |= flags;
}

void identity_session_taint_set(struct identity *id, const char *session, const char *owner,
                                unsigned flags, const char *private_src, const char *untrusted_src)
{
    struct identity_taints *t = id ? id->taints : NULL;
    if (t == NULL || session == NULL ||
        strlen(session) >= sizeof(((struct taint_entry *)0)->session))
        return;
    unsigned h = bucket(session);
    pthread_mutex_lock(&t->mu);
    struct taint_entry **q = &t->b[h];
    while (*q && strcmp((*q)->session, session) != 0)
        q = &(*q)->next;
    struct taint_entry *e = *q;
    if (flags == 0) {
        if (e != NULL) {
            *q = e->next;
            free(e->owner);
            free(e);
            t->n--;
        }
    } else {
        if (e == NULL && t->n < MAX_ENTRIES && owner != NULL &&
            (e = calloc(1, sizeof *e)) != NULL) {
            if ((e->owner = strdup(owner)) == NULL) {
                free(e);
                e = NULL;
            } else {
                snprintf(e->session, sizeof e->session, "%s", session);
                e->next = t->b[h];
                t->b[h] = e;
                t->n++;
            }
        }
        if (e != NULL && owner != NULL && strcmp(e->owner, owner) != 0) {
            /* the hub knows whose session it is: an entry someone else made under
             * that id (identity_session_taint_add) counts for nothing */
            char *o = strdup(owner);
            if (o != NULL) {
                free(e->owner);
                e->owner = o;
                e->flags = 0;
                e->private_src[0] = e->untrusted_src[0] = '\0';
            }
        }
        if (e != NULL && (owner == NULL || strcmp(e->owner, owner) == 0))
            merge(e, flags, private_src, untrusted_src);
    }
    pthread_mutex_unlock(&t->mu);
}

void identity_session_taint_add(struct identity *id, const char *session, const char *owner,
                                unsigned flags, const char *private_src, const char *untrusted_src)
{
    struct identity_taints *t = id ? id->taints : NULL;
    if (t == NULL || session == NULL || owner == NULL || flags == 0 ||
        strlen(session) >= sizeof(((struct taint_entry *)0)->session))
        return;
    unsigned h = bucket(session);
    pthread_mutex_lock(&t->mu);
    struct taint_entry *e = t->b[h];
    while (e && strcmp(e->session, session) != 0)
        e = e->next;
    if (e == NULL && t->n < MAX_ENTRIES && (e = calloc(1, sizeof *e)) != NULL) {
        /* not tainted yet (or not a session at all): recorded under the caller; the
         * hub reads it only for a session of the same owner */
        if ((e->owner = strdup(owner)) == NULL) {
            free(e);
            e = NULL;
        } else {
            snprintf(e->session, sizeof e->session, "%s", session);
            e->next = t->b[h];
            t->b[h] = e;
            t->n++;
        }
    }
    if (e != NULL && strcmp(e->owner, owner) == 0)
        merge(e, flags, private_src, untrusted_src);
    pthread_mutex_unlock(&t->mu);
}

int identity_session_taint_get(struct identity *id, const char *session, const char *owner,
                               unsigned *flags, char *private_src, size_t pcap, char *untrusted_src,
                               size_t ucap)
{
    struct identity_taints *t = id ? id->taints : NULL;
    *flags = 0;
    if (pcap)
        private_src[0] = '\0';
    if (ucap)
        untrusted_src[0] = '\0';
    if (t == NULL || session == NULL)
        return -1;
    int rc = -1;
    pthread_mutex_lock(&t->mu);
    for (struct taint_entry *e = t->b[bucket(session)]; e; e = e->next) {
        if (strcmp(e->session, session) != 0)
            continue;
        if (owner == NULL || strcmp(e->owner, owner) == 0) {
            *flags = e->flags;
            snprintf(private_src, pcap, "%s", e->private_src);
            snprintf(untrusted_src, ucap, "%s", e->untrusted_src);
            rc = 0;
        }
        break;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}
