/* Kubernetes mode's connection to the API server, built once at start-up
 * (proxy/main.c) and shared by everything that talks to it: the auth
 * backend (TokenReview, SubjectAccessReview, the Connector store), the
 * status writer, the pull-secret refresher, the admission webhook and the
 * leader election. Its users borrow the client and the store; whoever owns
 * the runtime frees it after all of them. */
#ifndef OCIGATE_K8S_RUNTIME_H
#define OCIGATE_K8S_RUNTIME_H

#include "util/common.h"
#include "util/config.h"

struct event_base;
struct evdns_base;
struct k8s_client;
struct k8s_store;

struct k8s_runtime {
	struct k8s_client *client;
	struct k8s_store *store; /* Connectors, watched from the start */
	char *server;            /* the API server's URL, for logs */
	char *source;            /* "in-cluster" or the kubeconfig's path */
};

/* Reads the kubeconfig (or the in-cluster configuration) of
 * cfg->kubernetes, creates the API client on base and starts the Connector
 * watch. Returns NULL with a message naming the problem in err. */
struct k8s_runtime *k8s_runtime_new(struct event_base *base, struct evdns_base *dns,
				    const struct config *cfg, char *err, size_t err_cap);
/* After every user of the client and the store. NULL is ignored. */
void k8s_runtime_free(struct k8s_runtime *rt);

/* Checks what k8s_runtime_new would read, without any network (for
 * --check-config): the kubeconfig or in-cluster files. On success, desc
 * gets a one-line summary ("kubeconfig /x context kind server https://..."). */
OG_WARN_UNUSED int k8s_runtime_check_config(const struct config *cfg, char *desc, size_t desc_cap,
					    char *err, size_t err_cap);

#endif
