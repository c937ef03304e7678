-- Room on each page for updated versions of its rows: a trigger's row is
-- updated once or twice soon after its insert (delivery status, then a
-- check), and an update whose new version fits on the same page and
-- changes no indexed column is a HOT update, which writes no index entry.
-- At the default fillfactor 100 about half of those updates found their
-- page full and wrote an entry in each of the table's five indexes. The
-- jobs table of the delivery queue is all inserts, updates and deletes of
-- short-lived rows: the same, and vacuumed as soon as a few thousand dead
-- rows pile up instead of a fifth of the table (its live rows are few).
-- Only pages written from now on are affected; no rewrite.
ALTER TABLE verifications SET (fillfactor = 85);
ALTER TABLE jobs SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
