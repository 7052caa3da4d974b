/* A connector: one upstream registry and the credential ocigate uses for it.
 * Refcounted, immutable once published: a reload or a watch event replaces
 * the object, and in-flight requests keep the one they started with. */
#ifndef OCIGATE_AUTH_CONNECTOR_H
#define OCIGATE_AUTH_CONNECTOR_H

#include "util/common.h"

struct connector {
	unsigned refs;
	char *ns;
	char *name;
	char *id;           /* "ns/name", for logs and messages */
	bool https;
	char *host;
	uint16_t port;
	char *path_prefix;  /* "" or "/prefix" */
	char *address;      /* the address as configured, for messages */
	char *authorization; /* "Basic ..." for the upstream, or NULL */
	char *ca_file;      /* extra trust, or NULL */
	unsigned char *ca_pem; /* extra trust as PEM (from a Secret), or NULL */
	size_t ca_pem_len;
	char **allow;       /* users or groups that may pull */
	size_t n_allow;
	char **allow_push;  /* users or groups that may push and delete */
	size_t n_allow_push;
	bool allow_insecure; /* plain-http redirect targets and token services */
	/* Set when the connector exists but cannot be used now (its Secret is
	 * missing, say): requests get 503 with this message. */
	char *unavailable;
	/* Owned by the proxy layer (its upstream pool); freed with the connector
	 * through the destructor the proxy registered. */
	void *proxy_data;
	void (*proxy_data_free)(void *proxy_data);
	unsigned metrics_slot; /* the proxy's metrics series for this id; 0 = not looked up */
};

struct connector_spec {
	const char *ns, *name;
	bool https;
	const char *host;
	uint16_t port;
	const char *path_prefix;
	const char *address;
	const char *username, *password;
	const char *ca_file;
	const unsigned char *ca_pem; /* takes precedence over ca_file */
	size_t ca_pem_len;
	char *const *allow;
	size_t n_allow;
	char *const *allow_push;
	size_t n_allow_push;
	bool allow_insecure;
	const char *unavailable;
};

struct connector *connector_new(const struct connector_spec *spec);
struct connector *connector_ref(struct connector *c);
void connector_unref(struct connector *c);

#endif
