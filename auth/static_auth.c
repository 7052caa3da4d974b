#include "auth/static_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/tokens_file.h"
#include "util/xalloc.h"

struct static_auth {
	struct auth_backend base;
	struct tokens_file tokens;
	struct auth_identity **identities; /* parallel to tokens.entries */
	struct connector **connectors;
	size_t n_connectors;
};

static struct static_auth *static_auth_of(struct auth_backend *b)
{
	return (struct static_auth *)b;
}

static struct auth_pending *static_auth_authenticate(struct auth_backend *b, struct og_str token,
						     const unsigned char token_sha256[32],
						     auth_done_fn done, void *arg)
{
	struct static_auth *sa = static_auth_of(b);
	const struct token_entry *e = tokens_file_find(&sa->tokens, token_sha256);
	struct auth_decision d = { .status = AUTH_INVALID, .message = "invalid token" };

	(void)token;
	if (e) {
		d.status = AUTH_OK;
		d.identity = sa->identities[e - sa->tokens.entries];
		d.message = NULL;
	}
	done(arg, &d);
	return NULL;
}

static struct auth_pending *static_auth_authorize(struct auth_backend *b, struct auth_identity *id,
						  struct connector *c, enum auth_verb verb,
						  auth_done_fn done, void *arg)
{
	struct auth_decision d = { .status = AUTH_DENIED, .identity = id };
	char msg[512];

	(void)b;
	bool ok = verb == AUTH_VERB_PULL ? auth_identity_in_list(id, c->allow, c->n_allow) :
					   auth_identity_in_list(id, c->allow_push, c->n_allow_push);
	if (ok) {
		d.status = AUTH_OK;
	} else {
		snprintf(msg, sizeof(msg), "user %s may not %s through connector %s", id->user,
			 auth_verb_name(verb), c->id);
		d.message = msg;
	}
	done(arg, &d);
	return NULL;
}

static void static_auth_cancel(struct auth_backend *b, struct auth_pending *p)
{
	/* Every operation completes synchronously, so nothing is ever pending. */
	(void)b;
	(void)p;
}

static struct connector *static_auth_find_connector(struct auth_backend *b, struct og_str ns,
						    struct og_str name)
{
	struct static_auth *sa = static_auth_of(b);

	for (size_t i = 0; i < sa->n_connectors; i++) {
		struct connector *c = sa->connectors[i];
		if (og_str_eq(ns, c->ns) && og_str_eq(name, c->name))
			return connector_ref(c);
	}
	return NULL;
}

static void static_auth_free(struct auth_backend *b)
{
	struct static_auth *sa = static_auth_of(b);

	if (!sa)
		return;
	for (size_t i = 0; i < sa->tokens.n; i++)
		auth_identity_unref(sa->identities[i]);
	free(sa->identities);
	for (size_t i = 0; i < sa->n_connectors; i++)
		connector_unref(sa->connectors[i]);
	free(sa->connectors);
	tokens_file_free(&sa->tokens);
	free(sa);
}

static const struct auth_backend_ops static_auth_ops = {
	.name = "static",
	.authenticate = static_auth_authenticate,
	.authorize = static_auth_authorize,
	.cancel = static_auth_cancel,
	.find_connector = static_auth_find_connector,
	.free = static_auth_free,
};

static struct connector *static_auth_connector(const struct config_connector *cc)
{
	struct connector_spec spec = {
		.ns = cc->ns,
		.name = cc->name,
		.https = cc->address.https,
		.host = cc->address.host,
		.port = cc->address.port,
		.path_prefix = cc->address.path_prefix,
		.address = cc->address.text,
		.username = cc->username,
		.password = cc->password,
		.ca_file = cc->ca_file,
		.allow = cc->allow.items,
		.n_allow = cc->allow.n,
		.allow_push = cc->allow_push.items,
		.n_allow_push = cc->allow_push.n,
		.allow_insecure = cc->allow_insecure,
	};
	return connector_new(&spec);
}

struct auth_backend *static_auth_new(const struct config *cfg, char *err, size_t err_cap)
{
	struct static_auth *sa = x_new(struct static_auth);

	sa->base.ops = &static_auth_ops;
	if (tokens_file_load(cfg->auth.tokens_file, &sa->tokens, err, err_cap) != 0) {
		free(sa);
		return NULL;
	}
	sa->identities = x_calloc(sa->tokens.n ? sa->tokens.n : 1, sizeof(*sa->identities));
	for (size_t i = 0; i < sa->tokens.n; i++) {
		const struct token_entry *e = &sa->tokens.entries[i];
		sa->identities[i] = auth_identity_new(e->user, e->uid, e->groups, e->n_groups);
	}
	sa->n_connectors = cfg->n_connectors;
	sa->connectors = x_calloc(cfg->n_connectors ? cfg->n_connectors : 1,
				  sizeof(*sa->connectors));
	for (size_t i = 0; i < cfg->n_connectors; i++)
		sa->connectors[i] = static_auth_connector(&cfg->connectors[i]);
	return &sa->base;
}
