// SPDX-License-Identifier: Apache-2.0
// The LLM protocol stage: OpenAI-compatible endpoints (chat completions,
// embeddings, models) and Anthropic's /v1/messages, routed from the config's
// models to providers with fallback, streaming passthrough and usage capture.
#ifndef PORTCULLIS_LLM_LLM_H
#define PORTCULLIS_LLM_LLM_H

#include <stddef.h>

struct http_exchange;

/* POST /v1/chat/completions */
void llm_chat_completions(struct http_exchange *ex);
/* POST /v1/embeddings */
void llm_embeddings(struct http_exchange *ex);
/* POST /v1/messages (providers of kind anthropic) */
void llm_messages(struct http_exchange *ex);
/* GET /v1/models */
void llm_models(struct http_exchange *ex);
/* GET /v1/models/{id}; id is the percent-encoded rest of the path. */
void llm_model_retrieve(struct http_exchange *ex, const char *id);

/* Answers with an OpenAI-shaped error body:
 * {"error":{"message":…,"type":…,"code":…,"param":…}}. code/param may be NULL. */
void llm_error(struct http_exchange *ex, int status, const char *type, const char *code,
               const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
