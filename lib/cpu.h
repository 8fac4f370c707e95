/*
 * cpu.h — which CPUs this process may run on, and pinning to one of them.
 */
#ifndef FA_CPU_H
#define FA_CPU_H

#include "fa.h"

/** Fills cpus with the CPU numbers in the affinity mask (at most max); returns how many. */
unsigned fa_cpu_list(int *cpus, unsigned max);

/** Pins the calling process to cpu; 0 or -errno. */
int fa_cpu_pin(int cpu);

#endif
