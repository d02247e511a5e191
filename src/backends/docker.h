/*
 * docker.h: a small Docker Engine API client (v1.41) for wsctl's workers.
 *
 * The client never throws for a Docker-side problem: every call returns a
 * DockerResult whose kind tells the caller how to classify the failure in
 * the workspace's error_info (SPEC section 8 / DESIGN I8). Memory comes from
 * CurrentMemoryContext; callers reset a per-tick context.
 *
 * Calls are made outside any transaction (DESIGN section 5).
 */
#ifndef WSCTL_DOCKER_H
#define WSCTL_DOCKER_H

#include "postgres.h"
#include "nodes/pg_list.h"

typedef enum DockerResultKind
{
	DOCKER_OK = 0,
	DOCKER_NOT_FOUND,			/* 404 on the object (idempotent deletes treat as OK) */
	DOCKER_UNREACHABLE,			/* connect/timeout/transport failure or HTTP 5xx */
	DOCKER_ACTION_FAILED		/* Docker answered, but refused (4xx other than 404) */
} DockerResultKind;

typedef struct DockerResult
{
	DockerResultKind kind;
	long		http_status;	/* 0 when no HTTP answer */
	char	   *code;			/* IMAGE_PULL_FAILED, CONTAINER_CREATE_FAILED, ... or NULL */
	char	   *message;		/* human-readable, never NULL when kind != OK */
} DockerResult;

/*
 * One Docker daemon: the setting that names it (for messages) and the
 * setting's variable, read at each call so a reload takes effect.
 */
typedef struct DockerDaemon
{
	const char *setting;		/* "wsctl.docker_host" */
	char	  **host;			/* the GUC variable */
} DockerDaemon;

/* One workspace-managed container as listed by Docker. */
typedef struct DockerContainer
{
	char	   *workspace_id;	/* value of label wsctl.workspace */
	char	   *name;			/* without the leading '/' */
	bool		running;		/* State == "running" */
} DockerContainer;

/* Names derived from the workspace id (SPEC 6.3). Returned palloc'd. */
extern char *docker_container_name(const char *workspace_id);
extern char *docker_volume_name(const char *workspace_id);

/*
 * Listing: ONE API call each, filtered by label wsctl.managed=true.
 * On success *out is a List of DockerContainer* / of char* workspace ids.
 */
extern DockerResult docker_list_containers(const DockerDaemon *d, List **out);
extern DockerResult docker_list_volumes(const DockerDaemon *d, List **out, const char *marker, bool *marker_seen);
extern char *docker_marker_volume_name(uint64 system_identifier);
extern DockerResult docker_create_marker_volume(const DockerDaemon *d, const char *name);

/* Containers */
extern DockerResult docker_inspect_container(const DockerDaemon *d, const char *workspace_id,
											 bool *exists, bool *running);
extern DockerResult docker_create_container(const DockerDaemon *d, const char *workspace_id,
											const char *image_ref);
extern DockerResult docker_start_container(const DockerDaemon *d, const char *workspace_id);
extern DockerResult docker_remove_container(const DockerDaemon *d, const char *workspace_id);	/* kill + remove, force */

/* Volumes */
extern DockerResult docker_create_volume(const DockerDaemon *d, const char *workspace_id);
extern DockerResult docker_remove_volume(const DockerDaemon *d, const char *workspace_id);
extern DockerResult docker_volume_exists(const DockerDaemon *d, const char *workspace_id, bool *exists);

/* The storage job's helper container ws-{id}-job (created, never started). */
extern char *docker_job_container_name(const char *workspace_id);
extern DockerResult docker_create_job_container(const DockerDaemon *d, const char *workspace_id,
												const char *image_ref);
extern DockerResult docker_remove_job_container(const DockerDaemon *d, const char *workspace_id); /* absent = OK */
extern bool docker_archive_endpoint(const DockerDaemon *d, const char *workspace_id, bool put, char **url,
									char **socket_path, DockerResult *error);

/* Count of HTTP requests made since process start (benchmarks, wsctl.workers). */
extern uint64 docker_request_count(void);

/* Settings (GUC variables, defined in wsctl.c). */
extern char *wsctl_docker_host;
extern char *wsctl_container_network;
extern char *wsctl_container_mount_path;
extern char *wsctl_remote_docker_host;

#endif							/* WSCTL_DOCKER_H */
