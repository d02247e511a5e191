/*
 * wsctl.c: entry point of the wsctl extension.
 *
 * _PG_init defines the settings, sets up shared memory and registers the
 * background workers. The library must be preloaded: the workers and the
 * shared memory exist only when the postmaster loads it at start-up.
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/guc.h"

#include "docker.h"
#include "redis.h"
#include "s3.h"
#include "shmem.h"
#include "archive_store.h"
#include "wsctl.h"
#include "workers.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

char	   *wsctl_database = NULL;
char	   *wsctl_docker_host = NULL;
char	   *wsctl_remote_docker_host = NULL;
char	   *wsctl_container_network = NULL;
char	   *wsctl_container_mount_path = NULL;
static char *wsctl_component_setting = NULL;
int			wsctl_health_interval_ms = 30000;
int			wsctl_reconcile_interval_ms = 10000;
int			wsctl_max_retries = 3;
int			wsctl_retry_delay_ms = 30000;
int			wsctl_timeout_provisioning_ms = 5 * 60 * 1000;
int			wsctl_timeout_restoring_ms = 30 * 60 * 1000;
int			wsctl_timeout_starting_ms = 5 * 60 * 1000;
int			wsctl_timeout_stopping_ms = 5 * 60 * 1000;
int			wsctl_timeout_archiving_ms = 30 * 60 * 1000;
int			wsctl_timeout_deleting_ms = 5 * 60 * 1000;
int			wsctl_max_concurrent_operations = 10;
int			wsctl_debug_operation_delay_ms = 0;
int			wsctl_events_retention_s = 7 * 24 * 3600;
int			wsctl_ttl_interval_ms = 60000;
int			wsctl_ttl_warning_ms = 60000;
char	   *wsctl_redis_url = NULL;
int			wsctl_gc_interval_ms = 3600 * 1000;
int			wsctl_gc_orphan_delay_s = 2 * 3600;
static int	wsctl_max_running_per_user = 2;
static int	wsctl_max_concurrent_transfers = 2;
static int	wsctl_max_running_global = 100;

/* wsctl.component accepts '' or one of the wsctl.component enum labels. */
static bool
check_component(char **newval, void **extra, GucSource source)
{
	static const char *const valid[] = {
		"", "api", "ttl_manager", "health_monitor", "reconciler", "admin"
	};

	for (int i = 0; i < lengthof(valid); i++)
		if (strcmp(*newval, valid[i]) == 0)
			return true;
	GUC_check_errdetail("Valid components are api, ttl_manager, health_monitor, reconciler and admin.");
	return false;
}

static void
define_interval(const char *name, const char *desc, int *var, int boot_ms,
				int min_ms, GucContext context)
{
	DefineCustomIntVariable(name, desc, NULL, var, boot_ms, min_ms, INT_MAX,
							context, GUC_UNIT_MS, NULL, NULL, NULL);
}

static const struct config_enum_entry compression_options[] = {
	{"zstd", WSCTL_COMPRESSION_ZSTD, false},
	{"gzip", WSCTL_COMPRESSION_GZIP, false},
	{NULL, 0, false}
};

/*
 * Object storage. The endpoint, bucket and region are visible to everyone
 * (the API refuses to archive when no endpoint is set); the credentials
 * only to superusers, and the secret is left out of SHOW ALL as well.
 */
static void
define_storage_settings(void)
{
	DefineCustomStringVariable("wsctl.s3_endpoint",
							   "S3 endpoint of the archives (path-style), e.g. http://127.0.0.1:7480; empty disables archiving.",
							   NULL, &wsctl_s3_endpoint, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("wsctl.s3_bucket", "S3 bucket of the archives.",
							   NULL, &wsctl_s3_bucket, "wsctl",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("wsctl.s3_region", "Region in the S3 signatures (SigV4 scope).",
							   NULL, &wsctl_s3_region, "us-east-1",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("wsctl.s3_access_key", "S3 access key id.",
							   NULL, &wsctl_s3_access_key, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("wsctl.s3_secret_key", "S3 secret access key.",
							   NULL, &wsctl_s3_secret_key, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL, NULL, NULL, NULL);
	DefineCustomEnumVariable("wsctl.archive_compression",
							 "Compression of new archives: zstd or gzip.",
							 NULL, &wsctl_archive_compression, WSCTL_COMPRESSION_ZSTD,
							 compression_options, PGC_SIGHUP, 0, NULL, NULL, NULL);
	/* S3 wants parts of at least 5 MiB (but the last); memory is one part */
	DefineCustomIntVariable("wsctl.archive_part_size",
							"Size of the multipart upload parts of an archive (memory per archiving worker).",
							NULL, &wsctl_archive_part_size_kb, 16 * 1024, 5 * 1024, 512 * 1024,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	define_interval("wsctl.gc_interval", "Archive GC cycle.",
					&wsctl_gc_interval_ms, 3600 * 1000, 10, PGC_SIGHUP);
	DefineCustomIntVariable("wsctl.gc_orphan_delay",
							"How long an archive must stay an orphan before the Archive GC deletes it.",
							NULL, &wsctl_gc_orphan_delay_s, 2 * 3600, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
}

static void
define_settings(void)
{
	DefineCustomStringVariable("wsctl.database",
							   "Database the wsctl background workers connect to.",
							   NULL, &wsctl_database, "postgres",
							   PGC_POSTMASTER, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("wsctl.docker_host",
							   "Docker Engine API endpoint: unix:///path or tcp://127.0.0.1:PORT.",
							   NULL, &wsctl_docker_host, "unix:///var/run/docker.sock",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("wsctl.remote_docker_host",
							   "Docker Engine API endpoint of the remote-docker instance backend (a second node); empty disables it.",
							   NULL, &wsctl_remote_docker_host, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("wsctl.container_network",
							   "Docker network mode of workspace containers.",
							   NULL, &wsctl_container_network, "none",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomStringVariable("wsctl.container_mount_path",
							   "Where the home volume is mounted in a workspace container.",
							   NULL, &wsctl_container_mount_path, "/home/coder",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("wsctl.component",
							   "The component that writes wsctl.workspaces in this transaction.",
							   "Set by the API functions and the workers; checked by the ownership trigger.",
							   &wsctl_component_setting, "",
							   PGC_USERSET, GUC_NOT_IN_SAMPLE, check_component, NULL, NULL);

	define_interval("wsctl.health_interval", "HealthMonitor tick.",
					&wsctl_health_interval_ms, 30000, 10, PGC_SIGHUP);
	define_interval("wsctl.reconcile_interval",
					"StateReconciler tick (it is also woken at COMMIT).",
					&wsctl_reconcile_interval_ms, 10000, 10, PGC_SIGHUP);
	define_interval("wsctl.retry_delay", "Fixed delay before an operation is retried.",
					&wsctl_retry_delay_ms, 30000, 0, PGC_SIGHUP);
	define_interval("wsctl.timeout_provisioning", "PROVISIONING timeout.",
					&wsctl_timeout_provisioning_ms, 5 * 60 * 1000, 100, PGC_SIGHUP);
	define_interval("wsctl.timeout_restoring", "RESTORING timeout.",
					&wsctl_timeout_restoring_ms, 30 * 60 * 1000, 100, PGC_SIGHUP);
	define_interval("wsctl.timeout_starting", "STARTING timeout.",
					&wsctl_timeout_starting_ms, 5 * 60 * 1000, 100, PGC_SIGHUP);
	define_interval("wsctl.timeout_stopping", "STOPPING timeout.",
					&wsctl_timeout_stopping_ms, 5 * 60 * 1000, 100, PGC_SIGHUP);
	define_interval("wsctl.timeout_archiving", "ARCHIVING timeout.",
					&wsctl_timeout_archiving_ms, 30 * 60 * 1000, 100, PGC_SIGHUP);
	define_interval("wsctl.timeout_deleting", "DELETING timeout.",
					&wsctl_timeout_deleting_ms, 5 * 60 * 1000, 100, PGC_SIGHUP);

	DefineCustomIntVariable("wsctl.max_retries",
							"Retries of a failed operation before RetryExceeded.",
							NULL, &wsctl_max_retries, 3, 0, 100,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("wsctl.max_concurrent_operations",
							"Operation workers running at once.",
							NULL, &wsctl_max_concurrent_operations, 10, 1,
							WSCTL_MAX_OPERATION_SLOTS,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("wsctl.max_concurrent_transfers",
							"ARCHIVING and RESTORING operations running at once.",
							"Further ones wait, unclaimed, until one ends: every transfer streams through the database host.",
							&wsctl_max_concurrent_transfers, 2, 1, WSCTL_MAX_OPERATION_SLOTS,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("wsctl.max_running_per_user",
							"Running slots per owner.",
							NULL, &wsctl_max_running_per_user, 2, 0, 1000000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("wsctl.max_running_global",
							"Running slots in the whole system.",
							NULL, &wsctl_max_running_global, 100, 0, 1000000,
							PGC_SUSET, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("wsctl.debug_operation_delay",
							"Testing only: operation workers wait this long after acting, before reporting.",
							"Lets tests observe an operation whose worker is still busy.",
							&wsctl_debug_operation_delay_ms, 0, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS | GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE,
							NULL, NULL, NULL);

	define_interval("wsctl.ttl_interval", "TTL manager tick.",
					&wsctl_ttl_interval_ms, 60000, 10, PGC_SIGHUP);
	define_interval("wsctl.ttl_warning",
					"How long before a TTL stop the TTL manager sends a ttl_warning event.",
					&wsctl_ttl_warning_ms, 60000, 0, PGC_SIGHUP);
	DefineCustomStringVariable("wsctl.sse_secret",
							   "Key of the HS256 tokens for wsctl-sse (the relay's --secret-file); at least 16 bytes.",
							   NULL, &wsctl_sse_secret, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL, NULL, NULL, NULL);
	DefineCustomStringVariable("wsctl.redis_url",
							   "Redis the EventListener ships events to: redis://[:password@]host[:port][/db].",
							   NULL, &wsctl_redis_url, "redis://127.0.0.1:6379/0",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomIntVariable("wsctl.events_retention",
							"Shipped events older than this are removed from wsctl.events.",
							NULL, &wsctl_events_retention_s, 7 * 24 * 3600, 1, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);

	define_storage_settings();
	MarkGUCPrefixReserved("wsctl");
}

void
_PG_init(void)
{
	if (IsBinaryUpgrade)
		return;
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("wsctl must be loaded via shared_preload_libraries"),
				 errhint("Add wsctl to shared_preload_libraries in postgresql.conf and restart the server.")));

	define_settings();
	wsctl_shmem_init();
	wsctl_register_workers();
}
