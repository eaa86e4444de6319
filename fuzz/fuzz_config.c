// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the config loader: any bytes in, either a snapshot or
// a list of errors out, never a crash, a hang or a leak.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config_errors errs;
    struct config *c = config_load_string("fuzz.yaml", (const char *)data, size, &errs);
    if (c != NULL) {
        /* Touch what consumers touch: lookups and target -> provider links. */
        for (size_t i = 0; i < c->nmodels; i++) {
            const struct config_model *m = config_find_model(c, c->models[i].name);
            for (size_t j = 0; m != NULL && j < m->ntargets; j++)
                if (config_find_provider(c, m->targets[j].provider->name) == NULL)
                    __builtin_trap();
        }
        config_ref(c);
        config_unref(c);
        config_unref(c);
    } else {
        FILE *devnull = fopen("/dev/null", "w");
        if (devnull != NULL) {
            config_errors_print(&errs, devnull);
            fclose(devnull);
        }
    }
    config_errors_free(&errs);
    return 0;
}
