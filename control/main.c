/* zq-ctl: command-line control of a zq broker. Everything lives in zq_ctl.c / zq_cli.c. */
#include "config.h"
#include "zq_ctl.h"

int main(int argc, char *argv[])
{
    return zq_ctl_main(argc, argv);
}
