// SPDX-License-Identifier: Apache-2.0
// `portcullis serve`: starts the workers, routes requests into the pipeline,
// reloads on SIGHUP and drains on SIGTERM.
#ifndef PORTCULLIS_CLI_SERVE_H
#define PORTCULLIS_CLI_SERVE_H

/* Runs until SIGTERM/SIGINT; returns the process exit code. */
int serve_main(const char *config_path);

#endif
