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

#include "operation.h"

/* Settings (GUC variables, defined in wsctl.c). */
extern int	wsctl_archive_compression;	/* WSCTL_COMPRESSION_* */
extern int	wsctl_archive_part_size_kb;

#define WSCTL_COMPRESSION_ZSTD 0
#define WSCTL_COMPRESSION_GZIP 1

/* "home.tar.zst" or "home.tar.gz", as wsctl.archive_compression says. */
extern const char *storage_archive_file_name(void);

/*
 * Uploads the volume (mounted at /data in ws-{id}-job, which must exist)
 * to key, then key.meta = "sha256:<hex>" (the commit marker, last).
 * progress_slot is the operation slot that shows the bytes moved.
 */
extern OpOutcome storage_archive(const char *workspace_id, const char *key,
								 int progress_slot);

/*
 * Restores key into the volume of ws-{id}-job (which must exist, with an
 * empty volume), checking the meta's SHA-256 and every entry. On failure
 * the volume's content is unverified: the caller removes it.
 */
extern OpOutcome storage_restore(const char *workspace_id, const char *key,
								 int64 object_size, const char *expected_sha256,
								 int progress_slot);

/* Reads key.meta: the hex SHA-256 it names, or a DataLost/Unreachable outcome. */
extern OpOutcome storage_read_meta(const char *key, char **sha256_hex);

/* Whether key and key.meta are both in the bucket (a retried archive's HEAD check). */
extern OpOutcome storage_archive_present(const char *key, bool *present);

/* Before a restore: the meta's SHA-256 and the object's size; DataLost if either is missing. */
extern OpOutcome storage_check_archive(const char *key, int64 *size, char **sha256_hex);

#endif							/* WSCTL_STORAGE_JOB_H */
