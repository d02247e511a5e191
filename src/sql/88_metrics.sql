-- 88_metrics.sql: wsctl.metrics, one row per metric and label set, in
-- Prometheus' terms (docs/operations.md, docs/examples/prometheus/).
--
-- Counters (calls, operations, errors, events shipped, archive bytes,
-- worker ticks) come from shared memory and start at zero with the server;
-- gauges the table can answer are computed here on each read. Every status
-- and operation pair is listed, zeros included, so a series never vanishes
-- when its count drops to nothing.

CREATE VIEW wsctl.metrics AS
SELECT c.metric, c.type, c.labels, c.value
  FROM wsctl._metrics_counters() AS c
UNION ALL
SELECT 'wsctl_workspaces_count', 'gauge',
	   jsonb_build_object('status', s.status, 'operation', o.operation),
	   (SELECT count(*) FROM wsctl.workspaces AS w
		 WHERE (w.deleted_at IS NULL OR w.operation <> 'NONE')
		   AND wsctl.effective_status(w.observed_status, w.error_info) = s.status
		   AND w.operation = o.operation)::float8
  FROM unnest(enum_range(NULL::wsctl.status)) AS s (status)
 CROSS JOIN unnest(enum_range(NULL::wsctl.operation)) AS o (operation)
UNION ALL
SELECT 'wsctl_workspace_errors_count', 'gauge',
	   jsonb_build_object('reason', e.reason, 'terminal', e.terminal), e.n::float8
  FROM (SELECT w.error_info ->> 'reason' AS reason,
			   coalesce(w.error_info ->> 'is_terminal', 'false') AS terminal, count(*) AS n
		  FROM wsctl.workspaces AS w
		 WHERE w.error_info IS NOT NULL AND (w.deleted_at IS NULL OR w.operation <> 'NONE')
		 GROUP BY 1, 2) AS e
UNION ALL
SELECT 'wsctl_archived_workspaces', 'gauge', '{}'::jsonb,
	   (SELECT count(*) FROM wsctl.workspaces AS w
		 WHERE w.deleted_at IS NULL AND w.archive_key IS NOT NULL)::float8
UNION ALL
SELECT 'wsctl_outbox_pending', 'gauge', '{}'::jsonb, p.n::float8
  FROM (SELECT (SELECT count(*) FROM wsctl.events AS e WHERE e.id IS NULL)
			 + (SELECT count(*) FROM wsctl.events AS e
				 WHERE e.id > (SELECT c.last_shipped FROM wsctl.event_cursor AS c WHERE c.sink = 'redis'))
			   AS n) AS p
UNION ALL
SELECT 'wsctl_outbox_lag_seconds', 'gauge', '{}'::jsonb,
	   coalesce(extract(epoch FROM now() - least(
		   (SELECT min(e.created_at) FROM wsctl.events AS e WHERE e.id IS NULL),
		   (SELECT min(e.created_at) FROM wsctl.events AS e
			 WHERE e.id > (SELECT c.last_shipped FROM wsctl.event_cursor AS c WHERE c.sink = 'redis')))),
				0)::float8
UNION ALL
SELECT 'wsctl_events_last_shipped_id', 'gauge', '{}'::jsonb, c.last_shipped::float8
  FROM wsctl.event_cursor AS c WHERE c.sink = 'redis';

COMMENT ON VIEW wsctl.metrics IS
	'wsctl''s metrics for monitoring (Prometheus names): metric, type (counter or gauge), labels, value';
