/* headwaterctl: operator CLI talking to a gateway's admin port. */
#include <stdio.h>

#include "cli.h"

int main(int argc, char **argv)
{
    return ctl_cli_run(argc, argv, stdout, stderr);
}
