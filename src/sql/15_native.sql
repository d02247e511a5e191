-- 15_native.sql: functions implemented in C (wsctl.so).

CREATE FUNCTION wsctl._wake_reconciler()
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'wsctl_wake_reconciler';
COMMENT ON FUNCTION wsctl._wake_reconciler() IS
	'Wakes the StateReconciler when the current transaction commits (no effect if it aborts)';
