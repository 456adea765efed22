/* time.h: clocks used everywhere (monotonic for durations, realtime for timestamps). */
#ifndef CRL_CORE_TIME_H
#define CRL_CORE_TIME_H

#include <stdint.h>
#include <time.h>

static inline uint64_t crl_time_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Seconds since the epoch, as the original's time.time(). */
static inline double crl_time_wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
