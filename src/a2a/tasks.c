// SPDX-License-Identifier: Apache-2.0
// Who started which A2A task. The gateway notes the task ids in the replies to
// message sends, with the calling agent; a later call naming that task
// (tasks/get, cancel, resubscribe, push configs, a message continuing it) from
// an agent that is neither the owner nor acting for it (owner not in its
// delegation chain) is answered "task not found", so agents sharing an A2A
// agent cannot read or steer each other's tasks. Bounded: the oldest notes
// are overwritten; a task the gateway has no note of passes (the agent
// decides, with the identity token).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "a2a/internal.h"

#define SLOTS 16384 /* power of two */
#define PROBE 8

struct a2a_task_slot {
    uint64_t hash; /* 0 = empty */
    char *task;
    char *owner;
};

struct a2a_tasks {
    uv_mutex_t lock;
    struct a2a_task_slot slots[SLOTS];
};

static uint64_t hash_of(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ? h : 1;
}

struct a2a_tasks *a2a_tasks_new(void)
{
    struct a2a_tasks *t = calloc(1, sizeof *t);
    if (t != NULL && uv_mutex_init(&t->lock) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

void a2a_tasks_free(struct a2a_tasks *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < SLOTS; i++) {
        free(t->slots[i].task);
        free(t->slots[i].owner);
    }
    uv_mutex_destroy(&t->lock);
    free(t);
}

void a2a_tasks_note(struct a2a_tasks *t, const char *task, const char *owner)
{
    if (t == NULL || task == NULL || owner == NULL || task[0] == '\0' || strlen(task) > 256)
        return;
    uint64_t h = hash_of(task);
    uv_mutex_lock(&t->lock);
    struct a2a_task_slot *free_slot = NULL;
    for (size_t i = 0; i < PROBE; i++) {
        struct a2a_task_slot *s = &t->slots[(h + i) & (SLOTS - 1)];
        if (s->hash == h && strcmp(s->task, task) == 0) {
            uv_mutex_unlock(&t->lock); /* the first owner stays */
            return;
        }
        if (s->hash == 0 && free_slot == NULL)
            free_slot = s;
    }
    struct a2a_task_slot *s = free_slot ? free_slot : &t->slots[h & (SLOTS - 1)];
    char *tk = strdup(task), *ow = strdup(owner);
    if (tk != NULL && ow != NULL) {
        free(s->task);
        free(s->owner);
        s->hash = h;
        s->task = tk;
        s->owner = ow;
    } else {
        free(tk);
        free(ow);
    }
    uv_mutex_unlock(&t->lock);
}

int a2a_tasks_owner(struct a2a_tasks *t, const char *task, char *owner, size_t len)
{
    if (t == NULL || task == NULL)
        return 0;
    uint64_t h = hash_of(task);
    int found = 0;
    uv_mutex_lock(&t->lock);
    for (size_t i = 0; i < PROBE && !found; i++) {
        struct a2a_task_slot *s = &t->slots[(h + i) & (SLOTS - 1)];
        if (s->hash == h && strcmp(s->task, task) == 0) {
            size_t n = strlen(s->owner);
            if (n >= len)
                n = len - 1;
            memcpy(owner, s->owner, n);
            owner[n] = '\0';
            found = 1;
        }
    }
    uv_mutex_unlock(&t->lock);
    return found;
}

/* ---- where task ids are in requests and replies ---------------------------------- */

static const char *str_of(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

const char *a2a_rpc_task_ref(const json_t *root)
{
    json_t *params = json_object_get(root, "params");
    const char *id;
    if ((id = str_of(json_object_get(params, "message"), "taskId")) != NULL)
        return id; /* a message continuing a task */
    if ((id = str_of(params, "taskId")) != NULL)
        return id; /* push notification configs */
    json_t *m = json_object_get(root, "method");
    const char *method = json_is_string(m) ? json_string_value(m) : "";
    if (a2a_method_kind(method) == A2A_M_SEND || a2a_method_kind(method) == A2A_M_STREAM)
        return NULL;
    return str_of(params, "id"); /* GetTask, CancelTask, SubscribeToTask, tasks/... */
}

size_t a2a_reply_task_ids(json_t *result, const char **ids, size_t max)
{
    size_t n = 0;
    const char *id;
    if (!json_is_object(result) || max == 0)
        return 0;
    /* 1.0: {task: {id}}, {message: {taskId}}, {statusUpdate|artifactUpdate: {taskId}} */
    if ((id = str_of(json_object_get(result, "task"), "id")) != NULL && n < max)
        ids[n++] = id;
    if ((id = str_of(json_object_get(result, "message"), "taskId")) != NULL && n < max)
        ids[n++] = id;
    if ((id = str_of(json_object_get(result, "statusUpdate"), "taskId")) != NULL && n < max)
        ids[n++] = id;
    if ((id = str_of(json_object_get(result, "artifactUpdate"), "taskId")) != NULL && n < max)
        ids[n++] = id;
    /* 0.3: the result is the Task (kind "task"), or an update or message with taskId */
    const char *kind = str_of(result, "kind");
    if (kind != NULL && strcmp(kind, "task") == 0 && (id = str_of(result, "id")) != NULL && n < max)
        ids[n++] = id;
    if ((id = str_of(result, "taskId")) != NULL && n < max)
        ids[n++] = id;
    return n;
}
