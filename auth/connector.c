#include "auth/connector.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "util/base64.h"
#include "util/xalloc.h"

static char *connector_basic_header(const char *user, const char *password)
{
	size_t ul = strlen(user), pl = strlen(password);
	char *plain = x_malloc(ul + pl + 2);
	memcpy(plain, user, ul);
	plain[ul] = ':';
	memcpy(plain + ul + 1, password, pl + 1);

	size_t enc = base64_encoded_len(ul + pl + 1);
	char *hdr = x_malloc(sizeof("Basic ") + enc);
	memcpy(hdr, "Basic ", 6);
	base64_encode(plain, ul + pl + 1, hdr + 6);
	OPENSSL_cleanse(plain, ul + pl + 1);
	free(plain);
	return hdr;
}

static char *connector_host_header(const char *host, bool https, uint16_t port)
{
	bool v6 = strchr(host, ':') != NULL;
	bool default_port = port == (https ? 443 : 80);
	size_t cap = strlen(host) + 16;
	char *h = x_malloc(cap);
	if (default_port)
		snprintf(h, cap, v6 ? "[%s]" : "%s", host);
	else
		snprintf(h, cap, v6 ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
	return h;
}

struct connector *connector_new(const struct connector_spec *s)
{
	struct connector *c = x_new(struct connector);
	size_t idlen = strlen(s->ns) + strlen(s->name) + 2;

	c->refs = 1;
	c->ns = x_strdup(s->ns);
	c->name = x_strdup(s->name);
	c->id = x_malloc(idlen);
	snprintf(c->id, idlen, "%s/%s", s->ns, s->name);
	c->https = s->https;
	c->host = x_strdup(s->host);
	c->port = s->port;
	c->path_prefix = x_strdup(s->path_prefix ? s->path_prefix : "");
	c->address = x_strdup(s->address ? s->address : s->host);
	c->host_header = connector_host_header(s->host, s->https, s->port);
	if (s->username && *s->username)
		c->authorization = connector_basic_header(s->username,
							  s->password ? s->password : "");
	c->ca_file = s->ca_file && *s->ca_file ? x_strdup(s->ca_file) : NULL;
	c->n_allow = s->n_allow;
	c->allow = x_calloc(s->n_allow ? s->n_allow : 1, sizeof(char *));
	for (size_t i = 0; i < s->n_allow; i++)
		c->allow[i] = x_strdup(s->allow[i]);
	return c;
}

struct connector *connector_ref(struct connector *c)
{
	c->refs++;
	return c;
}

void connector_unref(struct connector *c)
{
	if (!c || --c->refs > 0)
		return;
	if (c->proxy_data_free)
		c->proxy_data_free(c->proxy_data);
	if (c->authorization) {
		OPENSSL_cleanse(c->authorization, strlen(c->authorization));
		free(c->authorization);
	}
	for (size_t i = 0; i < c->n_allow; i++)
		free(c->allow[i]);
	free(c->allow);
	free(c->ns);
	free(c->name);
	free(c->id);
	free(c->host);
	free(c->path_prefix);
	free(c->address);
	free(c->host_header);
	free(c->ca_file);
	free(c);
}
