/*
 * workers.c: registration of wsctl's static background workers.
 */
#include "postgres.h"

#include "workers.h"

void
wsctl_register_workers(void)
{
}
