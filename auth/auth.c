#include "auth/auth.h"

#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

struct auth_identity *auth_identity_new(const char *user, const char *uid,
					char *const *groups, size_t n_groups)
{
	struct auth_identity *id = x_new(struct auth_identity);

	id->refs = 1;
	id->user = x_strdup(user);
	id->uid = x_strdup(uid ? uid : "");
	id->n_groups = n_groups;
	id->groups = x_calloc(n_groups ? n_groups : 1, sizeof(char *));
	for (size_t i = 0; i < n_groups; i++)
		id->groups[i] = x_strdup(groups[i]);
	return id;
}

struct auth_identity *auth_identity_ref(struct auth_identity *id)
{
	id->refs++;
	return id;
}

void auth_identity_unref(struct auth_identity *id)
{
	if (!id || --id->refs > 0)
		return;
	for (size_t i = 0; i < id->n_groups; i++)
		free(id->groups[i]);
	free(id->groups);
	free(id->user);
	free(id->uid);
	free(id);
}

const char *auth_verb_name(enum auth_verb verb)
{
	return verb == AUTH_VERB_PUSH ? "push" : "pull";
}

static bool auth_name_in_list(const char *name, char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

bool auth_identity_in_list(const struct auth_identity *id, char *const *names, size_t n)
{
	if (auth_name_in_list(id->user, names, n))
		return true;
	for (size_t g = 0; g < id->n_groups; g++)
		if (auth_name_in_list(id->groups[g], names, n))
			return true;
	return false;
}
