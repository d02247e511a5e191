/*
 * operation.h: the outcome an operation worker reports for its attempt.
 */
#ifndef WSCTL_OPERATION_H
#define WSCTL_OPERATION_H

#include "postgres.h"

#include "docker.h"
#include "utils/uuid.h"

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

/* A Docker failure as an outcome: how the error policy classifies it (I8). */
static inline OpOutcome
op_docker_failed(DockerResult r, const char *default_code)
{
	const char *reason = r.kind == DOCKER_UNREACHABLE ? "Unreachable" : "ActionFailed";

	return op_failed(reason, r.code ? r.code : default_code, r.message);
}

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
} OpTarget;

/* The storage actuators (operation_storage.c). */
extern OpOutcome act_archiving(const OpTarget *t);
extern OpOutcome act_restoring(const OpTarget *t);

#endif							/* WSCTL_OPERATION_H */
