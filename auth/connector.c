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

static char **connector_copy_list(char *const *src, size_t n)
{
	char **dst = x_calloc(n ? n : 1, sizeof(char *));

	for (size_t i = 0; i < n; i++)
		dst[i] = x_strdup(src[i]);
	return dst;
}

static void connector_free_list(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
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
	if (s->username && *s->username)
		c->authorization = connector_basic_header(s->username,
							  s->password ? s->password : "");
	c->ca_file = s->ca_file && *s->ca_file ? x_strdup(s->ca_file) : NULL;
	if (s->ca_pem && s->ca_pem_len) {
		c->ca_pem = x_malloc(s->ca_pem_len);
		memcpy(c->ca_pem, s->ca_pem, s->ca_pem_len);
		c->ca_pem_len = s->ca_pem_len;
	}
	c->n_allow = s->n_allow;
	c->allow = connector_copy_list(s->allow, s->n_allow);
	c->n_allow_push = s->n_allow_push;
	c->allow_push = connector_copy_list(s->allow_push, s->n_allow_push);
	c->allow_insecure = s->allow_insecure;
	c->unavailable = s->unavailable ? x_strdup(s->unavailable) : NULL;
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
	connector_free_list(c->allow, c->n_allow);
	connector_free_list(c->allow_push, c->n_allow_push);
	free(c->ns);
	free(c->name);
	free(c->id);
	free(c->host);
	free(c->path_prefix);
	free(c->address);
	free(c->ca_file);
	free(c->ca_pem);
	free(c->unavailable);
	free(c);
}
