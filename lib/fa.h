/*
 * fa.h — what every fasterapid file includes: the status vocabulary, a few macros, forward types.
 *
 * Status codes follow nginx's small vocabulary. Thin syscall wrappers return 0 or -errno instead.
 */
#ifndef FA_H
#define FA_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <assert.h>

#define FA_VERSION "0.1.0"

typedef enum {
    FA_OK = 0,        /* done, go on */
    FA_AGAIN = -2,    /* suspended: waiting on a future or on I/O */
    FA_DECLINED = -5, /* not mine: let the next one try */
    FA_DONE = -4,     /* the response has already been produced */
    FA_ERROR = -1,    /* failed; the caller closes or answers an error */
} fa_status_t;

#define FA_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define FA_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define FA_LIKELY(x) __builtin_expect(!!(x), 1)
#define FA_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define FA_MIN(a, b) ((a) < (b) ? (a) : (b))
#define FA_MAX(a, b) ((a) > (b) ? (a) : (b))
#define FA_CACHELINE 64
#define FA_ALIGN_UP(n, a) (((n) + ((a)-1)) & ~((size_t)(a)-1))

/* A borrowed byte range: never NUL-terminated unless said so. */
typedef struct {
    const char *ptr;
    size_t len;
} fa_str_t;

#define FA_STR_LIT(s) ((fa_str_t){(s), sizeof(s) - 1})
#define FA_STR_NULL ((fa_str_t){NULL, 0})

typedef struct fa_pool fa_pool_t;
typedef struct fa_config fa_config_t;
typedef struct fa_worker fa_worker_t;
typedef struct fa_conn fa_conn_t;
typedef struct fa_req fa_req_t;

#endif
