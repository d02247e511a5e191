-- catalog.sql: wsctl's footprint in the current database, one line per fact,
-- for test/upgrade/upgrade.t, which diffs it between a database upgraded
-- from 0.1 and one where the current version was created fresh.
--
-- psql -X -At -v ON_ERROR_STOP=1 -f test/upgrade/catalog.sql
--
-- Objects are named, never numbered (pg_describe_object, regprocedure,
-- format_type, pg_get_*def); toast tables, whose names carry an OID, are
-- left out. "User objects" are those with an OID >= 16384
-- (FirstNormalObjectId): in a database made from template1 for the test,
-- they are the extension's, plus anything a script created by mistake.
-- A line reads KIND|OBJECT|FACT=VALUE; multi-line definitions give one line
-- per source line, numbered.

\set QUIET on
\pset format unaligned
\pset tuples_only on
\pset null '<null>'
SET search_path = pg_catalog;
SET extra_float_digits = 3;

WITH ext AS (SELECT * FROM pg_extension WHERE extname = 'wsctl'),
nsp AS (SELECT oid FROM pg_namespace WHERE nspname = 'wsctl'),
lines (line) AS (
	-- the extension itself
	SELECT format('extension|wsctl|version=%s relocatable=%s schema=%s owner=%s config=%s condition=%s',
				  e.extversion, e.extrelocatable, e.extnamespace::regnamespace, e.extowner::regrole,
				  (SELECT array_agg(c::regclass::text ORDER BY c::regclass::text) FROM unnest(e.extconfig) AS c),
				  e.extcondition)
	  FROM ext AS e
	UNION ALL
	-- membership: every object of the extension, by name
	SELECT format('member|%s', pg_describe_object(d.classid, d.objid, d.objsubid))
	  FROM pg_depend AS d, ext
	 WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
	UNION ALL
	-- member kinds this file does not describe in detail: add them below
	SELECT format('UNDESCRIBED-KIND|%s|add its details to test/upgrade/catalog.sql', d.classid::regclass)
	  FROM pg_depend AS d, ext
	 WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
	   AND d.classid NOT IN ('pg_namespace'::regclass, 'pg_class'::regclass, 'pg_proc'::regclass,
							 'pg_type'::regclass, 'pg_event_trigger'::regclass)
	UNION ALL
	-- schemas created by user objects
	SELECT format('schema|%s|owner=%s acl=%s', n.nspname, n.nspowner::regrole, n.nspacl)
	  FROM pg_namespace AS n
	 WHERE n.oid >= 16384 AND n.nspname NOT LIKE 'pg\_toast\_temp\_%' AND n.nspname NOT LIKE 'pg\_temp\_%'
	UNION ALL
	-- relations: tables, views, sequences, indexes, composite types
	SELECT format('relation|%s|kind=%s persistence=%s owner=%s acl=%s options=%s rls=%s forcerls=%s replident=%s am=%s',
				  c.oid::regclass, c.relkind, c.relpersistence, c.relowner::regrole, c.relacl, c.reloptions,
				  c.relrowsecurity, c.relforcerowsecurity, c.relreplident,
				  (SELECT amname FROM pg_am WHERE oid = c.relam))
	  FROM pg_class AS c
	 WHERE c.oid >= 16384 AND c.relnamespace <> 'pg_toast'::regnamespace
	UNION ALL
	-- columns, in their logical order (dropped ones left out)
	SELECT format('column|%s.%s|position=%s type=%s notnull=%s default=%s identity=%s generated=%s collation=%s acl=%s options=%s storage=%s',
				  a.attrelid::regclass, a.attname,
				  row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
				  format_type(a.atttypid, a.atttypmod), a.attnotnull,
				  pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated,
				  (SELECT collname FROM pg_collation WHERE oid = a.attcollation),
				  a.attacl,
				  -- (pg_attver=N: the attribute version PostgreSQL 15.x keeps there, an internal counter)
				  (SELECT array_agg(o ORDER BY o) FROM unnest(a.attoptions) AS o WHERE o NOT LIKE 'pg\_attver=%'),
				  a.attstorage)
	  FROM pg_attribute AS a
	  JOIN pg_class AS c ON c.oid = a.attrelid
	  LEFT JOIN pg_attrdef AS ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
	 WHERE c.oid >= 16384 AND c.relnamespace <> 'pg_toast'::regnamespace
	   AND a.attnum > 0 AND NOT a.attisdropped
	UNION ALL
	-- constraints of tables and domains
	SELECT format('constraint|%s|%s|%s deferrable=%s deferred=%s validated=%s noinherit=%s',
				  coalesce(nullif(con.conrelid, 0)::regclass::text, format_type(con.contypid, NULL)),
				  con.conname, pg_get_constraintdef(con.oid), con.condeferrable, con.condeferred,
				  con.convalidated, con.connoinherit)
	  FROM pg_constraint AS con
	 WHERE con.oid >= 16384
	UNION ALL
	-- indexes
	SELECT format('index|%s|%s primary=%s clustered=%s replident=%s',
				  i.indexrelid::regclass, pg_get_indexdef(i.indexrelid), i.indisprimary,
				  i.indisclustered, i.indisreplident)
	  FROM pg_index AS i
	 WHERE i.indexrelid >= 16384 AND i.indrelid NOT IN (SELECT oid FROM pg_class WHERE relnamespace = 'pg_toast'::regnamespace)
	UNION ALL
	-- triggers (not the internal ones of foreign keys)
	SELECT format('trigger|%s|%s|%s enabled=%s', t.tgrelid::regclass, t.tgname,
				  pg_get_triggerdef(t.oid), t.tgenabled)
	  FROM pg_trigger AS t
	 WHERE t.oid >= 16384 AND NOT t.tgisinternal
	UNION ALL
	-- rules, views' _RETURN included (their definitions below, line by line)
	SELECT format('rule|%s|%s|event=%s enabled=%s instead=%s', r.ev_class::regclass, r.rulename,
				  r.ev_type, r.ev_enabled, r.is_instead)
	  FROM pg_rewrite AS r
	 WHERE r.oid >= 16384
	UNION ALL
	SELECT format('view|%s|%s|%s', c.oid::regclass, lpad(l.n::text, 4, '0'), l.text)
	  FROM pg_class AS c,
		   regexp_split_to_table(pg_get_viewdef(c.oid), E'\n') WITH ORDINALITY AS l (text, n)
	 WHERE c.oid >= 16384 AND c.relkind IN ('v', 'm')
	UNION ALL
	-- row-level security policies
	SELECT format('policy|%s|%s|cmd=%s permissive=%s roles=%s using=%s check=%s',
				  p.polrelid::regclass, p.polname, p.polcmd, p.polpermissive,
				  (SELECT array_agg(CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END ORDER BY 1)
					 FROM unnest(p.polroles) AS r),
				  pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
	  FROM pg_policy AS p
	 WHERE p.oid >= 16384
	UNION ALL
	-- sequences
	SELECT format('sequence|%s|type=%s start=%s increment=%s min=%s max=%s cache=%s cycle=%s',
				  s.seqrelid::regclass, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
				  s.seqmin, s.seqmax, s.seqcache, s.seqcycle)
	  FROM pg_sequence AS s
	 WHERE s.seqrelid >= 16384
	UNION ALL
	-- functions: attributes, then the whole definition line by line
	SELECT format('function|%s|kind=%s owner=%s acl=%s secdef=%s config=%s volatile=%s strict=%s parallel=%s leakproof=%s cost=%s rows=%s support=%s language=%s',
				  p.oid::regprocedure, p.prokind, p.proowner::regrole, p.proacl, p.prosecdef,
				  p.proconfig, p.provolatile, p.proisstrict, p.proparallel, p.proleakproof,
				  p.procost, p.prorows, p.prosupport,
				  (SELECT lanname FROM pg_language WHERE oid = p.prolang))
	  FROM pg_proc AS p
	 WHERE p.oid >= 16384
	UNION ALL
	SELECT format('function|%s|%s|%s', p.oid::regprocedure, lpad(l.n::text, 4, '0'), l.text)
	  FROM pg_proc AS p,
		   regexp_split_to_table(CASE WHEN p.prokind IN ('f', 'p', 'w') THEN pg_get_functiondef(p.oid)
									  ELSE p.prosrc END, E'\n') WITH ORDINALITY AS l (text, n)
	 WHERE p.oid >= 16384
	UNION ALL
	-- types: enums with their labels in order, domains, composites
	SELECT format('type|%s|type=%s owner=%s acl=%s base=%s notnull=%s default=%s collation=%s labels=%s',
				  format_type(t.oid, NULL), t.typtype, t.typowner::regrole, t.typacl,
				  CASE WHEN t.typbasetype <> 0 THEN format_type(t.typbasetype, t.typtypmod) END,
				  t.typnotnull, t.typdefault,
				  (SELECT collname FROM pg_collation WHERE oid = t.typcollation),
				  (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum AS e WHERE e.enumtypid = t.oid))
	  FROM pg_type AS t
	 WHERE t.oid >= 16384 AND t.typnamespace <> 'pg_toast'::regnamespace
	UNION ALL
	SELECT format('event_trigger|%s|event=%s function=%s tags=%s enabled=%s owner=%s',
				  et.evtname, et.evtevent, et.evtfoid::regprocedure, et.evttags, et.evtenabled,
				  et.evtowner::regrole)
	  FROM pg_event_trigger AS et
	 WHERE et.oid >= 16384
	UNION ALL
	-- comments (COMMENT ON), the extension's own included
	SELECT format('comment|%s|%s', pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description)
	  FROM pg_description AS d
	 WHERE d.objoid >= 16384
	UNION ALL
	-- the privileges an extension script granted (what pg_dump leaves out)
	SELECT format('init_privs|%s|type=%s privs=%s', pg_describe_object(ip.classoid, ip.objoid, ip.objsubid),
				  ip.privtype, ip.initprivs)
	  FROM pg_init_privs AS ip
	 WHERE ip.objoid >= 16384
	UNION ALL
	-- dependencies between user objects (and on the extension), both ends named
	SELECT DISTINCT format('depend|%s|%s|%s', pg_describe_object(d.classid, d.objid, d.objsubid), d.deptype,
				  pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid))
	  FROM pg_depend AS d
	 WHERE (d.objid >= 16384 OR d.refobjid >= 16384)
	   AND d.classid <> 0 AND d.refclassid <> 0
	   AND pg_describe_object(d.classid, d.objid, d.objsubid) !~ 'pg_toast'
	   AND pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) !~ 'pg_toast'
)
-- (the triggers of a foreign key are named after their OID: numbers out)
SELECT l
  FROM (SELECT regexp_replace(line, 'RI_ConstraintTrigger_([ac])_[0-9]+', 'RI_ConstraintTrigger_\1_N', 'g') AS l
		  FROM lines) AS s
 ORDER BY l COLLATE "C";
