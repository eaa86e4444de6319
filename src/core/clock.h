// SPDX-License-Identifier: Apache-2.0
// Monotonic and wall clocks in the units the gateway uses.
#ifndef PORTCULLIS_CORE_CLOCK_H
#define PORTCULLIS_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int64_t clock_wall_s(void)
{
    return (int64_t)time(NULL);
}

#endif
