/* sm-trust-database.c: the trust anchors for the provider's certificate. */
#include "config.h"

#include <glib/gi18n.h>

#include "sm-error.h"
#include "sm-trust-database.h"

struct _SmTrustDatabase {
  GTlsDatabase parent_instance;
  GTlsDatabase *system;   /* the backend's shared default database */
  GList *anchors;         /* GTlsCertificate*, from ca_file */
};

G_DEFINE_FINAL_TYPE (SmTrustDatabase, sm_trust_database, G_TYPE_TLS_DATABASE)

static GTlsCertificateFlags
sm_trust_database_verify_chain (GTlsDatabase *database, GTlsCertificate *chain, const gchar *purpose,
                                GSocketConnectable *identity, GTlsInteraction *interaction,
                                GTlsDatabaseVerifyFlags flags, GCancellable *cancellable, GError **error)
{
  SmTrustDatabase *self = SM_TRUST_DATABASE (database);
  GTlsCertificateFlags result = G_TLS_CERTIFICATE_UNKNOWN_CA;
  g_autoptr(GError) local = NULL;

  if (self->system != NULL)
    {
      result = g_tls_database_verify_chain (self->system, chain, purpose, identity, interaction, flags,
                                            cancellable, &local);
      if (local != NULL)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return G_TLS_CERTIFICATE_GENERIC_ERROR;
        }
      if (result == 0)
        return 0;
    }
  /* Only an unknown issuer can be fixed by a private anchor; an expired or
   * misnamed certificate stays refused whoever signed it. */
  for (GList *l = self->anchors; l != NULL; l = l->next)
    {
      GTlsCertificateFlags f = g_tls_certificate_verify (chain, identity, l->data);
      if (f == 0)
        return 0;
      if ((f & ~G_TLS_CERTIFICATE_UNKNOWN_CA) != 0)
        result = f;
    }
  return result;
}

static void
sm_trust_database_finalize (GObject *object)
{
  SmTrustDatabase *self = SM_TRUST_DATABASE (object);

  g_clear_object (&self->system);
  g_list_free_full (self->anchors, g_object_unref);
  G_OBJECT_CLASS (sm_trust_database_parent_class)->finalize (object);
}

static void
sm_trust_database_class_init (SmTrustDatabaseClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = sm_trust_database_finalize;
  G_TLS_DATABASE_CLASS (klass)->verify_chain = sm_trust_database_verify_chain;
}

static void
sm_trust_database_init (SmTrustDatabase *self)
{
}

GTlsDatabase *
sm_trust_database_new (const char *ca_file, GError **error)
{
  g_autoptr(SmTrustDatabase) self = g_object_new (SM_TYPE_TRUST_DATABASE, NULL);
  g_autoptr(GError) local = NULL;

  self->system = g_tls_backend_get_default_database (g_tls_backend_get_default ());
  if (ca_file != NULL)
    {
      self->anchors = g_tls_certificate_list_new_from_file (ca_file, &local);
      if (self->anchors == NULL)
        {
          g_set_error (error, SM_ERROR, SM_ERROR_TLS, _("Cannot read [upstream] ca_file %s: %s"), ca_file,
                       local ? local->message : _("no certificate in it"));
          return NULL;
        }
    }
  return G_TLS_DATABASE (g_steal_pointer (&self));
}

G_LOCK_DEFINE_STATIC (shared);
static GHashTable *shared_databases;   /* ca_file ("" for none) -> GTlsDatabase* */

GTlsDatabase *
sm_trust_database_get_shared (const char *ca_file, GError **error)
{
  const char *key = ca_file ? ca_file : "";
  GTlsDatabase *db;

  G_LOCK (shared);
  if (shared_databases == NULL)
    shared_databases = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  db = g_hash_table_lookup (shared_databases, key);
  if (db == NULL)
    {
      db = sm_trust_database_new (ca_file, error);
      if (db != NULL)
        g_hash_table_insert (shared_databases, g_strdup (key), db);
    }
  if (db != NULL)
    g_object_ref (db);
  G_UNLOCK (shared);
  return db;
}
