/* sm-test-autoconfig.h: what the autoconfig tests (tests/proxy and the setup
 * assistant's GUI test) stand in for: a resolver with SRV records of the
 * test's choosing (no DNS server runs here), and a loopback HTTPS server
 * that answers the autoconfig locations. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* ---- SRV records -------------------------------------------------------- */

typedef struct {
  GResolver parent_instance;
  GHashTable *records;     /* "_imaps._tcp.example.org" -> "host:port" ("." = not offered) */
  GPtrArray *asked;        /* rrnames asked for, in order */
  GMutex lock;
} SmTestResolver;

typedef struct {
  GResolverClass parent_class;
} SmTestResolverClass;

GType           sm_test_resolver_get_type (void);
SmTestResolver *sm_test_resolver_new (void);
/* @rrname and @target ("host:port") must outlive the resolver. */
void            sm_test_resolver_add (SmTestResolver *self, const char *rrname, const char *target);

/* ---- HTTPS ---------------------------------------------------------------- */

typedef struct {
  GTlsCertificate *cert;
  GMutex lock;
  GPtrArray *requests;            /* the request heads received */
  const char *subdomain_answer;   /* whole HTTP answers: to any other path ... */
  const char *well_known_answer;  /* ... and to /.well-known/ */
} SmTestHttps;

/* Starts a loopback HTTPS server with @cert_path/@key_path for @srv (its
 * answers set by the caller); its port in *@port. */
GSocketService *sm_test_https_start (SmTestHttps *srv, const char *cert_path, const char *key_path, guint16 *port);
/* Stops it and frees what start made (not the answers). */
void            sm_test_https_stop  (SmTestHttps *srv, GSocketService *service);

/* "HTTP/1.1 200 OK" with @body as an XML document. */
char           *sm_test_https_ok    (const char *body);

G_END_DECLS
