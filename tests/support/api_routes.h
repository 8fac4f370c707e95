/*
 * api_routes.h — a realistic 50-route API table (static, parameter and wildcard routes), shared
 * by the router's tests (every route reachable) and its benchmark (perf/bench_router.c), so both
 * measure and check the same table.
 */
#ifndef FA_TEST_API_ROUTES_H
#define FA_TEST_API_ROUTES_H

#include "router.h"

typedef struct {
    fa_method_t method;
    const char *pattern;
} api_route_t;

static const api_route_t api[] = {
    {FA_METHOD_POST, "/event"},
    {FA_METHOD_GET, "/stats"},
    {FA_METHOD_GET, "/health"},
    {FA_METHOD_GET, "/ready"},
    {FA_METHOD_GET, "/metrics"},
    {FA_METHOD_GET, "/version"},
    {FA_METHOD_GET, "/favicon.ico"},
    {FA_METHOD_GET, "/static/*file"},
    {FA_METHOD_GET, "/api/v1/users"},
    {FA_METHOD_POST, "/api/v1/users"},
    {FA_METHOD_GET, "/api/v1/users/me"},
    {FA_METHOD_GET, "/api/v1/users/:id"},
    {FA_METHOD_PUT, "/api/v1/users/:id"},
    {FA_METHOD_PATCH, "/api/v1/users/:id"},
    {FA_METHOD_DELETE, "/api/v1/users/:id"},
    {FA_METHOD_GET, "/api/v1/users/:id/events"},
    {FA_METHOD_POST, "/api/v1/users/:id/events"},
    {FA_METHOD_GET, "/api/v1/users/:id/events/:event"},
    {FA_METHOD_DELETE, "/api/v1/users/:id/events/:event"},
    {FA_METHOD_GET, "/api/v1/users/:id/stats"},
    {FA_METHOD_GET, "/api/v1/users/:id/followers"},
    {FA_METHOD_GET, "/api/v1/users/:id/following"},
    {FA_METHOD_GET, "/api/v1/events"},
    {FA_METHOD_POST, "/api/v1/events"},
    {FA_METHOD_POST, "/api/v1/events/batch"},
    {FA_METHOD_GET, "/api/v1/events/:event"},
    {FA_METHOD_DELETE, "/api/v1/events/:event"},
    {FA_METHOD_GET, "/api/v1/projects"},
    {FA_METHOD_POST, "/api/v1/projects"},
    {FA_METHOD_GET, "/api/v1/projects/:project"},
    {FA_METHOD_PUT, "/api/v1/projects/:project"},
    {FA_METHOD_DELETE, "/api/v1/projects/:project"},
    {FA_METHOD_GET, "/api/v1/projects/:project/keys"},
    {FA_METHOD_POST, "/api/v1/projects/:project/keys"},
    {FA_METHOD_DELETE, "/api/v1/projects/:project/keys/:key"},
    {FA_METHOD_GET, "/api/v1/projects/:project/files/*path"},
    {FA_METHOD_PUT, "/api/v1/projects/:project/files/*path"},
    {FA_METHOD_GET, "/api/v1/search"},
    {FA_METHOD_GET, "/api/v2/events"},
    {FA_METHOD_POST, "/api/v2/events"},
    {FA_METHOD_GET, "/api/v2/events/:event"},
    {FA_METHOD_GET, "/api/v2/users/:id"},
    {FA_METHOD_POST, "/auth/login"},
    {FA_METHOD_POST, "/auth/logout"},
    {FA_METHOD_POST, "/auth/refresh"},
    {FA_METHOD_GET, "/auth/callback/:provider"},
    {FA_METHOD_GET, "/admin/users"},
    {FA_METHOD_GET, "/admin/users/:id"},
    {FA_METHOD_POST, "/admin/users/:id/ban"},
    {FA_METHOD_GET, "/docs/*page"},
};

#endif
