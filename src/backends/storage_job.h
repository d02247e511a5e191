/*
 * storage_job.h: moving a home volume to S3 and back (SPEC 5.2, DESIGN 6).
 *
 * Both directions stream: Docker's archive of the job container's volume
 * is read entry by entry with libarchive and written, compressed and
 * hashed, to S3 in multipart parts; a restore reads the object, hashes it,
 * checks every entry and writes a plain tar into Docker. Memory is one
 * multipart part plus small stream buffers, whatever the volume's size.
 */
#ifndef WSCTL_STORAGE_JOB_H
#define WSCTL_STORAGE_JOB_H

#include "postgres.h"

#include "archive_store.h"
#include "docker.h"

/*
 * Uploads the volume (mounted at /data in ws-{id}-job, which must exist)
 * to key, then key.meta = "sha256:<hex>" (the commit marker, last).
 * progress_slot is the operation slot that shows the bytes moved.
 */
extern OpOutcome storage_archive(const DockerDaemon *d, const char *workspace_id, const char *key,
								 int progress_slot);

/*
 * Restores key into the volume of ws-{id}-job (which must exist, with an
 * empty volume), checking the meta's SHA-256 and every entry. On failure
 * the volume's content is unverified: the caller removes it.
 */
extern OpOutcome storage_restore(const DockerDaemon *d, const char *workspace_id, const char *key,
								 int64 object_size, const char *expected_sha256,
								 int progress_slot);

#endif							/* WSCTL_STORAGE_JOB_H */
