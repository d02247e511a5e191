/*
 * archive_store.h: the archives in S3, as every storage provider shares
 * them (SPEC 5.1): names, the HEAD check of a retried archive, and the meta
 * read before a restore. Implemented in storage_job.c.
 */
#ifndef WSCTL_ARCHIVE_STORE_H
#define WSCTL_ARCHIVE_STORE_H

#include "postgres.h"

#include "backend.h"

/* Settings (GUC variables, defined in wsctl.c). */
extern int	wsctl_archive_compression;	/* WSCTL_COMPRESSION_* */
extern int	wsctl_archive_part_size_kb;

#define WSCTL_COMPRESSION_ZSTD 0
#define WSCTL_COMPRESSION_GZIP 1

/* "home.tar.zst" or "home.tar.gz", as wsctl.archive_compression says. */
extern const char *storage_archive_file_name(void);

/* Reads key.meta: the hex SHA-256 it names, or a DataLost/Unreachable outcome. */
extern OpOutcome storage_read_meta(const char *key, char **sha256_hex);

/* Whether key and key.meta are both in the bucket (a retried archive's HEAD check). */
extern OpOutcome storage_archive_present(const char *key, bool *present);

/* Before a restore: the meta's SHA-256 and the object's size; DataLost if either is missing. */
extern OpOutcome storage_check_archive(const char *key, int64 *size, char **sha256_hex);

#endif							/* WSCTL_ARCHIVE_STORE_H */
