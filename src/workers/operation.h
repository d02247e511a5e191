/*
 * operation.h: what an operation worker acts on, and its actuators.
 */
#ifndef WSCTL_OPERATION_H
#define WSCTL_OPERATION_H

#include "postgres.h"

#include "backend.h"
#include "utils/uuid.h"

/* What an operation worker acts on. */
typedef struct OpTarget
{
	pg_uuid_t	workspace;
	pg_uuid_t	op_id;
	char	   *id;				/* the workspace id as text */
	char	   *op_id_text;
	char	   *image_ref;
	char	   *archive_key;	/* NULL when none */
	int			slot;			/* the operation slot (progress) */
	char	   *instance_backend;	/* the workspace's columns */
	char	   *storage_backend;
	const InstanceController *instance;	/* from instance_backend */
	const StorageProvider *storage;	/* from storage_backend */
} OpTarget;

/* The storage actuators (operation_storage.c). */
extern OpOutcome act_archiving(const OpTarget *t);
extern OpOutcome act_restoring(const OpTarget *t);

#endif							/* WSCTL_OPERATION_H */
