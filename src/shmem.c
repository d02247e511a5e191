/*
 * shmem.c: wsctl's shared memory.
 *
 * Three things live here, all of them about processes rather than data:
 * the status of each component (the wsctl.workers view), the operation
 * slots through which the reconciler hands an operation to a dynamic
 * worker and learns its outcome, and the wake-up flags that let a COMMIT
 * or a finished operation wake a worker through its latch instead of
 * waiting for the next tick.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "access/xact.h"
#include "fmgr.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "metrics.h"
#include "shmem.h"

typedef struct WsctlShared
{
	LWLock	   *lock;
	WsctlComponentStatus components[WSCTL_NUM_COMPONENTS];
	bool		observation_requested;
	WsctlOpSlot ops[WSCTL_MAX_OPERATION_SLOTS];
} WsctlShared;

static WsctlShared *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool wake_reconciler_at_commit = false;
static bool observe_at_commit = false;
static bool wake_event_listener_at_commit = false;

static void wsctl_shmem_attach(void);

PG_FUNCTION_INFO_V1(wsctl_wake_reconciler);
PG_FUNCTION_INFO_V1(wsctl_wake_health_monitor);
PG_FUNCTION_INFO_V1(wsctl_wake_event_listener);

static void
wsctl_shmem_startup_hook(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	wsctl_shmem_attach();
}

static void
wsctl_shmem_request_hook(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(WsctlShared)));
	RequestAddinShmemSpace(wsctl_metrics_shmem_size());
	RequestNamedLWLockTranche("wsctl", 1);
}

/* Called from _PG_init: installs the hooks that size and create our area. */
void
wsctl_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = wsctl_shmem_request_hook;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = wsctl_shmem_startup_hook;
}

static void
wsctl_shmem_attach(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("wsctl", sizeof(WsctlShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(WsctlShared));
		shared->lock = &(GetNamedLWLockTranche("wsctl"))->lock;
	}
	wsctl_metrics_shmem_attach();
	LWLockRelease(AddinShmemInitLock);
}

/* Component status ------------------------------------------------------ */

void
wsctl_status_set_running(WsctlComponent c, bool leader)
{
	WsctlComponentStatus *s = &shared->components[c];

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (s->pid != MyProcPid)
		s->started_at = GetCurrentTimestamp();
	s->pid = MyProcPid;
	s->leader = leader;
	LWLockRelease(shared->lock);
}

void
wsctl_status_set_stopped(WsctlComponent c)
{
	WsctlComponentStatus *s = &shared->components[c];

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (s->pid == MyProcPid)
	{
		s->pid = 0;
		s->leader = false;
	}
	if (s->leader_pid == MyProcPid)
		s->leader_pid = 0;
	LWLockRelease(shared->lock);
}

/*
 * Makes this process the component's leader unless another live process
 * is. Leadership lives in shared memory, which no database role can write:
 * a lock in the database (an advisory key, say) could be taken by any
 * LOGIN role and held to stall or steal the component. A leader that died
 * without clearing its entry (SIGKILL) is recognised by its pid no longer
 * belonging to a backend; a server crash-restart wipes the area anyway.
 */
bool
wsctl_leader_acquire(WsctlComponent c)
{
	WsctlComponentStatus *s = &shared->components[c];
	bool		mine;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (s->leader_pid != MyProcPid &&
		(s->leader_pid == 0 || BackendPidGetProc(s->leader_pid) == NULL))
		s->leader_pid = MyProcPid;
	mine = (s->leader_pid == MyProcPid);
	LWLockRelease(shared->lock);
	return mine;
}

void
wsctl_status_tick(WsctlComponent c, double tick_ms, uint64 docker_calls)
{
	WsctlComponentStatus *s = &shared->components[c];

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	s->last_tick = GetCurrentTimestamp();
	s->ticks++;
	s->last_tick_ms = tick_ms;
	s->tick_ms_sum += tick_ms;
	s->docker_calls_last_tick = docker_calls;
	LWLockRelease(shared->lock);
}

void
wsctl_status_error(WsctlComponent c, const char *message)
{
	WsctlComponentStatus *s = &shared->components[c];

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	strlcpy(s->last_error, message ? message : "", sizeof(s->last_error));
	s->last_error_at = GetCurrentTimestamp();
	LWLockRelease(shared->lock);
}

WsctlComponentStatus
wsctl_status_get(WsctlComponent c)
{
	WsctlComponentStatus copy;

	LWLockAcquire(shared->lock, LW_SHARED);
	copy = shared->components[c];
	LWLockRelease(shared->lock);
	return copy;
}

/* Wake-ups ---------------------------------------------------------------- */

void
wsctl_wake_component(WsctlComponent c)
{
	pid_t		pid;
	PGPROC	   *proc;

	if (shared == NULL)
		return;
	LWLockAcquire(shared->lock, LW_SHARED);
	pid = shared->components[c].pid;
	LWLockRelease(shared->lock);
	if (pid == 0)
		return;
	proc = BackendPidGetProc(pid);
	if (proc != NULL)
		SetLatch(&proc->procLatch);
}

/* An operation worker asks the HealthMonitor to observe now. */
void
wsctl_request_observation(void)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	shared->observation_requested = true;
	LWLockRelease(shared->lock);
	wsctl_wake_component(WSCTL_HEALTH_MONITOR);
}

bool
wsctl_take_observation_request(void)
{
	bool		requested;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	requested = shared->observation_requested;
	shared->observation_requested = false;
	LWLockRelease(shared->lock);
	return requested;
}

/*
 * The API functions call wsctl._wake_reconciler(); the latch is set only
 * when the transaction commits, so the reconciler never wakes up to look
 * for a change that is not visible yet (or never will be).
 */
static void
wsctl_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_reconciler_at_commit)
				wsctl_wake_component(WSCTL_RECONCILER);
			if (observe_at_commit)
				wsctl_request_observation();
			if (wake_event_listener_at_commit)
				wsctl_wake_component(WSCTL_EVENT_LISTENER);
			wake_reconciler_at_commit = observe_at_commit = false;
			wake_event_listener_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			wake_reconciler_at_commit = observe_at_commit = false;
			wake_event_listener_at_commit = false;
			break;
		default:
			break;
	}
}

static void
register_xact_callback_once(void)
{
	static bool callback_registered = false;

	if (!callback_registered)
	{
		RegisterXactCallback(wsctl_xact_callback, NULL);
		callback_registered = true;
	}
}

Datum
wsctl_wake_reconciler(PG_FUNCTION_ARGS)
{
	register_xact_callback_once();
	wake_reconciler_at_commit = true;
	PG_RETURN_VOID();
}

/* The change trigger: the EventListener ships the new events after the commit. */
Datum
wsctl_wake_event_listener(PG_FUNCTION_ARGS)
{
	register_xact_callback_once();
	wake_event_listener_at_commit = true;
	PG_RETURN_VOID();
}

/* recover_workspace: the HealthMonitor re-observes right after the commit. */
Datum
wsctl_wake_health_monitor(PG_FUNCTION_ARGS)
{
	register_xact_callback_once();
	observe_at_commit = true;
	PG_RETURN_VOID();
}

/* Operation slots ----------------------------------------------------------- */

/*
 * Returns a slot index; -1 when wsctl.max_concurrent_operations are busy;
 * WSCTL_SLOT_TAKEN when the workspace already has a slot. The check and
 * the claim happen under one exclusive lock (compare-and-set), so two
 * reconcilers, or a restarted one, can never start two workers for one
 * workspace.
 */
int
wsctl_op_slot_acquire(const pg_uuid_t *workspace_id, const pg_uuid_t *op_id,
					  const char *operation)
{
	int			found = -1;
	int			busy = 0;
	bool		taken = false;

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < WSCTL_MAX_OPERATION_SLOTS; i++)
	{
		if (shared->ops[i].state != OP_SLOT_FREE)
		{
			busy++;
			if (memcmp(&shared->ops[i].workspace_id, workspace_id, sizeof(pg_uuid_t)) == 0)
				taken = true;
		}
		else if (found < 0)
			found = i;
	}
	if (taken)
		found = WSCTL_SLOT_TAKEN;
	else if (found >= 0 && busy < wsctl_max_concurrent_operations)
	{
		WsctlOpSlot *s = &shared->ops[found];

		memset(s, 0, sizeof(*s));
		s->state = OP_SLOT_LAUNCHED;
		s->workspace_id = *workspace_id;
		s->op_id = *op_id;
		strlcpy(s->operation, operation, sizeof(s->operation));
		s->launched_at = GetCurrentTimestamp();
		s->bytes_total = -1;
	}
	else
		found = -1;
	LWLockRelease(shared->lock);
	return found;
}

void
wsctl_op_slot_release(int slot)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	memset(&shared->ops[slot], 0, sizeof(WsctlOpSlot));
	LWLockRelease(shared->lock);
}

WsctlOpSlot
wsctl_op_slot_get(int slot)
{
	WsctlOpSlot copy;

	LWLockAcquire(shared->lock, LW_SHARED);
	copy = shared->ops[slot];
	LWLockRelease(shared->lock);
	return copy;
}

int
wsctl_op_slot_find(const pg_uuid_t *workspace_id)
{
	int			found = -1;

	LWLockAcquire(shared->lock, LW_SHARED);
	for (int i = 0; i < WSCTL_MAX_OPERATION_SLOTS; i++)
	{
		if (shared->ops[i].state != OP_SLOT_FREE &&
			memcmp(&shared->ops[i].workspace_id, workspace_id, sizeof(pg_uuid_t)) == 0)
		{
			found = i;
			break;
		}
	}
	LWLockRelease(shared->lock);
	return found;
}

int
wsctl_op_slots_in_use(void)
{
	int			n = 0;

	LWLockAcquire(shared->lock, LW_SHARED);
	for (int i = 0; i < WSCTL_MAX_OPERATION_SLOTS; i++)
		if (shared->ops[i].state != OP_SLOT_FREE)
			n++;
	LWLockRelease(shared->lock);
	return n;
}

void
wsctl_op_slot_set_acting(int slot, pid_t pid)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	shared->ops[slot].state = OP_SLOT_ACTING;
	shared->ops[slot].pid = pid;
	LWLockRelease(shared->lock);
}

/* Called often during a transfer: a shared lock-free path is not worth it. */
void
wsctl_op_slot_progress(int slot, int64 bytes_done, int64 bytes_total)
{
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	shared->ops[slot].bytes_done = bytes_done;
	shared->ops[slot].bytes_total = bytes_total;
	shared->ops[slot].progress_at = GetCurrentTimestamp();
	LWLockRelease(shared->lock);
}

void
wsctl_op_slot_finish(int slot, bool ok, const char *reason, const char *code,
					 const char *message)
{
	WsctlOpSlot *s = &shared->ops[slot];

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	s->state = ok ? OP_SLOT_SUCCEEDED : OP_SLOT_FAILED;
	s->pid = 0;
	s->finished_at = GetCurrentTimestamp();
	strlcpy(s->reason, reason ? reason : "", sizeof(s->reason));
	strlcpy(s->code, code ? code : "", sizeof(s->code));
	strlcpy(s->message, message ? message : "", sizeof(s->message));
	LWLockRelease(shared->lock);
}
