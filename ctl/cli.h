/* headwaterctl's command line: flags, commands, output. Separate from main.c so tests can run
 * it with their own streams. */
#ifndef CTL_CLI_H
#define CTL_CLI_H

#include <stdio.h>

/* Run headwaterctl with argv; writes results to out and diagnostics to err. Returns the
 * process exit code (see CTL_EXIT_* in status.h). */
int ctl_cli_run(int argc, char **argv, FILE *out, FILE *err);

#endif
