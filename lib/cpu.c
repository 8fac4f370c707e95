/*
 * cpu.c — see cpu.h.
 */
#include "cpu.h"

#include <errno.h>
#include <sched.h>

unsigned fa_cpu_list(int *cpus, unsigned max)
{
    cpu_set_t set;
    unsigned n = 0;
    if (sched_getaffinity(0, sizeof(set), &set) < 0) {
        if (max)
            cpus[n++] = 0;
        return n;
    }
    for (int i = 0; i < CPU_SETSIZE && n < max; i++)
        if (CPU_ISSET(i, &set))
            cpus[n++] = i;
    return n;
}

int fa_cpu_pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}
