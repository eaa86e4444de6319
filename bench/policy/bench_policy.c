// SPDX-License-Identifier: Apache-2.0
// Speed of policy_decide (not a test): an MCP tool-access policy set over an
// agent/team/tool hierarchy of 1,000 entities, decided on one core. Prints
// the median and p99 per request for 50 policies, then for 1,000 and 10,000
// (per-agent grants indexed by their scope). Build and run: bench/policy/run.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "policy/policy.h"

#define NTEAMS 20
#define NAGENTS 800
#define NSERVERS 10
#define NTOOLS 150
#define NMODELS 19

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void must(int rc, const char *what)
{
    if (rc) {
        fprintf(stderr, "bench: %s failed\n", what);
        exit(1);
    }
}

/* 1 org, 20 teams, 800 agents (a tenth of them sub-agents of another
 * agent), 10 MCP servers, 150 tools with labels, 19 models: 1,000. */
static char *entities_json(void)
{
    buf_t b;
    buf_init(&b, 1 << 24);
    must(buf_append_lit(
             &b,
             "[{\"uid\": {\"type\": \"Org\", \"id\": \"acme\"}, \"attrs\": {}, \"parents\": []}"),
         "json");
    for (int t = 0; t < NTEAMS; t++)
        must(buf_appendf(
                 &b,
                 ",{\"uid\": {\"type\": \"Team\", \"id\": \"t%d\"}, \"attrs\": "
                 "{\"budget_usd\": %d}, \"parents\": [{\"type\": \"Org\", \"id\": \"acme\"}]}",
                 t, 100 + t),
             "json");
    for (int a = 0; a < NAGENTS; a++) {
        if (a % 10 == 9)
            must(buf_appendf(&b,
                             ",{\"uid\": {\"type\": \"Agent\", \"id\": \"a%d\"}, \"attrs\": "
                             "{\"tier\": %d, \"env\": \"prod\"}, \"parents\": "
                             "[{\"type\": \"Agent\", \"id\": \"a%d\"}]}",
                             a, a % 3, a - 1),
                 "json");
        else
            must(buf_appendf(&b,
                             ",{\"uid\": {\"type\": \"Agent\", \"id\": \"a%d\"}, \"attrs\": "
                             "{\"tier\": %d, \"env\": \"%s\"}, \"parents\": "
                             "[{\"type\": \"Team\", \"id\": \"t%d\"}]}",
                             a, a % 3, a % 4 ? "prod" : "dev", a % NTEAMS),
                 "json");
    }
    static const char *const labels[] = {"[]", "[\"private_data\"]", "[\"exfiltration\"]",
                                         "[\"private_data\", \"write\"]", "[\"read\"]"};
    for (int s = 0; s < NSERVERS; s++)
        must(buf_appendf(&b,
                         ",{\"uid\": {\"type\": \"Server\", \"id\": \"s%d\"}, \"attrs\": "
                         "{\"trust\": \"%s\"}, \"parents\": []}",
                         s, s % 3 ? "trusted" : "untrusted"),
             "json");
    for (int t = 0; t < NTOOLS; t++)
        must(buf_appendf(&b,
                         ",{\"uid\": {\"type\": \"Tool\", \"id\": \"s%d/tool%d\"}, \"attrs\": "
                         "{\"labels\": %s, \"server\": \"s%d\"}, \"parents\": "
                         "[{\"type\": \"Server\", \"id\": \"s%d\"}]}",
                         t % NSERVERS, t, labels[t % 5], t % NSERVERS, t % NSERVERS),
             "json");
    for (int m = 0; m < NMODELS; m++)
        must(buf_appendf(&b,
                         ",{\"uid\": {\"type\": \"Model\", \"id\": \"m%d\"}, \"attrs\": "
                         "{\"usd_per_mtok\": %d}, \"parents\": []}",
                         m, m * 5),
             "json");
    must(buf_append_lit(&b, "]"), "json");
    return b.data;
}

/* 50 policies of the kind a deployment writes: team grants on servers and
 * models, label-based forbids (the lethal trifecta), tiers, dev agents. */
static char *policies_50(void)
{
    buf_t b;
    buf_init(&b, 1 << 20);
    for (int t = 0; t < NTEAMS; t++)
        must(buf_appendf(&b,
                         "@id(\"team%d-tools\")\npermit(principal in Team::\"t%d\", action in "
                         "[Action::\"call_tool\", Action::\"list_tool\"], resource in "
                         "Server::\"s%d\");\n",
                         t, t, t % NSERVERS),
             "policy");
    for (int t = 0; t < NTEAMS; t++)
        must(buf_appendf(&b,
                         "@id(\"team%d-models\")\npermit(principal in Team::\"t%d\", action == "
                         "Action::\"chat\", resource is Model) when { resource.usd_per_mtok <= "
                         "%d };\n",
                         t, t, 40 + t),
             "policy");
    must(buf_append_lit(
             &b,
             "@id(\"trifecta\")\nforbid(principal, action == Action::\"call_tool\", resource)\n"
             "when { resource.labels.contains(\"exfiltration\") && context.session.private_data"
             " && context.session.untrusted_input };\n"
             "@id(\"untrusted-write\")\nforbid(principal, action == Action::\"call_tool\", "
             "resource)\n"
             "when { context.session.untrusted_input && resource.labels.contains(\"write\") };\n"
             "@id(\"dev-no-private\")\nforbid(principal is Agent, action == Action::\"call_tool\", "
             "resource)\n"
             "when { principal.env == \"dev\" && resource.labels.contains(\"private_data\") };\n"
             "@id(\"deep-chains\")\nforbid(principal, action, resource) when { context.depth > 4 "
             "};\n"
             "@id(\"tier0-delegate\")\npermit(principal is Agent, action == Action::\"delegate\", "
             "resource)\n"
             "when { principal.tier == 0 };\n"
             "@id(\"any-list\")\npermit(principal in Org::\"acme\", action == "
             "Action::\"list_tool\", resource is Tool)\n"
             "when { resource.labels.isEmpty() || context.session.admin };\n"
             "@id(\"send-peer\")\npermit(principal is Agent in Org::\"acme\", action == "
             "Action::\"send_message\","
             " resource is Agent in Org::\"acme\") unless { context.chain.contains(resource) };\n"
             "@id(\"night\")\nforbid(principal, action == Action::\"chat\", resource == "
             "Model::\"m18\")\n"
             "when { context.hour < 6 };\n"
             "@id(\"ip\")\nforbid(principal, action, resource) unless { "
             "context.ip.isInRange(ip(\"10.0.0.0/8\")) };\n"
             "@id(\"admins\")\npermit(principal == Agent::\"a0\", action, resource);\n"),
         "policy");
    return b.data;
}

/* Extra per-agent grants: `permit(principal == Agent::"aN", action ==
 * Action::"call_tool", resource == Tool::"…")`, indexed by principal. */
static char *grants(int n)
{
    buf_t b;
    buf_init(&b, 1 << 26);
    must(buf_append_lit(&b, ""), "grants");
    for (int i = 0; i < n; i++) {
        int t = (i * 7) % NTOOLS;
        must(buf_appendf(&b,
                         "permit(principal == Agent::\"a%d\", action == Action::\"call_tool\", "
                         "resource == Tool::\"s%d/tool%d\") when { context.depth < 3 };\n",
                         i % NAGENTS, t % NSERVERS, t),
             "grants");
    }
    return b.data;
}

struct req {
    char principal[32], resource[32];
    const char *action, *rtype;
};

static void make_requests(struct req *r, int n)
{
    static const char *const actions[] = {"call_tool", "list_tool", "chat", "send_message",
                                          "delegate"};
    unsigned seed = 12345;
    for (int i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        int a = (int)(seed >> 8) % NAGENTS, k = (int)(seed >> 4) % 5,
            t = (int)(seed >> 12) % NTOOLS;
        snprintf(r[i].principal, sizeof(r[i].principal), "a%d", a);
        r[i].action = actions[k];
        if (k == 2) {
            r[i].rtype = "Model";
            snprintf(r[i].resource, sizeof(r[i].resource), "m%d", t % NMODELS);
        } else if (k == 3 || k == 4) {
            r[i].rtype = "Agent";
            snprintf(r[i].resource, sizeof(r[i].resource), "a%d", (a + t) % NAGENTS);
        } else {
            r[i].rtype = "Tool";
            snprintf(r[i].resource, sizeof(r[i].resource), "s%d/tool%d", t % NSERVERS, t);
        }
    }
}

static void run(const char *label, const char *policy_text, policy_entities_t *es, json_t *ctx)
{
    policy_set_t *set = policy_set_new(0);
    struct policy_diags diags = {0};
    uint64_t t0 = now_ns();
    if (policy_set_add_text(set, label, policy_text, strlen(policy_text), &diags)) {
        policy_diags_print(&diags, stderr);
        exit(1);
    }
    uint64_t load_ms = (now_ns() - t0) / 1000000;
    enum { N = 200000 };
    struct req *reqs = malloc(N * sizeof(*reqs));
    uint64_t *lat = malloc(N * sizeof(*lat));
    make_requests(reqs, N);
    size_t allowed = 0, errors = 0;
    for (int pass = 0; pass < 2; pass++) { /* the first pass warms caches */
        allowed = errors = 0;
        for (int i = 0; i < N; i++) {
            struct policy_request q = {
                .principal = policy_uid_make("Agent", reqs[i].principal),
                .action = policy_uid_make("Action", reqs[i].action),
                .resource = policy_uid_make(reqs[i].rtype, reqs[i].resource),
                .context = ctx,
            };
            struct policy_decision d;
            uint64_t s = now_ns();
            if (policy_decide(set, es, &q, &d))
                exit(1);
            lat[i] = now_ns() - s;
            allowed += d.allow;
            errors += d.nerrors;
            policy_decision_free(&d);
        }
    }
    qsort(lat, N, sizeof(*lat), cmp_u64);
    printf("%-34s %6zu policies  median %6.2f us  p99 %6.2f us  (allow %4.1f%%, errors %zu, load "
           "%llu ms)\n",
           label, policy_set_count(set), lat[N / 2] / 1000.0, lat[N * 99 / 100] / 1000.0,
           100.0 * allowed / N, errors, (unsigned long long)load_ms);
    free(reqs);
    free(lat);
    policy_diags_free(&diags);
    policy_set_free(set);
}

int main(void)
{
    char err[512];
    char *ej = entities_json();
    policy_entities_t *es = policy_entities_load_text(ej, strlen(ej), err, sizeof(err));
    if (!es) {
        fprintf(stderr, "entities: %s\n", err);
        return 1;
    }
    json_error_t jerr;
    json_t *ctx = json_loads("{\"session\": {\"private_data\": true, \"untrusted_input\": false, "
                             "\"admin\": false}, \"depth\": 2, \"hour\": 14, \"chain\": "
                             "[{\"__entity\": {\"type\": \"Agent\", \"id\": \"a1\"}}], \"ip\": "
                             "{\"__extn\": {\"fn\": \"ip\", \"arg\": \"10.1.2.3\"}}}",
                             0, &jerr);
    printf("policy_decide, one core, %zu entities; context of 6 attributes parsed per request\n",
           policy_entities_count(es));
    char *p50 = policies_50();
    run("mcp tool access", p50, es, ctx);
    int sizes[] = {950, 9950};
    for (size_t i = 0; i < 2; i++) {
        char *g = grants(sizes[i]);
        size_t n = strlen(p50) + strlen(g) + 1;
        char *all = malloc(n);
        snprintf(all, n, "%s%s", p50, g);
        char label[64];
        snprintf(label, sizeof(label), "mcp + %d per-agent grants", sizes[i]);
        run(label, all, es, ctx);
        free(all);
        free(g);
    }
    free(p50);
    free(ej);
    json_decref(ctx);
    policy_entities_free(es);
    return 0;
}
