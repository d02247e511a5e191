/*
 * docker_backend.c: the Docker InstanceController ('local-docker',
 * 'remote-docker') and the docker-volume StorageProvider behind the
 * interfaces of backend.h.
 *
 * One implementation serves every Docker site: the site's DockerDaemon is
 * the self->site of both structs, so the same functions talk to
 * wsctl.docker_host for 'local-docker' and to wsctl.remote_docker_host for
 * 'remote-docker'. A volume is local to its daemon, so each site has its
 * own docker-volume provider bound to the same daemon as its controller.
 */
#include "postgres.h"

#include "backend.h"
#include "docker.h"
#include "storage_job.h"

/* A Docker failure as an outcome: how the error policy classifies it (I8). */
static OpOutcome
docker_outcome(DockerResult r, const char *default_code)
{
	const char *reason = r.kind == DOCKER_UNREACHABLE ? "Unreachable" : "ActionFailed";

	return op_failed(reason, r.code ? r.code : default_code, r.message);
}

static const DockerDaemon *
instance_daemon(const InstanceController *self)
{
	return (const DockerDaemon *) self->site;
}

static const DockerDaemon *
storage_daemon(const StorageProvider *self)
{
	return (const DockerDaemon *) self->site;
}

/* --- InstanceController --- */

static OpOutcome
dk_get_instance(const InstanceController *self, const char *id, InstanceState *out)
{
	DockerResult r = docker_inspect_container(instance_daemon(self), id,
											  &out->exists, &out->running);

	return r.kind == DOCKER_OK ? op_succeeded() : docker_outcome(r, NULL);
}

static OpOutcome
dk_create_instance(const InstanceController *self, const char *id, const char *image_ref)
{
	DockerResult r = docker_create_container(instance_daemon(self), id, image_ref);

	return r.kind == DOCKER_OK ? op_succeeded() : docker_outcome(r, "CONTAINER_CREATE_FAILED");
}

static OpOutcome
dk_start_instance(const InstanceController *self, const char *id)
{
	DockerResult r = docker_start_container(instance_daemon(self), id);

	return r.kind == DOCKER_OK ? op_succeeded() : docker_outcome(r, "CONTAINER_START_FAILED");
}

static OpOutcome
dk_remove_instance(const InstanceController *self, const char *id)
{
	DockerResult r = docker_remove_container(instance_daemon(self), id);

	if (r.kind == DOCKER_OK || r.kind == DOCKER_NOT_FOUND)
		return op_succeeded();
	return docker_outcome(r, NULL);
}

/* The workspace container itself is ws-{id}; helper containers are not. */
static OpOutcome
dk_list_instances(const InstanceController *self, List **out)
{
	List	   *containers = NIL;
	ListCell   *lc;
	DockerResult r = docker_list_containers(instance_daemon(self), &containers);

	*out = NIL;
	if (r.kind != DOCKER_OK)
		return docker_outcome(r, NULL);
	foreach(lc, containers)
	{
		DockerContainer *c = lfirst(lc);
		ObservedInstance *o;

		if (strcmp(c->name, docker_container_name(c->workspace_id)) != 0)
			continue;
		o = palloc(sizeof(ObservedInstance));
		o->workspace_id = c->workspace_id;
		o->running = c->running;
		*out = lappend(*out, o);
	}
	return op_succeeded();
}

static char *
dk_describe_instance(const InstanceController *self, const char *id)
{
	return psprintf("container %s", docker_container_name(id));
}

/* --- StorageProvider (docker-volume) --- */

static OpOutcome
dv_home_exists(const StorageProvider *self, const char *id, bool *exists)
{
	DockerResult r = docker_volume_exists(storage_daemon(self), id, exists);

	return r.kind == DOCKER_OK ? op_succeeded() : docker_outcome(r, NULL);
}

static OpOutcome
dv_create_home(const StorageProvider *self, const char *id)
{
	DockerResult r = docker_create_volume(storage_daemon(self), id);

	return r.kind == DOCKER_OK ? op_succeeded() : docker_outcome(r, "VOLUME_CREATE_FAILED");
}

static OpOutcome
dv_remove_home(const StorageProvider *self, const char *id)
{
	DockerResult r = docker_remove_volume(storage_daemon(self), id);

	if (r.kind == DOCKER_OK || r.kind == DOCKER_NOT_FOUND)
		return op_succeeded();
	return docker_outcome(r, NULL);
}

static OpOutcome
dv_list_homes(const StorageProvider *self, uint64 system_identifier, List **ids,
			  bool *marker_seen)
{
	DockerResult r = docker_list_volumes(storage_daemon(self), ids,
										 docker_marker_volume_name(system_identifier),
										 marker_seen);

	return r.kind == DOCKER_OK ? op_succeeded() : docker_outcome(r, NULL);
}

static OpOutcome
dv_create_marker(const StorageProvider *self, uint64 system_identifier)
{
	DockerResult r = docker_create_marker_volume(storage_daemon(self),
												 docker_marker_volume_name(system_identifier));

	return r.kind == DOCKER_OK ? op_succeeded() : docker_outcome(r, NULL);
}

static OpOutcome
dv_remove_transfers(const StorageProvider *self, const char *id)
{
	DockerResult r = docker_remove_job_container(storage_daemon(self), id);

	return r.kind == DOCKER_OK ? op_succeeded() : docker_outcome(r, NULL);
}

/*
 * The helper container ws-{id}-job mounts the volume at /data and gives
 * Docker's archive endpoint a path to it; the bytes stream through this
 * worker (storage_job.c).
 */
static OpOutcome
dv_archive_home(const StorageProvider *self, const TransferRequest *req)
{
	const DockerDaemon *d = storage_daemon(self);
	DockerResult r = docker_remove_job_container(d, req->workspace_id);
	OpOutcome	o;

	if (r.kind != DOCKER_OK)
		return docker_outcome(r, NULL);
	r = docker_create_job_container(d, req->workspace_id, req->image_ref);
	if (r.kind != DOCKER_OK)
		return docker_outcome(r, "JOB_CREATE_FAILED");
	o = storage_archive(d, req->workspace_id, req->key, req->progress_slot);
	if (!o.ok)
		(void) docker_remove_job_container(d, req->workspace_id);
	return o;
}

static OpOutcome
dv_remove_home_and_job(const StorageProvider *self, const char *id)
{
	OpOutcome	o = dv_remove_transfers(self, id);

	return o.ok ? dv_remove_home(self, id) : o;
}

static OpOutcome
dv_restore_home(const StorageProvider *self, const TransferRequest *req)
{
	const DockerDaemon *d = storage_daemon(self);
	DockerResult r = docker_create_volume(d, req->workspace_id);
	OpOutcome	o;

	if (r.kind != DOCKER_OK)
		return docker_outcome(r, "VOLUME_CREATE_FAILED");
	r = docker_create_job_container(d, req->workspace_id, req->image_ref);
	if (r.kind != DOCKER_OK)
	{
		(void) dv_remove_home_and_job(self, req->workspace_id);
		return docker_outcome(r, "JOB_CREATE_FAILED");
	}
	o = storage_restore(d, req->workspace_id, req->key, req->size, req->expected_sha256,
						req->progress_slot);
	if (!o.ok)
	{
		OpOutcome	removed = dv_remove_home_and_job(self, req->workspace_id);

		if (!removed.ok)
			ereport(WARNING,
					(errmsg("wsctl operation: workspace %s: RESTORING failed and the unverified volume could not be removed: %s",
							req->workspace_id, removed.message)));
		return o;
	}
	return dv_remove_transfers(self, req->workspace_id);
}

static char *
dv_describe(const StorageProvider *self, const char *id)
{
	return psprintf("volume %s", docker_volume_name(id));
}

static char *
dv_marker_name(const StorageProvider *self, uint64 system_identifier)
{
	return psprintf("marker volume %s", docker_marker_volume_name(system_identifier));
}

static char *
dv_describe_site(const StorageProvider *self)
{
	const DockerDaemon *d = storage_daemon(self);

	return psprintf("Docker at %s", *d->host ? *d->host : "");
}

/* --- the Docker sites --- */

#define DOCKER_INSTANCE_CONTROLLER(cname, daemon) \
	{ \
		.name = cname, \
		.site = &daemon, \
		.get_instance = dk_get_instance, \
		.create_instance = dk_create_instance, \
		.start_instance = dk_start_instance, \
		.remove_instance = dk_remove_instance, \
		.list_instances = dk_list_instances, \
		.describe = dk_describe_instance, \
	}

#define DOCKER_VOLUME_PROVIDER(daemon) \
	{ \
		.name = "docker-volume", \
		.site = &daemon, \
		.home_exists = dv_home_exists, \
		.create_home = dv_create_home, \
		.remove_home = dv_remove_home, \
		.list_homes = dv_list_homes, \
		.create_marker = dv_create_marker, \
		.archive_home = dv_archive_home, \
		.restore_home = dv_restore_home, \
		.remove_transfers = dv_remove_transfers, \
		.describe = dv_describe, \
		.marker_name = dv_marker_name, \
		.describe_site = dv_describe_site, \
	}

static const DockerDaemon local_daemon = {"wsctl.docker_host", &wsctl_docker_host};
static const DockerDaemon remote_daemon = {"wsctl.remote_docker_host", &wsctl_remote_docker_host};

const InstanceController docker_local_instance = DOCKER_INSTANCE_CONTROLLER("local-docker", local_daemon);
const StorageProvider docker_local_volumes = DOCKER_VOLUME_PROVIDER(local_daemon);
const InstanceController docker_remote_instance = DOCKER_INSTANCE_CONTROLLER("remote-docker", remote_daemon);
const StorageProvider docker_remote_volumes = DOCKER_VOLUME_PROVIDER(remote_daemon);
