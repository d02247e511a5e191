/*
 * backend_sites.c: which backends exist, and which of them are enabled.
 *
 * A site pairs an instance controller with the storage provider whose
 * homes it mounts; a workspace's (instance_backend, storage_backend) names
 * one. 'local-docker' is always enabled (wsctl.docker_host has a default);
 * 'remote-docker', a second Docker daemon standing for another node, only
 * while wsctl.remote_docker_host is set. 'k8s' is designed in
 * docs/kubernetes.md and not built: no site names it, so create_workspace
 * refuses it and no worker ever acts for it.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "backend.h"
#include "docker.h"

extern const InstanceController docker_local_instance;
extern const StorageProvider docker_local_volumes;
extern const InstanceController docker_remote_instance;
extern const StorageProvider docker_remote_volumes;

static bool
always(void)
{
	return true;
}

static bool
remote_docker_set(void)
{
	return wsctl_remote_docker_host != NULL && wsctl_remote_docker_host[0] != '\0';
}

static const BackendSite sites[] = {
	{"local-docker", "docker-volume", "wsctl.docker_host", always,
	&docker_local_instance, &docker_local_volumes},
	{"remote-docker", "docker-volume", "wsctl.remote_docker_host", remote_docker_set,
	&docker_remote_instance, &docker_remote_volumes},
};

int
backend_site_count(void)
{
	return lengthof(sites);
}

const BackendSite *
backend_site(int i)
{
	Assert(i >= 0 && i < lengthof(sites));
	return &sites[i];
}

const BackendSite *
backend_site_find(const char *instance_backend, const char *storage_backend)
{
	for (int i = 0; i < lengthof(sites); i++)
	{
		if (strcmp(sites[i].instance_backend, instance_backend) == 0 &&
			strcmp(sites[i].storage_backend, storage_backend) == 0)
			return &sites[i];
	}
	return NULL;
}

uint64
backend_request_count(void)
{
	return docker_request_count();
}

/*
 * wsctl._backend_enabled(instance_backend, storage_backend): whether a site
 * implements the pair and is enabled; what create_workspace checks.
 */
PG_FUNCTION_INFO_V1(wsctl_backend_enabled);

Datum
wsctl_backend_enabled(PG_FUNCTION_ARGS)
{
	const BackendSite *site;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	site = backend_site_find(text_to_cstring(PG_GETARG_TEXT_PP(0)),
							 text_to_cstring(PG_GETARG_TEXT_PP(1)));
	PG_RETURN_BOOL(site != NULL && site->enabled());
}
