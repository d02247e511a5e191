/*
 * shmem.h: wsctl's shared memory: worker status, operation slots, wake-ups.
 *
 * Everything here is advisory state about processes; the durable truth is
 * the workspaces table. A postmaster crash-restart wipes it, and the
 * reconciler then finds operations whose worker vanished (DESIGN section 5).
 */
#ifndef WSCTL_SHMEM_H
#define WSCTL_SHMEM_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "utils/uuid.h"
#include "wsctl.h"

typedef struct WsctlComponentStatus
{
	pid_t		pid;			/* 0 when not running */
	bool		leader;			/* is the component's leader (leader_pid) */
	pid_t		leader_pid;		/* the one process allowed to act as it */
	TimestampTz started_at;
	TimestampTz last_tick;
	uint64		ticks;
	uint64		docker_calls_last_tick;
	double		last_tick_ms;
	double		tick_ms_sum;	/* all ticks, for wsctl.metrics */
	char		last_error[256];
	TimestampTz last_error_at;
} WsctlComponentStatus;

typedef enum OpSlotState
{
	OP_SLOT_FREE = 0,
	OP_SLOT_LAUNCHED,			/* registered, worker not started yet */
	OP_SLOT_ACTING,				/* worker is calling Docker */
	OP_SLOT_SUCCEEDED,			/* actuator returned; completion is judged by observation */
	OP_SLOT_FAILED				/* actuator failed; reason/code/message say how */
} OpSlotState;

typedef struct WsctlOpSlot
{
	OpSlotState state;
	pg_uuid_t	workspace_id;
	pg_uuid_t	op_id;
	char		operation[16];	/* wsctl.operation label */
	pid_t		pid;
	TimestampTz launched_at;
	TimestampTz finished_at;
	char		reason[24];		/* ErrorReason: Unreachable, ActionFailed, Mismatch */
	char		code[40];		/* IMAGE_PULL_FAILED, ... */
	char		message[512];
	/* progress of a long transfer (archive, restore); -1 total = unknown */
	int64		bytes_done;
	int64		bytes_total;
	TimestampTz progress_at;
} WsctlOpSlot;

extern void wsctl_shmem_init(void);

/* Worker status (wsctl.workers). */
extern void wsctl_status_set_running(WsctlComponent c, bool leader);
extern void wsctl_status_set_stopped(WsctlComponent c);
extern void wsctl_status_tick(WsctlComponent c, double tick_ms, uint64 docker_calls);
extern void wsctl_status_error(WsctlComponent c, const char *message);
extern WsctlComponentStatus wsctl_status_get(WsctlComponent c);

/* Leadership, in shared memory: no database role can take or block it. */
extern bool wsctl_leader_acquire(WsctlComponent c);

/* Wake-ups through process latches. */
extern void wsctl_wake_component(WsctlComponent c);
extern void wsctl_request_observation(void);
extern bool wsctl_take_observation_request(void);

/* Operation slots, guarded by the wsctl LWLock. */
#define WSCTL_SLOT_TAKEN (-2)	/* acquire: the workspace already has a slot */
extern int	wsctl_op_slot_acquire(const pg_uuid_t *workspace_id, const pg_uuid_t *op_id,
								  const char *operation);
extern void wsctl_op_slot_release(int slot);
extern WsctlOpSlot wsctl_op_slot_get(int slot);
extern int	wsctl_op_slot_find(const pg_uuid_t *workspace_id);
extern int	wsctl_op_slots_in_use(void);
extern void wsctl_op_slot_set_acting(int slot, pid_t pid);
extern void wsctl_op_slot_progress(int slot, int64 bytes_done, int64 bytes_total);
extern void wsctl_op_slot_finish(int slot, bool ok, const char *reason,
								 const char *code, const char *message);

#endif							/* WSCTL_SHMEM_H */
