/*
 * backend.h: the spec's InstanceController (SPEC 6.5) and StorageProvider
 * (SPEC 5.1) as C interfaces, structs of functions.
 *
 * A workspace's instance_backend and storage_backend columns name a site:
 * one instance controller and the storage provider whose homes it can
 * mount (a Docker volume lives on one daemon, so the docker-volume provider
 * of a site is bound to that site's daemon). The operation worker and the
 * HealthMonitor look a site up and from then on call only through these
 * pointers; only the files of src/backends/ know which service answers.
 *
 * Every method returns an OpOutcome already classified by the error policy
 * (SPEC 8.4: Unreachable, ActionFailed, Mismatch, DataLost), never throws
 * for a backend-side problem, is idempotent, and is called with no
 * transaction open. Memory comes from CurrentMemoryContext.
 */
#ifndef WSCTL_BACKEND_H
#define WSCTL_BACKEND_H

#include "postgres.h"

#include "nodes/pg_list.h"

/* The outcome of one action, as the error policy classifies it. */
typedef struct OpOutcome
{
	bool		ok;
	const char *reason;			/* ErrorReason: Unreachable, ActionFailed, Mismatch, DataLost */
	const char *code;			/* S3_ACCESS_ERROR, CHECKSUM_MISMATCH, ... or NULL */
	char	   *message;
} OpOutcome;

static inline OpOutcome
op_succeeded(void)
{
	OpOutcome	o = {true, NULL, NULL, NULL};

	return o;
}

static inline OpOutcome
op_failed(const char *reason, const char *code, char *message)
{
	OpOutcome	o = {false, reason, code, message};

	return o;
}

/* What get_instance found. */
typedef struct InstanceState
{
	bool		exists;			/* an instance of this workspace, in any state */
	bool		running;		/* may receive traffic (SPEC 6.5 is_running) */
} InstanceState;

/* One instance of a listing. */
typedef struct ObservedInstance
{
	char	   *workspace_id;
	bool		running;
} ObservedInstance;

/* What an archive or a restore moves. */
typedef struct TransferRequest
{
	const char *workspace_id;
	const char *image_ref;		/* Docker: the helper container's image */
	const char *key;			/* archives/{id}/{op_id}/home.tar.zst */
	const char *expected_sha256;	/* restore: from the meta */
	int64		size;			/* restore: the object's size */
	int			progress_slot;	/* the operation slot that shows progress */
} TransferRequest;

typedef struct InstanceController InstanceController;
typedef struct StorageProvider StorageProvider;

struct InstanceController
{
	const char *name;			/* the instance_backend enum value */
	const void *site;			/* the implementation's own data */
	/* reads the instance ws-{id} */
	OpOutcome	(*get_instance) (const InstanceController *self, const char *id,
								 InstanceState *out);
	/* creates it with the home mounted; ours already there is OK */
	OpOutcome	(*create_instance) (const InstanceController *self, const char *id,
									const char *image_ref);
	/* starts it; running already is OK */
	OpOutcome	(*start_instance) (const InstanceController *self, const char *id);
	/* kills and removes it; absent is OK */
	OpOutcome	(*remove_instance) (const InstanceController *self, const char *id);
	/* every instance of the site in ONE call: a List of ObservedInstance * */
	OpOutcome	(*list_instances) (const InstanceController *self, List **out);
	/* "container ws-{id}", for messages */
	char	   *(*describe) (const InstanceController *self, const char *id);
};

struct StorageProvider
{
	const char *name;			/* the storage_backend enum value */
	const void *site;
	OpOutcome	(*home_exists) (const StorageProvider *self, const char *id, bool *exists);
	/* creates an empty home; ours already there is OK */
	OpOutcome	(*create_home) (const StorageProvider *self, const char *id);
	/* removes it; absent is OK */
	OpOutcome	(*remove_home) (const StorageProvider *self, const char *id);
	/*
	 * Every home of the site in ONE call (a List of workspace ids), and
	 * whether the site carries this database cluster's marker.
	 */
	OpOutcome	(*list_homes) (const StorageProvider *self, uint64 system_identifier,
							   List **ids, bool *marker_seen);
	OpOutcome	(*create_marker) (const StorageProvider *self, uint64 system_identifier);
	/*
	 * Uploads the home to key, then key.meta (the commit marker). Neither
	 * removes the home nor touches the database.
	 */
	OpOutcome	(*archive_home) (const StorageProvider *self, const TransferRequest *req);
	/*
	 * From nothing (the caller removed any home): creates an empty home and
	 * fills it from key, checking the SHA-256 and every entry; on any
	 * failure removes the home again.
	 */
	OpOutcome	(*restore_home) (const StorageProvider *self, const TransferRequest *req);
	/* removes whatever a transfer left (Docker: ws-{id}-job); none is OK */
	OpOutcome	(*remove_transfers) (const StorageProvider *self, const char *id);
	/* "volume ws-{id}-home"; the marker's name; "Docker at unix:///..." */
	char	   *(*describe) (const StorageProvider *self, const char *id);
	char	   *(*marker_name) (const StorageProvider *self, uint64 system_identifier);
	char	   *(*describe_site) (const StorageProvider *self);
};

/* A site: an instance controller and the storage provider whose homes it mounts. */
typedef struct BackendSite
{
	const char *instance_backend;
	const char *storage_backend;
	const char *setting;		/* the setting that enables it */
	bool		(*enabled) (void);	/* its setting is set */
	const InstanceController *instance;
	const StorageProvider *storage;
} BackendSite;

extern int	backend_site_count(void);
extern const BackendSite *backend_site(int i);

/* The site of a workspace's pair, or NULL when no backend implements it. */
extern const BackendSite *backend_site_find(const char *instance_backend,
											const char *storage_backend);

/* Count of requests made to the backends' services by this process. */
extern uint64 backend_request_count(void);

#endif							/* WSCTL_BACKEND_H */
