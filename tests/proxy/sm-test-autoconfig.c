/* sm-test-autoconfig.c: a test resolver and a loopback HTTPS server. */
#include <stdlib.h>
#include <string.h>

#include "sm-test-autoconfig.h"

/* ---- a resolver with SRV records of the test's choosing ------------------------- */

G_DEFINE_TYPE (SmTestResolver, sm_test_resolver, G_TYPE_RESOLVER)

static GList *
sm_test_resolver_lookup_service (GResolver *resolver, const char *rrname, GCancellable *cancellable, GError **error)
{
  SmTestResolver *self = (SmTestResolver *) resolver;
  const char *value;
  g_auto(GStrv) parts = NULL;

  g_mutex_lock (&self->lock);
  g_ptr_array_add (self->asked, g_strdup (rrname));
  value = g_hash_table_lookup (self->records, rrname);
  g_mutex_unlock (&self->lock);
  if (value == NULL)
    {
      g_set_error (error, G_RESOLVER_ERROR, G_RESOLVER_ERROR_NOT_FOUND, "no SRV record for %s", rrname);
      return NULL;
    }
  parts = g_strsplit (value, ":", 2);
  return g_list_append (NULL, g_srv_target_new (parts[0], parts[1] ? (guint16) atoi (parts[1]) : 0, 0, 0));
}

static void
sm_test_resolver_finalize (GObject *object)
{
  SmTestResolver *self = (SmTestResolver *) object;

  g_hash_table_unref (self->records);
  g_ptr_array_unref (self->asked);
  g_mutex_clear (&self->lock);
  G_OBJECT_CLASS (sm_test_resolver_parent_class)->finalize (object);
}

static void
sm_test_resolver_class_init (SmTestResolverClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = sm_test_resolver_finalize;
  G_RESOLVER_CLASS (klass)->lookup_service = sm_test_resolver_lookup_service;
}

static void
sm_test_resolver_init (SmTestResolver *self)
{
  self->records = g_hash_table_new (g_str_hash, g_str_equal);
  self->asked = g_ptr_array_new_with_free_func (g_free);
  g_mutex_init (&self->lock);
}

/* ---- HTTPS against a loopback server ---------------------------------------------- */

static gboolean
on_run (GThreadedSocketService *service, GSocketConnection *conn, GObject *source, gpointer user_data)
{
  SmTestHttps *srv = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GIOStream) tls = g_tls_server_connection_new (G_IO_STREAM (conn), srv->cert, &error);
  g_autoptr(GString) head = g_string_new (NULL);
  const char *answer;
  char c;

  if (tls == NULL || !g_tls_connection_handshake (G_TLS_CONNECTION (tls), NULL, &error))
    return TRUE;   /* the client refused our certificate: nothing to answer */
  while (!g_str_has_suffix (head->str, "\r\n\r\n") &&
         g_input_stream_read (g_io_stream_get_input_stream (tls), &c, 1, NULL, NULL) == 1)
    g_string_append_c (head, c);
  g_mutex_lock (&srv->lock);
  g_ptr_array_add (srv->requests, g_strdup (head->str));
  g_mutex_unlock (&srv->lock);
  answer = strstr (head->str, "/.well-known/") ? srv->well_known_answer : srv->subdomain_answer;
  g_output_stream_write_all (g_io_stream_get_output_stream (tls), answer, strlen (answer), NULL, NULL, NULL);
  g_io_stream_close (tls, NULL, NULL);
  return TRUE;
}

GSocketService *
sm_test_https_start (SmTestHttps *srv, const char *cert_path, const char *key_path, guint16 *port)
{
  GSocketService *service = g_threaded_socket_service_new (4);
  g_autoptr(GError) error = NULL;

  srv->cert = g_tls_certificate_new_from_files (cert_path, key_path, &error);
  g_assert_no_error (error);
  g_mutex_init (&srv->lock);
  srv->requests = g_ptr_array_new_with_free_func (g_free);
  *port = g_socket_listener_add_any_inet_port (G_SOCKET_LISTENER (service), NULL, &error);
  g_assert_no_error (error);
  g_signal_connect (service, "run", G_CALLBACK (on_run), srv);
  g_socket_service_start (service);
  return service;
}

void
sm_test_https_stop (SmTestHttps *srv, GSocketService *service)
{
  g_socket_service_stop (service);
  g_socket_listener_close (G_SOCKET_LISTENER (service));
  /* The cancelled accept reports back through the main context first. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_object_unref (service);
  g_clear_object (&srv->cert);
  g_ptr_array_unref (srv->requests);
  g_mutex_clear (&srv->lock);
}

SmTestResolver *
sm_test_resolver_new (void)
{
  return g_object_new (sm_test_resolver_get_type (), NULL);
}

void
sm_test_resolver_add (SmTestResolver *self, const char *rrname, const char *target)
{
  g_hash_table_insert (self->records, (gpointer) rrname, (gpointer) target);
}

char *
sm_test_https_ok (const char *body)
{
  return g_strdup_printf ("HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: %zu\r\n\r\n%s",
                          strlen (body), body);
}
