-- 15_native.sql: functions implemented in C (wsctl.so).

CREATE FUNCTION wsctl._wake_reconciler()
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'wsctl_wake_reconciler';
COMMENT ON FUNCTION wsctl._wake_reconciler() IS
	'Wakes the StateReconciler when the current transaction commits (no effect if it aborts)';

CREATE FUNCTION wsctl._wake_event_listener()
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'wsctl_wake_event_listener';
COMMENT ON FUNCTION wsctl._wake_event_listener() IS
	'Wakes the EventListener when the current transaction commits (no effect if it aborts)';

CREATE FUNCTION wsctl._wake_health_monitor()
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'wsctl_wake_health_monitor';
COMMENT ON FUNCTION wsctl._wake_health_monitor() IS
	'Asks the HealthMonitor to observe as soon as the current transaction commits';

CREATE FUNCTION wsctl._worker_status(
	OUT component text, OUT pid int, OUT leader bool, OUT started_at timestamptz,
	OUT last_tick timestamptz, OUT ticks bigint, OUT last_tick_ms float8,
	OUT docker_calls_last_tick bigint, OUT last_error text, OUT last_error_at timestamptz,
	OUT workspace_id uuid)
RETURNS SETOF record
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'wsctl_worker_status';
COMMENT ON FUNCTION wsctl._worker_status() IS 'Data of the wsctl.workers view, from shared memory';

CREATE FUNCTION wsctl._backend_enabled(instance_backend text, storage_backend text)
RETURNS bool
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'wsctl_backend_enabled';
COMMENT ON FUNCTION wsctl._backend_enabled(text, text) IS
	'Whether wsctl.so implements this instance_backend / storage_backend pair and its setting enables it (remote-docker: wsctl.remote_docker_host set)';

CREATE VIEW wsctl.workers AS SELECT * FROM wsctl._worker_status();
COMMENT ON VIEW wsctl.workers IS
	'wsctl background workers: each component (pid, leader, ticks, last error) and each busy operation worker';

CREATE FUNCTION wsctl._sigv4_authorization(method text, path text, query text, headers text[],
										   payload_hash text, access_key text, secret_key text,
										   region text, service text, amz_date text)
RETURNS text[]
LANGUAGE c IMMUTABLE STRICT
AS 'MODULE_PATHNAME', 'wsctl_sigv4_authorization';
COMMENT ON FUNCTION wsctl._sigv4_authorization(text, text, text, text[], text, text, text, text, text, text) IS
	'AWS Signature V4 of one request (the S3 client''s signer): {Authorization, canonical request, string to sign}; for the known-answer tests, granted to nobody';

CREATE FUNCTION wsctl._count_operation(operation text, outcome text, reason text DEFAULT NULL)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'wsctl_count_operation';
COMMENT ON FUNCTION wsctl._count_operation(text, text, text) IS
	'Counts an operation started, completed or failed, or an error by reason, for wsctl.metrics (added when the transaction commits); called by the state machine only';

CREATE FUNCTION wsctl._metrics_counters(
	OUT metric text, OUT type text, OUT labels jsonb, OUT value float8)
RETURNS SETOF record
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'wsctl_metrics_counters';
COMMENT ON FUNCTION wsctl._metrics_counters() IS
	'The counters and worker figures of wsctl.metrics, from shared memory';
